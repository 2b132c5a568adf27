"""``rootlet attach`` (this terminal to a detached container's streams) and ``healthcheck run``.

attach joins the container's monitor (``rootlet.runtime.lifecycle.streams``): its output comes
here, our input goes to it when it was started with ``-i``, and with a tty our terminal is raw and
its size follows ours. The detach keys (``ctrl-p,ctrl-q`` by default, podman's) leave the container
running and exit 0; otherwise attach ends with the container's run and exits with its code.
"""

from __future__ import annotations

import os
import signal

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import out
from rootlet.registry.errors import UsageError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def detach_sequence(text: str) -> bytes:
    """``--detach-keys`` (``ctrl-p,ctrl-q``, ``a,ctrl-@``; empty: none) as bytes."""
    out_ = bytearray()
    for key in filter(None, (k.strip() for k in text.split(","))):
        if len(key) == 1:
            out_.append(ord(key))
            continue
        name = key.lower()
        specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
        if name.startswith("ctrl-") and len(name) == 6 and ("a" <= name[5] <= "z" or name[5] in specials):
            out_.append(ord(name[5]) - ord("a") + 1 if "a" <= name[5] <= "z" else specials[name[5]])
            continue
        raise UsageError(f"invalid --detach-keys {text!r}",
                         "a comma-separated list of characters and ctrl-<value> (a-z, @, [, \\, ], ^, _)")
    return bytes(out_)


class TerminalClient:
    """This process's stdin and stdout as the client ``Attachment.relay`` copies to and from."""

    def __init__(self, detach: bytes) -> None:
        self.detach = detach
        self.held = b""  # a prefix of the detach keys, not yet passed on
        self.gone = False
        self.detached = False

    def fileno(self) -> int:
        return 0

    def buffered(self) -> bool:
        return False

    def read_input(self) -> bytes | None:
        try:
            data = os.read(0, 65536)
        except OSError:
            data = b""
        if not data:
            return self.held + b"" if self.held else b""
        if not self.detach:
            return data
        passed = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.detach.startswith(candidate):
                self.held = candidate
                if candidate == self.detach:
                    self.gone = self.detached = True
                    return None
            else:
                passed += candidate
                self.held = b""
        return bytes(passed) if passed else None

    def write(self, stream: str, data: bytes) -> None:
        fd = 1 if stream == "stdout" else 2
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


def attach(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    detach_keys: str = typer.Option(DEFAULT_DETACH_KEYS, "--detach-keys", help="Keys that detach, leaving it "
                                    "running (empty: none)."),
    no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not pass this terminal's input on."),
    sig_proxy: bool = typer.Option(True, "--sig-proxy/--no-sig-proxy", help="Pass signals this command receives "
                                   "on to the container (without a tty)."),
) -> None:
    """Attach this terminal to a running container started in the background; exits with its code."""
    from rootlet.registry.errors import ContainerStateError
    from rootlet.runtime.engine.options import AttachOptions, InspectOptions, KillOptions, WaitOptions

    keys = detach_sequence(detach_keys)
    app: AppContext = ctx.obj
    engine = app.engine()
    doc = engine.inspect(InspectOptions(names=(container,), type="container"))
    if doc.errors:
        raise doc.errors[0]
    info = doc.docs[0]
    if not info["State"]["Running"]:
        raise ContainerStateError(f"you can only attach to running containers: {info['Name']} is "
                                  f"{info['State']['Status']}", f"start it: rootlet start {info['Name']}")
    tty = bool(info["Config"]["Tty"])
    take_input = bool(info["Config"]["OpenStdin"]) and not no_stdin
    session = engine.attach(AttachOptions(container=info["Id"], stdin=take_input))
    client = TerminalClient(keys if take_input else b"")
    restore = None
    old = {}
    try:
        if tty and take_input and os.isatty(0):
            import termios
            import tty as tty_mod

            restore = termios.tcgetattr(0)
            tty_mod.setraw(0)
        if tty and os.isatty(1):
            def resize(*_: object) -> None:
                size = os.get_terminal_size(1)
                engine.resize(info["Id"], size.lines, size.columns)

            resize()
            old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resize)
        if sig_proxy and not tty:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                old[sig] = signal.signal(sig, lambda s, _f: engine.kill(KillOptions(names=(info["Id"],), signal=str(s))))
        session.relay(client)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if restore is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, restore)
    if client.detached:
        return
    results = engine.wait(WaitOptions(names=(info["Id"],), ignore=True))
    code = results[0].exit_code if results and results[0].exit_code is not None else 0
    raise typer.Exit(max(code, 0))


def healthcheck_run(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
) -> None:
    """Run a container's healthcheck now: exit 0 when it passes; 1 and "unhealthy" when it does not."""
    app: AppContext = ctx.obj
    health = app.engine().healthcheck_run(container)
    if health.log and health.log[-1].exit_code != 0:
        out("unhealthy" if health.status == "unhealthy" else health.status)
        raise typer.Exit(1)
    out("healthy")


def register(app: typer.Typer) -> None:
    """Add ``attach`` (also ``container attach``) and the ``healthcheck`` group."""
    from rootlet.cli.context import subgroup

    app.command("attach")(attach)
    subgroup(app, "container").command("attach")(attach)
    health = typer.Typer(help="Run containers' healthchecks.", no_args_is_help=True)
    health.command("run")(healthcheck_run)
    app.add_typer(health, name="healthcheck")
