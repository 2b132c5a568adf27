"""What the store holds, for ``info``: counts and sizes from metadata, not a tree walk."""

from __future__ import annotations

import contextlib
import os

from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.image.layers import LayerStore


class StoreSummary(Record):
    """Where the store is and what it holds."""

    root: str
    images: int
    layers: int
    layer_bytes: int
    blob_bytes: int


def store_summary(store: ImageStore) -> StoreSummary:
    """Count images and layers and add up their sizes."""
    if not store.exists():
        return StoreSummary(store.root, 0, 0, 0, 0)
    layers = LayerStore(store)
    chains = layers.all_layers()
    layer_bytes = 0
    for chain in chains:
        with contextlib.suppress(Exception):
            layer_bytes += layers.info(chain).size
    blob_bytes = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(store.blobs):
            with contextlib.suppress(OSError):
                blob_bytes += entry.stat(follow_symlinks=False).st_size
    return StoreSummary(store.root, len(store.load()), len(chains), layer_bytes, blob_bytes)
