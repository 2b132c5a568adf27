"""The pull pipeline: reference → manifest → platform → blobs → verified layers → image record.

Downloads run a few at a time in threads while the layers are unpacked, in order, by one worker
process that lives in the user's user namespace. The worker is forked before any thread starts
(a child forked while another thread holds a lock can deadlock). Nothing unverified is kept: blobs
are checked against digest and size, unpacked layers against the config's diff_ids, and the image
record is written last, under the store lock.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import DigestMismatch, LayerError, ManifestError, RootletError, StoreError, UsageError
from rootlet.registry.fsutil import flocked
from rootlet.registry.manifest import (ImageConfig, ImageIndex, ImageManifest, Platform, chain_ids,
                                       parse_config, parse_manifest)
from rootlet.registry.record import Record
from rootlet.registry.reference import Reference, parse_reference
from rootlet.registry.store import ImageRecord, ImageStore
from rootlet.runtime.image.layers import LayerStore
from rootlet.runtime.image.options import PullOptions

#: Downloads at once: enough to fill a link, few enough not to trip registry rate limits.
MAX_PARALLEL_DOWNLOADS = 3


class PullProgress(Protocol):
    """What the pull reports as it goes; the CLI renders it (bars on a TTY, lines, or nothing)."""

    def resolved(self, ref: str, digest: str) -> None: ...
    def layer(self, digest: str, size: int, status: str) -> None: ...
    def advance(self, digest: str, nbytes: int) -> None: ...
    def warn(self, message: str, hint: str | None = None) -> None: ...
    def finished(self, up_to_date: bool) -> None: ...


class NullProgress:
    """Reports nothing (``-q``, scripts)."""

    def resolved(self, ref: str, digest: str) -> None:
        pass

    def layer(self, digest: str, size: int, status: str) -> None:
        pass

    def advance(self, digest: str, nbytes: int) -> None:
        pass

    def warn(self, message: str, hint: str | None = None) -> None:
        pass

    def finished(self, up_to_date: bool) -> None:
        pass


class PullReport(Record):
    """What a pull did: the image, and how much work it took."""

    image_id: str
    reference: str
    digest: str
    up_to_date: bool = False
    layers_total: int = 0
    layers_fetched: int = 0
    bytes_fetched: int = 0
    seconds: float = 0.0
    warnings: list[str] = []


def pull_image(store: ImageStore, opts: PullOptions, progress: PullProgress | None = None) -> PullReport:
    """Pull *opts.reference* into *store* and tag it; returns the report (image id first)."""
    progress = progress or NullProgress()
    started = time.monotonic()
    ref = parse_reference(opts.reference)
    wanted = wanted_platform(opts)
    from rootlet.registry.client import ClientSettings, RegistryClient
    from rootlet.registry.config import RegistriesConfig

    store.ensure()
    config = RegistriesConfig.load()
    client = RegistryClient(ClientSettings(tls_verify=opts.tls_verify, creds=opts.creds,
                                           authfile=opts.authfile, cert_dir=opts.cert_dir), config)
    try:
        source, head = client.open(ref)
        qualified: Reference = source.ref
        progress.resolved(str(qualified), head.digest)
        current = store.find_current(head.digest, str(wanted) if head.media_type in mt.INDEX_TYPES else None)
        if current is not None and _layers_present(store, current):
            _record(store, current, qualified, head.digest, [])
            progress.finished(True)
            return PullReport(current.id, str(qualified), current.manifest_digest, up_to_date=True,
                              layers_total=len(current.layers), seconds=time.monotonic() - started)

        top = source.manifest(head.digest)
        store.put_blob(top.digest, top.data)
        doc = parse_manifest(top.data, top.media_type)
        index_digests: list[str] = []
        if isinstance(doc, ImageIndex):
            index_digests.append(top.digest)
            chosen = doc.select(wanted)
            child = source.manifest(chosen.digest)
            store.put_blob(child.digest, child.data)
            doc = parse_manifest(child.data, child.media_type or chosen.media_type)
            if not isinstance(doc, ImageManifest):
                raise ManifestError("an image index points at another index", "the image is malformed")
            manifest_digest, manifest_type = child.digest, child.media_type or chosen.media_type
        else:
            manifest_digest, manifest_type = top.digest, top.media_type
        manifest: ImageManifest = doc

        image_config = _fetch_config(store, source, manifest)
        if (opts.platform or opts.os or opts.arch or opts.variant) and not wanted.matches(image_config.platform):
            raise ManifestError(f"the image is for {image_config.platform}, not {wanted}",
                                "drop --platform or choose the platform the image is built for")
        _check_layers(manifest, image_config)

        report = PullReport("", str(qualified), manifest_digest, layers_total=len(manifest.layers))
        chains = [c.split(":", 1)[1] for c in chain_ids(image_config.diff_ids)]
        _fetch_and_unpack(store, source, manifest, image_config, chains, progress, report)

        record = ImageRecord(
            id=manifest.config.digest.split(":", 1)[1], config_digest=manifest.config.digest,
            manifest_digest=manifest_digest, manifest_media_type=manifest_type, layers=chains,
            diff_ids=list(image_config.diff_ids), size=_layers_size(store, chains),
            os=image_config.os, architecture=image_config.architecture, variant=image_config.variant,
            created=image_config.created, pulled=time.time(), index_digests=index_digests,
        )
        _record(store, record, qualified, manifest_digest, index_digests)
        report.image_id = record.id
        report.seconds = time.monotonic() - started
        progress.finished(False)
        return report
    finally:
        client.close()


def wanted_platform(opts: PullOptions) -> Platform:
    """The platform to pull: ``--platform``, or this machine's with ``--os``/``--arch``/``--variant``
    replacing its parts."""
    if opts.platform and (opts.os or opts.arch or opts.variant):
        raise UsageError("--platform cannot be combined with --os, --arch or --variant")
    if opts.platform:
        return Platform.parse(opts.platform)
    host = Platform.host()
    if opts.os or opts.arch or opts.variant:
        return Platform.parse(f"{opts.os or host.os}/{opts.arch or host.architecture}"
                              + (f"/{opts.variant}" if opts.variant else ""))
    return host


def _fetch_config(store: ImageStore, source: object, manifest: ImageManifest) -> ImageConfig:
    desc = manifest.config
    if desc.size > mt.MAX_CONFIG_BYTES:
        raise ManifestError(f"image config is {desc.size} bytes, more than rootlet accepts")
    if store.has_blob(desc.digest):
        data = store.read_blob(desc.digest, mt.MAX_CONFIG_BYTES)
    else:
        data = source.read_blob(desc.digest, desc.size)  # type: ignore[attr-defined]
        store.put_blob(desc.digest, data)
    return parse_config(data)


def _check_layers(manifest: ImageManifest, config: ImageConfig) -> None:
    for layer in manifest.layers:
        if layer.media_type in mt.FOREIGN_LAYER_TYPES or layer.urls:
            raise ManifestError(
                f"layer {layer.digest} is a foreign (non-distributable) layer, which rootlet does not fetch",
                "such images (Windows base layers) cannot run on Linux anyway")
        if layer.media_type and layer.media_type not in mt.LAYER_COMPRESSION:
            raise ManifestError(f"layer {layer.digest} has unsupported media type {layer.media_type!r}",
                                "rootlet unpacks tar, tar+gzip and tar+zstd layers")
    if len(manifest.layers) != len(config.diff_ids):
        raise ManifestError(f"the manifest lists {len(manifest.layers)} layers but the config "
                            f"{len(config.diff_ids)} diff_ids", "the image is malformed")


def _fetch_and_unpack(store: ImageStore, source: object, manifest: ImageManifest, config: ImageConfig,
                      chains: list[str], progress: PullProgress, report: PullReport) -> None:
    layers = LayerStore(store)
    missing = [i for i, c in enumerate(chains) if not layers.has(c)]
    for i, desc in enumerate(manifest.layers):
        if i not in missing:
            progress.layer(desc.digest, desc.size, "exists")
    if not missing:
        return
    from rootlet.runtime.linux.rmtree import remove_tree
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    plan = plan_userns()
    if plan.single_id:
        warning = f"{plan.reason}: unpacking with a single id, every file will be owned by you"
        report.warnings.append(warning)
        progress.warn(warning, plan.hint)
    # Fork the user-namespace worker now, before the download threads exist.
    with UsernsWorker(plan) as worker:
        for stale in layers.stale_entries():
            with contextlib.suppress(RootletError, OSError):
                worker.call(remove_tree, stale)
        with ThreadPoolExecutor(MAX_PARALLEL_DOWNLOADS, thread_name_prefix="pull") as pool:
            futures: dict[int, Future[str | None]] = {
                i: pool.submit(_download, store, layers, source, manifest.layers[i], chains[i], progress, report)
                for i in missing
            }
            try:
                for i in missing:
                    desc = manifest.layers[i]
                    blob = futures[i].result()
                    with layers.lock(chains[i]):
                        if layers.has(chains[i]):
                            progress.layer(desc.digest, desc.size, "exists")
                            continue
                        if blob is None or not os.path.exists(blob):
                            blob = _download(store, layers, source, desc, chains[i], progress, report)
                            if blob is None:
                                continue
                        progress.layer(desc.digest, desc.size, "extracting")
                        try:
                            layers.unpack(worker, blob, mt.LAYER_COMPRESSION.get(desc.media_type, "gzip"),
                                          chains[i], config.diff_ids[i], chains[:i], desc.digest, desc.size,
                                          plan.single_id, plan.rootful)
                        except (LayerError, DigestMismatch) as exc:
                            store.remove_blob(desc.digest)
                            if isinstance(exc, DigestMismatch):
                                raise
                            raise LayerError(f"layer {desc.digest[:19]}: {exc.message}",
                                             exc.hint or "the image is malformed or hostile; nothing of it was kept"
                                             ) from None
                        store.remove_blob(desc.digest)
                        progress.layer(desc.digest, desc.size, "done")
            except BaseException:
                for f in futures.values():
                    f.cancel()
                raise


def _download(store: ImageStore, layers: LayerStore, source: object, desc: object, chain_hex: str,
              progress: PullProgress, report: PullReport) -> str | None:
    """Fetch one layer blob into ``blobs/`` unless the layer or blob is already there."""
    digest, size = desc.digest, desc.size  # type: ignore[attr-defined]
    if layers.has(chain_hex):
        return None
    path = store.blob_path(digest)
    with flocked(store.lock_path("blob-" + digest.split(":", 1)[1])):
        if layers.has(chain_hex):
            return None
        if os.path.exists(path):
            return path
        progress.layer(digest, size, "downloading")
        partial = store.partial_path(digest)
        source.fetch_blob(digest, size, partial, lambda n: progress.advance(digest, n))  # type: ignore[attr-defined]
        store.commit_partial(digest)
        report.layers_fetched += 1
        report.bytes_fetched += size
        progress.layer(digest, size, "downloaded")
    return path


def _layers_present(store: ImageStore, rec: ImageRecord) -> bool:
    layers = LayerStore(store)
    return all(layers.has(c) for c in rec.layers)


def _layers_size(store: ImageStore, chains: list[str]) -> int:
    layers = LayerStore(store)
    return sum(layers.info(c).size for c in chains)


def _record(store: ImageStore, record: ImageRecord, ref: Reference, manifest_digest: str,
            index_digests: list[str]) -> None:
    """Write the image record and move the tag to it, under the store lock."""
    tag = ref.tagged() if ref.tag or not ref.digest else None
    with store.transaction() as images:
        layers = LayerStore(store)
        if not all(layers.has(c) for c in record.layers):
            raise StoreError("a layer of the image was removed while it was being pulled",
                             "run the pull again")
        rec = images.get(record.id, record)
        if tag:
            for other in images.values():
                if other.id != rec.id and tag in other.repo_tags:
                    other.repo_tags.remove(tag)
            if tag not in rec.repo_tags:
                rec.repo_tags.append(tag)
        for d in [manifest_digest, *index_digests]:
            entry = f"{ref.name}@{d}"
            if entry not in rec.repo_digests:
                rec.repo_digests.append(entry)
            if d != rec.manifest_digest and d not in rec.index_digests and d in index_digests:
                rec.index_digests.append(d)
        images[rec.id] = rec
