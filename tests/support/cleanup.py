"""Removing what the tests leave in their temporary directories, subordinate-owned files included.

A store holds layers and container upper directories owned by the user's subordinate ids: an
unprivileged user cannot delete them (pytest's own clean-up of old runs would warn and leave
gigabytes in /tmp). They are removed at the end of the session the way rootlet removes them: by
its own tree removal, run as root of a user namespace with the user's subordinate ids mapped.
"""

from __future__ import annotations

import os
from pathlib import Path


def remove_stores(roots: list[Path]) -> list[str]:
    """Remove the store roots that exist; returns what could not be removed and why (a test left
    a container running on a fuse mount, say): the caller reports it, nothing fails."""
    roots = [r for r in roots if r.exists()]
    if not roots or os.getuid() == 0:
        return []  # root removes anything: pytest's own clean-up does
    from rootlet.runtime.linux.rmtree import remove_tree
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    problems = []
    try:
        worker = UsernsWorker(plan_userns())
    except Exception as exc:  # noqa: BLE001 - no subordinate ids: nothing of theirs to remove either
        return [f"no user namespace for the clean-up: {exc}"]
    with worker:
        for root in roots:
            try:
                worker.call(remove_tree, str(root))
            except Exception as exc:  # noqa: BLE001 - reported, never a test failure
                problems.append(f"{root}: {exc}")
    return problems
