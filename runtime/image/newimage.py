"""Adding an image made on this machine to the store: ``commit``, ``load``, ``import`` (and ``build``).

The order is the pull's, so a crash at any point leaves nothing a reader can see half made: each
layer is unpacked from its verified blob and renamed into ``layers/`` whole (the blob kept beside
it), then the config and manifest go in as blobs, and the image record is written last, under the
store lock, after checking that every layer is still there.
"""

from __future__ import annotations

import json
import time

from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import StoreError, UsageError
from rootlet.registry.manifest import chain_ids
from rootlet.registry.reference import Reference, parse_reference
from rootlet.registry.store import ImageRecord, ImageStore
from rootlet.runtime.image.layers import LayerBlob, LayerStore
from rootlet.runtime.image.layerwriter import NewLayer

__all__ = ["NewLayer", "OCI_LAYER_TYPES", "DOCKER_LAYER_TYPES", "local_name", "add_layers", "layer_blobs",
           "manifest_for", "add_image"]

#: Compression → the OCI layer media type.
OCI_LAYER_TYPES = {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "none": mt.OCI_LAYER}
#: Compression → the Docker schema 2 layer media type (zstd is not in Docker's schema 2).
DOCKER_LAYER_TYPES = {"gzip": mt.DOCKER_LAYER_GZIP, "none": "application/vnd.docker.image.rootfs.diff.tar",
                      "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd"}


def local_name(name: str) -> Reference:
    """A name given to a new image: podman's rule, a name without a registry is ``localhost/NAME``."""
    ref = parse_reference(name)
    if ref.digest:
        raise UsageError(f"cannot name an image with a digest reference {name!r}", "give NAME[:TAG]")
    return ref.with_registry("localhost") if ref.short else ref


def add_layers(store: ImageStore, worker: object, base_diff_ids: list[str], new: list[NewLayer],
               single_id: bool, privileged: bool) -> list[str]:
    """Unpack ``new`` on top of the layers ``base_diff_ids``; returns the chain ids (hex) of all.

    *worker* is a ``UsernsWorker`` under the default id map. A layer already in the store (same
    chain) is not unpacked again.
    """
    diff_ids = [*base_diff_ids, *(n.diff_id for n in new)]
    chains = [c.split(":", 1)[1] for c in chain_ids(diff_ids)]
    layers = LayerStore(store)
    for i, layer in enumerate(new, start=len(base_diff_ids)):
        # No lock across the unpack: `unpack` places the layer under its lock, held only for that.
        if not layers.has(chains[i]):
            layers.unpack(worker, layer.path, layer.compression, chains[i], layer.diff_id, chains[:i],
                          layer.digest, layer.size, single_id, privileged)
    return chains


def layer_blobs(store: ImageStore, chains: list[str], what: str) -> list[LayerBlob]:
    """The kept blob of each layer; a clear error for a layer unpacked by an older rootlet."""
    layers = LayerStore(store)
    out: list[LayerBlob] = []
    for chain in chains:
        blob = layers.blob(chain)
        if blob is None:
            raise StoreError(f"layer {chain[:12]} of {what} has no stored blob (it was pulled by a rootlet "
                             "older than 0.2, which did not keep layer blobs)",
                             f"remove the image and pull it again: rootlet rmi {what} && rootlet pull {what}")
        out.append(blob)
    return out


def manifest_for(config: bytes, blobs: list[LayerBlob], docker: bool = False,
                 annotations: dict[str, str] | None = None) -> tuple[bytes, str]:
    """An image manifest (OCI, or Docker schema 2 when ``docker``) for a config and its layer blobs,
    with OCI ``annotations``; returns (bytes, media type)."""
    import hashlib

    if docker and any(b.compression == "zstd" for b in blobs):
        raise UsageError("Docker's v2s2 manifest format cannot carry zstd layers",
                         "use --format oci, or --compression-format gzip")
    kinds = DOCKER_LAYER_TYPES if docker else OCI_LAYER_TYPES
    media_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [{"mediaType": kinds[b.compression], "digest": b.digest, "size": b.size} for b in blobs],
    }
    if annotations:
        if docker:
            raise UsageError("Docker's v2s2 manifest format cannot carry annotations", "use --format oci")
        doc["annotations"] = dict(annotations)
    return json.dumps(doc, indent=3).encode(), media_type


def add_image(store: ImageStore, config: bytes, chains: list[str], tags: list[str],
              intermediate: bool = False, manifest: bytes | None = None, docker: bool = False,
              annotations: dict[str, str] | None = None) -> ImageRecord:
    """Store ``config`` and an OCI manifest for it, and record the image (its id is the config's
    digest) with ``tags`` (full references, moved off any other image). Returns the record.
    ``intermediate`` marks a build step's image (hidden from ``images`` without ``-a``); an image
    that gets a name, or is made again by other means, is not intermediate any more. ``manifest``
    (an archive's own) is kept instead of a new one when it names exactly this config and the
    layers' kept blobs, so its digest survives a save and a load; ``docker`` makes a Docker v2s2
    manifest instead of an OCI one; ``annotations`` go into a new OCI manifest (also of an image
    already stored, whose id they do not change)."""
    import hashlib

    from rootlet.registry.manifest import parse_config

    parsed = parse_config(config)
    if len(parsed.diff_ids) != len(chains):
        raise StoreError("internal: the config's diff_ids and the layers differ in number")
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    blobs = layer_blobs(store, chains, config_digest[7:19])
    given = _matching(manifest, config_digest, blobs) if manifest is not None else None
    if given is not None:
        media_type = given
    else:
        manifest, media_type = manifest_for(config, blobs, docker=docker, annotations=annotations)
    assert manifest is not None
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    store.put_blob(config_digest, config)
    store.put_blob(manifest_digest, manifest)
    layers = LayerStore(store)
    with store.transaction() as images:
        if not all(layers.has(c) for c in chains):
            raise StoreError("a layer of the new image was removed while it was being made", "try again")
        rec = images.get(config_digest[7:])
        if rec is None:
            rec = ImageRecord(
                id=config_digest[7:], config_digest=config_digest, manifest_digest=manifest_digest,
                manifest_media_type=media_type, layers=list(chains), diff_ids=list(parsed.diff_ids),
                size=sum(layers.info(c).size for c in chains), os=parsed.os,
                architecture=parsed.architecture, variant=parsed.variant, created=parsed.created,
                pulled=time.time(), intermediate=intermediate)
            images[rec.id] = rec
        elif not intermediate or tags:
            rec.intermediate = False
        if annotations:
            rec.manifest_digest, rec.manifest_media_type = manifest_digest, media_type
        for tag in tags:
            for other in images.values():
                if other.id != rec.id and tag in other.repo_tags:
                    other.repo_tags.remove(tag)
            if tag not in rec.repo_tags:
                rec.repo_tags.append(tag)
        return rec


def _matching(manifest: bytes, config_digest: str, blobs: list[LayerBlob]) -> str | None:
    """The media type of *manifest* when it names exactly *config_digest* and *blobs*, else None."""
    from rootlet.registry.errors import ManifestError
    from rootlet.registry.manifest import ImageManifest, parse_manifest

    try:
        doc = parse_manifest(manifest, None)
    except ManifestError:
        return None
    if not isinstance(doc, ImageManifest) or doc.config.digest != config_digest:
        return None
    if [d.digest for d in doc.layers] != [b.digest for b in blobs]:
        return None
    return doc.media_type
