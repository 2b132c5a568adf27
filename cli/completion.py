"""``rootlet completion SHELL``: the script that teaches a shell to complete rootlet's commands.

As ``podman completion``: source its output (``source <(rootlet completion bash)``) or save it where
the shell loads completions from. The script calls ``rootlet`` back with ``_ROOTLET_COMPLETE`` set
(``complete_bash`` …) for every completion; typer answers it from the command tree ``--help``
shows (``cli.main`` loads typer's completion classes then).
"""

from __future__ import annotations

import typer

from rootlet.cli.render import out
from rootlet.registry.errors import UsageError

#: Shells typer writes completion scripts for.
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
#: The variable the completion script sets when it calls rootlet back (click's convention).
COMPLETE_VAR = "_ROOTLET_COMPLETE"


def completion(
    shell: str = typer.Argument(..., metavar="SHELL", help="bash, zsh, fish or powershell."),
) -> None:
    """Print the shell completion script for bash, zsh, fish or powershell."""
    from typer.completion import get_completion_script

    if shell not in SHELLS:
        raise UsageError(f"unsupported shell {shell!r} for completion", "use bash, zsh, fish or powershell")
    out(get_completion_script(prog_name="rootlet", complete_var=COMPLETE_VAR, shell=shell).rstrip("\n"))


def register(app: typer.Typer) -> None:
    app.command("completion")(completion)
