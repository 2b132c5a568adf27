"""Operations on local images: list, inspect, tag, remove, prune.

They read the image records of ``rootlet.registry.store`` and, when a removal leaves layers that no
image needs any more, delete those layers in a user-namespace worker (their files belong to the
user's subordinate ids, which the user cannot delete from outside).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from rootlet.registry.errors import ImageInUse, ImageNotFound, RootletError, UsageError
from rootlet.registry.manifest import parse_config
from rootlet.registry.reference import parse_reference
from rootlet.registry.store import ImageRecord, ImageStore, resolve_image
from rootlet.runtime.layers import LayerStore


@dataclass(frozen=True)
class ImageRow:
    """One line of ``rootlet images``: an image under one of its names (or ``<none>``)."""

    repository: str
    tag: str
    id: str
    created: str | None
    size: int
    digest: str
    record: ImageRecord


@dataclass
class RemoveReport:
    """What ``rmi`` / ``image prune`` did, in the order docker prints it."""

    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    layers_removed: int = 0
    errors: list[RootletError] = field(default_factory=list)


def list_images(store: ImageStore, filter_name: str | None = None) -> list[ImageRow]:
    """One row per tag (dangling images once, as ``<none>``), newest first."""
    rows: list[ImageRow] = []
    want = None
    if filter_name:
        ref = parse_reference(filter_name)
        want = (ref.path if ref.short else ref.name, ref.tag if ":" in filter_name.rsplit("/", 1)[-1] else None)
    for rec in sorted(store.load().values(), key=lambda r: (r.created or "", r.pulled), reverse=True):
        names = rec.repo_tags or ["<none>:<none>"]
        for name in names:
            repo, _, tag = name.rpartition(":")
            if want is not None:
                path, tag_wanted = want
                if not (repo == path or repo.endswith("/" + path)) or (tag_wanted and tag != tag_wanted):
                    continue
            rows.append(ImageRow(repo, tag, rec.id, rec.created, rec.size, rec.manifest_digest, rec))
    return rows


def inspect_image(store: ImageStore, name: str) -> dict[str, Any]:
    """docker/podman-style ``image inspect`` document for one image."""
    rec = store.resolve(name)
    config = parse_config(store.read_blob(rec.config_digest))
    raw = config.raw
    cfg = dict(config.config)
    return {
        "Id": "sha256:" + rec.id,
        "Digest": rec.manifest_digest,
        "RepoTags": list(rec.repo_tags),
        "RepoDigests": list(rec.repo_digests),
        "Parent": "",
        "Comment": raw.get("comment", ""),
        "Created": rec.created,
        "Config": cfg,
        "Version": raw.get("docker_version", ""),
        "Author": raw.get("author", ""),
        "Architecture": rec.architecture,
        "Variant": rec.variant or "",
        "Os": rec.os,
        "Size": rec.size,
        "VirtualSize": rec.size,
        "Labels": cfg.get("Labels") or {},
        "RootFS": {"Type": "layers", "Layers": list(rec.diff_ids)},
        "History": list(config.history),
        "ManifestType": rec.manifest_media_type,
        "User": cfg.get("User", ""),
    }


def tag_image(store: ImageStore, source: str, targets: list[str]) -> ImageRecord:
    """Give the image *source* the extra names *targets* (moving each name off any other image)."""
    if not targets:
        raise UsageError("tag needs at least one target name", "rootlet tag SOURCE TARGET [TARGET…]")
    parsed = []
    for t in targets:
        ref = parse_reference(t)
        if ref.digest:
            raise UsageError(f"cannot tag with a digest reference {t!r}", "give NAME[:TAG]")
        # podman's rule: a name without a registry is a local name, localhost/NAME.
        parsed.append(ref.with_registry("localhost") if ref.short else ref)
    with store.transaction() as images:
        rec = resolve_image(images, source, ["docker.io"])
        for ref in parsed:
            tag = ref.tagged()
            for other in images.values():
                if other.id != rec.id and tag in other.repo_tags:
                    other.repo_tags.remove(tag)
            if tag not in rec.repo_tags:
                rec.repo_tags.append(tag)
        return rec


def remove_images(store: ImageStore, names: list[str], force: bool = False, all_images: bool = False,
                  used_by: dict[str, list[str]] | None = None) -> RemoveReport:
    """``rmi``: untag names that are one of several tags, delete images otherwise, then free layers.

    *used_by* maps image id → names of containers that use it; such images are refused unless
    *force*. Each name that fails is reported in ``errors`` and the others still proceed, as
    podman does.
    """
    used_by = used_by or {}
    report = RemoveReport()
    with store.transaction() as images:
        targets: list[tuple[str, str | None]] = []
        if all_images:
            targets = [(i, None) for i in images]
        for name in names:
            try:
                rec = resolve_image(images, name, ["docker.io"])
            except ImageNotFound as exc:
                report.errors.append(exc)
                continue
            targets.append((rec.id, _matching_tag(rec, name)))
        for image_id, tag in targets:
            rec = images.get(image_id)
            if rec is None:
                continue
            if tag and len(rec.repo_tags) > 1:
                rec.repo_tags.remove(tag)
                report.untagged.append(tag)
                continue
            if used_by.get(image_id) and not force:
                report.errors.append(ImageInUse(
                    f"image {image_id[:12]} is in use by container {', '.join(used_by[image_id])}",
                    "remove the container first or use `rootlet rmi -f`"))
                continue
            report.untagged.extend(rec.repo_tags)
            report.deleted.append(image_id)
            del images[image_id]
        doomed = _orphan_layers(store, images)
        removing = _detach_layers(store, doomed)
    report.layers_removed = len(doomed)
    _delete_detached(store, removing)
    return report


def prune_images(store: ImageStore, all_images: bool = False, used: set[str] | None = None) -> RemoveReport:
    """Remove dangling images (no tag), or with *all_images* every image no container uses."""
    used = used or set()
    recs = store.load()
    doomed = [r.id for r in recs.values() if r.id not in used and (all_images or not r.repo_tags)]
    if not doomed:
        report = RemoveReport()
        _delete_detached(store, _detach_layers(store, _orphan_layers_locked(store)))
        return report
    return remove_images(store, doomed, force=False)


def _matching_tag(rec: ImageRecord, name: str) -> str | None:
    """The tag of *rec* that *name* denotes, or None when *name* is an id."""
    try:
        ref = parse_reference(name)
    except RootletError:
        return None
    if ref.tagged() in rec.repo_tags:
        return ref.tagged()
    if ref.short:
        suffix = "/" + ref.path + ":" + (ref.tag or "latest")
        hits = [t for t in rec.repo_tags if t.endswith(suffix)]
        if hits:
            return hits[0]
    return None


def _orphan_layers(store: ImageStore, images: dict[str, ImageRecord]) -> list[str]:
    needed = {c for rec in images.values() for c in rec.layers}
    return [c for c in LayerStore(store).all_layers() if c not in needed]


def _orphan_layers_locked(store: ImageStore) -> list[str]:
    with store.transaction() as images:
        return _orphan_layers(store, images)


def _detach_layers(store: ImageStore, chains: list[str]) -> list[str]:
    """Rename doomed layers out of ``layers/`` (called under the store lock, so no pull adopts them)."""
    import tempfile

    moved: list[str] = []
    for chain in chains:
        layers = LayerStore(store)
        with layers.lock(chain):
            dst = tempfile.mkdtemp(prefix=f"del-{os.getpid()}-", dir=store.tmp)
            with contextlib.suppress(FileNotFoundError):
                os.rename(layers.layer_dir(chain), os.path.join(dst, "layer"))
            moved.append(dst)
    return moved


def _delete_detached(store: ImageStore, paths: list[str]) -> None:
    if not paths:
        return
    from rootlet.runtime.idmap import plan_userns
    from rootlet.runtime.userns import UsernsWorker, remove_tree

    with UsernsWorker(plan_userns()) as worker:
        for p in paths:
            worker.call(remove_tree, p)


def image_json(row: ImageRow) -> dict[str, Any]:
    """``images --format json`` entry, with the keys podman prints."""
    rec = row.record
    return {
        "Id": rec.id,
        "ParentId": "",
        "RepoTags": list(rec.repo_tags),
        "RepoDigests": list(rec.repo_digests),
        "Size": rec.size,
        "SharedSize": 0,
        "VirtualSize": rec.size,
        "Labels": None,
        "Containers": 0,
        "Names": list(rec.repo_tags),
        "Digest": rec.manifest_digest,
        "Created": rec.created,
        "Arch": rec.architecture,
        "Os": rec.os,
    }



def untag_image(store: ImageStore, source: str, names: list[str]) -> ImageRecord:
    """Remove *names* (or every name) from an image; the image itself stays, dangling if unnamed."""
    with store.transaction() as images:
        rec = resolve_image(images, source, ["docker.io"])
        if not names:
            rec.repo_tags.clear()
            return rec
        for name in names:
            tag = _matching_tag(rec, name)
            if tag is None:
                raise ImageNotFound(f"{name}: not a name of image {rec.id[:12]}",
                                    "see the image's names with `rootlet images`")
            rec.repo_tags.remove(tag)
        return rec


@dataclass(frozen=True)
class StoreSummary:
    """Where the store is and what it holds, for ``rootlet info``."""

    root: str
    images: int
    layers: int
    layer_bytes: int
    blob_bytes: int


def store_summary(store: ImageStore) -> StoreSummary:
    """Count images and layers and add up their sizes (from metadata, not a tree walk)."""
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
