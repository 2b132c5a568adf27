"""The engine's verbs push (an image to a registry or another transport)."""

from __future__ import annotations


class PushVerbs:
    """Mixed into ``Engine``; ``self.images_store`` is the image store."""
