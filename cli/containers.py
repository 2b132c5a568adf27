"""Container lifecycle commands: start, stop, kill, wait, rm, restart, rename, ps, logs, port, top,
inspect, container prune (and the ``container`` group that holds them all)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import ago, dump_json, err, out, table
from rootlet.registry.errors import RootletError, UsageError


def _each(app: AppContext, names: List[str], action) -> None:  # noqa: ANN001 - a callable(store, cid, name)
    """Apply ``action`` to every named container; report failures and fail at the end like podman."""
    from rootlet.runtime.containers import ContainerStore

    if not names:
        raise UsageError("give at least one container name or id")
    store = app.store()
    containers = ContainerStore(store)
    errors: list[RootletError] = []
    for name in names:
        try:
            action(store, containers.resolve(name), name)
        except RootletError as exc:
            errors.append(exc)
    _raise_collected(errors)


def _raise_collected(errors: list[RootletError]) -> None:
    """After handling every name: each failure but the last as a line, then the last one raised
    (the error boundary prints it with its hint and sets the exit code)."""
    for extra in errors[:-1]:
        err(f"Error: {extra.message}")
    if errors:
        raise errors[-1]


def start(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    attach: bool = typer.Option(False, "--attach", "-a", help="Attach to the container's output and wait for it."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Attach stdin (with -a)."),
    sig_proxy: bool = typer.Option(True, "--sig-proxy/--no-sig-proxy", help="Forward signals with -a."),
) -> None:
    """Start created or stopped containers (in the background unless -a)."""
    app: AppContext = ctx.obj
    names = names or []
    if attach or interactive:
        if len(names) != 1:
            raise UsageError("start -a/-i takes exactly one container")
        from rootlet.runtime.containers import ContainerStore
        from rootlet.runtime.start import run_foreground

        store = app.store()
        cid = ContainerStore(store).resolve(names[0])
        raise typer.Exit(run_foreground(store, cid, interactive=interactive, sig_proxy=sig_proxy))

    def one(store, cid, name):  # noqa: ANN001
        from rootlet.runtime.monitor import start_detached

        start_detached(store, cid)
        out(name)

    _each(app, names, one)


def stop(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    time_: Optional[int] = typer.Option(None, "--time", "-t", help="Seconds to wait before SIGKILL (default: the container's, 10)."),
    all_: bool = typer.Option(False, "--all", "-a", help="Stop every running container."),
) -> None:
    """Stop running containers: their stop signal, then SIGKILL after the timeout."""
    from rootlet.runtime.lifecycle import stop_container

    app: AppContext = ctx.obj
    if time_ is not None and time_ < 0:
        raise UsageError("--time must not be negative")
    names = _all_if(app, names or [], all_, running_only=True)
    if not names and all_:
        return
    _each(app, names, lambda store, cid, name: (stop_container(store, cid, timeout=time_), out(name)))


def _all_if(app: AppContext, names: List[str], all_: bool, running_only: bool) -> List[str]:
    if not all_:
        return names
    if names:
        raise UsageError("--all and container names cannot be combined")
    from rootlet.runtime.containerinfo import list_containers

    return [r["Id"] for r in list_containers(app.store(), all_=not running_only)]


def kill(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    sig: str = typer.Option("KILL", "--signal", "-s", help="Signal to send (name or number)."),
) -> None:
    """Send a signal to running containers (default SIGKILL)."""
    from rootlet.runtime.create import parse_signal
    from rootlet.runtime.lifecycle import kill_container

    app: AppContext = ctx.obj
    num = parse_signal(sig, "--signal")
    _each(app, names or [], lambda store, cid, name: (kill_container(store, cid, num), out(name)))


def wait(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
) -> None:
    """Wait for containers to exit and print their exit codes."""
    from rootlet.runtime.lifecycle import wait_container

    app: AppContext = ctx.obj
    _each(app, names or [], lambda store, cid, name: out(str(wait_container(store, cid))))


def rm(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    force: bool = typer.Option(False, "--force", "-f", help="Stop (SIGKILL) running containers first."),
    volumes: bool = typer.Option(False, "--volumes", "-v", help="Also remove their anonymous volumes."),
    all_: bool = typer.Option(False, "--all", "-a", help="Remove every container."),
) -> None:
    """Remove containers."""
    from rootlet.runtime.lifecycle import remove_container

    app: AppContext = ctx.obj
    names = _all_if(app, names or [], all_, running_only=False)
    if not names and all_:
        return
    _each(app, names, lambda store, cid, name: (remove_container(store, cid, force=force, volumes=volumes), out(name)))


def restart(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    time_: Optional[int] = typer.Option(None, "--time", "-t", help="Seconds to wait before SIGKILL when stopping."),
) -> None:
    """Stop (if running) and start containers again, in the background."""
    from rootlet.runtime.lifecycle import stop_container
    from rootlet.runtime.monitor import start_detached

    app: AppContext = ctx.obj

    def one(store, cid, name):  # noqa: ANN001
        stop_container(store, cid, timeout=time_)
        start_detached(store, cid)
        out(name)

    _each(app, names or [], one)


def rename(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    new_name: str = typer.Argument(..., metavar="NEW_NAME"),
) -> None:
    """Give a container a new name."""
    from rootlet.runtime.containers import ContainerStore

    app: AppContext = ctx.obj
    containers = ContainerStore(app.store())
    containers.rename(containers.resolve(container), new_name)


def prune(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove every container that is not running."""
    from rootlet.runtime.lifecycle import prune_containers

    app: AppContext = ctx.obj
    if not force and sys.stdin.isatty() and not typer.confirm(
            "This removes all stopped containers. Continue?", default=False, err=True):
        return
    for cid in prune_containers(app.store()):
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
    from rootlet.runtime.containerinfo import list_containers

    app: AppContext = ctx.obj
    if latest:
        last = 1
    rows = list_containers(app.store(), all_=all_ or last is not None, filters=filters or []) \
        if app.store().exists() else []
    if last is not None:
        rows = rows[:max(0, last)]
    if quiet:
        for r in rows:
            out(r["Id"] if no_trunc else r["Id"][:12])
        return
    if fmt == "json":
        dump_json([{k: v for k, v in r.items() if k != "PortsText"} for r in rows])
        return
    if fmt not in (None, "", "table"):
        from rootlet.cli.template import render_template

        template = fmt[len("table "):] if fmt.startswith("table ") else fmt
        for r in rows:
            doc = dict(r, ID=r["Id"] if no_trunc else r["Id"][:12], Names=r["Names"][0],
                       Command=_command(r, no_trunc), Ports=r["PortsText"], CreatedAt=r["CreatedAt"],
                       RunningFor=ago(r["Created"]).removesuffix(" ago"))
            out(render_template(template, doc))
        return
    body = [[r["Id"] if no_trunc else r["Id"][:12], r["Image"], _command(r, no_trunc), ago(r["Created"]),
             r["Status"], r["PortsText"], r["Names"][0]] for r in rows]
    text = table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], body)
    if noheading:
        text = text.split("\n", 1)[1] if "\n" in text else ""
    if text:
        out(text)


def _command(row: dict, no_trunc: bool) -> str:
    cmd = " ".join(row["Command"])
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
    from rootlet.runtime.containers import ContainerStore
    from rootlet.runtime.logfile import parse_since
    from rootlet.runtime.logview import LogsOptions, stream_logs

    app: AppContext = ctx.obj
    tail_n: Optional[int] = None
    if tail not in (None, "all", "-1"):
        if not tail.isdigit():
            raise UsageError(f"invalid --tail {tail!r}", "give a number of lines, or 'all'")
        tail_n = int(tail)
    opts = LogsOptions(follow=follow, tail=tail_n, since=parse_since(since, "--since") if since else None,
                       until=parse_since(until, "--until") if until else None)
    store = app.store()
    cid = ContainerStore(store).resolve(container)
    streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for rec in stream_logs(store, cid, opts):
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
    from rootlet.runtime.containerinfo import container_ports
    from rootlet.runtime.containers import ContainerStore

    app: AppContext = ctx.obj
    store = app.store()
    pairs = container_ports(store, ContainerStore(store).resolve(container))
    if private is None:
        for inner, outer in pairs:
            out(f"{inner} -> {outer}")
        return
    key = private if "/" in private else f"{private}/tcp"
    hits = [outer for inner, outer in pairs if inner == key]
    if not hits:
        raise UsageError(f"no public port {key!r} published for {container}")
    for outer in hits:
        out(outer)


def top(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    descriptors: List[str] = typer.Argument(None, metavar="[FORMAT-DESCRIPTORS]"),
) -> None:
    """Show the processes of a running container."""
    from rootlet.runtime.containerinfo import container_processes
    from rootlet.runtime.containers import ContainerStore

    app: AppContext = ctx.obj
    columns = ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]
    if descriptors:
        wanted = [d.lstrip("-").upper() for d in descriptors]
        aliases = {"ARGS": "COMMAND", "CMD": "COMMAND", "COMM": "COMMAND", "PCPU": "%CPU", "ETIME": "ELAPSED"}
        wanted = [aliases.get(w, w) for w in wanted]
        unknown = [w for w in wanted if w not in columns]
        if unknown:
            raise UsageError(f"unsupported top descriptor(s): {', '.join(unknown).lower()}",
                             "use user, pid, ppid, pcpu, etime, tty, time, args")
        columns = wanted
    store = app.store()
    rows = container_processes(store, ContainerStore(store).resolve(container))
    out(table(columns, [[r[c] for c in columns] for r in rows]))


def cp(
    ctx: typer.Context,
    src: str = typer.Argument(..., metavar="SRC"),
    dst: str = typer.Argument(..., metavar="DST"),
    follow_link: bool = typer.Option(False, "--follow-link", "-L", help="Follow a symlink given as the source."),
    archive: bool = typer.Option(False, "--archive", "-a", help="Keep ownership (not supported: refused)."),
) -> None:
    """Copy files between a container and the host: CONTAINER:SRC DST, or SRC CONTAINER:DST."""
    from rootlet.runtime.cp import CopyRequest, copy, parse_cp_args

    app: AppContext = ctx.obj
    if archive:
        raise UsageError("cp --archive is not supported", "files copied in belong to the container's root, "
                         "files copied out to you")
    container, cpath, hpath, into = parse_cp_args(src, dst)
    copy(app.store(), CopyRequest(container, cpath, hpath, into, follow_link))


def inspect(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="NAME..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (default) or a Go template such as '{{.State.Status}}'."),
    type_: str = typer.Option("all", "--type", "-t", help="container, image, or all (containers first)."),
) -> None:
    """Show the configuration and state of containers or images as JSON (docker's field names)."""
    from rootlet.cli.template import render_template
    from rootlet.runtime.containerinfo import inspect_container
    from rootlet.runtime.containers import ContainerNotFound, ContainerStore
    from rootlet.runtime.images import inspect_image

    app: AppContext = ctx.obj
    if type_ not in ("all", "container", "image"):
        raise UsageError(f"invalid --type {type_!r}", "use container, image or all")
    store = app.store()
    containers = ContainerStore(store)
    docs, errors = [], []
    for name in names:
        try:
            if type_ != "image":
                try:
                    docs.append(inspect_container(store, containers.resolve(name)))
                    continue
                except ContainerNotFound:
                    if type_ == "container":
                        raise
            docs.append(inspect_image(store, name))
        except RootletError as exc:
            errors.append(exc)
    if fmt in (None, "", "json"):
        dump_json(docs)
    else:
        for doc in docs:
            out(render_template(fmt, doc))
    _raise_collected(errors)


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
