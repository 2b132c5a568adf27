"""``system reset``: everything the store holds removed, running containers stopped first.

The store's trees hold files of subordinate ids (layers, containers' writable layers, seeded
volumes) that only root of the user namespace may delete: what the user's own uid cannot remove
is removed there (``delete_trees``). The store's root directory itself stays, empty, so the next
command starts afresh in it. A directory that does not look like a rootlet store is never
emptied: ``--root`` pointing at the wrong place must not cost the user their files.
"""

from __future__ import annotations

import contextlib
import os

from rootlet.registry.errors import RootletError, StoreError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.lifecycle.stop import delete_trees, remove_container

#: Entries only a rootlet store has; a root holding none of them is refused.
STORE_MARKERS = ("blobs", "layers", "locks", "images.json", "containers.json", "containers", "volumes", "networks",
                 "pods")


def reset_store(store: ImageStore) -> list[str]:
    """Stop and remove every container, then delete every entry of the store; the container ids
    removed. Raises StoreError when something could not be removed (naming it)."""
    root = store.root
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return []
    if entries and not set(entries) & set(STORE_MARKERS):
        raise StoreError(f"{root} does not look like a rootlet store: nothing removed",
                         "check --root / ROOTLET_ROOT")
    removed = []
    for cid in ContainerStore(store).all_ids():
        with contextlib.suppress(RootletError, OSError):
            remove_container(store, cid, force=True, volumes=True)
            removed.append(cid)
    _stop_namespace_holders(store)
    delete_trees([os.path.join(root, name) for name in os.listdir(root)])
    left = os.listdir(root)
    if left:
        raise StoreError(f"could not remove {os.path.join(root, sorted(left)[0])} from the store",
                         "a process may still use it (a mount?); stop it and run `rootlet system reset -f` again")
    return removed


def _stop_namespace_holders(store: ImageStore) -> None:
    """Pods' infra processes and rootlet's network namespace (its last container is gone by now)."""
    from rootlet.runtime.container.infra import stop_infra
    from rootlet.runtime.container.pods import PodStore
    from rootlet.runtime.net import netns

    for pod in PodStore(store).configs():
        with contextlib.suppress(RootletError, OSError):
            stop_infra(store, pod)
    with contextlib.suppress(RootletError, OSError):
        netns.tidy(store)
