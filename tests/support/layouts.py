"""Build small OCI image layouts in tests: any tar layers, any compression, then push with skopeo.

Real bytes, real digests: the layout is what a registry would serve. Layers are given as lists of
``(TarInfo, data)`` members so tests can build multi-layer images with whiteouts, zstd:chunked-like
multi-frame layers, or hostile content.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "zstd-multiframe": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


@dataclass(frozen=True)
class Member:
    """One tar entry: a TarInfo and, for regular files, its data."""

    info: tarfile.TarInfo
    data: bytes = b""


def file(name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0) -> Member:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), mode, uid, gid, 1_700_000_000
    return Member(ti, data)


def directory(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Member:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.DIRTYPE, mode, uid, gid, 1_700_000_000
    return Member(ti)


def symlink(name: str, target: str) -> Member:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, target, 0o777, 1_700_000_000
    return Member(ti)


def tar_bytes(members: Iterable[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            tf.addfile(m.info, io.BytesIO(m.data) if m.info.isreg() else None)
    return buf.getvalue()


def compress(raw: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(raw, mtime=0)
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw)
    if kind == "zstd-multiframe":
        import zstandard

        cctx = zstandard.ZstdCompressor()
        step = max(1, len(raw) // 4)
        return b"".join(cctx.compress(raw[i:i + step]) for i in range(0, len(raw), step))
    if kind == "none":
        return raw
    raise ValueError(kind)


def _put(blobs: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return "sha256:" + digest


def write_layout(out: Path, layers: list[tuple[bytes, str]], ref: str = "latest", cmd: list[str] | None = None,
                 arch: str = "amd64", diff_ids: list[str] | None = None, config: dict | None = None,
                 created: str | None = "2024-01-02T03:04:05Z") -> None:
    """Write an OCI layout with *layers* (raw tar bytes, compression); *diff_ids* may be forced (to lie);
    *config* entries replace those of the image config's ``config`` (User, Entrypoint, Env…);
    ``created=None`` leaves the optional creation time out."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    descs, ids = [], []
    for raw, kind in layers:
        blob = compress(raw, kind)
        descs.append({"mediaType": LAYER_TYPES[kind], "digest": _put(blobs, blob), "size": len(blob)})
        ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    config = {
        "architecture": arch, "os": "linux", **({"created": created} if created else {}),
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd or ["/bin/sh"], **(config or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or ids},
    }
    cfg = json.dumps(config).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _put(blobs, cfg),
                           "size": len(cfg)},
                "layers": descs}
    man = json.dumps(manifest).encode()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _put(blobs, man),
                            "size": len(man), "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    (out / "index.json").write_text(json.dumps(index))
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


def busybox_members(busybox: str = "/bin/busybox", applets: tuple[str, ...] = (
        "sh", "cat", "id", "ls", "echo", "true", "sleep", "grep", "wc", "head", "env")) -> list[Member]:
    """A minimal root filesystem from the host's static busybox: /bin/busybox, applet links, /tmp."""
    with open(busybox, "rb") as f:
        data = f.read()
    members = [directory("bin"), file("bin/busybox", data, 0o755), directory("tmp", 0o1777),
               directory("root", 0o700)]
    members += [symlink(f"bin/{a}", "busybox") for a in applets]
    return members


def alpine_rootfs_tar(test_images: Path) -> bytes:
    """The uncompressed Alpine 3.20 root filesystem tar from ../shared/images."""
    layout = test_images / "alpine-3.20"
    index = json.loads((layout / "index.json").read_text())
    man = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    blob = layout / "blobs" / "sha256" / man["layers"][0]["digest"][7:]
    return gzip.decompress(blob.read_bytes())


def layout_dir(tmp: Path, name: str) -> Path:
    path = tmp / name
    os.makedirs(path, exist_ok=True)
    return path
