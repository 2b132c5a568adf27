"""Per-invocation settings shared by every command (no globals: carried on the click context)."""

from __future__ import annotations

import os

from rootlet.registry.record import Record


class AppContext(Record):
    """Global flags: the store root and whether to show tracebacks."""

    root: str
    debug: bool = False

    def store(self):  # -> ImageStore; imported lazily to keep --help fast
        from rootlet.registry.store import ImageStore

        return ImageStore(self.root)


def stderr_is_tty() -> bool:
    return os.isatty(2)
