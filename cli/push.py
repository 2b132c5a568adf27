"""CLI commands: push (an image to a registry or another transport)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the commands to *app*."""
