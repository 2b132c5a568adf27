"""Pulling images whose layers use every supported compression, and images that lie or attack.

The images are built in the test (tests/support/layouts.py), pushed with skopeo to the real
registry, and pulled with the real rootlet command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import RunRootlet
from tests.support import layouts as L
from tests.support.registries import push_layout

pytestmark = pytest.mark.system


def _push(tmp_path: Path, registry: str, repo: str, layers: list[tuple[bytes, str]], **kw: object) -> str:
    out = tmp_path / ("layout-" + repo.replace("/", "-").replace(":", "-"))
    L.write_layout(out, layers, **kw)  # type: ignore[arg-type]
    push_layout(registry, out, "latest", repo)
    return f"{registry}/{repo}"


@pytest.mark.parametrize("kind", ["gzip", "zstd", "zstd-multiframe", "none"])
def test_every_layer_compression_pulls_and_verifies(rootlet: RunRootlet, registry: str, tmp_path: Path,
                                                    store_root: Path, kind: str) -> None:
    raw = L.tar_bytes([L.directory("data/"), L.file("data/hello.txt", b"hello " * 5000)])
    ref = _push(tmp_path, registry, f"test/compress-{kind}:1", [(raw, kind)])
    rootlet("pull", "-q", ref, check=True)
    (diff,) = list((store_root / "layers").glob("*/diff"))
    assert (diff / "data" / "hello.txt").read_bytes() == b"hello " * 5000


def test_multi_layer_image_stores_whiteouts_for_the_overlay(rootlet: RunRootlet, registry: str, tmp_path: Path,
                                                           store_root: Path, test_images: Path) -> None:
    base = L.alpine_rootfs_tar(test_images)
    top = L.tar_bytes([L.file("etc/.wh.motd"), L.directory("var/cache/"), L.file("var/cache/.wh..wh..opq"),
                       L.file("var/cache/new", b"x"), L.file("tmp/implied", b"y")])
    ref = _push(tmp_path, registry, "test/multi:1", [(base, "gzip"), (top, "gzip")])
    image_id = rootlet("pull", "-q", ref, check=True).stdout.strip()
    rec = json.loads((store_root / "images.json").read_text())["images"][image_id]
    upper = store_root / "layers" / rec["layers"][1] / "diff"
    st = os.lstat(upper / "etc" / "motd")
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (0, 0) and (st.st_mode & 0o170000) == 0o020000
    assert os.getxattr(upper / "var" / "cache", "user.overlay.opaque") == b"y"
    # /tmp is implied by tmp/implied: it keeps the lower layer's sticky 1777 mode.
    assert (os.lstat(upper / "tmp").st_mode & 0o7777) == 0o1777


def test_layer_that_lies_about_its_diff_id_is_refused_and_not_kept(rootlet: RunRootlet, registry: str,
                                                                   tmp_path: Path, store_root: Path) -> None:
    raw = L.tar_bytes([L.file("a", b"a")])
    ref = _push(tmp_path, registry, "test/liar:1", [(raw, "gzip")], diff_ids=["sha256:" + "0" * 64])
    proc = rootlet("pull", ref)
    assert proc.returncode == 125
    assert "diff_id" in proc.stderr or "image config says" in proc.stderr
    assert list((store_root / "layers").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []
    assert json.loads(rootlet("images", "--format", "json", check=True).stdout) == []


def test_hostile_layer_fails_the_pull_and_touches_nothing_outside(rootlet: RunRootlet, registry: str,
                                                                 tmp_path: Path, store_root: Path) -> None:
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    (victim_dir / "file").write_text("original")
    raw = L.tar_bytes([L.symlink("escape", str(victim_dir)), L.file("escape/file", b"pwned"),
                       L.file("../../victim/file", b"pwned")])
    ref = _push(tmp_path, registry, "test/hostile:1", [(raw, "gzip")])
    proc = rootlet("pull", ref)
    assert (victim_dir / "file").read_text() == "original"
    assert sorted(p.name for p in victim_dir.iterdir()) == ["file"]
    if proc.returncode == 0:
        # Confined: the write landed inside the layer, under the layer's own path.
        (diff,) = list((store_root / "layers").glob("*/diff"))
        assert (diff / victim_dir.relative_to("/") / "file").read_bytes() == b"pwned"
    else:
        assert proc.returncode == 125 and "Error: layer sha256:" in proc.stderr
        assert list((store_root / "layers").iterdir()) == []
