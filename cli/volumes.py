"""The ``volume`` group: create, ls, inspect, rm, prune, exists (podman's flags and output)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import out, print_docs, print_rows, raise_collected
from rootlet.registry.errors import UsageError

#: podman's ``volume ls`` table, and its header for the name column.
LS_TABLE = "table {{.Driver}}\t{{.Name}}"
LS_HEADERS = {"Name": "VOLUME NAME"}


def confirm_or_refuse(force: bool, what: str, prompt: str) -> bool:
    """Whether to go on with a destructive verb: yes with ``-f``; on a terminal, ask (podman's
    ``[y/N]``); otherwise refuse: nothing is removed without ``-f`` that no one could confirm."""
    if force:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{what} needs -f when stdin is not a terminal (there is nobody to confirm it)",
                         f"rootlet {what} -f")
    sys.stderr.write(prompt + "\nAre you sure you want to continue? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def create(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, metavar="[NAME]", help="Default: a random 64-hex name."),
    driver: str = typer.Option("local", "--driver", "-d", help="local (the only one)."),
    labels: List[str] = typer.Option(None, "--label", "-l", help="KEY=VALUE (repeatable)."),
    options: List[str] = typer.Option(None, "--opt", "-o", help="type=tmpfs|none|bind, device=PATH, o=OPTIONS "
                                      "(a tmpfs per container, or a bind mount of a host directory)."),
    ignore: bool = typer.Option(False, "--ignore", help="An existing volume of that name is no error."),
) -> None:
    """Create a volume; prints its name."""
    from rootlet.runtime.engine.options import VolumeCreateOptions

    app: AppContext = ctx.obj
    out(app.engine().volume_create(VolumeCreateOptions(name=name, driver=driver, labels=tuple(labels or ()),
                                                       options=tuple(options or ()), ignore=ignore)))


def _template_doc(doc: dict) -> dict:
    """A volume document as podman's templates see it: ``.CreatedAt`` a Go time (to the nanosecond)."""
    import time

    from rootlet.registry.timestamps import parse_rfc3339

    parts = parse_rfc3339(str(doc.get("CreatedAt") or ""))
    if parts is None:
        return doc
    secs, nanos = parts
    local = time.localtime(secs)
    frac = f"{nanos:09d}".rstrip("0")
    shown = time.strftime("%Y-%m-%d %H:%M:%S", local) + (f".{frac}" if frac else "") + time.strftime(" %z %Z", local)
    return dict(doc, CreatedAt=shown)


def ls(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the names."),
    filters: List[str] = typer.Option(None, "--filter", "-f", help="name=REGEX, label=K[=V], driver=, dangling=true|false, "
                                      "anonymous=, until=TIME."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json, or a Go template: '{{.Name}} {{.Mountpoint}}'."),
    noheading: bool = typer.Option(False, "--noheading", "-n", help="Omit the table header."),
) -> None:
    """List volumes."""
    from rootlet.runtime.engine.options import VolumeLsOptions

    app: AppContext = ctx.obj
    docs = app.engine().volume_ls(VolumeLsOptions(filters=tuple(filters or ())))
    if quiet:
        for doc in docs:
            out(str(doc["Name"]))
        return
    print_rows(fmt, docs, [_template_doc(d) for d in docs], LS_TABLE, LS_HEADERS, heading=not noheading)


def inspect(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="VOLUME..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (default) or a Go template: '{{.Mountpoint}}'."),
    all_: bool = typer.Option(False, "--all", "-a", help="Every volume."),
) -> None:
    """Show volumes' details as JSON (podman's fields)."""
    from rootlet.cli.template import format_kind

    app: AppContext = ctx.obj
    report = app.engine().volume_inspect(tuple(names or ()), all_=all_)
    docs = report.docs if format_kind(fmt) in ("json", "default") else [_template_doc(d) for d in report.docs]
    print_docs(docs, fmt)
    raise_collected(report.errors)


def rm(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="VOLUME..."),
    force: bool = typer.Option(False, "--force", "-f", help="Also remove the containers that use them (stopping them)."),
    all_: bool = typer.Option(False, "--all", "-a", help="Every volume."),
) -> None:
    """Remove volumes. Exit status as podman's: 1 when one did not exist, 2 when one is in use."""
    from rootlet.registry.errors import VolumeInUse, VolumeNotFound
    from rootlet.runtime.engine.options import VolumeRmOptions

    app: AppContext = ctx.obj
    results = app.engine().volume_rm(VolumeRmOptions(tuple(names or ()), force=force, all=all_))
    for r in results:
        if r.error is None:
            out(r.name)
    raise_collected([r.error for r in results if r.error is not None], ((VolumeInUse, 2), (VolumeNotFound, 1)))


def prune(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
    filters: List[str] = typer.Option(None, "--filter", help="label=K[=V], label!=K[=V], until=TIME."),
) -> None:
    """Remove every volume no container uses; prints their names."""
    from rootlet.runtime.engine.options import VolumePruneOptions

    app: AppContext = ctx.obj
    if not confirm_or_refuse(force, "volume prune", "WARNING! This will remove all volumes not used by at least "
                             "one container."):
        return
    for name in app.engine().volume_prune(VolumePruneOptions(tuple(filters or ()))).names:
        out(name)


def exists(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="VOLUME"),
) -> None:
    """Exit 0 when the volume exists, 1 when it does not (nothing is printed)."""
    app: AppContext = ctx.obj
    raise typer.Exit(0 if app.engine().volume_exists(name) else 1)


def register(app: typer.Typer) -> None:
    """Add the ``volume`` group."""
    group = typer.Typer(help="Manage volumes.", no_args_is_help=True)
    group.command("create")(create)
    group.command("ls")(ls)
    group.command("list")(ls)
    group.command("inspect")(inspect)
    group.command("rm")(rm)
    group.command("remove")(rm)
    group.command("prune")(prune)
    group.command("exists")(exists)
    app.add_typer(group, name="volume")
