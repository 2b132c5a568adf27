"""Container lifecycle commands: start, kill, wait, restart, rename, port, top, cp, container prune
(and the ``container`` group that holds them all; the fast-parsed verbs are listed there too).

Each parses its flags, builds the engine's options, calls one engine method and renders the
report; verbs that take several containers print the name of each that succeeded and report the
failures at the end, as podman does.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import err, out, table
from rootlet.cli.targets import container_targets, report_results
from rootlet.registry.errors import UsageError


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
    results = app.engine().start(StartOptions(container_targets(app.engine(), names, latest=latest), attach=attach,
                                              interactive=interactive, sig_proxy=sig_proxy, all=all_,
                                              filters=tuple(filters or ())), notify=err)
    if attach or interactive:
        raise typer.Exit(results[0].exit_code or 0)
    report_results(results, codes=((ContainerStartError, 125),))  # podman's start: 125 (run says 126/127)


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
    report_results(app.engine().kill(KillOptions(container_targets(app.engine(), names, cidfiles, latest), signal=sig, all=all_)))


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
    results = app.engine().wait(WaitOptions(container_targets(app.engine(), names, latest=latest), conditions=tuple(conditions or ()),
                                            interval=interval, ignore=ignore))
    for r in results:
        if r.error is None:
            out(str(r.exit_code))
    report_results(results, show=False)


def restart(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    time_: Optional[int] = typer.Option(None, "--time", "-t", help="Seconds to wait before SIGKILL when stopping."),
) -> None:
    """Stop (if running) and start containers again, in the background."""
    from rootlet.runtime.engine.options import RestartOptions

    app: AppContext = ctx.obj
    report_results(app.engine().restart(RestartOptions(tuple(names or ()), timeout=time_)))


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


COMMANDS = (("start", start), ("kill", kill), ("wait", wait), ("restart", restart),
            ("rename", rename), ("port", port), ("top", top), ("cp", cp))


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
    group = typer.Typer(help="Manage containers.", no_args_is_help=True)
    for name, func in COMMANDS:
        group.command(name)(func)
    group.command("prune")(prune)
    group.command("exists")(container_exists)
    app.add_typer(group, name="container")
