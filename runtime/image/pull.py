"""The pull pipeline: reference → manifest → platform → blobs → verified layers → image record.

A pull whose image is stored with all its layers costs one request (the manifest's HEAD). Else the
missing layers are fetched by ``rootlet.runtime.image.fetchlayers``: a few downloads at a time,
each streamed into one of several user-namespace workers that unpack layers in parallel. The
workers are forked first of all, before the pull imports its HTTP stack (they stay small) and
before any thread can exist (a child forked while another thread holds a lock can deadlock; the
first progress event may start one); their namespaces are set up only when a layer is missing.
Nothing unverified is kept: blobs are checked against digest and size, unpacked layers against
the config's diff_ids, and the image record is written last, under the store lock.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Protocol

from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import ManifestError, RootletError, StoreError, UsageError
from rootlet.registry.manifest import (ImageConfig, ImageIndex, ImageManifest, Platform, chain_ids,
                                       parse_config, parse_manifest)
from rootlet.registry.record import Record
from rootlet.registry.reference import Reference, parse_reference
from rootlet.registry.store import ImageRecord, ImageStore
from rootlet.runtime.image.layers import LayerStore
from rootlet.runtime.image.options import PullOptions

#: Layers unpacked at once, at most (and at most one per CPU: each also inflates in a thread).
MAX_UNPACKERS = 4


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
    # The unpacking workers are forked now, before the HTTP stack is imported: each is a copy of
    # this process, and a small copy keeps a pull's peak memory down (their namespaces are set
    # up only if a layer is missing; else they are killed, which costs a fork each).
    workers = _prefork()
    try:
        return _pull(store, opts, progress, started, ref, wanted, workers)
    finally:
        for worker in workers:
            worker.close()


def _prefork() -> list[Any]:
    """Deferred workers (``UsernsWorker(deferred=True)``), one per CPU up to MAX_UNPACKERS."""
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    plan = plan_userns()
    count = max(1, min(len(os.sched_getaffinity(0)), MAX_UNPACKERS))
    return [UsernsWorker(plan, deferred=True) for _ in range(count)]


def _pull(store: ImageStore, opts: PullOptions, progress: PullProgress, started: float, ref: Reference,
          wanted: Platform, workers: list[Any]) -> PullReport:
    from rootlet.registry.client import ClientSettings, RegistryClient
    from rootlet.registry.config import RegistriesConfig

    store.ensure()
    config = RegistriesConfig.load()
    client = RegistryClient(ClientSettings(tls_verify=opts.tls_verify, creds=opts.creds,
                                           authfile=opts.authfile, cert_dir=opts.cert_dir), config)
    for worker in workers:  # while this process waits for the registry, not while it imports
        worker.preload("rootlet.runtime.image.applier")
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
        _fetch_and_unpack(store, source, manifest, image_config, chains, progress, report, workers)

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
                      chains: list[str], progress: PullProgress, report: PullReport, preforked: list[Any]) -> None:
    """Fetch, unpack and place the layers the store lacks (``fetchlayers``), with as many of the
    *preforked* workers as there are missing layers."""
    layers = LayerStore(store)
    missing = [i for i, c in enumerate(chains) if not layers.has(c)]
    if not missing:
        for desc in manifest.layers:
            progress.layer(desc.digest, desc.size, "exists")
        return
    from rootlet.runtime.image.fetchlayers import LayerFetcher, WorkerPool
    from rootlet.runtime.linux.rmtree import remove_tree

    used = preforked[:len(missing)]
    plan = used[0].plan
    pool = WorkerPool(used)
    try:
        if plan.single_id:
            warning = f"{plan.reason}: unpacking with a single id, every file will be owned by you"
            report.warnings.append(warning)
            progress.warn(warning, plan.hint)
        for i, desc in enumerate(manifest.layers):
            if i not in missing:
                progress.layer(desc.digest, desc.size, "exists")
        with pool.lend() as worker:
            for stale in layers.stale_entries():
                with contextlib.suppress(RootletError, OSError):
                    worker.call(remove_tree, stale)
        LayerFetcher(store, source, manifest, config, chains, progress, report, pool, plan).run(missing, len(used))
    finally:
        pool.close()


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
