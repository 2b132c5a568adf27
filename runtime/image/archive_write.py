"""``save``: local images as the archives ``podman save`` and ``docker save`` write.

* ``docker-archive``: ``manifest.json`` (``[{Config, RepoTags, Layers}]``), ``repositories``, the
  config as ``<id>.json`` and each layer as an uncompressed tar named by its diff_id, plus the
  legacy per-layer directories (``<v1 id>/{layer.tar → ../<diff_id>.tar, VERSION, json}``) that
  docker before 1.10 read. The layout, the tar headers (ustar, mode 0444, mtime 0, no owner names)
  and the JSON are those of containers/image's writer (podman 4), byte for byte, so ``rootlet save``
  and ``podman save`` of the same image give the same file. A layer kept compressed is inflated as
  it is written, its bytes checked against the diff_id on the way.
* ``oci-archive`` / ``oci-dir``: an OCI image layout (``oci-layout``, ``index.json`` naming each
  image with an ``org.opencontainers.image.ref.name`` annotation as podman writes it, the full
  reference; ``blobs/sha256/…``) holding the kept blobs as they are, and the stored manifest when
  it describes exactly those blobs (else one made for them).

Every blob is opened before the first byte is written, so an ``rmi`` meanwhile cannot tear the
archive; each blob is written once however many images share it; memory is bounded by one chunk.
An archive file is written beside its destination and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import os

from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import StoreError, UsageError
from rootlet.registry.store import ImageRecord, ImageStore
from rootlet.runtime.image.archive_tar import TarOut, copy_fd, go_compact, go_json, top_level_raw
from rootlet.runtime.image.layers import LayerBlob, LayerStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

FORMATS = ("docker-archive", "oci-archive", "oci-dir")
REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'
CHUNK = 1 << 20
#: Top-level config fields containers/image copies into the legacy json of an image's top layer.
LEGACY_ATTRS = ("architecture", "config", "container", "container_config", "created", "docker_version", "os")


def save_images(store: ImageStore, items: list[tuple[ImageRecord, list[str]]], out_path: str | None, fmt: str,
                out_fd: int | None = None, progress: Callable[[str], None] | None = None) -> None:
    """Write *items* (each an image and the full ``name:tag`` references it is saved under, none
    for an image saved by id) as a *fmt* archive to *out_path* (a file, or the directory of
    ``oci-dir``), or to the open descriptor *out_fd*. *progress* gets podman's lines."""
    say = progress or (lambda _line: None)
    if fmt not in FORMATS:
        raise UsageError(f"unsupported format {fmt!r} for saving images", "use docker-archive, oci-archive or oci-dir")
    if not items:
        raise UsageError("no image to save")
    images: list[_Image] = []
    try:
        for rec, names in items:
            images.append(_Image.open(store, rec, names))
        if fmt == "oci-dir":
            if out_path is None:
                raise UsageError("--format oci-dir writes a directory", "give it with -o DIRECTORY")
            _write_oci(images, _DirSink(out_path), say)
        elif out_path is None:
            _write_archive(images, fmt, TarOut(out_fd if out_fd is not None else 1), say)
        else:
            write_to_file(out_path, lambda fd: _write_archive(images, fmt, TarOut(fd), say))
    finally:
        for image in images:
            image.close()


def _write_archive(images: list[_Image], fmt: str, tar: TarOut, say: Callable[[str], None]) -> None:
    if fmt == "docker-archive":
        _write_docker(images, tar, say)
    else:
        _write_oci(images, _TarSink(tar), say)
    tar.close()


def write_to_file(path: str, write: Callable[[int], None]) -> None:
    """Run *write* on a new file beside *path*, then rename it over *path*."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory", "give the archive's file name with -o")
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}") from None
    try:
        try:
            write(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class _Image:
    """One image to save: its record, names, config, layer blobs, and an open descriptor for each blob."""

    def __init__(self, rec: ImageRecord, names: list[str], config: bytes, blobs: list[LayerBlob],
                 sizes: list[int], fds: list[int], manifest: tuple[bytes, str]) -> None:
        self.rec, self.names, self.config, self.blobs, self.sizes, self.fds = rec, names, config, blobs, sizes, fds
        self.manifest = manifest

    @classmethod
    def open(cls, store: ImageStore, rec: ImageRecord, names: list[str]) -> _Image:
        from rootlet.runtime.image.newimage import layer_blobs

        what = names[0] if names else rec.id[:12]
        config = store.read_blob(rec.config_digest, mt.MAX_CONFIG_BYTES)
        blobs = layer_blobs(store, rec.layers, what)
        layers = LayerStore(store)
        sizes = [layers.info(c).size for c in rec.layers]
        fds: list[int] = []
        try:
            for blob in blobs:
                fds.append(os.open(blob.path, os.O_RDONLY | os.O_CLOEXEC))
        except FileNotFoundError:
            for fd in fds:
                os.close(fd)
            raise StoreError(f"a layer of {what} was removed while it was being saved", "try again") from None
        return cls(rec, names, config, blobs, sizes, fds, _manifest(store, rec, config, blobs))

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _manifest(store: ImageStore, rec: ImageRecord, config: bytes, blobs: list[LayerBlob]) -> tuple[bytes, str]:
    """The stored OCI manifest when it names exactly this config and these blobs (a pulled image
    keeps its registry digest); else an OCI manifest made for them."""
    from rootlet.registry.manifest import ImageManifest, parse_manifest
    from rootlet.runtime.image.newimage import manifest_for

    if store.has_blob(rec.manifest_digest):
        data = store.read_blob(rec.manifest_digest, mt.MAX_MANIFEST_BYTES)
        try:
            doc = parse_manifest(data, rec.manifest_media_type)
        except Exception:  # noqa: BLE001 - a manifest we cannot read is replaced, not fatal
            doc = None
        if isinstance(doc, ImageManifest) and doc.media_type == mt.OCI_MANIFEST \
                and doc.config.digest == rec.config_digest \
                and [d.digest for d in doc.layers] == [b.digest for b in blobs]:
            return data, doc.media_type
    return manifest_for(config, blobs)


# --- docker-archive ------------------------------------------------------------------------------

def _write_docker(images: list[_Image], tar: TarOut, say: Callable[[str], None]) -> None:
    sent: set[str] = set()
    items: list[dict[str, object]] = []
    by_config: dict[str, dict[str, object]] = {}
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        paths = []
        for blob, size, fd in zip(image.blobs, image.sizes, image.fds):
            path = blob.diff_id.split(":", 1)[1] + ".tar"
            if path not in sent:
                say(f"Copying blob {blob.diff_id}")
                _send_layer(tar, path, blob, size, fd)
                sent.add(path)
            paths.append(path)
        config_path = image.rec.config_digest.split(":", 1)[1] + ".json"
        if config_path not in sent:
            say(f"Copying config {image.rec.config_digest}")
            tar.add_bytes(config_path, image.config)
            sent.add(config_path)
        say("Writing manifest to image destination")
        last = ""
        for i, (layer_id, doc) in enumerate(legacy_layers([b.diff_id for b in image.blobs], image.config)):
            if layer_id not in sent:
                tar.add_symlink(f"{layer_id}/layer.tar", "../" + paths[i])
                tar.add_bytes(f"{layer_id}/VERSION", b"1.0")
                tar.add_bytes(f"{layer_id}/json", doc)
                sent.add(layer_id)
            last = layer_id
        item = by_config.get(image.rec.config_digest)
        if item is None:
            item = {"Config": config_path, "RepoTags": [], "Layers": paths}
            by_config[image.rec.config_digest] = item
            items.append(item)
        tags: list[str] = item["RepoTags"]  # type: ignore[assignment]
        for name in image.names:
            if name not in tags:
                tags.append(name)
            if last:
                repo, _, tag = name.rpartition(":")
                repositories.setdefault(repo, {})[tag] = last
    tar.add_bytes("manifest.json", go_json(items))
    tar.add_bytes("repositories", go_json(repositories, sort_keys=True))


def _send_layer(tar: TarOut, path: str, blob: LayerBlob, size: int, fd: int) -> None:
    """The layer as an uncompressed tar, checked against its diff_id as it is written."""
    if blob.compression == "none":
        tar.add_file(path, fd, size)
        return
    from rootlet.runtime.image.decompress import open_decompressed

    check = hashlib.sha256()
    damaged = StoreError(f"layer {blob.diff_id[:19]} in the store does not match its diff_id",
                         "the store is damaged: remove the image and pull it again")
    with open_decompressed(f"/proc/self/fd/{fd}", blob.compression) as stream:
        inflated = _read_ahead(stream)

        def chunks() -> Iterator[bytes]:
            for data in inflated:
                check.update(data)
                yield data
        try:
            tar.add_stream(path, size, chunks())
        except (StoreError, OSError):
            raise
        except Exception:  # noqa: BLE001 - zlib.error, EOFError, zstandard.ZstdError: a damaged blob
            raise damaged from None
        finally:
            inflated.close()  # stops and joins the inflating thread
    if "sha256:" + check.hexdigest() != blob.diff_id:
        raise damaged


def _read_ahead(stream: object, depth: int = 4) -> Iterator[bytes]:
    """*stream*'s chunks, inflated by a thread up to *depth* chunks ahead: zlib and zstd release
    the GIL, so inflating overlaps with hashing and writing (on two CPUs the save takes the time
    of the inflation alone). The thread is stopped and joined before this returns or raises."""
    import queue
    import threading

    items: queue.Queue[bytes | BaseException] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            while not stop.is_set():
                data = stream.read(CHUNK)  # type: ignore[attr-defined]
                items.put(data)
                if not data:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(exc)

    thread = threading.Thread(target=produce, name="save-inflate", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def legacy_layers(diff_ids: list[str], config: bytes) -> list[tuple[str, bytes]]:
    """(v1 id, json) of each layer, bottom first, as containers/image computes them: the json of
    each layer names its parent, the top one also carries the config's LEGACY_ATTRS, and the id is
    the sha256 of that json with the layer's chain id in ``layer_id``."""
    raw = top_level_raw(go_compact(config.decode("utf-8", "replace")))
    out: list[tuple[str, bytes]] = []
    chain = ""
    for i, diff_id in enumerate(diff_ids):
        fields: dict[str, str] = {}
        if out:
            fields["parent"] = json.dumps(out[-1][0])
        if i == len(diff_ids) - 1:
            for attr in LEGACY_ATTRS:
                fields[attr] = raw.get(attr, "null")
        chain = diff_id if not chain else "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
        fields["layer_id"] = json.dumps(chain)
        layer_id = hashlib.sha256(_raw_object(fields)).hexdigest()
        del fields["layer_id"]
        fields["id"] = json.dumps(layer_id)
        out.append((layer_id, _raw_object(fields)))
    return out


def _raw_object(fields: dict[str, str]) -> bytes:
    """A JSON object of raw JSON values, keys sorted (Go's map order)."""
    return ("{" + ",".join(f"{json.dumps(k)}:{fields[k]}" for k in sorted(fields)) + "}").encode()


# --- OCI layouts ---------------------------------------------------------------------------------

def _write_oci(images: list[_Image], sink: _TarSink | _DirSink, say: Callable[[str], None]) -> None:
    entries: list[dict[str, object]] = []
    sink.start()
    for image in images:
        for blob, fd in zip(image.blobs, image.fds):
            if not sink.has(blob.digest):
                say(f"Copying blob {blob.digest}")
                sink.add_file(blob.digest, fd, blob.size)
        if not sink.has(image.rec.config_digest):
            say(f"Copying config {image.rec.config_digest}")
            sink.add_bytes(image.rec.config_digest, image.config)
        say("Writing manifest to image destination")
        manifest, media_type = image.manifest
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        if not sink.has(digest):
            sink.add_bytes(digest, manifest)
        entry: dict[str, object] = {"mediaType": media_type, "digest": digest, "size": len(manifest)}
        for name in image.names or [""]:
            entries.append(dict(entry, annotations={REF_NAME: name}) if name else dict(entry))
    sink.finish(entries)


class _TarSink:
    """An OCI layout written into a tar stream."""

    def __init__(self, tar: TarOut) -> None:
        self.tar = tar
        self.sent: set[str] = set()

    def start(self) -> None:
        self.tar.add_bytes("oci-layout", OCI_LAYOUT, 0o644)
        self.tar.add_dir("blobs")
        self.tar.add_dir("blobs/sha256")

    def has(self, digest: str) -> bool:
        return digest in self.sent

    def add_file(self, digest: str, fd: int, size: int) -> None:
        self.tar.add_file("blobs/sha256/" + digest.split(":", 1)[1], fd, size, 0o644)
        self.sent.add(digest)

    def add_bytes(self, digest: str, data: bytes) -> None:
        self.tar.add_bytes("blobs/sha256/" + digest.split(":", 1)[1], data, 0o644)
        self.sent.add(digest)

    def finish(self, entries: list[dict[str, object]]) -> None:
        self.tar.add_bytes("index.json", go_json({"schemaVersion": 2, "manifests": entries}), 0o644)


class _DirSink:
    """An OCI layout directory, new or existing: blobs added (each written whole, then renamed),
    ``index.json`` replaced with the new entries, older entries of the same names dropped."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.blobs = os.path.join(self.path, "blobs", "sha256")

    def start(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UsageError(f"{self.path} exists and is not a directory", "oci-dir writes an OCI layout directory")
        os.makedirs(self.blobs, exist_ok=True)
        if not os.path.exists(os.path.join(self.path, "oci-layout")):
            self._put(os.path.join(self.path, "oci-layout"), OCI_LAYOUT)

    def has(self, digest: str) -> bool:
        return os.path.exists(os.path.join(self.blobs, digest.split(":", 1)[1]))

    def add_file(self, digest: str, fd: int, size: int) -> None:
        dest = os.path.join(self.blobs, digest.split(":", 1)[1])
        write_to_file(dest, lambda out: copy_fd(fd, out, size))

    def add_bytes(self, digest: str, data: bytes) -> None:
        self._put(os.path.join(self.blobs, digest.split(":", 1)[1]), data)

    def finish(self, entries: list[dict[str, object]]) -> None:
        from rootlet.registry.fsutil import read_json

        index_path = os.path.join(self.path, "index.json")
        try:
            old = read_json(index_path, default={"schemaVersion": 2, "manifests": []}, max_bytes=mt.MAX_MANIFEST_BYTES)
        except ValueError as exc:
            raise UsageError(f"{index_path} is not a readable OCI index: {exc}",
                             "save into a new directory, or remove the old one") from None
        kept = old.get("manifests") if isinstance(old, dict) else None
        if not isinstance(kept, list):
            raise UsageError(f"{index_path} is not an OCI index", "save into a new directory")
        names = {e.get("annotations", {}).get(REF_NAME) for e in entries} - {None}  # type: ignore[union-attr]
        kept = [e for e in kept if not (isinstance(e, dict) and (e.get("annotations") or {}).get(REF_NAME) in names)]
        self._put(index_path, go_json(dict(old, schemaVersion=2, manifests=kept + entries)))

    @staticmethod
    def _put(path: str, data: bytes) -> None:
        from rootlet.registry.fsutil import atomic_write

        atomic_write(path, data, 0o644, durable=False)
