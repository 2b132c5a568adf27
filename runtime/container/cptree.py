"""The tree copy of ``rootlet cp`` (``rootlet.runtime.container.cp``): an entry and everything
below it, from one open directory to another, never following a symlink.

Every step is relative to a directory descriptor with ``O_NOFOLLOW``: symlinks are copied as
symlinks, and a symlink swapped in by a running container meanwhile is never walked through.
``Owners`` says who the copies belong to (``--archive``); ``overwrite`` lets a directory replace a
non-directory and the reverse (podman's ``--overwrite``), removing the old one first.
"""

from __future__ import annotations

import errno
import os
import stat

from rootlet.registry.errors import CopyError
from rootlet.registry.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_file_data(src_fd: int, dst_fd: int) -> None:
    """All of ``src_fd``'s data to ``dst_fd``: copy_file_range where the filesystems allow it."""
    while True:
        try:
            n = os.copy_file_range(src_fd, dst_fd, 1 << 30)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            break
        if n == 0:
            return
    while True:
        chunk = os.read(src_fd, 1 << 20)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view):]


def copy_regular(src_dir: int, name: str, dst_dir: int, dst_name: str, st: os.stat_result, mode: int,
                 chown: Callable[[int], None]) -> None:
    """Copy regular file ``name`` of ``src_dir`` (``st`` its lstat) to a new ``dst_name`` in
    ``dst_dir``: its data, then ``chown(fd)``, then ``mode`` (after: a chown clears setuid bits)
    and its times; no symlink is followed on either side."""
    sfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        dfd = os.open(dst_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=dst_dir)
        try:
            copy_file_data(sfd, dfd)
            chown(dfd)
            os.fchmod(dfd, mode)
            os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


class Owners(Record):
    """Who copied files belong to: ``owner`` (uid, gid) for every one (``--archive``), or with
    ``keep`` each source's own ids as the user namespace sees them; neither: the copier's."""

    owner: tuple[int, int] | None = None
    keep: bool = False
    overwrite: bool = False

    def chown(self, st: os.stat_result, name: str, fd: int | None = None, at: tuple[int, str] | None = None) -> None:
        ids = self.owner or ((st.st_uid, st.st_gid) if self.keep else None)
        if ids is None:
            return
        try:
            if fd is not None:
                os.fchown(fd, *ids)
            elif at is not None:
                os.chown(at[1], *ids, dir_fd=at[0], follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM) or self.owner is not None:
                raise
            raise CopyError(f"cannot keep the owner {ids[0]}:{ids[1]} of {name}: the container's user namespace "
                            "has no such id", "drop --archive=false: the files then belong to the container's "
                            "user") from None


def copy_entry(src_dir: int, name: str, dst_dir: int, dst_name: str, own: Owners, depth: int = 0) -> None:
    """Copy entry ``name`` of ``src_dir`` to ``dst_name`` in ``dst_dir`` (recursively, no following)."""
    if depth > 256:
        raise CopyError(f"directory tree too deep at {name!r}")
    st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
    mode = stat.S_IMODE(st.st_mode)
    try:
        existing = os.stat(dst_name, dir_fd=dst_dir, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and stat.S_ISDIR(existing.st_mode) != stat.S_ISDIR(st.st_mode):
        if not own.overwrite:
            what = "non-directory" if stat.S_ISDIR(st.st_mode) else "directory"
            other = "a directory" if stat.S_ISDIR(st.st_mode) else "a non-directory"
            raise CopyError(f"cannot overwrite {what} {dst_name!r} with {other}",
                            "--overwrite replaces one by the other, as podman's does")
        remove_entry(dst_dir, dst_name)
        existing = None
    if stat.S_ISDIR(st.st_mode):
        if existing is None:
            os.mkdir(dst_name, 0o700, dir_fd=dst_dir)
        sfd = os.open(name, _DIR_FLAGS, dir_fd=src_dir)
        try:
            dfd = os.open(dst_name, _DIR_FLAGS, dir_fd=dst_dir)
            try:
                for entry in os.scandir(sfd):
                    copy_entry(sfd, entry.name, dfd, entry.name, own, depth + 1)
                own.chown(st, dst_name, fd=dfd)
                os.fchmod(dfd, mode)
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
        return
    if existing is not None:
        os.unlink(dst_name, dir_fd=dst_dir)
    if stat.S_ISREG(st.st_mode):
        copy_regular(src_dir, name, dst_dir, dst_name, st, mode, lambda fd: own.chown(st, dst_name, fd=fd))
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_dir), dst_name, dir_fd=dst_dir)
        own.chown(st, dst_name, at=(dst_dir, dst_name))
        os.utime(dst_name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst_name, mode, dir_fd=dst_dir)
        own.chown(st, dst_name, at=(dst_dir, dst_name))
    # Sockets and device nodes are not copied (docker skips them too; a user namespace cannot
    # create devices anyway).


def copy_contents(src_fd: int, dst_dir: int, dst_name: str, own: Owners, excludes: frozenset[str]) -> None:
    """Copy the entries of directory ``src_fd`` but ``excludes`` into ``dst_name`` (a directory) of
    ``dst_dir``."""
    dfd = os.open(dst_name, _DIR_FLAGS, dir_fd=dst_dir) if dst_name != "." else os.dup(dst_dir)
    try:
        for entry in os.scandir(src_fd):
            if entry.name not in excludes:
                copy_entry(src_fd, entry.name, dfd, entry.name, own, 1)
    finally:
        os.close(dfd)


def remove_entry(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` and, if it is a directory, everything below it (no symlink
    is followed: each step is relative to a directory opened O_NOFOLLOW)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except IsADirectoryError:
        pass
    except OSError as e:
        if e.errno != errno.EPERM:  # Linux's unlink of a directory
            raise
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        with os.scandir(fd) as it:
            children = [e.name for e in it]
        for child in children:
            remove_entry(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
