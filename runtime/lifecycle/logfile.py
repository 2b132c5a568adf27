"""A container's log: its stdout and stderr, kept apart, one record per line (podman's k8s-file).

    2026-11-27T21:05:49.123456789Z stdout F a complete line
    2026-11-27T21:05:49.223456789Z stderr P the start of a line longer than 16 KiB, or the
                                            output's last bytes when they had no newline

Timestamps are UTC with nanoseconds, so ``--since``/``--until``/``-t`` need no other index.
With a size bound (``--log-opt max-size``) the file is rotated to ``ctr.log.1`` when the next
record would cross it, so the two files together never hold much more than twice the bound:
a container that writes without end cannot fill the disk.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Iterator

#: Longest line kept in memory before it is written as a partial record.
MAX_LINE = 16 * 1024


def format_ts(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_ts(text: str) -> int:
    """Nanoseconds since the epoch of a timestamp written by ``format_ts`` (UTC, its Z optional)."""
    from rootlet.registry.timestamps import parse_rfc3339

    parts = parse_rfc3339(text.rstrip("Z") + "Z")
    if parts is None:
        raise ValueError(f"not a log timestamp: {text!r}")
    return parts[0] * 1_000_000_000 + parts[1]


class LogWriter:
    """Appends records to ``path``; ``max_size`` 0 means unbounded."""

    def __init__(self, path: str, max_size: int = 0) -> None:
        self.path = path
        self.max_size = max_size
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self.fd).st_size
        self.pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        """Add output ``data`` of ``stream``: whole lines now, the rest when its line is complete."""
        buf = self.pending[stream] + data
        records = []
        now = format_ts(time.time_ns()).encode()
        tag = stream.encode()
        while True:
            nl = buf.find(b"\n")
            if nl == -1:
                break
            line = buf[:nl]
            # Records stay bounded even for one huge line, so readers never hold more than MAX_LINE.
            while len(line) > MAX_LINE:
                records.append(b"%s %s P %s\n" % (now, tag, line[:MAX_LINE]))
                line = line[MAX_LINE:]
            records.append(b"%s %s F %s\n" % (now, tag, line))
            buf = buf[nl + 1:]
        while len(buf) >= MAX_LINE:
            records.append(b"%s %s P %s\n" % (now, tag, buf[:MAX_LINE]))
            buf = buf[MAX_LINE:]
        self.pending[stream] = buf
        if records:
            self._append(records)

    def flush(self) -> None:
        """Write what is left of unfinished lines as partial records (the output ended)."""
        now = format_ts(time.time_ns()).encode()
        for stream, buf in self.pending.items():
            if buf:
                self._append([b"%s %s P %s\n" % (now, stream.encode(), buf)])
        self.pending = {"stdout": b"", "stderr": b""}

    def _append(self, records: list[bytes]) -> None:
        """Append records in as few writes as the size bound allows, rotating before a record
        that would cross ``max_size`` (so each file stays within it, give or take one record)."""
        batch: list[bytes] = []
        batch_size = 0
        for record in records:
            if self.max_size and self.size + batch_size and self.size + batch_size + len(record) > self.max_size:
                self._write(b"".join(batch))
                batch, batch_size = [], 0
                self._rotate()
            batch.append(record)
            batch_size += len(record)
        self._write(b"".join(batch))

    def _rotate(self) -> None:
        os.close(self.fd)
        os.replace(self.path, self.path + ".1")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.size = 0

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


class LogRecord:
    """One log record: when, which stream, whether the line continues, and its bytes."""

    __slots__ = ("ts", "stream", "partial", "data")

    def __init__(self, ts: str, stream: str, partial: bool, data: bytes) -> None:
        self.ts = ts
        self.stream = stream
        self.partial = partial
        self.data = data

    @property
    def ns(self) -> int:
        return parse_ts(self.ts)


def parse_line(line: bytes) -> LogRecord | None:
    """The record of one log line (None when the line is torn or not ours)."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    return LogRecord(parts[0].decode(), parts[1].decode(), parts[2] == b"P", parts[3] if len(parts) > 3 else b"")


def read_records(path: str, follower: Follower | None = None) -> Iterator[LogRecord]:
    """Every record of the rotated file and then the current one.

    With ``follower``, the current file is read through it, so that following continues exactly
    after the last record returned here.
    """
    for p in (path + ".1", path):
        if p == path and follower is not None:
            yield from follower.poll()
            continue
        try:
            with open(p, "rb") as f:
                for line in f:
                    if line.endswith(b"\n"):
                        rec = parse_line(line)
                        if rec is not None:
                            yield rec
        except FileNotFoundError:
            continue


class Follower:
    """Reads records appended to ``path`` after a point, across rotations."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.f = None
        self.ino = None
        self.buf = b""

    def _open(self) -> None:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - kept open while following
        except FileNotFoundError:
            return
        self.f = f
        self.ino = os.fstat(f.fileno()).st_ino
        self.buf = b""

    def poll(self) -> list[LogRecord]:
        """Records written since the last call."""
        if self.f is None:
            self._open()
            if self.f is None:
                return []
        out: list[LogRecord] = []
        while True:
            chunk = self.f.read(1 << 16)
            if chunk:
                self.buf += chunk
                continue
            try:
                rotated = os.stat(self.path).st_ino != self.ino
            except FileNotFoundError:
                rotated = False
            if not rotated:
                break
            self.f.close()
            self._open()
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            rec = parse_line(line)
            if rec is not None:
                out.append(rec)
        return out

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def parse_since(text: str, flag: str, now: float | None = None) -> int:
    """``--since``/``--until``: RFC 3339 time, Unix seconds, or a duration back from now (``10m``,
    ``1h30m``, ``45s``); nanoseconds since the epoch."""
    import re

    from rootlet.registry.errors import UsageError

    now = time.time() if now is None else now
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return int(float(value) * 1e9)
    if re.fullmatch(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+", value):
        factors = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        secs = sum(float(n) * factors[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|ms|s|m|h)", value))
        return int((now - secs) * 1e9)
    from rootlet.registry.timestamps import iso_for_datetime, parse_rfc3339

    parts = parse_rfc3339(value)
    if parts is not None:
        return parts[0] * 1_000_000_000 + parts[1]
    from datetime import datetime, timezone

    try:  # the other ISO 8601 forms datetime knows; without a zone, UTC
        iso, nanos = iso_for_datetime(value)
        parsed = datetime.fromisoformat(iso)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp()) * 1_000_000_000 + nanos
    except ValueError:
        raise UsageError(f"invalid time {text!r} for {flag}",
                         "use an RFC 3339 time (2026-01-02T15:04:05Z), Unix seconds, or a duration like 10m") from None


def _lines(records: list[LogRecord]) -> list[list[LogRecord]]:
    """Records grouped into whole lines (partial records joined with the one that ends them)."""
    lines: list[list[LogRecord]] = []
    current: dict[str, list[LogRecord]] = {}
    for rec in records:
        current.setdefault(rec.stream, []).append(rec)
        if not rec.partial:
            lines.append(current.pop(rec.stream))
    lines += [recs for recs in current.values()]
    return lines


def select_records(path: str, since: int | None = None, until: int | None = None,
                   tail: int | None = None, follower: Follower | None = None) -> list[LogRecord]:
    """The stored records between ``since`` and ``until`` (ns), the last ``tail`` lines of them."""
    records = [r for r in read_records(path, follower)
               if (since is None or r.ns >= since) and (until is None or r.ns <= until)]
    if tail is not None:
        lines = _lines(records)
        records = [r for line in (lines[-tail:] if tail > 0 else []) for r in line]
    return records
