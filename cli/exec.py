"""``rootlet exec``: parsed by the fast table parser, like ``run`` (it is benchmarked too)."""

from __future__ import annotations

import os
import sys

from rootlet.cli.argv import Flag, parse, render_help

EXEC_FLAGS: tuple[Flag, ...] = (
    Flag(("-i", "--interactive"), "interactive", "bool", "Keep stdin attached."),
    Flag(("-t", "--tty"), "tty", "bool", "Allocate a pseudo-terminal."),
    Flag(("-d", "--detach"), "detach", "bool", "Run the command in the background."),
    Flag(("-u", "--user"), "user", "value", "User[:group] to run as (default: the container's).", "USER"),
    Flag(("-e", "--env"), "env", "multi", "Set an environment variable (K=V), or pass K through.", "K=V"),
    Flag(("--env-file",), "env_file", "multi", "Read environment variables from a file.", "FILE"),
    Flag(("-w", "--workdir"), "workdir", "value", "Working directory inside the container.", "DIR"),
    Flag(("--privileged",), "privileged", "bool", "Give the process every capability of the container's root."),
    Flag(("--help",), "help", "bool", "Show this message and exit."),
)


def exec_command(root: str, argv: list[str], command: str = "exec") -> int:
    """``rootlet exec``: the command's exit code (rootlet's own failures raise → 125)."""
    from rootlet.registry.errors import UsageError

    p = parse(argv, EXEC_FLAGS, command)
    if p.help:
        sys.stdout.write(render_help(command, "[OPTIONS] CONTAINER COMMAND [ARG...]",
                                     "Run a command in a running container.", EXEC_FLAGS))
        return 0
    if len(p.positional) < 2:
        raise UsageError("exec needs a container and a command", "rootlet exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.options import ExecOptions

    opts = ExecOptions(container=p.positional[0], command=tuple(p.positional[1:]), interactive=p.interactive,
                       tty=p.tty, detach=p.detach, user=p.user, env=tuple(p.env), env_files=tuple(p.env_file),
                       workdir=p.workdir, privileged=p.privileged)
    return Engine(root, os.environ).exec(opts)
