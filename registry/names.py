"""The names users give containers, pods, volumes and networks: podman's rule ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``.

One matcher for the four kinds, written without ``re``: its import (with ``enum``) costs 3–4 ms, and
``run --name``, ``-v NAME:/dst`` and every network lookup check a name.
"""

from __future__ import annotations

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")


def is_valid_name(text: str) -> bool:
    """True when *text* is a non-empty ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` (ASCII only, no length limit)."""
    return bool(text) and text[0] in _ALNUM and _NAME_CHARS.issuperset(text)
