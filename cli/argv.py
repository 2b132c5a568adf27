"""A small, fast command-line parser for the commands on the hot path (``run``, ``create``, ``exec``).

typer costs ~60 ms to import, which alone would blow the start-up budget of ``rootlet run``. These
commands describe their flags once, as a table of ``Flag``; the same table parses argv the way
docker's pflag does (``-it``, ``-e K=V``, ``-eK=V``, ``--env=K=V``, ``--rm=false``, options stop at
the image name) and renders ``--help``. An unknown flag is an error (exit 125), never ignored.
"""

from __future__ import annotations

from rootlet.registry.errors import UsageError
from rootlet.registry.record import Record

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


class Flag(Record):
    """One option: its spellings, where its value goes, and how it takes values.

    ``kind`` is ``bool`` (a switch; also ``--flag=false``), ``value`` (one value, last wins) or
    ``multi`` (repeatable; values collected in order).
    """

    names: tuple[str, ...]
    dest: str
    kind: str
    help: str
    metavar: str = "VALUE"
    default: Any = None


#: ``--help``: every fast-parsed command takes it (``parse_command`` prints the help).
HELP_FLAG = Flag(("-h", "--help"), "help", "bool", "Show this message and exit.")


class Parsed(Record):
    """Flag values by dest, plus the positional words (the image, then the command)."""

    values: dict[str, Any]
    positional: list[str]
    given: set[str]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def parse(argv: Sequence[str], flags: Sequence[Flag], command: str, interspersed: bool = False) -> Parsed:
    """Parse *argv* with *flags*; stops at the first positional word unless *interspersed*."""
    by_name: dict[str, Flag] = {n: f for f in flags for n in f.names}
    values: dict[str, Any] = {}
    for f in flags:
        values[f.dest] = [] if f.kind == "multi" else (False if f.kind == "bool" and f.default is None else f.default)
    given: set[str] = set()
    positional: list[str] = []
    i = 0
    args = list(argv)

    def take(flag: Flag, name: str, inline: str | None) -> None:
        nonlocal i
        given.add(flag.dest)
        if flag.kind == "bool":
            if inline is None:
                values[flag.dest] = True
            elif inline.lower() in _TRUE:
                values[flag.dest] = True
            elif inline.lower() in _FALSE:
                values[flag.dest] = False
            else:
                raise UsageError(f"invalid argument {inline!r} for {name}: must be true or false",
                                 f"see 'rootlet {command} --help'")
            return
        if inline is None:
            if i + 1 >= len(args):
                raise UsageError(f"flag needs an argument: {name}", f"see 'rootlet {command} --help'")
            i += 1
            inline = args[i]
        if flag.kind == "multi":
            values[flag.dest].append(inline)
        else:
            values[flag.dest] = inline

    while i < len(args):
        arg = args[i]
        if arg == "--":
            positional.extend(args[i + 1:])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, inline = arg.partition("=")
            flag = by_name.get(name)
            if flag is None:
                raise UsageError(f"unknown flag: {name}", f"see 'rootlet {command} --help'")
            take(flag, name, inline if eq else None)
        elif arg.startswith("-") and len(arg) > 1:
            # A cluster of short flags: -it, -dit, -p8080:80, -e=K=V.
            j = 1
            while j < len(arg):
                name = "-" + arg[j]
                flag = by_name.get(name)
                if flag is None:
                    raise UsageError(f"unknown shorthand flag: {arg[j]!r} in {arg}", f"see 'rootlet {command} --help'")
                rest = arg[j + 1:]
                if flag.kind == "bool":
                    if rest.startswith("="):
                        take(flag, name, rest[1:])
                        break
                    take(flag, name, None)
                    j += 1
                    continue
                take(flag, name, (rest[1:] if rest.startswith("=") else rest) if rest else None)
                break
        else:
            positional.append(arg)
            if not interspersed:
                positional.extend(args[i + 1:])
                break
        i += 1
    return Parsed(values, positional, given)


def render_help(command: str, usage: str, summary: str, flags: Sequence[Flag]) -> str:
    """``--help`` text in the same shape as the typer-rendered commands."""
    lines = [f"Usage: rootlet {command} {usage}", "", f"  {summary}", "", "Options:"]
    rows = []
    for f in flags:
        spell = ", ".join(f.names)
        if f.kind != "bool":
            spell += f" {f.metavar}"
        rows.append((spell, f.help))
    width = min(34, max(len(r[0]) for r in rows) + 2)
    for spell, text in rows:
        if len(spell) + 2 > width:
            lines.append(f"  {spell}")
            lines.append(" " * (width + 2) + text)
        else:
            lines.append(f"  {spell.ljust(width)}{text}")
    return "\n".join(lines) + "\n"


def parse_command(argv: Sequence[str], flags: Sequence[Flag], command: str, usage: str, summary: str) -> Parsed | None:
    """A command's arguments (options anywhere among the positional words, as click takes them);
    with ``--help`` its help is printed instead and the result is None (exit 0)."""
    import sys

    p = parse(argv, flags, command, interspersed=True)
    if p.values.get("help"):
        sys.stdout.write(render_help(command, usage, summary, flags))
        return None
    return p
