"""Per-invocation settings shared by every command (no globals: carried on the click context)."""

from __future__ import annotations

import os

from rootlet.registry.record import Record

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    from rootlet.runtime.engine import Engine


class AppContext(Record):
    """Global flags: the store root and whether to show tracebacks."""

    root: str
    debug: bool = False

    def engine(self) -> Engine:
        """The engine on this store root, with this process's environment."""
        from rootlet.runtime.engine import Engine

        return Engine(self.root, os.environ)


def stderr_is_tty() -> bool:
    return os.isatty(2)
