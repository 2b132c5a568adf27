"""``rootlet inspect`` (and ``container inspect``, ``image inspect``): parsed by the fast table
parser (cli/argv.py); benchmarked against ``podman inspect``, so nothing here imports typer."""

from __future__ import annotations

from rootlet.cli.argv import HELP_FLAG, Flag, parse_command
from rootlet.cli.render import print_docs, raise_collected

_FORMAT = Flag(("-f", "--format"), "format", "value", "json (default) or a Go template such as "
               "'{{.State.Status}}'.", "FORMAT")
INSPECT_FLAGS: tuple[Flag, ...] = (
    _FORMAT,
    Flag(("-t", "--type"), "type", "value", "container, image, or all (containers first).", "TYPE", "all"),
    HELP_FLAG,
)
#: ``container inspect`` and ``image inspect``: the kind is the group's.
TYPED_FLAGS: tuple[Flag, ...] = (_FORMAT, HELP_FLAG)

SUMMARIES = {
    "all": "Show the configuration and state of containers or images as JSON (docker's field names).",
    "container": "Show the configuration and state of containers as JSON.",
    "image": "Show the configuration of images as JSON (docker's field names).",
}


def inspect_command(root: str, argv: list[str], command: str = "inspect") -> int:
    """Print inspect documents of the containers or images named (JSON, or a template each)."""
    from rootlet.registry.errors import UsageError

    kind = command.split()[0] if command != "inspect" else "all"
    flags = INSPECT_FLAGS if kind == "all" else TYPED_FLAGS
    what = {"all": "NAME", "container": "CONTAINER", "image": "IMAGE"}[kind]
    p = parse_command(argv, flags, command, f"[OPTIONS] {what}...", SUMMARIES[kind])
    if p is None:
        return 0
    if not p.positional:
        raise UsageError(f"{command} needs at least one {what.lower()}", f"rootlet {command} [OPTIONS] {what}...")
    from rootlet.runtime.engine import Engine

    engine = Engine(root)
    if kind == "image":
        report = engine.image_inspect(tuple(p.positional))
    else:
        from rootlet.runtime.engine.options import InspectOptions

        report = engine.inspect(InspectOptions(tuple(p.positional), type=p.values.get("type") or kind))
    print_docs(report.docs, p.format)
    raise_collected(report.errors)
    return 0
