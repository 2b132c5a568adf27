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
from rootlet.cli.render import (ago, describe_status, dump_json, err, out, ports_text, print_docs,
                                raise_collected, table)
from rootlet.registry.errors import UsageError

if TYPE_CHECKING:
    from rootlet.runtime.engine.reports import ContainerResult, ContainerSummary


def _report(results: list[ContainerResult], show: bool = True) -> None:
    """Print the name of each container the verb succeeded for (its warnings on stderr); raise
    the failures at the end."""
    for r in results:
        for warning in r.warnings:
            err(f"Warning: {warning}")
        if r.error is None and show:
            out(r.name)
    raise_collected([r.error for r in results if r.error is not None])


def start(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    attach: bool = typer.Option(False, "--attach", "-a", help="Attach to the container's output and wait for it."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Attach stdin (with -a)."),
    sig_proxy: bool = typer.Option(True, "--sig-proxy/--no-sig-proxy", help="Forward signals with -a."),
) -> None:
    """Start created or stopped containers (in the background unless -a)."""
    from rootlet.runtime.engine.options import StartOptions

    app: AppContext = ctx.obj
    results = app.engine().start(StartOptions(tuple(names or ()), attach=attach, interactive=interactive,
                                              sig_proxy=sig_proxy), notify=err)
    if attach or interactive:
        raise typer.Exit(results[0].exit_code or 0)
    _report(results)


def stop(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    time_: Optional[int] = typer.Option(None, "--time", "-t", help="Seconds to wait before SIGKILL (default: the container's, 10)."),
    all_: bool = typer.Option(False, "--all", "-a", help="Stop every running container."),
) -> None:
    """Stop running containers: their stop signal, then SIGKILL after the timeout."""
    from rootlet.runtime.engine.options import StopOptions

    app: AppContext = ctx.obj
    _report(app.engine().stop(StopOptions(tuple(names or ()), timeout=time_, all=all_)))


def kill(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    sig: str = typer.Option("KILL", "--signal", "-s", help="Signal to send (name or number)."),
) -> None:
    """Send a signal to running containers (default SIGKILL)."""
    from rootlet.runtime.engine.options import KillOptions

    app: AppContext = ctx.obj
    _report(app.engine().kill(KillOptions(tuple(names or ()), signal=sig)))


def wait(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
) -> None:
    """Wait for containers to exit and print their exit codes."""
    from rootlet.runtime.engine.options import WaitOptions

    app: AppContext = ctx.obj
    results = app.engine().wait(WaitOptions(tuple(names or ())))
    for r in results:
        if r.error is None:
            out(str(r.exit_code))
    _report(results, show=False)


def rm(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    force: bool = typer.Option(False, "--force", "-f", help="Stop (SIGKILL) running containers first."),
    volumes: bool = typer.Option(False, "--volumes", "-v", help="Also remove their anonymous volumes."),
    all_: bool = typer.Option(False, "--all", "-a", help="Remove every container."),
) -> None:
    """Remove containers."""
    from rootlet.runtime.engine.options import RmOptions

    app: AppContext = ctx.obj
    _report(app.engine().rm(RmOptions(tuple(names or ()), force=force, volumes=volumes, all=all_)))


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


def ps(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Also containers that are not running."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only container ids."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not truncate ids and commands."),
    fmt: Optional[str] = typer.Option(None, "--format", help="table, json, or a Go template such as '{{.Names}}'."),
    filters: List[str] = typer.Option(None, "--filter", "-f", help="name=, status=, label=K[=V], ancestor=, id=, exited=."),
    last: Optional[int] = typer.Option(None, "--last", "-n", help="Only the N most recently created containers (implies -a)."),
    latest: bool = typer.Option(False, "--latest", "-l", help="Only the most recently created container (implies -a)."),
    noheading: bool = typer.Option(False, "--noheading", help="Omit the table header."),
) -> None:
    """List containers (running ones, or all with -a)."""
    from rootlet.runtime.engine.options import PsOptions

    app: AppContext = ctx.obj
    if latest:
        last = 1
    rows = app.engine().ps(PsOptions(all=all_, filters=tuple(filters or ()), last=last))
    if quiet:
        for r in rows:
            out(r.id if no_trunc else r.id[:12])
        return
    if fmt == "json":
        dump_json([_ps_json(r) for r in rows])
        return
    if fmt not in (None, "", "table"):
        from rootlet.cli.template import render_template

        template = fmt[len("table "):] if fmt.startswith("table ") else fmt
        for r in rows:
            doc = dict(_ps_json(r), ID=r.id if no_trunc else r.id[:12], Names=r.name,
                       Command=_command(r, no_trunc), Ports=ports_text(r.ports),
                       RunningFor=ago(r.created).removesuffix(" ago"))
            out(render_template(template, doc))
        return
    body = [[r.id if no_trunc else r.id[:12], r.image, _command(r, no_trunc), ago(r.created), _status(r),
             ports_text(r.ports), r.name] for r in rows]
    text = table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], body)
    if noheading:
        text = text.split("\n", 1)[1] if "\n" in text else ""
    if text:
        out(text)


def _status(r: ContainerSummary) -> str:
    return describe_status(r.status, r.started_at, r.finished_at, r.exit_code)


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
    cmd = " ".join(r.command)
    if not no_trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    return f'"{cmd}"' if not no_trunc else cmd


def logs(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output until the container exits."),
    tail: Optional[str] = typer.Option(None, "--tail", "-n", help="Only the last N lines ('all' for every line)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only output after this time (RFC 3339, Unix time, or 10m)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only output before this time."),
    timestamps: bool = typer.Option(False, "--timestamps", "-t", help="Prefix each line with its time."),
) -> None:
    """Print a container's output: its stdout on stdout, its stderr on stderr."""
    from rootlet.runtime.engine.options import LogsOptions

    app: AppContext = ctx.obj
    tail_n: Optional[int] = None
    if tail not in (None, "all", "-1"):
        if not tail.isdigit():
            raise UsageError(f"invalid --tail {tail!r}", "give a number of lines, or 'all'")
        tail_n = int(tail)
    records = app.engine().logs(LogsOptions(container, follow=follow, tail=tail_n, since=since, until=until))
    streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for rec in records:
        stream = streams[rec.stream]
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
    follow_link: bool = typer.Option(False, "--follow-link", "-L", help="Follow a symlink given as the source."),
    archive: bool = typer.Option(False, "--archive", "-a", help="Keep ownership (not supported: refused)."),
) -> None:
    """Copy files between a container and the host: CONTAINER:SRC DST, or SRC CONTAINER:DST."""
    from rootlet.runtime.engine.options import CopyOptions

    app: AppContext = ctx.obj
    if archive:
        raise UsageError("cp --archive is not supported", "files copied in belong to the container's root, "
                         "files copied out to you")
    app.engine().cp(CopyOptions(src, dst, follow_link=follow_link))


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
    app.add_typer(group, name="container")
