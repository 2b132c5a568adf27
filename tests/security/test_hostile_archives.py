"""``load`` and ``import`` of hostile archives: one line of error, exit 125, nothing half loaded.

Every archive here is built by the test, byte by byte, as an attacker would: names that climb out
of the archive, symlinks that do, layers missing or not matching their digests, configs that are
not JSON, decompression bombs, files cut short. After each, the real ``rootlet`` command must have
said what is wrong in one ``Error:`` line and exited 125, ``rootlet images`` must list nothing, and
the store's ``tmp/`` must be empty again.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, need, rootlet_command
from tests.support.layouts import busybox_members, file, tar_bytes

pytestmark = pytest.mark.system

Entries = list[tuple[tarfile.TarInfo, bytes]]


def _member(name: str, data: bytes = b"", type_: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = type_, linkname, len(data) if type_ == tarfile.REGTYPE else 0, 0o644
    return info, data


def _archive(entries: Entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer() -> bytes:
    return tar_bytes(busybox_members() + [file("etc/marker", b"loaded\n")])


def _docker_entries(layer: bytes | None = None, config: bytes | None = None, manifest: object = None,
                    diff_id: str | None = None, layer_name: str = "layer.tar") -> Entries:
    """A valid docker-archive of one busybox layer, with any part replaced."""
    layer = _layer() if layer is None else layer
    config = config if config is not None else json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id or _sha(layer)]}}).encode()
    manifest = manifest if manifest is not None else [
        {"Config": "config.json", "RepoTags": ["hostile/image:1"], "Layers": [layer_name]}]
    return [_member(layer_name, layer), _member("config.json", config),
            _member("manifest.json", json.dumps(manifest).encode())]


def _oci_entries(tampered: bool = False, bad_manifest: bool = False) -> Entries:
    """A valid oci-archive of one gzip busybox layer; ``tampered``: one byte of the layer changed
    after its descriptor was made; ``bad_manifest``: the manifest changed after the index was."""
    raw = _layer()
    blob = gzip.compress(raw, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(raw)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(config),
                                      "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": _sha(blob), "size": len(blob)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _sha(manifest), "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "hostile/oci:1"}}]}).encode()
    stored = blob[:len(blob) // 2] + bytes([blob[len(blob) // 2] ^ 1]) + blob[len(blob) // 2 + 1:] if tampered else blob
    blobs = [(config, config), (manifest, manifest.replace(b"oci.image", b"oci.IMAGE") if bad_manifest else manifest),
             (blob, stored)]
    return [_member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), _member("index.json", index)] + \
        [_member("blobs/sha256/" + _sha(name)[7:], data) for name, data in blobs]


def _gzip_bomb(total: int) -> bytes:
    """gzip members of zeros, inflating to *total* bytes at zlib's best ratio (~1030:1)."""
    chunk = 16 << 20
    member = gzip.compress(bytes(chunk), compresslevel=9, mtime=0)
    return member * (total // chunk)


def _zstd_bomb(total: int) -> bytes:
    import zstandard

    chunk = 64 << 20
    frame = zstandard.ZstdCompressor(level=19).compress(bytes(chunk))
    return frame * (total // chunk)


def _truncated(data: bytes) -> bytes:
    return data[:len(data) // 2]


#: (case, the archive's bytes, a fragment of the one error line)
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "manifest names a config outside the archive": (
        lambda: _archive(_docker_entries(manifest=[{"Config": "../../etc/passwd", "RepoTags": [],
                                                    "Layers": ["layer.tar"]}])), "leads outside the archive"),
    "manifest names a layer outside the archive": (
        lambda: _archive(_docker_entries(manifest=[{"Config": "config.json", "RepoTags": [],
                                                    "Layers": ["../layer.tar"]}])), "leads outside the archive"),
    "manifest names an absolute layer": (
        lambda: _archive(_docker_entries(manifest=[{"Config": "config.json", "RepoTags": [],
                                                    "Layers": ["/etc/passwd"]}])), "leads outside the archive"),
    "a layer is missing": (
        lambda: _archive(_docker_entries(manifest=[{"Config": "config.json", "RepoTags": [],
                                                    "Layers": ["gone.tar"]}])), "missing from the archive"),
    "a layer does not match its diff_id": (
        lambda: _archive(_docker_entries(diff_id=_sha(b"something else"))), "unpacks to"),
    "an OCI layer does not match its digest": (lambda: _archive(_oci_entries(tampered=True)), "has digest"),
    "an OCI manifest does not match its digest": (lambda: _archive(_oci_entries(bad_manifest=True)), "does not match"),
    "the config is not JSON": (
        lambda: _archive(_docker_entries(config=b"{not json")), "not valid JSON"),
    "manifest.json is not JSON": (
        lambda: _archive(_docker_entries()[:2] + [_member("manifest.json", b"[{")]), "not valid JSON"),
    "an absolute member name": (
        lambda: _archive(_docker_entries() + [_member("/etc/evil", b"x")]), "leads outside the archive"),
    "a traversing member name": (
        lambda: _archive(_docker_entries() + [_member("../../evil", b"x")]), "leads outside the archive"),
    "a symlink leading out of the archive": (lambda: _symlinked("../../../etc/passwd"), "leads outside the archive"),
    "an absolute symlink": (lambda: _symlinked("/etc/passwd"), "absolute symlink"),
    "a member named twice": (
        lambda: _archive(_docker_entries() + [_member("layer.tar", b"second")]), "occurs twice"),
    "a layer that climbs out of its directory": (
        lambda: _archive(_docker_entries(layer=tar_bytes([file("../../escaped", b"x")]))), "layer"),
    "a gzip bomb as a layer": (
        lambda: _archive(_docker_entries(layer=_gzip_bomb(2 << 30), diff_id=_sha(b"unknown"))), "decompression bomb"),
    "a zstd bomb as the whole archive": (lambda: _zstd_bomb(3 << 29), "decompression bomb"),
    "a truncated archive": (lambda: _truncated(_archive(_docker_entries())), "truncated"),
    "a truncated gzip archive": (lambda: _truncated(gzip.compress(_archive(_docker_entries()), mtime=0)), "truncated"),
    "not an archive at all": (lambda: b"hello, this is text\n" * 100, "not a readable tar file"),
    "an empty file": (lambda: b"", "empty"),
}


def _symlinked(target: str) -> bytes:
    """manifest.json names ``abc/layer.tar``, a symlink to *target* (old docker archives link
    duplicate layers this way, inside the archive)."""
    entries = _docker_entries(manifest=[{"Config": "config.json", "RepoTags": [], "Layers": ["abc/layer.tar"]}])
    return _archive(entries + [_member("abc/layer.tar", type_=tarfile.SYMTYPE, linkname=target)])


def _assert_refused_cleanly(rootlet: RunRootlet, store_root: Path, proc: object, fragment: str) -> None:
    err = proc.stderr  # type: ignore[attr-defined]
    assert proc.returncode == 125, (proc.returncode, err)  # type: ignore[attr-defined]
    assert "internal error" not in err and "Traceback" not in err, err
    lines = err.splitlines()
    assert lines and lines[0].startswith("Error: ") and fragment in lines[0], err
    assert all(line.startswith("Hint: ") for line in lines[1:]), err
    assert rootlet("images", "-q", check=True).stdout == ""
    assert os.listdir(store_root / "tmp") == []


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_archive_is_refused_in_one_line_and_leaves_nothing(rootlet: RunRootlet, store_root: Path,
                                                                     tmp_path: Path, case: str) -> None:
    need("busybox")
    build, fragment = CASES[case]
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(build())
    proc = rootlet("load", "-q", "-i", str(archive), timeout=300)
    _assert_refused_cleanly(rootlet, store_root, proc, fragment)


def test_a_hostile_archive_on_stdin_is_refused_and_its_copy_removed(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                     store_root: Path) -> None:
    need("busybox")
    data = _archive(_docker_entries(diff_id=_sha(b"wrong")))
    proc = subprocess.run([*rootlet_command(), "load", "-q"], input=data, capture_output=True, env=rootlet_env, timeout=120)
    _assert_refused_cleanly(rootlet, store_root, subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()), "unpacks to")


def test_the_second_image_failing_leaves_the_first_unlisted(rootlet: RunRootlet, store_root: Path,
                                                           tmp_path: Path) -> None:
    """Nothing half loaded: the records are written only after every layer of every image is in."""
    need("busybox")
    good = _docker_entries()
    layer = tar_bytes([file("other", b"x")])
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(b"not this layer")]}}).encode()
    manifest = [{"Config": "config.json", "RepoTags": ["first/image:1"], "Layers": ["layer.tar"]},
                {"Config": "config2.json", "RepoTags": ["second/image:1"], "Layers": ["layer2.tar"]}]
    entries = good[:2] + [_member("layer2.tar", layer), _member("config2.json", config),
                          _member("manifest.json", json.dumps(manifest).encode())]
    archive = tmp_path / "two.tar"
    archive.write_bytes(_archive(entries))
    proc = rootlet("load", "-q", "-i", str(archive))
    _assert_refused_cleanly(rootlet, store_root, proc, "unpacks to")


@pytest.mark.parametrize("data, fragment", [
    (lambda: _gzip_bomb(2 << 30), "decompression bomb"),
    (lambda: _truncated(gzip.compress(tar_bytes(busybox_members()), mtime=0)), "truncated"),
    (lambda: tar_bytes([file("../../escaped", b"x")]), "escaped"),
    (lambda: zlib.compress(b"not gzip, a bare zlib stream") * 3, "tar"),
])
def test_a_hostile_tarball_given_to_import_is_refused(rootlet: RunRootlet, store_root: Path, tmp_path: Path,
                                                      data: Callable[[], bytes], fragment: str) -> None:
    need("busybox")
    tarball = tmp_path / "hostile.tar"
    tarball.write_bytes(data())
    proc = rootlet("import", "-q", str(tarball), "hostile:1", timeout=300)
    _assert_refused_cleanly(rootlet, store_root, proc, fragment)


def test_a_load_that_works_after_the_hostile_ones_still_works(rootlet: RunRootlet, tmp_path: Path) -> None:
    """The control: the same builder without the attack loads and runs."""
    need("busybox")
    archive = tmp_path / "good.tar"
    archive.write_bytes(_archive(_docker_entries()))
    proc = rootlet("load", "-i", str(archive), check=True)
    assert proc.stdout == "Loaded image: docker.io/hostile/image:1\n"
    assert rootlet("run", "--rm", "hostile/image:1", "cat", "/etc/marker", check=True).stdout == "loaded\n"
    oci = tmp_path / "good-oci.tar"
    oci.write_bytes(_archive(_oci_entries()))
    proc = rootlet("load", "-i", str(oci), check=True)
    assert proc.stdout == "Loaded image: localhost/hostile/oci:1\n"
