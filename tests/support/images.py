"""The images the tests run, built from the repository alone (and the host's static busybox).

``build_test_images(OUT)`` writes OCI layouts shaped like the real Docker Hub ones the tests were
first written against (``../shared/images`` holds those, for the tests that want real images):

    busybox/        ref latest: an index of an index with linux/amd64 (a busybox root filesystem)
                    and linux/arm64/v8 (a small placeholder layer: pulled, never run here)
    busybox-musl/   ref musl: one linux/amd64 manifest
    alpine-3.19/    ref 3.19: one manifest, one gzip layer, CMD ["/bin/sh"], /etc/alpine-release
    alpine-3.20/    ref 3.20: the same with 3.20

The root filesystem is ``scripts/make-image busybox`` (every busybox applet, /etc/passwd with root
and nobody, the usual directories): deterministic, so the same host gives the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MTIME = 1_700_000_000
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


#: Alpine's accounts (its base files), so tests of users and groups see what they would in Alpine.
ALPINE_PASSWD = """root:x:0:0:root:/root:/bin/sh
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
lp:x:4:7:lp:/var/spool/lpd:/sbin/nologin
sync:x:5:0:sync:/sbin:/bin/sync
shutdown:x:6:0:shutdown:/sbin:/sbin/shutdown
halt:x:7:0:halt:/sbin:/sbin/halt
mail:x:8:12:mail:/var/mail:/sbin/nologin
news:x:9:13:news:/usr/lib/news:/sbin/nologin
uucp:x:10:14:uucp:/var/spool/uucppublic:/sbin/nologin
cron:x:16:16:cron:/var/spool/cron:/sbin/nologin
ftp:x:21:21::/var/lib/ftp:/sbin/nologin
sshd:x:22:22:sshd:/dev/null:/sbin/nologin
games:x:35:35:games:/usr/games:/sbin/nologin
ntp:x:123:123:NTP:/var/empty:/sbin/nologin
guest:x:405:100:guest:/dev/null:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
"""
ALPINE_GROUP = """root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
sys:x:3:root,bin
adm:x:4:root,daemon
tty:x:5:
disk:x:6:root
lp:x:7:lp
kmem:x:9:
wheel:x:10:root
floppy:x:11:root
mail:x:12:mail
news:x:13:news
uucp:x:14:uucp
cron:x:16:cron
console:x:17:
audio:x:18:
cdrom:x:19:
dialout:x:20:root
ftp:x:21:
sshd:x:22:
input:x:23:
tape:x:26:root
video:x:27:root
netdev:x:28:
kvm:x:34:kvm
games:x:35:
shadow:x:42:
www-data:x:82:
users:x:100:games
ntp:x:123:
abuild:x:300:
utmp:x:406:
ping:x:999:
nogroup:x:65533:
nobody:x:65534:
"""


class _Blobs:
    def __init__(self, layout: Path) -> None:
        self.dir = layout / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (self.dir / digest).write_bytes(data)
        return "sha256:" + digest


def _with_files(raw_tar: bytes, extra: dict[str, bytes | tuple[bytes, int, int]]) -> bytes:
    """``raw_tar`` with regular files added (or replaced), entries in order, metadata fixed; a file
    is its bytes (root's, 0644) or (bytes, mode, gid)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as dst:
        if raw_tar:
            with tarfile.open(fileobj=io.BytesIO(raw_tar)) as src:
                for member in src.getmembers():
                    if member.name not in extra:
                        dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        for name, value in sorted(extra.items()):
            data, mode, gid = value if isinstance(value, tuple) else (value, 0o644, 0)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.gid = len(data), mode, MTIME, gid
            dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _image(blobs: _Blobs, raw_tar: bytes, arch: str, variant: str | None = None,
           config: dict | None = None) -> dict:
    """Store one single-layer image; its descriptor (with platform) for an index."""
    layer = gzip.compress(raw_tar, compresslevel=6, mtime=0)
    cfg = {"architecture": arch, "os": "linux", "created": "2024-01-02T03:04:05Z",
           "config": {"Env": [PATH_ENV], "Cmd": ["/bin/sh"], **(config or {})},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw_tar).hexdigest()]},
           "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "tests/support/images.py"}]}
    if variant:
        cfg["variant"] = variant
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": blobs.put(cfg_bytes), "size": len(cfg_bytes)},
                "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": blobs.put(layer), "size": len(layer)}]}
    data = json.dumps(manifest, sort_keys=True).encode()
    platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
    return {"mediaType": OCI_MANIFEST, "digest": blobs.put(data), "size": len(data), "platform": platform}


def _layout(path: Path, ref: str, descriptor: dict) -> None:
    descriptor = {k: v for k, v in descriptor.items() if k != "platform"} | \
        {"annotations": {"org.opencontainers.image.ref.name": ref}}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                 "manifests": [descriptor]}))
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


def busybox_rootfs(tmp: Path) -> bytes:
    """The uncompressed tar of ``scripts/make-image busybox``."""
    out = tmp / "busybox-rootfs.tar.gz"
    if not out.exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "make-image"), "busybox", str(out)],
                       check=True, capture_output=True, timeout=300)
    return gzip.decompress(out.read_bytes())


def build_test_images(out: Path) -> Path:
    """Write the layouts listed in the module doc under ``out``; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rootfs = busybox_rootfs(out)

    for version, patch in (("3.19", "3.19.4"), ("3.20", "3.20.3")):
        layout = out / f"alpine-{version}"
        tar = _with_files(rootfs, {
            "etc/passwd": ALPINE_PASSWD.encode(), "etc/group": ALPINE_GROUP.encode(),
            "etc/shadow": (b"root:*::0:::::\nnobody:!::0:::::\n", 0o640, 42),
            "etc/motd": b"Welcome to the rootlet test stand-in for Alpine (busybox inside).\n",
            "etc/alpine-release": f"{patch}\n".encode(),
            "etc/os-release": (f'NAME="Alpine Linux (rootlet test stand-in)"\nID=alpine\nVERSION_ID={patch}\n'
                               f'PRETTY_NAME="Alpine Linux v{version} (busybox stand-in)"\n').encode()})
        _layout(layout, version, _image(_Blobs(layout), tar, "amd64"))

    layout = out / "busybox-musl"
    tar = _with_files(rootfs, {"etc/busybox-flavour": b"musl\n"})
    _layout(layout, "musl", _image(_Blobs(layout), tar, "amd64"))

    layout = out / "busybox"
    blobs = _Blobs(layout)
    placeholder = _with_files(b"", {"README": b"the arm64 image of the test registry: pulled, never run\n"})
    inner = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [_image(blobs, rootfs, "amd64"), _image(blobs, placeholder, "arm64", "v8")]}
    data = json.dumps(inner, sort_keys=True).encode()
    _layout(layout, "latest", {"mediaType": OCI_INDEX, "digest": blobs.put(data), "size": len(data)})
    return out
