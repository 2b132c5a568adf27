"""``diff``: what a container's upper directory (or an image's top layer) changed, as podman lists it.

Each path in the layer is ``A`` (added: the layers below have no such name), ``C`` (changed: they
do, or it is a directory the change passed through) or ``D`` (deleted: a whiteout), sorted by
path. Lookups in the layers below go one component at a time without following symlinks
(``imagefiles.lookup_layered``), and the walk of the upper directory uses directory descriptors
only, so neither a hostile image nor a running container can point the listing outside them. It
runs inside the user namespace: the files belong to subordinate ids.
"""

from __future__ import annotations

import os
import stat

from rootlet.registry.record import Record
from rootlet.runtime.container.imagefiles import lookup_layered

#: Paths podman leaves out of a container's diff: the mount points every container has (rootlet
#: creates the files in the upper directory when the image lacks them).
CONTAINER_MOUNTS = frozenset({"/dev", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc", "/run",
                              "/run/.containerenv", "/run/secrets", "/sys"})
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque")
_WHITEOUT_XATTRS = ("trusted.overlay.whiteout", "user.overlay.whiteout")


class Change(Record):
    """One line of ``diff``: ``kind`` A, C or D, and the path inside the container."""

    kind: str
    path: str


def _xattr_set(fd_or_name: int | str, names: tuple[str, ...], dir_fd: int | None = None) -> bool:
    for key in names:
        try:
            if dir_fd is None:
                value = os.getxattr(fd_or_name, key)
            else:
                value = os.getxattr(f"/proc/self/fd/{dir_fd}/{fd_or_name}", key, follow_symlinks=False)
        except OSError:
            continue
        if value:
            return True
    return False


def layer_changes(upper: str, lowers: tuple[str, ...], container: bool = False) -> list[Change]:
    """The changes the layer directory *upper* makes to *lowers* (topmost first); a *container*'s
    leave out its mount points, as podman's do. Runs in the user namespace."""
    out: list[Change] = []
    root = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _walk(root, [], lowers, False, out)
    finally:
        os.close(root)
    if container:
        out = [c for c in out if c.path not in CONTAINER_MOUNTS]
    out.sort(key=lambda c: c.path.encode(errors="surrogateescape"))
    return out


def _walk(dir_fd: int, parts: list[str], lowers: tuple[str, ...], hidden: bool, out: list[Change]) -> None:
    with os.scandir(dir_fd) as it:
        names = [e.name for e in it]
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if name == ".wh..wh..opq":
            continue  # fuse-overlayfs's opaque marker: the directory itself is listed as changed
        if name.startswith(".wh."):
            out.append(Change(kind="D", path="/" + "/".join([*parts, name[4:]])))
            continue
        path = [*parts, name]
        text = "/" + "/".join(path)
        whiteout = (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0) or (
            stat.S_ISREG(st.st_mode) and st.st_size == 0 and _xattr_set(name, _WHITEOUT_XATTRS, dir_fd))
        if whiteout:
            out.append(Change(kind="D", path=text))
            continue
        below = None if hidden else lookup_layered(lowers, path)
        out.append(Change(kind="C" if below is not None else "A", path=text))
        if stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                # Below an opaque directory, or a directory that replaced a non-directory, nothing of
                # the lower layers shows: every name in it is new.
                opaque = _xattr_set(fd, _OPAQUE_XATTRS) or _has_opaque_marker(fd)
                below_is_dir = below is not None and stat.S_ISDIR(below[1].st_mode)
                _walk(fd, path, lowers, hidden or opaque or not below_is_dir, out)
            finally:
                os.close(fd)


def _has_opaque_marker(fd: int) -> bool:
    try:
        os.stat(".wh..wh..opq", dir_fd=fd, follow_symlinks=False)
    except OSError:
        return False
    return True
