"""The host's process table as tests read it: /proc/PID/stat, parsed once."""

from __future__ import annotations

import os


def children_of(parent: int, state: str | None = None) -> list[int]:
    """Pids whose parent is ``parent`` (only those in ``state``, e.g. "Z" for unreaped ones, if given)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # the name may hold spaces and ')'
        except OSError:
            continue
        if int(fields[1]) == parent and (state is None or fields[0].decode() == state):
            out.append(int(entry))
    return out
