"""Deleting a directory tree safely: no symlink followed, mode-0 directories made usable first.

Kept in a module of its own, free of heavy imports: ``run --rm`` and ``rm`` delete a container's
directory on every exit, and most of the time need nothing else.
"""

from __future__ import annotations

import os
import stat

from rootlet.registry.errors import StoreError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(parent_fd: int, name: str) -> int:
    """Open directory ``name`` below ``parent_fd`` without following symlinks, making it usable.

    A directory we own but may not read, search or write (mode 0, 0500) gets u+rwx; inside a
    user namespace root's CAP_DAC_OVERRIDE covers directories of other mapped ids anyway.
    """
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        # Cannot open it for reading: chmod through an O_PATH handle, which never follows a
        # symlink swapped in meanwhile, then reopen that very inode through /proc.
        path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            os.chmod(f"/proc/self/fd/{path_fd}", stat.S_IMODE(os.fstat(path_fd).st_mode) | stat.S_IRWXU)
            fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        finally:
            os.close(path_fd)
    try:
        st = os.fstat(fd)
        if st.st_mode & stat.S_IRWXU != stat.S_IRWXU and st.st_uid == os.geteuid():
            os.fchmod(fd, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
    except OSError:
        os.close(fd)
        raise
    return fd


def _entries(fd: int) -> list[tuple[str, bool]]:
    """(name, is a real directory) for each entry of an open directory, in the order to delete them.

    Highest inode first, because the caller pops from the end: unlinking in ascending inode order
    (what GNU rm does) touches the inode table in order, 5x faster than directory order on ext4.
    """
    with os.scandir(fd) as it:
        found = [(e.inode(), e.name, e.is_dir(follow_symlinks=False)) for e in it]
    found.sort(reverse=True)
    return [(name, is_dir) for _, name, is_dir in found]


def remove_tree(path: str) -> None:
    """Delete ``path`` and everything below it; a missing path is not an error.

    Meant to run in a UsernsWorker, where files owned by subordinate ids can be removed. Never
    follows symlinks (every step is relative to an open directory fd with O_NOFOLLOW) and makes
    mode-0 directories usable first. Works iteratively, so depth is bounded by open fds, not by
    Python's recursion limit. Raises StoreError naming the entry that could not be removed.
    """
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    if not name:
        raise StoreError("refusing to remove /")
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as e:
        raise StoreError(f"cannot remove {path}: {e.strerror}") from e
    stack: list[tuple[int, str, str, list[tuple[str, bool]]]] = []  # (fd, name, display path, todo)
    current = path
    try:
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=parent_fd)
            return
        fd = _open_dir(parent_fd, name)
        stack.append((fd, name, path, _entries(fd)))
        while stack:
            fd, dname, dpath, todo = stack[-1]
            descended = False
            while todo:
                child, is_dir = todo.pop()
                current = f"{dpath}/{child}"
                if is_dir:
                    child_fd = _open_dir(fd, child)
                    stack.append((child_fd, child, current, _entries(child_fd)))
                    descended = True
                    break
                try:
                    os.unlink(child, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except IsADirectoryError:  # replaced by a directory meanwhile
                    todo.append((child, True))
            if descended:
                continue
            stack.pop()
            os.close(fd)
            current = dpath
            try:
                os.rmdir(dname, dir_fd=stack[-1][0] if stack else parent_fd)
            except FileNotFoundError:
                pass
    except OSError as e:
        hint = "unmount it first" if e.errno == 16 else None  # EBUSY: a mount point
        raise StoreError(f"cannot remove {current}: {e.strerror}", hint) from e
    finally:
        for fd, *_ in stack:
            os.close(fd)
        os.close(parent_fd)
