"""Plain-text rendering shared by commands: aligned columns, JSON, sizes and ages.

Columns are aligned with spaces, as podman prints them, so scripts that cut or awk the output keep
working; nothing here imports rich.
"""

from __future__ import annotations

import sys
import time

from rootlet.registry import jsoncodec

TYPE_CHECKING = False  # typing costs milliseconds to import; listings are benchmarked against podman's
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows aligned under headers, columns separated by at least two spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def dump_json(obj: Any) -> None:
    out(jsoncodec.dumps_indented(obj, 4))


def raise_collected(errors: Sequence[Any], codes: Sequence[tuple[type, int]] = ()) -> None:
    """After a verb handled every name given: each failure but the last as an ``Error:`` line, in
    order, then the last one raised (the error boundary prints it with its hint and sets the exit
    code), as podman reports failures of commands that take several names.

    ``codes`` are the verb's documented exit statuses as ``(error class, status)``, most important
    first (podman's ``rm``: a running container 2, then a missing one 1). The exit status is the
    first of them that some failure has; a failure of none of those classes makes it 125 (``rm``
    exits 1 "when a container did not exist, and no other failures")."""
    for extra in errors[:-1]:
        err(f"Error: {extra.message}")
    if not errors:
        return
    last = errors[-1]
    if codes:
        statuses = [next((code for cls, code in codes if isinstance(e, cls)), None) for e in errors]
        last.exit_code = 125 if None in statuses else next(code for _, code in codes if code in statuses)
    raise last


def print_docs(docs: Sequence[Any], fmt: str | None) -> None:
    """inspect documents: as a JSON array (default), or one Go template rendering per document."""
    if fmt in (None, "", "json"):
        dump_json(list(docs))
        return
    from rootlet.cli.template import render_template

    for doc in docs:
        # podman's templates also read ``.ID`` (the bare hex id) beside the JSON's ``Id``.
        extra = {"ID": doc["Id"].removeprefix("sha256:")} if isinstance(doc, dict) and "Id" in doc else {}
        out(render_template(fmt, {**doc, **extra} if extra else doc))


def print_rows(fmt: str | None, json_docs: Sequence[Any] | Callable[[], Sequence[Any]],
               rows: Sequence[Any] | Callable[[], Sequence[Any]], default: str,
               headers: dict[str, str] | None = None, heading: bool = True) -> None:
    """A listing as ``--format`` asks: ``json_docs`` as JSON, or ``rows`` through the template
    given (``table …`` too) or else the command's own ``default`` table. Either may be given as
    a function that makes it: only the one printed is made (hundreds of rows of ``ps``)."""
    if not fmt:
        rows = rows() if callable(rows) else rows
        text = _default_table(default, rows, headers, heading)
    else:
        text = None
    if text is None:
        from rootlet.cli.template import format_kind, render_rows

        kind = format_kind(fmt)
        if kind == "json":
            dump_json(list(json_docs() if callable(json_docs) else json_docs))
            return
        rows = rows() if callable(rows) else rows
        text = render_rows((fmt or "") if kind in ("table", "template") else default, rows, headers, heading=heading)
    if text:
        out(text)


def _default_table(template: str, rows: Sequence[Any], headers: dict[str, str] | None,
                   heading: bool) -> str | None:
    """A command's own table without the template engine (whose import is most of a ``ps``), when
    it is plain ``{{.Field}}`` cells of text with one-word or given headers; None otherwise. The
    same text as render_rows: cells tab-separated, rows aligned by ``tabwrite``."""
    if not template.startswith("table "):
        return None
    names = []
    for cell in template[len("table "):].split("\t"):
        name = cell[3:-2]
        if not (cell.startswith("{{.") and cell.endswith("}}") and name.isidentifier()):
            return None
        if not (headers and name in headers) and not name[1:].islower():
            return None  # a camel-case header word: the template engine splits those
        names.append(name)
    lines = ["\t".join((headers or {}).get(n, n).upper() for n in names)] if heading else []
    for row in rows:
        cells = [row.get(n) for n in names]
        if not all(isinstance(c, str) for c in cells):
            return None
        lines.append("\t".join(cells))
    from rootlet.cli.tabwrite import tabwrite

    return tabwrite("\n".join(lines))


def human_size(n: int) -> str:
    """podman's sizes (go-units HumanSizeWithPrecision, 3 digits): 1000-based, ``7.8 MB``, ``1.21 GB``."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g} {unit}"
        size /= 1000
    return f"{n} B"


def go_time(ts: float | None) -> str:
    """A Unix time as Go prints a ``time.Time`` (podman's ``{{.CreatedAt}}``): local time with
    nanoseconds, trailing zeros trimmed, the offset and the zone's name."""
    if ts is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    local = time.localtime(ts)
    frac = f"{int((ts % 1) * 1e9):09d}".rstrip("0")
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + (f".{frac}" if frac else "") + time.strftime(" %z %Z", local)


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 timestamp from an image config as a Unix time (the float ``datetime`` gives:
    whole microseconds), or None."""
    from rootlet.registry.timestamps import iso_for_datetime, parse_rfc3339

    if not value:
        return None
    parts = parse_rfc3339(value.strip())
    if parts is not None:
        seconds, nanos = parts
        return (seconds * 10**6 + nanos // 1000) / 10**6
    text, _ = iso_for_datetime(value.strip())
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def ago(ts: float | None, now: float | None = None) -> str:
    """``3 seconds ago`` / ``2 weeks ago`` as docker prints ages."""
    if ts is None:
        return "N/A"
    delta = max(0.0, (now or time.time()) - ts)
    for unit, secs in (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if delta >= secs:
            n = int(delta // secs)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    n = int(delta)
    return "Less than a second ago" if n < 1 else f"{n} second{'s' if n != 1 else ''} ago"


def describe_status(status: str, started_at: float | None, finished_at: float | None, exit_code: int | None,
                    now: float | None = None) -> str:
    """docker's STATUS column: ``Up 3 seconds``, ``Exited (0) 2 minutes ago``, ``Created``."""
    now = time.time() if now is None else now
    if status == "running":
        return f"Up {human_duration(now - (started_at or now))}"
    if status == "restarting":
        return f"Restarting ({exit_code}) {human_duration(now - (finished_at or now))} ago"
    if status == "exited":
        return f"Exited ({exit_code}) {human_duration(now - (finished_at or now))} ago"
    if status == "created":
        return "Created"
    return status.capitalize()


def human_duration(seconds: float) -> str:
    """docker's HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def ports_text(ports: Sequence[Any]) -> str:
    """The PORTS column: ``0.0.0.0:8080->80/tcp`` for each published port."""
    return ", ".join(f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol}" for p in ports)
