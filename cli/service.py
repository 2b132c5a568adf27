"""``rootlet system service [--time SECONDS] [URI]``: serve the Docker Engine API (podman's command).

Parsed here by hand when it is the command (``main`` sends it here before typer loads: start to
first answer is measured in milliseconds), and registered in the ``system`` group for ``--help``
and completion, both ending in ``run_service``. The server itself is ``rootlet.cli.api``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    import typer

USAGE = """Usage: rootlet system service [OPTIONS] [URI]

  Serve the Docker Engine API (docker's CLI, docker-py, docker-compose) on a socket, without
  a daemon: it ends after --time seconds without a connection, and containers it starts run on
  under their own monitors.

  URI: unix:///PATH (default unix://$XDG_RUNTIME_DIR/rootlet/rootlet.sock) or tcp://HOST:PORT
  (anyone on the host can use it: said as a warning).

Options:
  -t, --time SECONDS  Seconds without a connection before the service ends (0: never)  [default: 5]
  -h, --help          Show this message and exit.
"""


def service_command(root: str, args: list[str], debug: bool = False) -> int:
    """The fast path: ``args`` are what follows ``system service``."""
    from rootlet.registry.errors import UsageError

    idle: float = 5
    uri: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if name in ("-t", "--time"):
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"flag needs an argument: {name}", "see 'rootlet system service --help'")
                i += 1
                value = args[i]
            idle = _seconds(value)
        elif arg.startswith("-t") and len(arg) > 2:
            idle = _seconds(arg[2:])
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown flag: {arg}", "see 'rootlet system service --help'")
        elif uri is None:
            uri = arg
        else:
            raise UsageError("system service takes at most one URI", "see 'rootlet system service --help'")
        i += 1
    return run_service(root, uri, idle, debug)


def _seconds(text: str) -> float:
    from rootlet.registry.errors import UsageError

    try:
        value = float(text)
    except ValueError:
        value = -1
    if value < 0 or value != value:
        raise UsageError(f"invalid --time {text!r}", "give whole seconds, 0 for no limit")
    return value


def run_service(root: str, uri: str | None, idle: float, debug: bool = False) -> int:
    """Listen, say where, serve until stopped or idle; ``debug`` (``--log-level debug``, ``--debug``):
    one line per request, and the traceback of every internal error, on stderr."""
    from rootlet.cli.api.server import default_uri, listen, say, serve

    env = dict(os.environ)
    listener, warnings = listen(uri or default_uri(env), env)
    for warning in warnings:
        say(f"Warning: {warning}")
    return serve(root, listener, idle, env, debug)


def service(
    ctx: "typer.Context",
    uri: "str | None" = None,
    time_: float = 5,
) -> None:
    """Serve the Docker Engine API on a socket (docker's CLI, docker-py, docker-compose work
    through it with DOCKER_HOST=unix://…); ends after --time seconds without a connection."""
    import typer

    raise typer.Exit(run_service(ctx.obj.root, uri, _seconds(str(time_)), ctx.obj.debug))


def register(app: "typer.Typer") -> None:
    """``system service`` in the ``system`` group (register after ``system``)."""
    import typer

    from rootlet.cli.context import subgroup

    def command(
        ctx: typer.Context,
        uri: str = typer.Argument(None, metavar="[URI]", help="unix:///PATH (default unix://$XDG_RUNTIME_DIR/"
                                  "rootlet/rootlet.sock) or tcp://HOST:PORT (warned: anyone on the host may use it)."),
        time_: float = typer.Option(5, "--time", "-t", metavar="SECONDS",
                                    help="Seconds without a connection before the service ends (0: never)."),
    ) -> None:
        service(ctx, uri, time_)

    command.__doc__ = service.__doc__
    # This module keeps typer out of its imports (the fast path), so its string annotations
    # cannot be resolved by typer: give it the objects.
    command.__annotations__ = {"ctx": typer.Context, "uri": str, "time_": float, "return": None}
    subgroup(app, "system").command("service")(command)
