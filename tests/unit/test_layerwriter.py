"""The layer writer on real trees: what each kind of file becomes in the tar, and that the same
tree always gives the same digest. (Whiteouts as char 0/0 devices need a user namespace: the
commit system tests cover them through real containers.)"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from rootlet.runtime.image.layerwriter import LayerWriteOptions, write_layer


def _tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hello").write_bytes(b"hello\n")
    os.chmod(root / "etc" / "hello", 0o4755)
    os.link(root / "etc" / "hello", root / "etc" / "hello-link")
    os.symlink("../etc/hello", root / "etc" / "sym")
    os.mkfifo(root / "fifo")
    (root / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    (root / "deep" / "a" / "b").mkdir(parents=True)
    (root / "deep" / "a" / "b" / ("n" * 120)).write_bytes(b"long name")
    return root


def _members(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def test_files_links_symlinks_fifos_and_long_names_survive(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    out = tmp_path / "layer"
    layer = write_layer(str(src), str(out), LayerWriteOptions(compression="none"))
    data = out.read_bytes()
    assert layer.diff_id == layer.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer.size == len(data)
    members = _members(data)
    assert members["etc/hello"].isfile() and members["etc/hello"].mode == 0o4755
    assert members["etc/hello-link"].islnk() and members["etc/hello-link"].linkname == "etc/hello"
    assert members["etc/sym"].issym() and members["etc/sym"].linkname == "../etc/hello"
    assert members["fifo"].isfifo()
    assert members["deep/a/b/" + "n" * 120].size == 9
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("big").read() == (src / "big").read_bytes()
    # Directories come before their contents, names sorted: a stable order.
    names = [m.name.rstrip("/") for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers()]
    assert names.index("deep") < names.index("deep/a") < names.index("deep/a/b")
    for i, name in enumerate(names):
        parent = name.rpartition("/")[0]
        assert not parent or names.index(parent) < i
    assert [n for n in names if "/" not in n] == sorted(n for n in names if "/" not in n)


def test_same_tree_same_digest_and_timestamp_sets_every_mtime(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    one = write_layer(str(src), str(tmp_path / "one"), LayerWriteOptions(timestamp=1_000_000))
    os.utime(src / "etc" / "hello", (5, 5))
    two = write_layer(str(src), str(tmp_path / "two"), LayerWriteOptions(timestamp=1_000_000))
    assert one.digest == two.digest and one.diff_id == two.diff_id
    members = _members(gzip.decompress((tmp_path / "one").read_bytes()))
    assert {m.mtime for m in members.values()} == {1_000_000}
    three = write_layer(str(src), str(tmp_path / "three"))
    assert three.diff_id != one.diff_id


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_digest_is_of_the_compressed_bytes_and_diff_id_of_the_tar(tmp_path: Path, compression: str) -> None:
    src = _tree(tmp_path / "src")
    out = tmp_path / "layer"
    layer = write_layer(str(src), str(out), LayerWriteOptions(compression=compression))
    data = out.read_bytes()
    assert layer.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    raw = {"gzip": gzip.decompress, "none": bytes,
           "zstd": lambda d: zstandard.ZstdDecompressor().decompressobj().decompress(d)}[compression](data)
    assert layer.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert layer.compression == compression


def test_overlay_markers_become_whiteouts_and_opaque_entries(tmp_path: Path) -> None:
    src = tmp_path / "upper"
    (src / "opaque").mkdir(parents=True)
    (src / "opaque" / "kept").write_bytes(b"x")
    (src / "gone").write_bytes(b"")
    try:
        os.setxattr(src / "opaque", "user.overlay.opaque", b"y")
        os.setxattr(src / "gone", "user.overlay.whiteout", b"y")
        os.setxattr(src / "opaque" / "kept", "user.note", b"\xff\x00binary")
    except OSError as exc:
        pytest.skip(f"this filesystem has no user xattrs: {exc}")
    members = _members(write_layer_bytes(src, tmp_path))
    assert "opaque/.wh..wh..opq" in members
    assert ".wh.gone" in members and "gone" not in members
    assert members["opaque/kept"].pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") \
        == b"\xff\x00binary"
    assert not any(k.startswith("SCHILY.xattr.user.overlay") for m in members.values() for k in m.pax_headers)
    plain = _members(write_layer_bytes(src, tmp_path, overlay=False))
    assert "gone" in plain and "opaque/.wh..wh..opq" not in plain


def write_layer_bytes(src: Path, tmp: Path, overlay: bool = True) -> bytes:
    out = tmp / "out.tar"
    write_layer(str(src), str(out), LayerWriteOptions(compression="none", overlay=overlay))
    return out.read_bytes()


def test_a_symlinked_directory_is_written_as_a_link_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"host data")
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(str(outside), src / "escape")
    members = _members(write_layer_bytes(src, tmp_path))
    assert list(members) == ["escape"] and members["escape"].issym()
