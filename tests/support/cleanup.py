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
    """Stop what the tests left running in the store roots that exist, then remove them; returns
    what could not be done and why: the caller reports it, nothing fails."""
    roots = [r for r in roots if r.exists()]
    problems = [p for root in roots for p in stop_containers(root)]
    if not roots or os.getuid() == 0:
        return problems  # root removes anything: pytest's own clean-up does
    from rootlet.runtime.linux.rmtree import remove_tree
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    try:
        worker = UsernsWorker(plan_userns())
    except Exception as exc:  # noqa: BLE001 - no subordinate ids: nothing of theirs to remove either
        return [*problems, f"no user namespace for the clean-up: {exc}"]
    with worker:
        for root in roots:
            try:
                worker.call(remove_tree, str(root))
            except Exception as exc:  # noqa: BLE001 - reported, never a test failure
                problems.append(f"{root}: {exc}")
    return problems


def stop_containers(root: Path) -> list[str]:
    """Remove every pod and container of store *root* (``pod rm -af``, ``rm -af``): a container a
    test left running would otherwise outlive the session (its monitor, network helper and
    ``sleep 600`` running on for minutes after the store is gone, loading whatever runs next)."""
    if not (root / "containers").is_dir():
        return []
    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.options import PodActionOptions, RmOptions

    engine = Engine(str(root))
    problems = []
    for remove in (lambda: engine.pod_rm(PodActionOptions(all=True, force=True)),
                   lambda: engine.rm(RmOptions(all=True, force=True))):
        try:
            problems += [f"{root}: {r.name}: {r.error}" for r in remove() if r.error is not None]
        except Exception as exc:  # noqa: BLE001 - reported, never a test failure
            problems.append(f"{root}: {exc}")
    return problems
