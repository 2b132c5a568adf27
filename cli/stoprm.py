"""``rootlet stop`` and ``rootlet rm`` (and ``container stop|rm``): parsed by the fast table parser
(cli/argv.py). Scripts run them after every ``run -d``; they are benchmarked against podman's, and
typer's import alone would cost more than the stop itself."""

from __future__ import annotations

from rootlet.cli.argv import HELP_FLAG, Flag, Parsed, parse_command
from rootlet.cli.targets import container_targets, report_results

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    from rootlet.runtime.engine import Engine

_CIDFILE = Flag(("--cidfile",), "cidfile", "multi", "Read a container id from this file (repeatable).", "FILE")
_IGNORE = Flag(("-i", "--ignore"), "ignore", "bool", "A container that does not exist is no error.")
_LATEST = Flag(("-l", "--latest"), "latest", "bool", "The most recently created container.")

STOP_FLAGS: tuple[Flag, ...] = (
    Flag(("-t", "--time", "--timeout"), "time", "value", "Seconds to wait before SIGKILL (default: the "
         "container's, 10).", "SECONDS"),
    Flag(("-a", "--all"), "all", "bool", "Stop every running container."),
    _CIDFILE, _IGNORE, _LATEST, HELP_FLAG,
)
RM_FLAGS: tuple[Flag, ...] = (
    Flag(("-f", "--force"), "force", "bool", "Stop running containers first (SIGKILL at once, as docker, unless -t)."),
    Flag(("-v", "--volumes"), "volumes", "bool", "Also remove their anonymous volumes."),
    Flag(("-a", "--all"), "all", "bool", "Remove every container."),
    Flag(("-t", "--time"), "time", "value", "With -f: the stop signal, then SIGKILL after this many seconds.",
         "SECONDS"),
    Flag(("--depend",), "depend", "bool", "Also remove the containers that depend on these (rootlet has none: no "
         "container requires another)."),
    _CIDFILE, _IGNORE, _LATEST, HELP_FLAG,
)


def _seconds(value: str | None) -> int | None:
    from rootlet.registry.errors import UsageError

    if value is None:
        return None
    if not (value.lstrip("-").isascii() and value.lstrip("-").isdigit() and len(value) < 10):
        raise UsageError(f"invalid --time {value!r}", "give whole seconds")
    return int(value)


def _engine_and_targets(root: str, p: Parsed) -> tuple[Engine, tuple[str, ...]]:
    """The engine, and the containers named by the arguments, --cidfile and --latest."""
    from rootlet.runtime.engine import Engine

    engine = Engine(root)
    return engine, container_targets(engine, p.positional, p.cidfile, p.latest, p.ignore)


def stop_command(root: str, argv: list[str], command: str = "stop") -> int:
    """Stop running containers: their stop signal, then SIGKILL after the timeout."""
    p = parse_command(argv, STOP_FLAGS, command, "[OPTIONS] CONTAINER...",
                      "Stop running containers: their stop signal, then SIGKILL after the timeout.")
    if p is None:
        return 0
    from rootlet.runtime.engine.options import StopOptions

    engine, targets = _engine_and_targets(root, p)
    report_results(engine.stop(StopOptions(targets, timeout=_seconds(p.time), all=p.all, ignore=p.ignore)))
    return 0


def rm_command(root: str, argv: list[str], command: str = "rm") -> int:
    """Remove containers. Exit status as podman's: 1 when one did not exist, 2 when one is running."""
    p = parse_command(argv, RM_FLAGS, command, "[OPTIONS] CONTAINER...",
                      "Remove containers. Exit status as podman's: 1 when one did not exist, 2 when one is running.")
    if p is None:
        return 0
    from rootlet.registry.errors import ContainerNotFound, ContainerRunning
    from rootlet.runtime.engine.options import RmOptions

    # --depend: no container depends on another in rootlet, so it removes exactly what is named.
    engine, targets = _engine_and_targets(root, p)
    results = engine.rm(RmOptions(targets, force=p.force, volumes=p.volumes, all=p.all, timeout=_seconds(p.time),
                                  ignore=p.ignore))
    report_results(results, codes=((ContainerRunning, 2), (ContainerNotFound, 1)))
    return 0
