"""The bytes a directory tree holds, counted without following symlinks (``ps --size``).

Run as root of a user namespace when the tree holds files of subordinate ids (a container's
upper directory): its directories may be closed to the user's own uid.
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
