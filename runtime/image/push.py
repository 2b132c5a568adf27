"""``push``: a local image to a registry (or, through ``save``'s writers, to an archive file).

What goes up is what the store kept: each layer's blob exactly as it was pulled, loaded or
committed (``layers/<chain>/blob``), the config blob, and a manifest. When the format asked for
is the image's own and no layer needs another compression, the manifest is the image's original
bytes, so a pulled image pushed elsewhere keeps its manifest digest (podman recompresses every
layer and gets new digests). Otherwise a manifest is made for the blobs (``newimage.manifest_for``).

``--compression-format`` recompresses only the layers not already in that compression, streaming
(decompress, hash the tar to check it is still the layer's diff_id, compress, hash) into a
temporary file in the store's ``tmp/``, removed when the push ends; memory stays bounded by one
chunk whatever the layer size. Docker's v2s2 format has no zstd layers, so pushing a zstd image
as v2s2 recompresses to gzip unless zstd was asked for explicitly (then it is refused).

Blobs go up a few at a time in threads (``registry/upload.py``: existing ones skipped, ones the
registry holds in the image's source repositories mounted), the config after them and the
manifest last, so a reader of the destination never sees a manifest whose blobs are missing.
"""

from __future__ import annotations

import os
import time

from rootlet.registry.record import Record
from rootlet.runtime.image.options import PushOptions

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from typing import Protocol

    from rootlet.registry.config import RegistriesConfig
    from rootlet.registry.reference import Reference
    from rootlet.registry.store import ImageRecord, ImageStore
    from rootlet.registry.upload import Destination
    from rootlet.runtime.image.layers import LayerBlob

    class PushProgress(Protocol):
        """What a push reports as it goes; the CLI renders it as pull's progress, plus podman's lines."""

        def step(self, text: str) -> None: ...
        def layer(self, digest: str, size: int, status: str) -> None: ...
        def advance(self, digest: str, nbytes: int) -> None: ...
        def warn(self, message: str, hint: str | None = None) -> None: ...
        def finished(self, up_to_date: bool) -> None: ...

#: ``--format`` values (podman's) → manifest media type.
FORMATS = {"oci": "application/vnd.oci.image.manifest.v1+json",
           "v2s2": "application/vnd.docker.distribution.manifest.v2+json"}
COMPRESSIONS = ("gzip", "zstd")
#: Blobs uploaded at once (podman uploads a few in parallel too).
MAX_PARALLEL_UPLOADS = 3
#: podman's transports rootlet cannot write, refused by name rather than taken for a registry host.
OTHER_TRANSPORTS = ("containers-storage", "docker-daemon", "ostree", "sif")


class PushReport(Record):
    """What a push did: where the image went, its manifest digest there, and the work it took."""

    image_id: str
    destination: str
    digest: str
    media_type: str
    layers_total: int = 0
    layers_uploaded: int = 0
    layers_skipped: int = 0
    layers_mounted: int = 0
    bytes_uploaded: int = 0
    seconds: float = 0.0


class NullPushProgress:
    """Reports nothing (``-q``, scripts)."""

    def step(self, text: str) -> None:
        pass

    def layer(self, digest: str, size: int, status: str) -> None:
        pass

    def advance(self, digest: str, nbytes: int) -> None:
        pass

    def warn(self, message: str, hint: str | None = None) -> None:
        pass

    def finished(self, up_to_date: bool) -> None:
        pass


def parse_destination(text: str) -> tuple[str, str]:
    """(transport, the rest) of a push destination, as podman reads it: ``docker://REF``,
    ``oci-archive:…``, ``docker-archive:…``, ``oci:…``, ``dir:…``; anything else is a registry
    reference."""
    from rootlet.registry.errors import UsageError

    if text.startswith("docker://"):
        return "docker", text[len("docker://"):]
    head, sep, rest = text.partition(":")
    if sep and head in ("oci-archive", "docker-archive", "oci", "dir"):
        if not rest:
            raise UsageError(f"{text!r} names no file", f"give {head}:PATH")
        return head, rest
    if sep and head in OTHER_TRANSPORTS:
        raise UsageError(f"rootlet cannot push to {head}: destinations",
                         "push to docker://HOST/REPO:TAG, oci-archive:FILE or docker-archive:FILE")
    return "docker", text


def push_image(store: ImageStore, opts: PushOptions, progress: PushProgress | None = None) -> PushReport:
    """Push the local image *opts.image* to *opts.destination*; returns the report."""
    from rootlet.registry import mediatypes as mt
    from rootlet.registry.config import RegistriesConfig
    from rootlet.registry.errors import ImageNotFound, UsageError
    from rootlet.registry.store import match_image
    from rootlet.runtime.image.newimage import layer_blobs

    progress = progress or NullPushProgress()
    started = time.monotonic()
    if opts.format is not None and opts.format not in FORMATS:
        hint = "v2s1 (Docker's schema 1) is obsolete; " if opts.format == "v2s1" else ""
        raise UsageError(f"unknown manifest format {opts.format!r}", hint + "use --format oci or --format v2s2")
    if opts.compression_format is not None and opts.compression_format not in COMPRESSIONS:
        raise UsageError(f"unknown compression format {opts.compression_format!r}",
                         "use --compression-format gzip or zstd")
    if not store.exists():
        raise ImageNotFound(f"{opts.image}: image not known", "list local images with `rootlet images`")
    config = RegistriesConfig.load()
    rec, name = match_image(store.load(), opts.image, config.search_registries())
    if opts.destination is None and name == rec.id:
        raise UsageError(f"image {rec.id[:12]} has no name to push to", "give a destination: rootlet push IMAGE DEST")
    transport, target = parse_destination(opts.destination or name)
    if opts.digestfile and not os.path.isdir(os.path.dirname(os.path.abspath(opts.digestfile))):
        raise UsageError(f"cannot write --digestfile {opts.digestfile}: its directory does not exist",
                         "give a file in an existing directory")
    if transport != "docker":
        return _push_to_archive(store, opts, rec, name, transport, target, progress, started)

    own = "v2s2" if rec.manifest_media_type == mt.DOCKER_MANIFEST else "oci"
    fmt = opts.format or own
    blobs = layer_blobs(store, rec.layers, name)
    targets = [opts.compression_format or ("gzip" if fmt == "v2s2" and b.compression == "zstd" else b.compression)
               for b in blobs]
    if fmt == "v2s2" and "zstd" in targets:
        raise UsageError("Docker's v2s2 manifest format cannot carry zstd layers",
                         "use --format oci, or --compression-format gzip")
    config_bytes = store.read_blob(rec.config_digest, mt.MAX_CONFIG_BYTES)
    original = None
    if fmt == own and targets == [b.compression for b in blobs]:
        original = _original_manifest(store, rec, blobs)

    from rootlet.registry.reference import parse_reference

    ref = parse_reference(target).replace(short=False)
    if ref.digest and ref.tag:
        raise UsageError(f"destination {target!r} names both a tag and a digest", "push to NAME:TAG")
    if ref.digest and original is not None:
        _check_digest_destination(ref, original)  # before any upload, when the manifest is known
    report = PushReport(rec.id, str(ref), "", FORMATS[fmt], layers_total=len(blobs))
    _push_to_registry(store, opts, config, rec, ref, blobs, targets, config_bytes, original, fmt, progress, report)
    if opts.digestfile:
        _write_digestfile(opts.digestfile, report.digest)
    report.seconds = time.monotonic() - started
    progress.finished(False)
    return report


def _push_to_archive(store: ImageStore, opts: PushOptions, rec: ImageRecord, name: str, transport: str,
                     target: str, progress: PushProgress, started: float) -> PushReport:
    """``oci-archive:FILE[:REF]``, ``docker-archive:FILE[:REF]``, ``oci:DIR[:REF]``: what ``save``
    writes (its writer, ``archive_write.py``), the image named REF, else by its own name."""
    from rootlet.registry.errors import UsageError

    if transport == "dir":
        raise UsageError("rootlet cannot push to dir: destinations",
                         "use oci:DIR (an OCI layout directory), oci-archive:FILE or docker-archive:FILE")
    given = [flag for flag, value in (("--format", opts.format), ("--compression-format", opts.compression_format),
                                      ("--digestfile", opts.digestfile), ("--creds", opts.creds),
                                      ("--authfile", opts.authfile), ("--tls-verify", opts.tls_verify),
                                      ("--cert-dir", opts.cert_dir)) if value is not None]
    if given:
        raise UsageError(f"{given[0]} applies to registry destinations, not {transport}:",
                         "an archive holds the image as stored; drop the flag or push to docker://HOST/REPO:TAG")
    path, _, ref = target.partition(":")
    if transport == "docker-archive" and ref:
        from rootlet.registry.reference import parse_reference

        parsed = parse_reference(ref)
        if parsed.digest:
            raise UsageError(f"a docker-archive names its image NAME[:TAG], not {ref!r}", "drop the digest")
        ref = parsed.replace(short=False).tagged()
    names = [ref] if ref else ([] if name == rec.id else [name])
    from rootlet.runtime.image.archive_write import save_images

    save_images(store, [(rec, names)], path, "oci-dir" if transport == "oci" else transport, progress=progress.step)
    return PushReport(rec.id, f"{transport}:{target}", "", "", layers_total=len(rec.layers),
                      seconds=time.monotonic() - started)


def _original_manifest(store: ImageStore, rec: ImageRecord, blobs: list[LayerBlob]) -> bytes | None:
    """The image's manifest as pulled, when it is stored and names exactly these blobs."""
    from rootlet.registry import mediatypes as mt
    from rootlet.registry.errors import RootletError
    from rootlet.registry.manifest import ImageManifest, parse_manifest

    if rec.manifest_media_type not in mt.IMAGE_MANIFEST_TYPES or not store.has_blob(rec.manifest_digest):
        return None
    try:
        data = store.read_blob(rec.manifest_digest, mt.MAX_MANIFEST_BYTES)
        doc = parse_manifest(data, rec.manifest_media_type)
    except RootletError:
        return None
    if not isinstance(doc, ImageManifest) or doc.config.digest != rec.config_digest:
        return None
    if [d.digest for d in doc.layers] != [b.digest for b in blobs]:
        return None
    return data


def _push_to_registry(store: ImageStore, opts: PushOptions, config: RegistriesConfig, rec: ImageRecord,
                      ref: Reference, blobs: list[LayerBlob], targets: list[str], config_bytes: bytes,
                      original: bytes | None, fmt: str, progress: PushProgress, report: PushReport) -> None:
    """Upload every layer (recompressing where *targets* say), the config, then the manifest
    (*original*, or one made for the blobs as pushed); fills in *report*."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from rootlet.registry.client import ClientSettings, RegistryClient
    from rootlet.registry.upload import Destination

    store.ensure()
    _remove_stale(store)
    # Every blob opened before the first byte goes: an `rmi` meanwhile cannot take one away.
    fds = _open_all([b.path for b in blobs] + [store.blob_path(rec.config_digest)], rec)
    client = RegistryClient(ClientSettings(tls_verify=opts.tls_verify, creds=opts.creds, authfile=opts.authfile,
                                           cert_dir=opts.cert_dir), config)
    lock = threading.Lock()
    temps: list[str] = []
    try:
        dest = Destination.open(client, ref)
        mounts = _mount_sources(rec, dest)

        def one(stored: LayerBlob, fd: int, target: str) -> LayerBlob:
            # Progress is the stored blob's, as podman names a layer by its source: a recompressed
            # one's upload is scaled to the stored size, so its bar runs once from 0 to 100 %.
            blob: LayerBlob = stored
            source: str | int = fd
            scale = 1.0
            if target != stored.compression:
                progress.layer(stored.digest, stored.size, "compressing")
                blob = recompress(stored.replace(path=f"/proc/self/fd/{fd}"), target, store.tmp, temps, lock)
                source, scale = blob.path, stored.size / max(1, blob.size)
            progress.layer(stored.digest, stored.size, "uploading")
            outcome = dest.push_blob(source, blob.digest, blob.size, mounts,
                                     lambda n: progress.advance(stored.digest, round(n * scale)))
            progress.layer(stored.digest, stored.size, "done" if outcome == "uploaded" else "exists")
            with lock:
                if outcome == "uploaded":
                    report.layers_uploaded += 1
                    report.bytes_uploaded += blob.size
                else:
                    report.layers_skipped += 1
                    report.layers_mounted += outcome == "mounted"
            return blob

        progress.step("Getting image source signatures")
        with ThreadPoolExecutor(MAX_PARALLEL_UPLOADS, thread_name_prefix="push") as pool:
            futures = [pool.submit(one, b, fd, t) for b, fd, t in zip(blobs, fds, targets)]
            try:
                pushed = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        dest.push_blob(fds[-1], rec.config_digest, len(config_bytes), mounts)
        progress.step(f"Copying config {rec.config_digest.split(':', 1)[1][:12]} done")
        if original is None:
            from rootlet.runtime.image.newimage import manifest_for

            data, media_type = manifest_for(config_bytes, pushed, docker=fmt == "v2s2")
        else:
            data, media_type = original, rec.manifest_media_type
        _check_digest_destination(ref, data)
        progress.step("Writing manifest to image destination")
        report.digest = dest.put_manifest(data, media_type, ref.digest or ref.tag or "latest")
        report.media_type = media_type
    finally:
        for path in temps:
            _unlink(path)
        for fd in fds:
            os.close(fd)
        client.close()


def _write_digestfile(path: str, digest: str) -> None:
    """Write the manifest digest as podman does (no newline), atomically."""
    from rootlet.registry.errors import RootletError
    from rootlet.registry.fsutil import atomic_write

    try:
        atomic_write(path, digest.encode(), 0o644)
    except OSError as exc:
        raise RootletError(f"the image was pushed, but --digestfile {path} cannot be written: "
                           f"{exc.strerror or exc}", f"the digest is {digest}") from None


def _open_all(paths: list[str], rec: ImageRecord) -> list[int]:
    """Open every path (read-only); a clear error when one has gone (an ``rmi`` raced the push)."""
    from rootlet.registry.errors import StoreError

    fds: list[int] = []
    try:
        for path in paths:
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except FileNotFoundError:
        for fd in fds:
            os.close(fd)
        raise StoreError(f"a blob of image {rec.id[:12]} was removed while it was being pushed",
                         "pull the image again, then push it") from None
    return fds


def _check_digest_destination(ref: Reference, data: bytes) -> None:
    """A destination pinned to a digest takes only the manifest with that digest."""
    import hashlib

    from rootlet.registry.errors import UsageError

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if ref.digest and ref.digest != digest:
        raise UsageError(f"the destination names digest {ref.digest}, but the manifest pushed is {digest}",
                         "push to a tag, or to the image's own digest")


def _mount_sources(rec: ImageRecord, dest: Destination) -> tuple[str, ...]:
    """Repositories on the destination's registry that the image came from (its repo digests
    first, then its tags): they probably hold its blobs, which can be mounted instead of sent."""
    from rootlet.registry.errors import RootletError
    from rootlet.registry.reference import parse_reference

    out: list[str] = []
    for name in [d.split("@", 1)[0] for d in rec.repo_digests] + [t.rsplit(":", 1)[0] for t in rec.repo_tags]:
        try:
            other = parse_reference(name)
            endpoint = dest.client.config.endpoints(other)[-1]
        except RootletError:
            continue
        if endpoint.host == dest.endpoint.host and endpoint.repository != dest.repository \
                and endpoint.repository not in out:
            out.append(endpoint.repository)
    return tuple(out[:3])


def recompress(blob: LayerBlob, target: str, tmpdir: str, temps: list[str], lock: object) -> LayerBlob:
    """*blob* recompressed as *target* into a new file in *tmpdir* (its path appended to *temps*,
    under *lock*), streaming; its tar must still hash to the layer's diff_id."""
    import hashlib
    import tempfile

    from rootlet.registry.errors import LayerError
    from rootlet.runtime.image.decompress import open_layer_stream
    from rootlet.runtime.image.layers import LayerBlob
    from rootlet.runtime.image.layerwriter import CHUNK, compressor

    comp = compressor(target)
    fd, path = tempfile.mkstemp(prefix=f"push-{os.getpid()}-", dir=tmpdir)
    with lock:  # type: ignore[attr-defined]
        temps.append(path)
    tar_hash, out_hash, size = hashlib.sha256(), hashlib.sha256(), 0
    with os.fdopen(fd, "wb") as out, open_layer_stream(blob.path, blob.compression) as src:
        while True:
            try:
                chunk = src.read(CHUNK)
            except Exception as exc:  # OSError, EOFError, zlib.error, zstandard.ZstdError
                raise LayerError(f"the stored blob of layer {blob.digest[:19]} is damaged: {exc}",
                                 "remove the image and pull it again") from None
            data = comp.compress(chunk) if chunk else comp.flush()
            out.write(data)
            out_hash.update(data)
            size += len(data)
            if not chunk:
                break
            tar_hash.update(chunk)
    if "sha256:" + tar_hash.hexdigest() != blob.diff_id:
        raise LayerError(f"the stored blob of layer {blob.digest[:19]} no longer unpacks to {blob.diff_id}",
                         "remove the image and pull it again")
    return LayerBlob(path=path, digest="sha256:" + out_hash.hexdigest(), size=size, compression=target,
                     diff_id=blob.diff_id)


def _remove_stale(store: ImageStore) -> None:
    """Recompressed blobs in ``tmp/`` left by pushes whose process died."""
    from rootlet.runtime.linux.proc import pid_alive

    try:
        names = os.listdir(store.tmp)
    except FileNotFoundError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == "push" and parts[1].isdigit() and not pid_alive(int(parts[1])):
            _unlink(os.path.join(store.tmp, name))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
