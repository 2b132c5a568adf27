"""CLI commands: save, load, export, import (images and filesystems as archive files)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the commands to *app*."""
