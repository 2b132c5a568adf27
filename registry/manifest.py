"""The OCI / Docker image data model: descriptors, manifests, indexes, configs and platforms.

Parsing is strict where a mistake would be dangerous (digests become file names and URLs, sizes
bound downloads) and lenient where registries differ harmlessly (a missing ``mediaType`` field).
"""

from __future__ import annotations

import os

from rootlet.registry import jsoncodec
from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import ManifestError, PlatformNotFound, UsageError
from rootlet.registry.record import Record
from rootlet.registry.reference import is_digest

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from typing import Any

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
                 "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


class Platform(Record):
    """An ``os/architecture[/variant]`` triple, normalised the way containerd compares them."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``--platform`` values such as ``linux/arm64/v8`` or ``linux/amd64``."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"invalid platform {text!r}", "use OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8")
        return cls(parts[0].lower(), parts[1].lower(), parts[2].lower() if len(parts) == 3 else None).normalised()

    @classmethod
    def host(cls) -> Platform:
        """The platform of this machine."""
        machine = os.uname().machine.lower()
        variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine)
        return cls("linux", _ARCH_ALIASES.get(machine, machine), variant).normalised()

    def normalised(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant
        if arch == "arm64" and variant in (None, "", "8", "v8"):
            variant = "v8"
        if arch == "arm" and variant in (None, "", "7"):
            variant = "v7"
        if arch == "amd64" and variant == "v1":
            variant = None
        return Platform(self.os, arch, variant or None)

    def matches(self, other: Platform) -> bool:
        """True when an image built for *other* runs on this (wanted) platform."""
        a, b = self.normalised(), other.normalised()
        if a.os != b.os or a.architecture != b.architecture:
            return False
        return a.variant is None or b.variant is None or a.variant == b.variant

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


class Descriptor(Record):
    """A pointer to content: media type, digest and size (and a platform inside indexes)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = {}

    @classmethod
    def parse(cls, obj: Any, what: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise ManifestError(f"malformed {what} descriptor")
        digest, size = obj.get("digest"), obj.get("size")
        if not isinstance(digest, str) or not is_digest(digest):
            raise ManifestError(f"{what} descriptor has an invalid or unsupported digest {digest!r}",
                                "rootlet verifies sha256 digests only")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{what} descriptor {digest} has an invalid size {size!r}")
        plat = None
        p = obj.get("platform")
        if isinstance(p, dict) and p.get("os") and p.get("architecture"):
            plat = Platform(str(p["os"]), str(p["architecture"]), p.get("variant") or None)
        urls = obj.get("urls") or ()
        return cls(str(obj.get("mediaType", "")), digest, size, plat,
                   tuple(str(u) for u in urls) if isinstance(urls, list) else (),
                   dict(obj.get("annotations") or {}))


class ImageIndex(Record):
    """An OCI image index or Docker manifest list: one manifest per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]

    def platforms(self) -> list[Platform]:
        return [d.platform for d in self.manifests if d.platform and d.platform.os != "unknown"]

    def select(self, wanted: Platform) -> Descriptor:
        """The manifest for *wanted*, or ``PlatformNotFound`` naming the platforms that exist."""
        candidates = [d for d in self.manifests
                      if d.platform and d.media_type in mt.IMAGE_MANIFEST_TYPES | {""} and wanted.matches(d.platform)]
        if wanted.variant is None and len(candidates) > 1:
            # Prefer the entry without a variant, then the first (registries list the default first).
            candidates.sort(key=lambda d: d.platform is not None and d.platform.variant is not None)
        if candidates:
            return candidates[0]
        available = ", ".join(str(p) for p in self.platforms()) or "none"
        raise PlatformNotFound(f"no image for platform {wanted} (the image has: {available})",
                               "choose one with --platform OS/ARCH[/VARIANT]")


class ImageManifest(Record):
    """An image manifest (OCI or Docker schema 2): one config and the ordered layers."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def parse_manifest(data: bytes, media_type: str | None) -> ImageIndex | ImageManifest:
    """Parse a manifest document, deciding its kind by the Content-Type or its ``mediaType`` field."""
    try:
        doc = jsoncodec.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    kind = (media_type or "").split(";")[0].strip()
    if kind in ("", "application/json", "text/plain", "application/octet-stream"):
        kind = str(doc.get("mediaType") or "")
    if kind in mt.SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise ManifestError("the image uses Docker's deprecated schema 1 manifest, which rootlet does not pull",
                            "ask the publisher to push it again with a current tool, or pull another tag")
    if not kind:
        kind = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if doc.get("schemaVersion") != 2:
        raise ManifestError(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}")
    if kind in mt.INDEX_TYPES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise ManifestError("image index has no manifests list")
        return ImageIndex(kind, tuple(Descriptor.parse(m, "index entry") for m in items))
    if kind in mt.IMAGE_MANIFEST_TYPES:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("image manifest has no layers list")
        return ImageManifest(kind, Descriptor.parse(doc.get("config"), "config"),
                             tuple(Descriptor.parse(item, "layer") for item in layers))
    raise ManifestError(f"unsupported manifest media type {kind!r}",
                        "rootlet pulls OCI and Docker schema 2 images")


class ImageConfig(Record):
    """The parts of an image config that rootlet uses; ``raw`` keeps the whole document."""

    os: str
    architecture: str
    variant: str | None
    created: str | None
    config: dict[str, Any]
    diff_ids: tuple[str, ...]
    history: tuple[dict[str, Any], ...]
    raw: dict[str, Any]

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)


def parse_config(data: bytes) -> ImageConfig:
    """Parse an image config blob; its ``rootfs.diff_ids`` are checked to be sha256 digests."""
    try:
        doc = jsoncodec.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"image config is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("image config is not a JSON object")
    rootfs = doc.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and is_digest(d) for d in diff_ids):
        raise ManifestError("image config has no valid rootfs.diff_ids", "the image is malformed")
    cfg = doc.get("config") or {}
    history = doc.get("history") or []
    return ImageConfig(
        os=str(doc.get("os") or "linux"), architecture=str(doc.get("architecture") or ""),
        variant=doc.get("variant") or None, created=doc.get("created"),
        config=cfg if isinstance(cfg, dict) else {}, diff_ids=tuple(diff_ids),
        history=tuple(h for h in history if isinstance(h, dict)), raw=doc,
    )


def chain_ids(diff_ids: tuple[str, ...] | list[str]) -> list[str]:
    """ChainIDs per the image spec: each layer's identity including everything beneath it."""
    import hashlib

    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out
