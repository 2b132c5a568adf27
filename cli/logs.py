"""``rootlet logs`` (and ``container logs``): parsed by the fast table parser (cli/argv.py);
benchmarked against ``podman logs``, so nothing here imports typer."""

from __future__ import annotations

import sys

from rootlet.cli.argv import HELP_FLAG, Flag, parse_command

LOGS_FLAGS: tuple[Flag, ...] = (
    Flag(("-f", "--follow"), "follow", "bool", "Keep printing new output until the container exits."),
    Flag(("-n", "--tail"), "tail", "value", "Only the last N lines ('all' for every line).", "N"),
    Flag(("--since",), "since", "value", "Only output after this time (RFC 3339, Unix time, or 10m).", "TIME"),
    Flag(("--until",), "until", "value", "Only output before this time.", "TIME"),
    Flag(("-t", "--timestamps"), "timestamps", "bool", "Prefix each line with its time."),
    Flag(("--names",), "names", "bool", "With several containers, prefix lines with the name, not the short id. "
         "(-n is --tail, as in docker; podman's -n is --names.)"),
    HELP_FLAG,
)


def logs_command(root: str, argv: list[str], command: str = "logs") -> int:
    """Print containers' output: their stdout on stdout, their stderr on stderr (several: each line
    prefixed with the container's short id, or name with --names, as podman does)."""
    from rootlet.registry.errors import UsageError

    p = parse_command(argv, LOGS_FLAGS, command, "[OPTIONS] CONTAINER...",
                      "Print containers' output (stdout and stderr kept apart).")
    if p is None:
        return 0
    if not p.positional:
        raise UsageError(f"{command} needs at least one container", f"rootlet {command} [OPTIONS] CONTAINER...")
    tail_n: int | None = None
    if p.tail not in (None, "all", "-1"):
        if not (p.tail.isascii() and p.tail.isdigit()):
            raise UsageError(f"invalid --tail {p.tail!r}", "give a number of lines, or 'all'")
        tail_n = int(p.tail)
    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.options import LogsOptions

    records = Engine(root).logs(LogsOptions(tuple(p.positional), follow=p.follow, tail=tail_n, since=p.since,
                                            until=p.until))
    streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    several = len(p.positional) > 1
    sys.stdout.flush()
    last = None
    for cid, name, rec in records:
        stream = streams[rec.stream]
        if last is not None and last is not stream:
            last.flush()  # each stream's lines keep their order against the other's (2>&1)
        last = stream
        if several:
            stream.write((name if p.names else cid[:12]).encode() + b" ")
        if p.timestamps:
            stream.write(rec.ts.encode() + b" ")
        stream.write(rec.data + (b"" if rec.partial else b"\n"))
        if p.follow:
            stream.flush()
    for stream in streams.values():
        stream.flush()
    return 0
