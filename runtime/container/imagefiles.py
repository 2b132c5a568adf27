"""Reading files of an image's merged tree from the host, before any container runs.

``create`` needs a few facts from the image's ``/etc/passwd`` (HOME for ``-u``, the keep-id
entries) before the container's root filesystem is mounted anywhere, so it reads them from the
layer directories, top layer first, honouring whiteouts. What it reads is bounded in size.
"""

from __future__ import annotations

import os
import stat

from rootlet.registry.store import ImageStore
from rootlet.runtime.image.layers import LayerStore

#: The most of an image file read into memory (a passwd or group file is a few KiB).
MAX_FILE = 1 << 20


def lower_dirs(store: ImageStore, layers: list[str]) -> tuple[str, ...]:
    """The diff dirs of ``layers`` (chain ids, bottom first), topmost first, as the overlay wants them."""
    diffs = LayerStore(store)
    return tuple(diffs.diff_dir(c) for c in reversed(layers))


def read_layered_file(lowers: tuple[str, ...], path: str, limit: int = MAX_FILE) -> bytes | None:
    """A regular file as the merged image shows it (top layer first, whiteouts respected), or None."""
    rel = path.lstrip("/")
    for layer in lowers:
        full = os.path.join(layer, rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            return None
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None          # whited out
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            with open(full, "rb") as f:
                return f.read(limit)
        except OSError:
            return None
    return None


def home_for(lowers: tuple[str, ...], user: str) -> str:
    """HOME as podman sets it: the user's passwd entry, else ``/``."""
    name = user.split(":", 1)[0] if user else "root"
    data = read_layered_file(lowers, "/etc/passwd")
    if data:
        for line in data.decode(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) >= 7 and (parts[0] == name or parts[2] == name):
                return parts[5] or "/"
    return "/root" if name in ("", "root", "0") else "/"
