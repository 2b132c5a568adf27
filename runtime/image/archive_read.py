"""``load``: images from the archives ``podman save`` and ``docker save`` write, treated as hostile.

Two kinds, told apart by their contents: a docker-archive has ``manifest.json`` (docker 25 and
later also add an OCI layout beside it: ``manifest.json`` is read then), an oci-archive has
``oci-layout`` and ``index.json``. The whole archive may be gzip, zstd, xz or bzip2 compressed; it
is then inflated into the store's ``tmp/`` first (a stream on stdin is always copied there), under
the decompression-bomb guard the layer applier uses.

The archive is read in place: its member headers are indexed once (``tarfile`` seeking over the
data, every header record bounded), then each file is read at its offset. Names resolve lexically
inside the archive: absolute or ``..`` names, in the tar or in its documents, symlinks and
hardlinks leading out (old docker archives link duplicate ``layer.tar`` files), and names that
occur twice are refused. Documents are bounded and parsed strictly; OCI blobs are checked against
their descriptors as they are copied out; the applier checks each layer's diff_id (a
docker-archive layer's only check). The layer file as it is in the archive (tar, gzip or zstd)
becomes the layer's kept blob.

Nothing is half loaded: every image's documents are read and checked before the first layer is
unpacked, and the image records are written only after every layer of every image is in place,
each by ``newimage.add_image`` (so an image is listed whole or not at all). Layers unpacked
before a later failure are left unreferenced, for ``image prune`` (as a failed pull leaves them).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tarfile

from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import DigestMismatch, LayerError, ManifestError, RootletError
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.image.inflate import CHUNK, open_input, sniff
from rootlet.runtime.image.newimage import NewLayer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

#: Members an archive may have (a real one has a few per layer).
MAX_MEMBERS = 200_000
#: Largest header record (PAX, GNU long name) read into memory.
MAX_HEADER_READ = 1 << 20
#: Largest manifest.json / index.json / manifest read into memory.
MAX_DOCUMENT = mt.MAX_MANIFEST_BYTES
#: Links followed to find one member.
MAX_LINKS = 40
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)


class LoadedImage(Record):
    """An image ``load`` stored: its id and the names it was given (none: untagged)."""

    id: str
    names: list[str] = []


class PendingLayer(Record):
    """A layer to take from the archive: its member, its diff_id (from the config), and for OCI
    archives the descriptor's digest, size and compression."""

    member: str
    diff_id: str
    digest: str | None = None
    size: int | None = None
    compression: str | None = None


class PendingImage(Record):
    """An image to load: its config, layers and names, and for OCI archives its manifest."""

    config: bytes
    diff_ids: list[str]
    layers: list[PendingLayer]
    names: list[str] = []
    manifest: bytes | None = None


def load_archive(store: ImageStore, path: str | None, stream: BinaryIO | None = None,
                 progress: Callable[[str], None] | None = None) -> list[LoadedImage]:
    """Load every image of the archive at *path* (or read from *stream*) into *store*."""
    from rootlet.registry.fsutil import make_temp_dir
    from rootlet.runtime.linux.rmtree import remove_tree

    say = progress or (lambda _line: None)
    store.ensure()
    # Named like the layer store's staging directories, so a killed load's leftovers are removed
    # by the next pull or load.
    work = make_temp_dir(store.tmp, f"layer-{os.getpid()}-load-")
    try:
        archive = open_input(path, stream, os.path.join(work, "archive.tar"))
        with open(archive, "rb") as f:
            members = Members(f)
            if members.has("manifest.json"):
                images = docker_images(members)
            elif members.has("index.json"):
                images = oci_images(members)
            else:
                raise LayerError("the archive holds neither manifest.json (docker-archive) nor index.json "
                                 "(oci-archive)", "give an archive written by save (podman, docker or rootlet)")
            return _store(store, members, images, work, say)
    finally:
        remove_tree(work)


# --- the archive's members -----------------------------------------------------------------------

class _Bounded(io.RawIOBase):
    """The archive file as tarfile reads it, with no single read larger than MAX_HEADER_READ: a
    hostile PAX or long-name record is refused instead of read into memory."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > MAX_HEADER_READ:
            raise LayerError(f"the archive has a tar header record larger than {MAX_HEADER_READ} bytes")
        return self.f.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()


class _Entry(Record):
    type: bytes
    offset: int
    size: int
    linkname: str


def clean_name(name: str, what: str) -> str:
    """*name* as a path inside the archive (``./`` and trailing slashes dropped); absolute names
    and names that climb out with ``..`` are refused."""
    norm = posixpath.normpath(name) if name else ""
    if not name or name.startswith("/") or norm == ".." or norm.startswith("../") or "\0" in name:
        raise LayerError(f"{what} {name!r} leads outside the archive", "the archive is malformed or hostile")
    return norm


class Members:
    """The archive's members by name; files are read at their offsets, links followed lexically."""

    def __init__(self, f: BinaryIO) -> None:
        self.fd = f.fileno()
        self.entries: dict[str, _Entry] = {}
        self.twice: set[str] = set()
        try:
            tar = tarfile.open(fileobj=_Bounded(f), mode="r:")  # type: ignore[arg-type]
            for count, info in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise LayerError(f"the archive has more than {MAX_MEMBERS} members")
                name = clean_name(info.name, "archive member")
                if name in self.entries:
                    self.twice.add(name)
                self.entries[name] = _Entry(info.type, info.offset_data, info.size, info.linkname)
                tar.members.clear()  # the index above is all we keep
        except tarfile.TarError as exc:
            if "unexpected end" in str(exc) or "truncated" in str(exc):
                raise LayerError(f"the archive is truncated ({exc})", "the file was cut short; save it again") from None
            raise LayerError(f"the archive is not a readable tar file: {exc}",
                             "give an archive written by save (podman, docker or rootlet)") from None
        except (EOFError, UnicodeError, ValueError, OverflowError) as exc:
            raise LayerError(f"the archive is corrupt or truncated: {exc}") from None

    def has(self, name: str) -> bool:
        return name in self.entries

    def find(self, name: str, what: str) -> _Entry:
        """The regular file *name* stands for, following links inside the archive."""
        name = clean_name(name, what)
        for _ in range(MAX_LINKS):
            if name in self.twice:
                raise LayerError(f"{what} {name!r} occurs twice in the archive", "the archive is malformed or hostile")
            entry = self.entries.get(name)
            if entry is None:
                raise LayerError(f"{what} {name!r} is missing from the archive", "the archive is incomplete")
            if entry.type == tarfile.SYMTYPE:
                if entry.linkname.startswith("/"):
                    raise LayerError(f"{what} {name!r} is an absolute symlink", "the archive is malformed or hostile")
                name = clean_name(posixpath.join(posixpath.dirname(name), entry.linkname), f"symlink {name!r} to")
            elif entry.type == tarfile.LNKTYPE:
                name = clean_name(entry.linkname, f"hardlink {name!r} to")
            elif entry.type in _REGULAR:
                return entry
            else:
                raise LayerError(f"{what} {name!r} is not a regular file in the archive")
        raise LayerError(f"{what} {name!r}: too many links", "the archive is malformed or hostile")

    def read(self, name: str, limit: int, what: str) -> bytes:
        entry = self.find(name, what)
        if entry.size > limit:
            raise LayerError(f"{what} {name!r} is {entry.size} bytes, more than rootlet reads ({limit})")
        data = os.pread(self.fd, entry.size, entry.offset)
        if len(data) != entry.size:
            raise LayerError("the archive is truncated", "the file was cut short; save it again")
        return data

    def copy(self, entry: _Entry, dest: str, hasher: hashlib._Hash | None) -> None:
        """Copy *entry*'s data to the new file *dest*, hashing it into *hasher*; without one the
        copy is made in the kernel where it can be."""
        done = 0
        kernel = hasher is None
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while done < entry.size:
                if kernel:
                    try:
                        n = os.copy_file_range(self.fd, out, entry.size - done, offset_src=entry.offset + done)
                    except OSError:
                        kernel = False  # another filesystem on an old kernel: through a buffer
                        continue
                else:
                    data = os.pread(self.fd, min(CHUNK, entry.size - done), entry.offset + done)
                    if hasher is not None:
                        hasher.update(data)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(out, view):]
                    n = len(data)
                if n == 0:
                    raise LayerError("the archive is truncated", "the file was cut short; save it again")
                done += n
        finally:
            os.close(out)


# --- what the archive holds ----------------------------------------------------------------------

def _json(data: bytes, what: str) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}", "the archive is malformed") from None


def docker_images(members: Members) -> list[PendingImage]:
    """The images ``manifest.json`` lists, their configs read and checked."""
    from rootlet.registry.manifest import parse_config
    from rootlet.registry.reference import parse_reference

    doc = _json(members.read("manifest.json", MAX_DOCUMENT, "manifest.json"), "manifest.json")
    if not isinstance(doc, list) or not doc:
        raise ManifestError("manifest.json lists no images", "the archive is malformed")
    images: list[PendingImage] = []
    for item in doc:
        config_name = item.get("Config") if isinstance(item, dict) else None
        layers = item.get("Layers") if isinstance(item, dict) else None
        tags = (item.get("RepoTags") if isinstance(item, dict) else None) or []
        if not isinstance(config_name, str) or not isinstance(layers, list) or not isinstance(tags, list) \
                or not all(isinstance(x, str) for x in [*layers, *tags]):
            raise ManifestError("manifest.json has an entry without Config, Layers and RepoTags as docker writes them",
                                "the archive is malformed")
        config = members.read(config_name, mt.MAX_CONFIG_BYTES, "the image config")
        parsed = parse_config(config)
        if len(parsed.diff_ids) != len(layers):
            raise ManifestError(f"manifest.json lists {len(layers)} layers for config {config_name!r}, which has "
                                f"{len(parsed.diff_ids)}", "the archive is malformed")
        pending = [PendingLayer(member=name, diff_id=d) for name, d in zip(layers, parsed.diff_ids)]
        for layer in pending:
            members.find(layer.member, "layer")
        names = [parse_reference(t).tagged() for t in tags]
        images.append(PendingImage(config, list(parsed.diff_ids), pending, names))
    return images


def oci_images(members: Members) -> list[PendingImage]:
    """The images ``index.json`` names (for an index of platforms, this machine's), checked."""
    from rootlet.registry.manifest import ImageIndex, ImageManifest, Platform, parse_config, parse_manifest

    if not members.has("oci-layout"):
        raise ManifestError("the archive has index.json but no oci-layout file", "the archive is malformed")
    layout = _json(members.read("oci-layout", 4096, "oci-layout"), "oci-layout")
    if not isinstance(layout, dict) or not isinstance(layout.get("imageLayoutVersion"), str):
        raise ManifestError("oci-layout has no imageLayoutVersion", "the archive is malformed")
    index = parse_manifest(members.read("index.json", MAX_DOCUMENT, "index.json"), mt.OCI_INDEX)
    if not isinstance(index, ImageIndex) or not index.manifests:
        raise ManifestError("index.json lists no images", "the archive is malformed")
    by_config: dict[str, PendingImage] = {}
    for desc in index.manifests:
        data = _blob(members, desc, MAX_DOCUMENT, "manifest")
        doc = parse_manifest(data, desc.media_type or None)
        if isinstance(doc, ImageIndex):
            child = doc.select(Platform.host())
            data = _blob(members, child, MAX_DOCUMENT, "manifest")
            doc = parse_manifest(data, child.media_type or None)
        if not isinstance(doc, ImageManifest):
            raise ManifestError("an image index in the archive points at another index", "the archive is malformed")
        config = _blob(members, doc.config, mt.MAX_CONFIG_BYTES, "config")
        parsed = parse_config(config)
        if len(parsed.diff_ids) != len(doc.layers):
            raise ManifestError(f"a manifest lists {len(doc.layers)} layers but its config {len(parsed.diff_ids)} "
                                "diff_ids", "the archive is malformed")
        pending = []
        for layer, diff_id in zip(doc.layers, parsed.diff_ids):
            if layer.media_type in mt.FOREIGN_LAYER_TYPES or layer.media_type not in mt.LAYER_COMPRESSION:
                raise ManifestError(f"layer {layer.digest} has media type {layer.media_type!r}, which rootlet "
                                    "does not load", "rootlet loads tar, tar+gzip and tar+zstd layers")
            member = _blob_name(layer.digest)
            entry = members.find(member, "layer")
            if entry.size != layer.size:
                raise DigestMismatch(f"layer {layer.digest} is {entry.size} bytes in the archive, its manifest "
                                     f"says {layer.size}", "the archive is corrupt or was tampered with")
            pending.append(PendingLayer(member=member, diff_id=diff_id, digest=layer.digest, size=layer.size,
                                        compression=mt.LAYER_COMPRESSION[layer.media_type]))
        image = by_config.setdefault(doc.config.digest, PendingImage(config, list(parsed.diff_ids), pending,
                                                                     manifest=data))
        name = desc.annotations.get("org.opencontainers.image.ref.name")
        tag = _oci_name(name) if name else None
        if tag and tag not in image.names:
            image.names.append(tag)
    return list(by_config.values())


def _oci_name(annotation: str) -> str | None:
    """The name an OCI ``ref.name`` annotation gives, as podman reads it (a name without a
    registry, or a bare tag, is under ``localhost/``); None when it is no image name at all."""
    from rootlet.registry.errors import InvalidReference, UsageError
    from rootlet.runtime.image.newimage import local_name

    try:
        return local_name(annotation).tagged()
    except (InvalidReference, UsageError):
        return None


def _blob_name(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


def _blob(members: Members, desc: object, limit: int, what: str) -> bytes:
    digest, size = desc.digest, desc.size  # type: ignore[attr-defined]
    if size > limit:
        raise ManifestError(f"{what} {digest} is {size} bytes, more than rootlet reads ({limit})")
    data = members.read(_blob_name(digest), limit, what)
    if len(data) != size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise DigestMismatch(f"{what} {digest} in the archive does not match its digest or size",
                             "the archive is corrupt or was tampered with")
    return data


# --- into the store ------------------------------------------------------------------------------

def _store(store: ImageStore, members: Members, images: list[PendingImage], work: str,
           say: Callable[[str], None]) -> list[LoadedImage]:
    from rootlet.registry.manifest import chain_ids
    from rootlet.runtime.image.layers import LayerStore
    from rootlet.runtime.image.newimage import add_image, add_layers
    from rootlet.runtime.linux.rmtree import remove_tree
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    layers = LayerStore(store)
    plan = plan_userns()
    chains = [[c.split(":", 1)[1] for c in chain_ids(image.diff_ids)] for image in images]
    with UsernsWorker(plan) as worker:
        for stale in layers.stale_entries():
            try:
                worker.call(remove_tree, stale)
            except (RootletError, OSError):
                pass
        for image, image_chains in zip(images, chains):
            for i, layer in enumerate(image.layers):
                if layers.has(image_chains[i]):
                    say(f"Copying blob {layer.digest or layer.diff_id} skipped: already exists")
                    continue
                blob = _extract(members, layer, work)
                say(f"Copying blob {blob.digest}")
                try:
                    add_layers(store, worker, image.diff_ids[:i], [blob], plan.single_id, plan.rootful)
                except LayerError as exc:
                    raise named_layer_error(exc, blob) from None
                finally:
                    os.unlink(blob.path)
    loaded = []
    for image, image_chains in zip(images, chains):
        say(f"Copying config sha256:{hashlib.sha256(image.config).hexdigest()}")
        say("Writing manifest to image destination")
        # An oci-archive's own manifest is kept when it names exactly the blobs kept.
        rec = add_image(store, image.config, image_chains, image.names, manifest=image.manifest)
        loaded.append(LoadedImage(rec.id, list(image.names)))
    return loaded


def named_layer_error(exc: LayerError, blob: NewLayer) -> LayerError:
    """The applier's error about a layer, naming the layer by its digest instead of the path of
    its temporary copy."""
    message = exc.message.replace(f"layer {blob.path}: ", "").replace(blob.path, "the layer")
    return LayerError(f"layer {blob.digest[:19]}: {message}",
                      exc.hint or "the archive is malformed or hostile; nothing of it was loaded")


def _extract(members: Members, layer: PendingLayer, work: str) -> NewLayer:
    """The layer's member copied to a file of its own (its digest checked for OCI archives)."""
    entry = members.find(layer.member, "layer")
    dest = os.path.join(work, "blob-" + os.urandom(6).hex())
    compression = layer.compression
    if compression is None:
        head = os.pread(members.fd, 8, entry.offset)
        compression = sniff(head)
        if compression not in ("gzip", "zstd", "none"):
            raise LayerError(f"layer {layer.member!r} is {compression}-compressed, which rootlet does not load",
                             "docker and podman archives hold tar or gzip layers")
    # An uncompressed layer's digest is its diff_id, which unpacking checks: copy it in the kernel.
    hasher = None if layer.digest is None and compression == "none" else hashlib.sha256()
    members.copy(entry, dest, hasher)
    digest = layer.diff_id if hasher is None else "sha256:" + hasher.hexdigest()
    if layer.digest is not None and digest != layer.digest:
        os.unlink(dest)
        raise DigestMismatch(f"layer {layer.digest} in the archive has digest {digest}",
                             "the archive is corrupt or was tampered with; nothing of it was kept")
    return NewLayer(path=dest, digest=digest, size=entry.size, compression=compression, diff_id=layer.diff_id)
