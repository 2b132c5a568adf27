"""The local image catalogue: list, inspect, tag, untag, remove, prune.

They read and change the image records of ``rootlet.registry.store`` and, when a removal leaves
layers that nothing needs any more, delete those layers in a user-namespace worker (their files
belong to the user's subordinate ids, which the user cannot delete from outside).

Nothing may delete data another record refers to. Containers point at their image and at its
layers; the catalogue does not know containers (they live above it), so every removal asks the
caller's ``InUse`` callback, *under the image store's lock*, which images and layers containers
use. ``create`` re-checks its image under the same lock after writing the container's record, so
an ``rmi`` and a ``create`` racing each other never leave a container without its layers.

A layer is unpacked in ``tmp/``, out of a removal's sight, and placed under its layer lock, held
for a few renames: a removal takes layer locks without waiting and leaves a busy layer for a later
prune, so an ``rmi`` never waits while holding the store lock (which would block every other pull
and create). A layer removed after it was placed but before its image was recorded makes that
pull, load or commit fail with "try again" (it checks its layers under the store lock).
"""

from __future__ import annotations

import os

from rootlet.registry.errors import ImageInUse, ImageNotFound, RootletError, UsageError
from rootlet.registry.fsutil import flocked, make_temp_dir
from rootlet.registry.record import Record
from rootlet.registry.reference import DOCKER_HUB, parse_reference
from rootlet.registry.store import ImageRecord, ImageStore, resolve_image

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from typing import Any


class InUse(Record):
    """What containers use: image id → the names of the containers made from it, and the chain ids
    of every layer a container stands on."""

    images: dict[str, list[str]] = {}
    layers: set[str] = set()


#: Called under the image store's lock: what containers use right now.
if TYPE_CHECKING:
    from collections.abc import Callable

    InUseFn = Callable[[], InUse]


class ImageSummary(Record):
    """One line of ``images``: an image under one of its names (``<none>`` when it has none).

    ``created`` is the config's RFC 3339 time (None when the image has none).
    """

    repository: str
    tag: str
    id: str
    created: str | None
    size: int
    digest: str
    repo_tags: list[str] = []
    repo_digests: list[str] = []
    architecture: str = ""
    os: str = ""
    pulled: float = 0.0


class RemoveReport(Record):
    """What ``rmi`` / ``image prune`` did, in the order docker prints it."""

    untagged: list[str] = []
    deleted: list[str] = []
    layers_removed: int = 0
    errors: list[RootletError] = []


def list_images(store: ImageStore, filter_name: str | None = None, all_images: bool = False) -> list[ImageSummary]:
    """One row per tag (dangling images once, as ``<none>``), newest first; a build's intermediate
    images only with *all_images* (podman's ``images -a``)."""
    rows: list[ImageSummary] = []
    want = None
    if filter_name:
        ref = parse_reference(filter_name)
        want = (ref.path if ref.short else ref.name, ref.tag if ":" in filter_name.rsplit("/", 1)[-1] else None)
    for rec in sorted(store.load().values(), key=lambda r: (r.created or "", r.pulled), reverse=True):
        if rec.intermediate and not rec.repo_tags and not all_images:
            continue
        for name in rec.repo_tags or ["<none>:<none>"]:
            repo, _, tag = name.rpartition(":")
            if want is not None:
                path, tag_wanted = want
                if not (repo == path or repo.endswith("/" + path)) or (tag_wanted and tag != tag_wanted):
                    continue
            rows.append(ImageSummary(repo, tag, rec.id, rec.created, rec.size, rec.manifest_digest,
                                     list(rec.repo_tags), list(rec.repo_digests), rec.architecture, rec.os,
                                     rec.pulled))
    return rows


def inspect_image(store: ImageStore, name: str) -> dict[str, Any]:
    """docker/podman-style ``image inspect`` document for one image."""
    from rootlet.registry.manifest import parse_config

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
        rec = resolve_image(images, source, [DOCKER_HUB])
        for ref in parsed:
            tag = ref.tagged()
            for other in images.values():
                if other.id != rec.id and tag in other.repo_tags:
                    other.repo_tags.remove(tag)
            if tag not in rec.repo_tags:
                rec.repo_tags.append(tag)
        return rec


def untag_image(store: ImageStore, source: str, names: list[str]) -> ImageRecord:
    """Remove *names* (or every name) from an image; the image itself stays, dangling if unnamed."""
    with store.transaction() as images:
        rec = resolve_image(images, source, [DOCKER_HUB])
        if not names:
            rec.repo_tags.clear()
            return rec
        for name in names:
            tag = matching_tag(rec, name)
            if tag is None:
                raise ImageNotFound(f"{name}: not a name of image {rec.id[:12]}",
                                    "see the image's names with `rootlet images`")
            rec.repo_tags.remove(tag)
        return rec


def resolve_targets(store: ImageStore, names: list[str]) -> tuple[list[tuple[str, str | None]], list[RootletError]]:
    """(image id, the tag the name denotes or None for an id) per name that resolves, and the
    errors of those that do not (without the lock: the removal resolves again under it)."""
    images = store.load()
    found: list[tuple[str, str | None]] = []
    errors: list[RootletError] = []
    for name in names:
        try:
            rec = resolve_image(images, name, [DOCKER_HUB])
        except ImageNotFound as exc:
            errors.append(exc)
            continue
        found.append((rec.id, matching_tag(rec, name)))
    return found, errors


def remove_images(store: ImageStore, names: list[str], in_use: InUseFn, all_images: bool = False) -> RemoveReport:
    """``rmi``: untag names that are one of several tags, delete images otherwise, then free layers.

    An image a container uses is refused (``ImageInUse``: the caller removes those containers
    first for ``-f``). Each name that fails is reported in ``errors`` and the others still
    proceed, as podman does.
    """
    report = RemoveReport()
    with store.transaction() as images:
        used = in_use()
        targets: list[tuple[str, str | None]] = []
        if all_images:
            targets = [(i, None) for i in images]
        for name in names:
            try:
                rec = resolve_image(images, name, [DOCKER_HUB])
            except ImageNotFound as exc:
                report.errors.append(exc)
                continue
            targets.append((rec.id, matching_tag(rec, name)))
        for image_id, tag in targets:
            rec = images.get(image_id)
            if rec is None:
                continue
            if tag and len(rec.repo_tags) > 1:
                rec.repo_tags.remove(tag)
                report.untagged.append(tag)
                continue
            if used.images.get(image_id):
                report.errors.append(ImageInUse(
                    f"image {image_id[:12]} used by {', '.join(sorted(used.images[image_id]))}: image is in use by a "
                    "container",
                    "remove the container first, or use `rootlet rmi -f` to remove it with the image"))
                continue
            report.untagged.extend(rec.repo_tags)
            report.deleted.append(image_id)
            del images[image_id]
        removing = _detach_orphans(store, images, used)
    report.layers_removed = len(removing)
    _delete_detached(removing)
    return report


def prune_images(store: ImageStore, in_use: InUseFn, all_images: bool = False) -> RemoveReport:
    """Remove dangling images (no tag), or with *all_images* every image, that no container uses;
    then every layer nothing needs."""
    report = RemoveReport()
    with store.transaction() as images:
        used = in_use()
        for rec in list(images.values()):
            if rec.id in used.images or not (all_images or not rec.repo_tags):
                continue
            report.untagged.extend(rec.repo_tags)
            report.deleted.append(rec.id)
            del images[rec.id]
        removing = _detach_orphans(store, images, used)
    report.layers_removed = len(removing)
    _delete_detached(removing)
    return report


def matching_tag(rec: ImageRecord, name: str) -> str | None:
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


def _detach_orphans(store: ImageStore, images: dict[str, ImageRecord], used: InUse) -> list[str]:
    """Rename the layers no image and no container needs out of ``layers/`` (under the store lock,
    so no pull adopts them meanwhile); returns the directories to delete.

    A layer whose lock is held is being placed right now: it is left alone (a later prune takes
    it if its image is never recorded), never waited for.
    """
    from rootlet.runtime.image.layers import LayerStore  # not at the top: listing images needs none of it

    needed = {c for rec in images.values() for c in rec.layers} | used.layers
    layers = LayerStore(store)
    moved: list[str] = []
    for chain in layers.all_layers():
        if chain in needed:
            continue
        with flocked(store.lock_path("layer-" + chain), blocking=False) as taken:
            if not taken:
                continue
            dst = make_temp_dir(store.tmp, f"del-{os.getpid()}-")
            try:
                os.rename(layers.layer_dir(chain), os.path.join(dst, "layer"))
            except FileNotFoundError:
                pass
            moved.append(dst)
    return moved


def _delete_detached(paths: list[str]) -> None:
    if not paths:
        return
    from rootlet.runtime.linux.rmtree import remove_tree
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    with UsernsWorker(plan_userns()) as worker:
        for p in paths:
            worker.call(remove_tree, p)
