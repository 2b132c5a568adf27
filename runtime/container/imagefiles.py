"""Reading files of an image's merged tree from the host, before any container runs.

``create`` needs a few facts from the image's ``/etc/passwd`` and ``/etc/group`` (HOME for ``-u``,
the entries keep-id adds to) before the container's root filesystem is mounted anywhere, so it
reads them from the layer directories. The image is hostile: its ``/etc`` may be a symlink to
``a/etc`` and ``a`` a symlink to ``/tmp/..``. Paths are therefore resolved the way the overlay
shows them to the container, by rootlet itself, one component at a time: the topmost layer that
has a name wins, whiteouts and opaque directories hide what lies below, and a symlink is read
(never followed by the kernel) and resolved again from the image's root, so no lookup leaves the
image. What is read is streamed and bounded in size.
"""

from __future__ import annotations

import os
import stat

from rootlet.registry.store import ImageStore
from rootlet.runtime.image.layers import LayerStore

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Iterator

#: Symlinks followed in one lookup before giving up (the kernel's limit).
MAX_LINKS = 40
#: Longest line kept from a passwd or group file; longer ones are skipped, not kept in memory.
MAX_LINE = 1 << 16
_OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque")


def lower_dirs(store: ImageStore, layers: list[str]) -> tuple[str, ...]:
    """The diff dirs of ``layers`` (chain ids, bottom first), topmost first, as the overlay wants them."""
    diffs = LayerStore(store)
    return tuple(diffs.diff_dir(c) for c in reversed(layers))


def lookup_layered(lowers: tuple[str, ...], parts: list[str]) -> tuple[str, os.stat_result] | None:
    """The host path and lstat of merged path ``parts`` (its ancestors known to be directories of
    the merged view), or None when it does not exist there."""
    for layer in lowers:
        current = layer
        hidden_below = False
        for i, comp in enumerate(parts):
            current = os.path.join(current, comp)
            try:
                st = os.lstat(current)
            except (FileNotFoundError, NotADirectoryError):
                break  # not in this layer: look below
            except OSError:
                return None
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None  # whited out here: hidden in every layer below
            if i == len(parts) - 1:
                return current, st
            if not stat.S_ISDIR(st.st_mode):
                return None  # a non-directory hides the lower layers' directory of that name
            if is_opaque(current):
                hidden_below = True
        if hidden_below:
            return None
    return None


def is_opaque(path: str) -> bool:
    """Whether the layer directory ``path`` is opaque (it hides what the layers below have there)."""
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _walk(lowers: tuple[str, ...], path: str, want_dir: bool) -> list[str] | str | None:
    """Resolve ``path`` in the merged image, every symlink on the way (the last one too) read
    and resolved inside the image, ``..`` stopping at its root, as in a chroot: with
    ``want_dir`` the components of the directory it names, else the host path of the regular
    file it names; None when there is no such thing."""
    todo = [c for c in reversed(path.split("/")) if c]
    done: list[str] = []
    links = 0
    while todo:
        comp = todo.pop()
        if comp == ".":
            continue
        if comp == "..":
            if done:
                done.pop()
            continue
        found = lookup_layered(lowers, [*done, comp])
        if found is None:
            return None
        host, st = found
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            todo.extend(c for c in reversed(target.split("/")) if c)
            continue
        if not want_dir and not todo:
            return host if stat.S_ISREG(st.st_mode) else None
        if not stat.S_ISDIR(st.st_mode):
            return None
        done.append(comp)
    return done if want_dir else None


def resolve_layered(lowers: tuple[str, ...], path: str) -> str | None:
    """The host path of the regular file ``path`` names in the merged image, symlinks resolved
    inside the image; None when there is no such regular file."""
    return _walk(lowers, path, want_dir=False)  # type: ignore[return-value]


def resolve_image_dir(lowers: tuple[str, ...], path: str) -> list[str] | None:
    """The components of the directory ``path`` names in the merged image (symlinks resolved
    inside the image); None when it is no directory there."""
    return _walk(lowers, path, want_dir=True)  # type: ignore[return-value]


def open_layered_file(lowers: tuple[str, ...], path: str) -> int | None:
    """A read-only descriptor of the image file ``path`` (see ``resolve_layered``), or None."""
    host = resolve_layered(lowers, path)
    if host is None:
        return None
    try:
        # Every component of `host` was just seen to be a real directory of its layer, and the leaf
        # a regular file; layers are never written after they are unpacked. O_NOFOLLOW anyway.
        return os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None


def layered_lines(lowers: tuple[str, ...], path: str) -> Iterator[str]:
    """The lines of an image file, streamed (a 60 MB /etc/passwd costs no memory); over-long lines
    are skipped."""
    fd = open_layered_file(lowers, path)
    if fd is None:
        return
    with open(fd, "rb") as f:
        for raw in iter(lambda: f.readline(MAX_LINE + 1), b""):
            if len(raw) > MAX_LINE:
                while raw and not raw.endswith(b"\n"):  # the rest of an over-long line
                    raw = f.readline(MAX_LINE + 1)
                continue
            yield raw.decode(errors="replace").rstrip("\n")


def home_for(lowers: tuple[str, ...], user: str) -> str:
    """HOME as podman sets it: the user's passwd entry, else ``/``."""
    name = user.split(":", 1)[0] if user else "root"
    for line in layered_lines(lowers, "/etc/passwd"):
        parts = line.split(":")
        if len(parts) >= 7 and (parts[0] == name or parts[2] == name):
            return parts[5] or "/"
    return "/root" if name in ("", "root", "0") else "/"


def image_ids(lowers: tuple[str, ...], user: str) -> tuple[int, int]:
    """The (uid, gid) a ``--user`` value names in the image, resolved by the container's own rules
    (``rootlet.runtime.oci.user.resolve_user``) over the image's /etc/passwd and /etc/group; a
    name the image lacks is a UsageError."""
    from rootlet.registry.errors import ContainerStartError, UsageError
    from rootlet.runtime.oci.user import resolve_user

    def records(db: str) -> Iterator[list[str]]:
        for line in layered_lines(lowers, f"/etc/{db}"):
            if line and not line.startswith("#"):
                yield line.split(":")

    try:
        uid, gid, _ = resolve_user(user, records=records)
    except ContainerStartError as e:
        raise UsageError(f"{e.message} (in the image)", e.hint) from None
    return uid, gid
