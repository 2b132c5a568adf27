"""Whole-tree operations, never following a symlink: the bytes a tree holds (``ps --size``) and
giving a tree to one owner (``-v SRC:DST:U``).

Both run as root of a user namespace (a ``UsernsWorker`` call): the trees hold files of
subordinate ids, whose directories may be closed to the user's own uid.
"""

from __future__ import annotations

import os
import stat


def tree_size(path: str) -> int:
    """The sizes of the regular files and symlinks under ``path`` (each inode once), walked by
    descriptor; a missing tree is 0, what cannot be read is skipped."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        top = stack.pop()
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            elif (st.st_dev, st.st_ino) not in seen and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def chown_tree(path: str, uid: int, gid: int) -> None:
    """Give ``path`` and everything below it to ``uid``:``gid`` (ids of the calling namespace).

    Walked by descriptor (each directory opened O_NOFOLLOW relative to its parent), so a symlink
    swapped in meanwhile by a container sharing the tree leads nowhere: symlinks are changed
    themselves, never followed; another filesystem mounted below is not crossed.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        top = os.open(path, flags)
    except NotADirectoryError:
        os.chown(path, uid, gid, follow_symlinks=False)
        return
    device = os.fstat(top).st_dev
    os.chown(top, uid, gid)
    # Depth first, one open descriptor per level of the current path (not per pending directory).
    stack = [(top, iter(os.listdir(top)))]
    try:
        while stack:
            fd, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if st.st_dev != device:
                continue
            os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                child = os.open(name, flags, dir_fd=fd)
                try:
                    stack.append((child, iter(os.listdir(child))))
                except BaseException:
                    os.close(child)
                    raise
    finally:
        for fd, _ in stack:
            os.close(fd)
