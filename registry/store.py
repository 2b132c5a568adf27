"""The local image store: content-addressed blobs and the image records.

Layout under the store root (mode 0700: images carry setuid files)::

    blobs/sha256/<hex>     verified manifests and configs (and layer blobs until unpacked)
    blobs/partial/<hex>    downloads in progress, resumed by the next pull
    images.json            image records, replaced atomically under locks/store.lock
    locks/                 flock files (store metadata, per-blob downloads, per-layer unpacks)
    tmp/                   staging on the same filesystem, so renames into place are atomic
    layers/                unpacked layers (owned by rootlet.runtime.image.layers)

A blob exists only after its digest and size were verified; an image record exists only after all
of its layers are in place. Readers never take the lock: ``images.json`` is always whole.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import DigestMismatch, ImageNotFound, StoreError, UsageError
from rootlet.registry.fsutil import atomic_write, atomic_write_json, locked_document, read_json
from rootlet.registry.record import Record

TYPE_CHECKING = False  # the reference parser is imported where names are parsed, not by every command
if TYPE_CHECKING:
    from rootlet.registry.reference import Reference

STORE_VERSION = 1


def default_store_root(env: dict[str, str] | None = None) -> str:
    """``$ROOTLET_ROOT``, else ``$XDG_DATA_HOME/rootlet``, else ``~/.local/share/rootlet``."""
    env = dict(os.environ) if env is None else env
    if env.get("ROOTLET_ROOT"):
        return os.path.abspath(env["ROOTLET_ROOT"])
    data = env.get("XDG_DATA_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "rootlet")


class ImageRecord(Record):
    """One local image. ``id`` is the config digest's hex, as docker and podman use."""

    id: str
    config_digest: str
    manifest_digest: str
    manifest_media_type: str
    layers: list[str]                 # chain ids (hex), bottom first
    diff_ids: list[str]
    size: int
    os: str
    architecture: str
    variant: str | None = None
    created: str | None = None
    pulled: float = 0.0
    repo_tags: list[str] = []
    repo_digests: list[str] = []
    index_digests: list[str] = []
    intermediate: bool = False        # a build step's image: listed by `images -a` only

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


class ImageStore:
    """Blobs and image records under one store root; safe for concurrent rootlet processes."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        self.partial = os.path.join(root, "blobs", "partial")
        self.locks = os.path.join(root, "locks")
        self.tmp = os.path.join(root, "tmp")
        self.layers = os.path.join(root, "layers")
        self.images_file = os.path.join(root, "images.json")

    # -- set-up ---------------------------------------------------------------------------
    def ensure(self) -> None:
        """Create the store's directories (the root 0700) if they are missing."""
        try:
            if not os.path.isdir(self.root):
                os.makedirs(self.root, mode=0o700, exist_ok=True)
                os.chmod(self.root, 0o700)
            for d in (self.blobs, self.partial, self.locks, self.tmp, self.layers):
                os.makedirs(d, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {self.root}: {exc.strerror}",
                             "choose another location with --root or ROOTLET_ROOT") from None

    def exists(self) -> bool:
        return os.path.isdir(self.blobs)

    # -- blobs ----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        from rootlet.registry.reference import check_digest  # images only: `ps`, `exec` need no reference parser

        return os.path.join(self.blobs, check_digest(digest).split(":", 1)[1])

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def put_blob(self, digest: str, data: bytes) -> None:
        """Store *data* under *digest* after checking that it really has that digest."""
        import hashlib

        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatch(f"content has digest {actual}, expected {digest}")
        path = self.blob_path(digest)
        if not os.path.exists(path):
            atomic_write(path, data, 0o600)

    def read_blob(self, digest: str, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store",
                             "pull the image again to repair it") from None
        if len(data) > max_bytes:
            raise StoreError(f"blob {digest} is larger than {max_bytes} bytes")
        return data

    def remove_blob(self, digest: str) -> None:
        try:
            os.unlink(self.blob_path(digest))
        except FileNotFoundError:
            pass

    def lock_path(self, name: str) -> str:
        return os.path.join(self.locks, name + ".lock")

    # -- records --------------------------------------------------------------------------
    def load(self) -> dict[str, ImageRecord]:
        """All image records, keyed by id (a consistent snapshot; no lock needed)."""
        try:
            doc = read_json(self.images_file, default={"version": STORE_VERSION, "images": {}})
        except (ValueError, OSError) as exc:
            raise StoreError(f"cannot read {self.images_file}: {exc}",
                             "the store is damaged; move it away and pull again") from None
        return {k: ImageRecord.from_json(v) for k, v in (doc.get("images") or {}).items()}

    def transaction(self) -> locked_document:
        """Hold the store lock, give the current records, write them back if the body succeeds."""
        self.ensure()
        return locked_document(self.lock_path("store"), self.load, self._write)

    def _write(self, images: dict[str, ImageRecord]) -> None:
        atomic_write_json(self.images_file, {
            "version": STORE_VERSION,
            "images": {k: v.to_json() for k, v in images.items()},
        })

    # -- lookups --------------------------------------------------------------------------
    def find_current(self, manifest_or_index_digest: str, platform: str | None) -> ImageRecord | None:
        """The image pulled from this manifest (or index, for *platform*), if stored."""
        for rec in self.load().values():
            if rec.manifest_digest == manifest_or_index_digest:
                return rec
            if manifest_or_index_digest in rec.index_digests and (
                    platform is None or _platform_matches(platform, rec.platform)):
                return rec
        return None

    def resolve(self, name: str, search_registries: list[str] | None = None) -> ImageRecord:
        """Find a local image by id, id prefix, full reference or short name (podman's rules)."""
        from rootlet.registry.reference import DOCKER_HUB

        return resolve_image(self.load(), name, search_registries or [DOCKER_HUB])


def _platform_matches(wanted: str, have: str) -> bool:
    from rootlet.registry.manifest import Platform

    return Platform.parse(wanted).matches(Platform.parse(have))


def resolve_image(images: dict[str, ImageRecord], name: str, search_registries: list[str]) -> ImageRecord:
    """Pick one image from *images* for the user-supplied *name*; ``ImageNotFound`` when none or ambiguous."""
    return match_image(images, name, search_registries)[0]


def match_image(images: dict[str, ImageRecord], name: str,
                search_registries: list[str]) -> tuple[ImageRecord, str]:
    """``resolve_image``, and the full name *name* stands for, as podman shows it for a container's
    image: the tag a short name resolved to (``alpine`` → ``docker.io/library/alpine:latest``),
    ``repository@digest`` for a digest, and for an id the image's first name (else its id)."""
    if not name:
        raise UsageError("an image name or id is required")
    text = name[7:] if name.startswith("sha256:") and len(name) > 7 else name
    if all(c in "0123456789abcdef" for c in text) and len(text) >= 3:
        hits = [images[text]] if text in images else [rec for key, rec in images.items() if key.startswith(text)]
        if len(hits) == 1:
            return hits[0], (hits[0].repo_tags[0] if hits[0].repo_tags else hits[0].id)
        if len(hits) > 1:
            raise ImageNotFound(f"image id prefix {text!r} is ambiguous", "give more characters of the id")
    from rootlet.registry.reference import parse_reference

    try:
        ref = parse_reference(name)
    except Exception:
        raise ImageNotFound(f"{name}: image not known", "list local images with `rootlet images`") from None
    if ref.digest:
        for rec in images.values():
            if ref.digest in (rec.manifest_digest, *rec.index_digests) and _same_repo(rec, ref):
                repos = [d.split("@", 1)[0] for d in rec.repo_digests] + [t.rsplit(":", 1)[0] for t in rec.repo_tags]
                repo = next((r for r in repos if r == ref.name or (ref.short and r.endswith("/" + ref.path))), None)
                return rec, f"{repo}@{ref.digest}" if repo else name
    candidates = [ref] if not ref.short else [ref.with_registry(r) for r in ["localhost", *search_registries]]
    wanted_tags = [c.tagged() for c in candidates]
    for tag in wanted_tags:
        for rec in images.values():
            if tag in rec.repo_tags:
                return rec, tag
    if ref.short and not ref.digest:
        suffix = "/" + ref.path + ":" + (ref.tag or "latest")
        hits = [rec for rec in images.values() if any(t.endswith(suffix) for t in rec.repo_tags)]
        if len(hits) == 1:
            return hits[0], next(t for t in hits[0].repo_tags if t.endswith(suffix))
        if len(hits) > 1:
            names = sorted(t for rec in hits for t in rec.repo_tags if t.endswith(suffix))
            raise ImageNotFound(f"short name {name!r} matches several images: {', '.join(names)}",
                                "use the full name")
    raise ImageNotFound(f"{name}: image not known", "pull it with `rootlet pull " + name + "` or list images with `rootlet images`")


def _same_repo(rec: ImageRecord, ref: Reference) -> bool:
    names = {d.split("@", 1)[0] for d in rec.repo_digests} | {t.rsplit(":", 1)[0] for t in rec.repo_tags}
    return not ref.short and ref.name in names or ref.short

