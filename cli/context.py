"""Per-invocation settings shared by every command (no globals: carried on the click context)."""

from __future__ import annotations

import os

from rootlet.registry.record import Record

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    import typer

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


def subgroup(app: "typer.Typer", name: str) -> "typer.Typer":
    """The command group *name* (``image``, ``container``) already added to *app*, so that a module
    other than the group's own can list its commands there too (``image history``, ``container
    commit``)."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    raise LookupError(f"no command group {name!r} registered yet")
