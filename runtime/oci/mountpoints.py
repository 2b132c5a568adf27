"""Mount points inside an untrusted root filesystem: where a destination path really is, and a
descriptor of it, created when missing.

The image and every container sharing a volume are hostile: a destination is resolved inside the
rootfs (an absolute symlink starts again at the rootfs, as in a chroot; a ``..`` above it is
refused), then walked one component at a time by descriptor with O_NOFOLLOW, so a symlink
swapped in meanwhile (CVE-2021-30465) makes the walk fail instead of leading out. The mount then
goes onto ``/proc/self/fd/N``, never onto a path.
"""

from __future__ import annotations

import errno
import os
import stat

from rootlet.registry.errors import ContainerStartError

_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_SYMLINKS = 40


def _fail(message: str, hint: str | None = None) -> ContainerStartError:
    return ContainerStartError(message, hint, 125)


def resolve_in_root(root: str, path: str) -> str:
    """The absolute in-container path of ``path`` with every existing symlink resolved.

    Resolution is confined to ``root``: an absolute link target starts again at the rootfs, as
    in a chroot. A ``..`` of a link target that would climb above the rootfs is refused — such a
    link exists only to point a mount at the host. Missing components are kept as they are.
    """
    clean = os.path.normpath("/" + path)
    todo = [c for c in reversed(clean.split("/")) if c]
    done: list[str] = []
    links = 0
    missing = False
    while todo:
        comp = todo.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if not done:
                raise _fail(f"mount destination {path} is a symlink pointing outside the container rootfs",
                            "use a destination inside the container")
            done.pop()
            continue
        if missing:
            done.append(comp)
            continue
        host = root + "/" + "/".join([*done, comp])
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            missing = True
            done.append(comp)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(comp)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise _fail(f"mount destination {path}: too many levels of symbolic links")
        target = os.readlink(host)
        if target.startswith("/"):
            done = []
        todo.extend(c for c in reversed(target.split("/")) if c)
    return "/" + "/".join(done)


def open_mount_point(root: str, dest: str, is_dir: bool) -> int:
    """An O_PATH descriptor of mount destination ``dest`` in ``root``, created when missing.

    ``dest`` is resolved inside the rootfs first (``resolve_in_root``); then the resolved path is
    walked from the root one component at a time, relative to open directory descriptors, with
    O_NOFOLLOW: a component that has become a symlink meanwhile (another container sharing a
    volume swapped it: CVE-2021-30465) makes the walk fail instead of leading out. Missing parents
    become 0755 directories; a missing final component becomes a directory or an empty file to
    match what is mounted on it. The mount then goes onto ``/proc/self/fd/N``, never onto a path.
    """
    inner = resolve_in_root(root, dest)
    parts = [c for c in inner.split("/") if c]
    fd = os.open(root, _PATH_DIR)
    try:
        for i, comp in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if last else os.O_DIRECTORY)
            try:
                nfd = os.open(comp, flags, dir_fd=fd)
            except FileNotFoundError:
                try:
                    if last and not is_dir:
                        os.close(os.open(comp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                         0o644, dir_fd=fd))
                    else:
                        os.mkdir(comp, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(comp, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise _fail(f"mount destination {dest} changed into a symlink while the container was set up",
                            "something else writes to the container's files (a shared volume?); try again")
        return fd
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _fail(f"mount destination {dest} changed into a symlink while the container was set up",
                        "something else writes to the container's files (a shared volume?); try again") from e
        raise ContainerStartError(f"cannot create mount point {dest}: {e.strerror or e}", None, 125) from e
    except BaseException:
        os.close(fd)
        raise


def fd_path(fd: int) -> str:
    """The magic link that names what ``fd`` refers to, for mount(2)."""
    return f"/proc/self/fd/{fd}"
