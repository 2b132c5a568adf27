"""The engine's verbs save, load, export, import (images and filesystems as archive files)."""

from __future__ import annotations


class ArchiveVerbs:
    """Mixed into ``Engine``; ``self.images_store`` is the image store."""
