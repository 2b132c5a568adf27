"""Container lifecycle commands: start, stop, kill, wait, rm, restart, rename, ps, logs, port, top,
inspect, cp, container prune (and the ``container`` group that holds them all).

Each parses its flags, builds the engine's options, calls one engine method and renders the
report; verbs that take several containers print the name of each that succeeded and report the
failures at the end, as podman does.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import (ago, describe_status, dump_json, err, go_time, human_size, out, ports_text,
                                print_docs, raise_collected, table)
from rootlet.registry.errors import UsageError

if TYPE_CHECKING:
    from rootlet.runtime.engine.reports import ContainerResult, ContainerSummary


def _report(results: list[ContainerResult], show: bool = True, codes: tuple[tuple[type, int], ...] = ()) -> None:
    """Print the name of each container the verb succeeded for (its warnings on stderr); raise
    the failures at the end (with the verb's exit ``codes``: ``raise_collected``)."""
    for r in results:
        for warning in r.warnings:
            err(f"Warning: {warning}")
        if r.error is None and show and r.id:  # no id: a missing container that --ignore skipped
            out(r.name)
    raise_collected([r.error for r in results if r.error is not None], codes)


def _targets(app: AppContext, names: Optional[List[str]], cidfiles: Optional[List[str]] = None,
             latest: bool = False, ignore: bool = False) -> tuple[str, ...]:
    """The containers a verb names: its arguments, the ids in ``--cidfile`` files (a missing file
    is skipped with ``--ignore``, as podman does) and, with ``--latest``, the newest container."""
    targets = list(names or ())
    for path in cidfiles or ():
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                cid = f.read(256).strip()
        except FileNotFoundError:
            if ignore:
                continue
            raise UsageError(f"reading CIDFile: open {path}: no such file or directory") from None
        except OSError as exc:
            raise UsageError(f"reading CIDFile {path}: {exc.strerror}") from None
        if not cid:
            raise UsageError(f"CIDFile {path} is empty")
        targets.append(cid)
    if latest:
        from rootlet.runtime.engine.options import PsOptions

        if targets:
            raise UsageError("--latest and container names cannot be combined")
        newest = app.engine().ps(PsOptions(all=True, last=1))
        if not newest:
            raise UsageError("no containers to use with --latest")
        targets.append(newest[0].id)
    return tuple(targets)


def start(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    attach: bool = typer.Option(False, "--attach", "-a", help="Attach to the container's output and wait for it."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Attach stdin (with -a)."),
    sig_proxy: bool = typer.Option(True, "--sig-proxy/--no-sig-proxy", help="Forward signals with -a."),
    all_: bool = typer.Option(False, "--all", help="Start every container that is not running."),
    filters: List[str] = typer.Option(None, "--filter", "-f", help="With --all: only those matching (ps's filters)."),
    latest: bool = typer.Option(False, "--latest", "-l", help="The most recently created container."),
) -> None:
    """Start created or stopped containers (in the background unless -a); 125 if one cannot start."""
    from rootlet.registry.errors import ContainerStartError
    from rootlet.runtime.engine.options import StartOptions

    app: AppContext = ctx.obj
    results = app.engine().start(StartOptions(_targets(app, names, latest=latest), attach=attach,
                                              interactive=interactive, sig_proxy=sig_proxy, all=all_,
                                              filters=tuple(filters or ())), notify=err)
    if attach or interactive:
        raise typer.Exit(results[0].exit_code or 0)
    _report(results, codes=((ContainerStartError, 125),))  # podman's start: 125 (run says 126/127)


def stop(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    time_: Optional[int] = typer.Option(None, "--time", "-t", "--timeout",
                                        help="Seconds to wait before SIGKILL (default: the container's, 10)."),
    all_: bool = typer.Option(False, "--all", "-a", help="Stop every running container."),
    cidfiles: List[str] = typer.Option(None, "--cidfile", help="Read a container id from this file (repeatable)."),
    ignore: bool = typer.Option(False, "--ignore", "-i", help="A container that does not exist is no error."),
    latest: bool = typer.Option(False, "--latest", "-l", help="The most recently created container."),
) -> None:
    """Stop running containers: their stop signal, then SIGKILL after the timeout."""
    from rootlet.runtime.engine.options import StopOptions

    app: AppContext = ctx.obj
    _report(app.engine().stop(StopOptions(_targets(app, names, cidfiles, latest, ignore), timeout=time_, all=all_,
                                          ignore=ignore)))


def kill(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    sig: str = typer.Option("KILL", "--signal", "-s", help="Signal to send (name or number)."),
    all_: bool = typer.Option(False, "--all", "-a", help="Signal every running container."),
    cidfiles: List[str] = typer.Option(None, "--cidfile", help="Read a container id from this file (repeatable)."),
    latest: bool = typer.Option(False, "--latest", "-l", help="The most recently created container."),
) -> None:
    """Send a signal to running containers (default SIGKILL)."""
    from rootlet.runtime.engine.options import KillOptions

    app: AppContext = ctx.obj
    _report(app.engine().kill(KillOptions(_targets(app, names, cidfiles, latest), signal=sig, all=all_)))


def wait(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    conditions: List[str] = typer.Option(None, "--condition", help="configured, created, exited, running or stopped "
                                         "(repeatable; default stopped: not running, as podman)."),
    interval: float = typer.Option(0.25, "--interval", "-i", help="Seconds between checks of a condition."),
    ignore: bool = typer.Option(False, "--ignore", help="A container that does not exist prints -1, no error."),
    latest: bool = typer.Option(False, "--latest", "-l", help="The most recently created container."),
) -> None:
    """Wait until containers stop (podman's rule: one only created is not running) and print their exit codes."""
    from rootlet.runtime.engine.options import WaitOptions

    app: AppContext = ctx.obj
    results = app.engine().wait(WaitOptions(_targets(app, names, latest=latest), conditions=tuple(conditions or ()),
                                            interval=interval, ignore=ignore))
    for r in results:
        if r.error is None:
            out(str(r.exit_code))
    _report(results, show=False)


def rm(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    force: bool = typer.Option(False, "--force", "-f", help="Stop running containers first (SIGKILL at once, as docker, "
                               "unless -t)."),
    volumes: bool = typer.Option(False, "--volumes", "-v", help="Also remove their anonymous volumes."),
    all_: bool = typer.Option(False, "--all", "-a", help="Remove every container."),
    time_: Optional[int] = typer.Option(None, "--time", "-t", help="With -f: the stop signal, then SIGKILL after "
                                        "this many seconds."),
    ignore: bool = typer.Option(False, "--ignore", "-i", help="A container that does not exist is no error."),
    depend: bool = typer.Option(False, "--depend", help="Also remove the containers that depend on these (rootlet "
                                "has none: no pods or --requires yet)."),
    cidfiles: List[str] = typer.Option(None, "--cidfile", help="Read a container id from this file (repeatable)."),
    latest: bool = typer.Option(False, "--latest", "-l", help="The most recently created container."),
) -> None:
    """Remove containers. Exit status as podman's: 1 when one did not exist, 2 when one is running."""
    from rootlet.registry.errors import ContainerNotFound, ContainerRunning
    from rootlet.runtime.engine.options import RmOptions

    del depend  # no container depends on another in rootlet: --depend removes exactly what is named
    app: AppContext = ctx.obj
    results = app.engine().rm(RmOptions(_targets(app, names, cidfiles, latest, ignore), force=force, volumes=volumes,
                                        all=all_, timeout=time_, ignore=ignore))
    _report(results, codes=((ContainerRunning, 2), (ContainerNotFound, 1)))


def restart(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    time_: Optional[int] = typer.Option(None, "--time", "-t", help="Seconds to wait before SIGKILL when stopping."),
) -> None:
    """Stop (if running) and start containers again, in the background."""
    from rootlet.runtime.engine.options import RestartOptions

    app: AppContext = ctx.obj
    _report(app.engine().restart(RestartOptions(tuple(names or ()), timeout=time_)))


def rename(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    new_name: str = typer.Argument(..., metavar="NEW_NAME"),
) -> None:
    """Give a container a new name."""
    from rootlet.runtime.engine.options import RenameOptions

    app: AppContext = ctx.obj
    app.engine().rename(RenameOptions(container, new_name))


def prune(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove every container that is not running."""
    app: AppContext = ctx.obj
    if not force and sys.stdin.isatty() and not typer.confirm(
            "This removes all stopped containers. Continue?", default=False, err=True):
        return
    for cid in app.engine().container_prune():
        out(cid)


#: podman's default ``ps`` table, and the header words that differ from the field names.
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "CreatedHuman": "CREATED"}


def ps(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Also containers that are not running."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only container ids."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not truncate ids and commands."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json, or a Go template: '{{.Names}} {{.Status}}', "
                                      "'table {{.ID}}\\t{{.Names}}' (with headers)."),
    filters: List[str] = typer.Option(None, "--filter", "-f", help="name=, status=, label=K[=V], ancestor=, id=, exited=."),
    last: Optional[int] = typer.Option(None, "--last", "-n", help="Only the N most recently created containers (implies -a)."),
    latest: bool = typer.Option(False, "--latest", "-l", help="Only the most recently created container (implies -a)."),
    noheading: bool = typer.Option(False, "--noheading", help="Omit the table header."),
    size: bool = typer.Option(False, "--size", "-s", help="Show each container's own files' size (and with its image's)."),
    sort: str = typer.Option("created", "--sort", help="command, created, id, image, names, runningfor, size or status."),
    external: bool = typer.Option(False, "--external", help="Also containers of other tools (rootlet lists all it has "
                                  "anyway: it keeps no containers outside its own store)."),
) -> None:
    """List containers (running ones, or all with -a)."""
    from rootlet.cli.template import format_kind, render_rows
    from rootlet.runtime.engine.options import PsOptions

    del external  # every container in the store is rootlet's own: there are no external ones to add
    app: AppContext = ctx.obj
    if latest:
        last = 1
    kind = format_kind(fmt)
    rows = app.engine().ps(PsOptions(all=all_, filters=tuple(filters or ()), last=last, size=size, sort=sort))
    if quiet:
        for r in rows:
            out(r.id if no_trunc else r.id[:12])
        return
    if kind == "json":
        dump_json([_ps_json(r) for r in rows])
        return
    template = fmt if kind in ("table", "template") else PS_TABLE + ("\t{{.Size}}" if size else "")
    text = render_rows(template or "", [_ps_doc(r, no_trunc, size) for r in rows], PS_HEADERS, heading=not noheading)
    if text:
        out(text)


def _ps_doc(r: ContainerSummary, no_trunc: bool, size: bool) -> dict:
    """The fields a ``ps --format`` template sees: podman's names and texts. ``.State`` is the state
    word (``running``), as docker and podman 5 print it (podman 4 printed the status text)."""
    doc = dict(_ps_json(r), ID=r.id if no_trunc else r.id[:12], Names=r.name, ImageID=r.image_id if no_trunc
               else r.image_id[:12], Command=_command(r, no_trunc), Ports=ports_text(r.ports),
               CreatedAt=go_time(r.created), Created=go_time(r.created), CreatedHuman=ago(r.created),
               RunningFor=ago(r.created), Status=_status(r), Mounts=list(r.mounts), Networks=[],
               Pod="", PodName="")
    if size:
        doc["Size"] = f"{human_size(r.rw_size or 0)} (virtual {human_size(r.root_size or 0)})"
    return doc


def _status(r: ContainerSummary) -> str:
    text = describe_status(r.status, r.started_at, r.finished_at, r.exit_code)
    return f"{text} ({r.health})" if r.health and r.status == "running" else text  # podman's "(healthy)"


def _ps_json(r: ContainerSummary) -> dict:
    """podman's ``ps --format json`` record."""
    return {
        "Id": r.id, "Names": [r.name], "Image": r.image, "ImageID": r.image_id, "Command": list(r.command),
        "Created": int(r.created), "CreatedAt": r.created_at, "State": r.status, "Status": _status(r),
        "ExitCode": r.exit_code if r.exit_code is not None else 0, "Exited": r.status == "exited",
        "StartedAt": int(r.started_at or 0), "ExitedAt": int(r.finished_at or 0), "Pid": r.pid,
        "Ports": [{"host_ip": p.host_ip or "", "host_port": p.host_port, "container_port": p.container_port,
                   "protocol": p.protocol} for p in r.ports],
        "Labels": dict(r.labels), "AutoRemove": r.auto_remove, "RestartCount": r.restart_count,
    }


def _command(r: ContainerSummary, no_trunc: bool) -> str:
    """podman's COMMAND: the words joined, unquoted, cut to 17 characters and "..." past 20."""
    cmd = " ".join(r.command)
    return cmd[:17] + "..." if not no_trunc and len(cmd) > 20 else cmd


def logs(
    ctx: typer.Context,
    containers: List[str] = typer.Argument(..., metavar="CONTAINER..."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output until the container exits."),
    tail: Optional[str] = typer.Option(None, "--tail", "-n", help="Only the last N lines ('all' for every line)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only output after this time (RFC 3339, Unix time, or 10m)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only output before this time."),
    timestamps: bool = typer.Option(False, "--timestamps", "-t", help="Prefix each line with its time."),
    names: bool = typer.Option(False, "--names", help="With several containers, prefix lines with the name, "
                               "not the short id. (-n is --tail, as in docker; podman's -n is --names.)"),
) -> None:
    """Print containers' output: their stdout on stdout, their stderr on stderr (several: each line
    prefixed with the container's short id, or name with --names, as podman does)."""
    from rootlet.runtime.engine.options import LogsOptions

    app: AppContext = ctx.obj
    tail_n: Optional[int] = None
    if tail not in (None, "all", "-1"):
        if not tail.isdigit():
            raise UsageError(f"invalid --tail {tail!r}", "give a number of lines, or 'all'")
        tail_n = int(tail)
    records = app.engine().logs(LogsOptions(tuple(containers), follow=follow, tail=tail_n, since=since,
                                            until=until))
    streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    several = len(containers) > 1
    for cid, name, rec in records:
        stream = streams[rec.stream]
        if several:
            stream.write((name if names else cid[:12]).encode() + b" ")
        if timestamps:
            stream.write(rec.ts.encode() + b" ")
        stream.write(rec.data + (b"" if rec.partial else b"\n"))
        stream.flush()


def port(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    private: Optional[str] = typer.Argument(None, metavar="[PRIVATE_PORT[/PROTO]]"),
) -> None:
    """List a container's published ports, or the host address of one of them."""
    from rootlet.runtime.engine.options import PortOptions

    app: AppContext = ctx.obj
    report = app.engine().port(PortOptions(container, private))
    for inner, outer in report.pairs:
        out(outer if private is not None else f"{inner} -> {outer}")


def top(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    descriptors: List[str] = typer.Argument(None, metavar="[FORMAT-DESCRIPTORS]"),
) -> None:
    """Show the processes of a running container."""
    from rootlet.runtime.engine.options import TopOptions

    app: AppContext = ctx.obj
    report = app.engine().top(TopOptions(container, tuple(descriptors or ())))
    out(table(report.columns, [[r[c] for c in report.columns] for r in report.rows]))


def cp(
    ctx: typer.Context,
    src: str = typer.Argument(..., metavar="SRC"),
    dst: str = typer.Argument(..., metavar="DST"),
    follow_link: bool = typer.Option(False, "--follow-link", "-L", help="Follow a symlink given as the source "
                                     "(docker's; podman always does)."),
    archive: Optional[str] = typer.Option(None, "--archive", metavar="BOOL", help="Give files copied in to the "
                                          "container's user (default true); false keeps their owners."),
    archive_short: bool = typer.Option(False, "-a", help="Same as --archive=true."),
    overwrite: Optional[str] = typer.Option(None, "--overwrite", metavar="BOOL", help="Let a directory replace "
                                            "a non-directory and the reverse."),
    pause: Optional[str] = typer.Option(None, "--pause", metavar="BOOL", help="Accepted for podman's scripts; "
                                        "rootlet cannot pause (see above)."),
) -> None:
    """Copy files between a container and the host: CONTAINER:SRC DST, or SRC CONTAINER:DST.

    DST '-' writes SRC as a tar stream to stdout (not to a terminal); SRC '-' extracts a tar stream
    (plain, gzip, bzip2, xz or zstd) from stdin into the directory DST. Its members cannot land
    outside the container: '/abs' and '../x' go below DST, symlinks are followed only inside the
    container's root, device nodes are skipped (said on stderr).

    --archive (podman's default, true): files copied in belong to the container's user (--user,
    else root); --archive=false keeps their owners (yours: the container's root). Files copied out
    are yours. --pause is accepted as podman 4.3 accepts it, but rootlet cannot pause a container
    (no cgroup freezer): for a running one the copy is made while it runs, as stderr then says;
    --pause=false says nothing.
    """
    import os

    from rootlet.cli.images import parse_bool
    from rootlet.runtime.engine.options import CopyOptions

    app: AppContext = ctx.obj
    keep = parse_bool(archive, "--archive")
    opts = CopyOptions(src, dst, follow_link=follow_link, archive=True if keep is None or archive_short else keep,
                       overwrite=bool(parse_bool(overwrite, "--overwrite")), pause=parse_bool(pause, "--pause"))
    stream = None
    if dst == "-" and src != "-":
        if os.isatty(1):
            raise UsageError("refusing to write a tar stream to a terminal",
                             "redirect it: rootlet cp CTR:SRC - > x.tar")
        stream = sys.stdout.buffer
    elif src == "-" and dst != "-":
        if os.isatty(0):
            raise UsageError("cannot read a tar stream from a terminal", "redirect it: rootlet cp - CTR:DIR < x.tar")
        stream = sys.stdin.buffer
    for warning in app.engine().cp(opts, stream):
        err(f"Warning: {warning}")


def inspect(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="NAME..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (default) or a Go template such as '{{.State.Status}}'."),
    type_: str = typer.Option("all", "--type", "-t", help="container, image, or all (containers first)."),
) -> None:
    """Show the configuration and state of containers or images as JSON (docker's field names)."""
    from rootlet.runtime.engine.options import InspectOptions

    app: AppContext = ctx.obj
    report = app.engine().inspect(InspectOptions(tuple(names), type=type_))
    print_docs(report.docs, fmt)
    raise_collected(report.errors)


def container_inspect(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="CONTAINER..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (default) or a Go template."),
) -> None:
    """Show the configuration and state of containers as JSON."""
    inspect(ctx, names, fmt, "container")


COMMANDS = (("start", start), ("stop", stop), ("kill", kill), ("wait", wait), ("rm", rm), ("restart", restart),
            ("rename", rename), ("ps", ps), ("logs", logs), ("port", port), ("top", top), ("cp", cp))


def container_exists(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="CONTAINER"),
) -> None:
    """Exit 0 when the container exists, 1 when it does not (nothing is printed)."""
    app: AppContext = ctx.obj
    raise typer.Exit(0 if app.engine().container_exists(name) else 1)


def register(app: typer.Typer) -> None:
    """Add the container commands at the top level and under ``container``."""
    for name, func in COMMANDS:
        app.command(name)(func)
    app.command("inspect")(inspect)
    group = typer.Typer(help="Manage containers.", no_args_is_help=True)
    for name, func in COMMANDS:
        group.command(name)(func)
    group.command("ls")(ps)
    group.command("list")(ps)
    group.command("prune")(prune)
    group.command("inspect")(container_inspect)
    group.command("exists")(container_exists)
    app.add_typer(group, name="container")
