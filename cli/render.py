"""Plain-text rendering shared by commands: aligned columns, JSON, sizes and ages.

Columns are aligned with spaces, as podman prints them, so scripts that cut or awk the output keep
working; nothing here imports rich.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
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
    out(json.dumps(obj, indent=4))


def human_size(n: int) -> str:
    """docker's units: 1000-based, three significant digits (``7.8MB``, ``1.21GB``)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(size)}B"
            return f"{size:.3g}{unit}"
        size /= 1000
    return f"{n}B"


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 timestamp from an image config as a Unix time, or None."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        frac = "".join(c for c in tail if c.isdigit())
        zone = tail[len(frac):]
        text = f"{head}.{frac[:6]}{zone}"
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
