"""``system df``: what images, containers and volumes take on disk, and what a prune would free.

Image figures come from the store's metadata (each layer's unpacked size, recorded when it was
unpacked): a layer shared by several images is counted once in the total, and is "shared" in
each image's row. Container and volume figures are the bytes of their files (a container's
writable layer, a volume's data), counted as root of a user namespace: those trees hold files of
subordinate ids in directories the user may not enter.
"""

from __future__ import annotations

import contextlib

from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.container.volumes import VolumeStore
from rootlet.runtime.image.layers import LayerStore


class DfSummary(Record):
    """One row of ``system df``: ``type`` is Images, Containers or Local Volumes; sizes in bytes."""

    type: str
    total: int
    active: int
    size: int
    reclaimable: int


class DfImage(Record):
    """An image's row of ``system df -v`` (one per name; ``repository`` ``<none>`` for none)."""

    id: str
    repository: str
    tag: str
    created: str | None
    size: int
    shared: int
    unique: int
    containers: int


class DfContainer(Record):
    id: str
    image_id: str
    command: list[str]
    volumes: int
    size: int
    created: float
    status: str
    name: str


class DfVolume(Record):
    name: str
    links: int
    size: int


class DfReport(Record):
    """``system df``: the three summary rows, and the rows of ``-v``."""

    summary: list[DfSummary] = []
    images: list[DfImage] = []
    containers: list[DfContainer] = []
    volumes: list[DfVolume] = []


def layer_sizes(store: ImageStore) -> dict[str, int]:
    """Chain id → unpacked bytes, for every layer in the store."""
    layers = LayerStore(store)
    out = {}
    for chain in layers.all_layers():
        with contextlib.suppress(Exception):
            out[chain] = layers.info(chain).size
    return out


def disk_usage(store: ImageStore) -> DfReport:
    """Count everything (one user-namespace worker for the trees)."""
    images = store.load() if store.exists() else {}
    sizes = layer_sizes(store)
    containers = ContainerStore(store)
    configs = containers.configs()
    volumes = VolumeStore(store)
    names = volumes.names()
    users: dict[str, int] = {}
    for cfg in configs:
        for m in cfg.mounts:
            if m.name:
                users[m.name] = users.get(m.name, 0) + 1
    rw, data = tree_sizes([containers.path(c.id, "upper") for c in configs], [volumes.data(n) for n in names])
    report = DfReport()
    by_image: dict[str, int] = {}
    for cfg in configs:
        by_image[cfg.image_id] = by_image.get(cfg.image_id, 0) + 1
    holders: dict[str, int] = {}
    for rec in images.values():
        for chain in set(rec.layers):
            holders[chain] = holders.get(chain, 0) + 1
    needed = {chain for rec in images.values() if by_image.get(rec.id) for chain in rec.layers}
    needed |= {chain for cfg in configs for chain in cfg.layers}
    for rec in sorted(images.values(), key=lambda r: r.created or "", reverse=True):
        shared = sum(sizes.get(c, 0) for c in set(rec.layers) if holders.get(c, 0) > 1)
        for name in rec.repo_tags or ["<none>:<none>"]:
            repo, _, tag = name.rpartition(":")
            report.images.append(DfImage(id=rec.id, repository=repo, tag=tag, created=rec.created, size=rec.size,
                                         shared=shared, unique=rec.size - shared,
                                         containers=by_image.get(rec.id, 0)))
    report.summary.append(DfSummary("Images", len(images), sum(1 for i in images if by_image.get(i)),
                                    sum(sizes.values()), sum(s for c, s in sizes.items() if c not in needed)))
    running = 0
    reclaimable = 0
    for cfg, size in zip(configs, rw):
        status = containers.refresh(cfg.id).status
        running += status in ("running", "restarting")
        reclaimable += 0 if status in ("running", "restarting") else size
        report.containers.append(DfContainer(id=cfg.id, image_id=cfg.image_id, command=list(cfg.argv),
                                             volumes=sum(1 for m in cfg.mounts if m.name), size=size,
                                             created=cfg.created, status=status, name=cfg.name))
    report.summary.append(DfSummary("Containers", len(configs), running, sum(rw), reclaimable))
    for name, size in zip(names, data):
        report.volumes.append(DfVolume(name, users.get(name, 0), size))
    report.summary.append(DfSummary("Local Volumes", len(names), sum(1 for n in names if users.get(n)), sum(data),
                                    sum(s for n, s in zip(names, data) if not users.get(n))))
    return report


def tree_sizes(*groups: list[str]) -> list[list[int]]:
    """The bytes under each path of each group, counted in one user-namespace worker."""
    if not any(groups):
        return [[] for _ in groups]
    from rootlet.runtime.linux.trees import tree_size
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    with UsernsWorker(plan_userns()) as worker:
        return [[worker.call(tree_size, p) for p in group] for group in groups]
