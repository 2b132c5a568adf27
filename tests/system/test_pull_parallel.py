"""Pulls that unpack several layers at once, each streamed into its unpacker while it downloads:
the layers come out as unpacking them in order gives, nothing is left in ``tmp/`` or
``blobs/partial``, and a pull interrupted with Ctrl-C leaves a store the next pull completes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command
from tests.support import layouts as L
from tests.support.registries import FaultProxy, push_layout
from tests.system.test_pull import _subid_start

pytestmark = pytest.mark.system

#: Six layers whose upper ones put files under directories only the lower ones list, so each
#: implied parent takes its metadata from below: whatever order the layers are unpacked in.
LAYERS = [
    [L.directory("srv/", 0o750), L.directory("tmp/", 0o1777), L.directory("opt/", 0o700, uid=1000, gid=1000),
     L.file("opt/keep", b"k")],
    [L.file("srv/a/b/f", b"f")],                # srv from layer 0; srv/a and srv/a/b nowhere below
    [L.file("tmp/x", b"x")],                    # the sticky /tmp
    [L.file("opt/data/y", b"y")],               # opt owned by container uid 1000
    [L.file(".wh.srv"), L.file("srv/new", b"n")],  # srv whited out, then implied again: opaque
    [L.file("srv/a/more", b"m")],               # srv/a hidden by layer 4's opaque srv: defaults
]


@pytest.fixture(scope="module")
def six_layers(registry: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("six-layers")
    L.write_layout(out, [(L.tar_bytes(members), "gzip") for members in LAYERS])
    push_layout(registry, out, "latest", "test/six:1")
    return f"{registry}/test/six:1"


def _layer_dirs(store_root: Path, image_id: str) -> list[Path]:
    rec = json.loads((store_root / "images.json").read_text())["images"][image_id]
    return [store_root / "layers" / chain / "diff" for chain in rec["layers"]]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_layers_unpacked_at_once_take_implied_parents_from_below(rootlet: RunRootlet, six_layers: str,
                                                                 store_root: Path) -> None:
    image_id = rootlet("pull", "-q", six_layers, check=True).stdout.strip()
    d = _layer_dirs(store_root, image_id)
    assert _mode(d[1] / "srv") == 0o750
    assert _mode(d[1] / "srv/a") == 0o755 and _mode(d[1] / "srv/a/b") == 0o755
    assert _mode(d[2] / "tmp") == 0o1777
    assert _mode(d[3] / "opt") == 0o700
    uid_start = _subid_start("/etc/subuid")
    if os.getuid() != 0 and uid_start is not None:
        assert os.lstat(d[3] / "opt").st_uid == uid_start + 999  # container uid 1000
    assert os.getxattr(d[4] / "srv", "user.overlay.opaque") == b"y"
    assert _mode(d[4] / "srv") == 0o755
    assert _mode(d[5] / "srv/a") == 0o755  # layer 4 hides layer 1's srv/a
    assert (d[5] / "srv/a/more").read_bytes() == b"m"


def test_a_pull_leaves_no_staging_stream_or_partial_download(rootlet: RunRootlet, six_layers: str,
                                                            store_root: Path) -> None:
    rootlet("pull", "-q", six_layers, check=True)
    assert list((store_root / "tmp").iterdir()) == []
    assert list((store_root / "blobs" / "partial").iterdir()) == []
    assert len(list((store_root / "layers").iterdir())) == len(LAYERS)
    # The layer blobs live in their layers (kept for push and save), not twice.
    assert all((layer / "blob").stat().st_nlink == 1 for layer in (store_root / "layers").iterdir())
    assert len(list((store_root / "blobs" / "sha256").iterdir())) == 2  # manifest and config


def test_an_image_holding_one_blob_twice_pulls(rootlet: RunRootlet, registry: str, store_root: Path,
                                               tmp_path: Path) -> None:
    """Images repeat layers (empty ones, a file set back): the same blob at two places in the
    layer list is downloaded and unpacked for each without the two getting in each other's way."""
    again = L.tar_bytes([L.file("etc/motd", b"same\n" * 20000)])
    out = tmp_path / "layout"
    L.write_layout(out, [(again, "gzip"), (L.tar_bytes([L.file("etc/motd", b"other\n")]), "gzip"), (again, "gzip")])
    push_layout(registry, out, "latest", "test/twice:1")
    image_id = rootlet("pull", "-q", f"{registry}/test/twice:1", check=True).stdout.strip()
    d = _layer_dirs(store_root, image_id)
    assert (d[0] / "etc/motd").read_bytes() == (d[2] / "etc/motd").read_bytes() == b"same\n" * 20000
    assert (d[1] / "etc/motd").read_bytes() == b"other\n"
    assert list((store_root / "blobs" / "partial").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []


def test_a_hostile_layer_among_good_ones_fails_the_pull_and_keeps_nothing_of_it(
        rootlet: RunRootlet, registry: str, store_root: Path, tmp_path: Path) -> None:
    """The layers unpacked beside it are verified (they may stay, placed or as downloads to
    resume); the hostile one leaves nothing, and neither do the unfinished ones."""
    good = [(L.tar_bytes([L.file(f"g{i}/f", os.urandom(200_000))]), "gzip") for i in range(3)]
    hostile = (L.tar_bytes([L.file("ok", b"x"), L.file("../../escape", b"pwned")]), "gzip")
    out = tmp_path / "layout"
    L.write_layout(out, [good[0], good[1], hostile, good[2]])
    push_layout(registry, out, "latest", "test/hostile-among:1")
    proc = rootlet("pull", f"{registry}/test/hostile-among:1")
    assert proc.returncode == 125 and "Error: layer sha256:" in proc.stderr, proc.stderr
    assert json.loads(rootlet("images", "--format", "json", check=True).stdout) == []
    assert list((store_root / "tmp").iterdir()) == []
    assert all((layer / "info.json").exists() for layer in (store_root / "layers").iterdir())
    index = json.loads((out / "index.json").read_text())
    manifest = json.loads((out / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    bad = manifest["layers"][2]["digest"][7:]  # the hostile layer's blob: not kept, not even to resume
    assert not any(p.name.startswith(bad) for p in (store_root / "blobs" / "partial").iterdir())
    assert not (tmp_path.parent / "escape").exists()


def test_ctrl_c_during_a_pull_leaves_a_store_the_next_pull_completes(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                     registry: str, store_root: Path,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "layout"
    layers = [(L.tar_bytes([L.file(f"d{i}/blob", os.urandom(1 << 20))]), "gzip") for i in range(3)]
    L.write_layout(out, layers)
    push_layout(registry, out, "latest", "test/slow:1")
    proxy = FaultProxy(registry, "slow", rate=256 * 1024)
    try:
        proc = subprocess.Popen(rootlet_command() + ["pull", "-q", f"{proxy.host}/test/slow:1"], env=rootlet_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        partial = store_root / "blobs" / "partial"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (partial.is_dir() and any(
                p.stat().st_size > 64 * 1024 for p in partial.iterdir())):
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the pull did not stop on Ctrl-C")
        assert proc.returncode != 0, err
    finally:
        proxy.stop()
    assert json.loads(rootlet("images", "--format", "json", check=True).stdout) == []
    assert list((store_root / "layers").iterdir()) == []
    image_id = rootlet("pull", "-q", f"{registry}/test/slow:1", check=True).stdout.strip()
    assert len(_layer_dirs(store_root, image_id)) == 3
    assert list((store_root / "tmp").iterdir()) == []
    assert list((store_root / "blobs" / "partial").iterdir()) == []


def test_rootlet_runs_with_the_compression_engine_of_the_test_run(rootlet_env: dict[str, str]) -> None:
    """The CI pass with ROOTLET_NO_ISAL=1 reaches the rootlet processes the tests start."""
    code = "from rootlet.runtime.image import deflate; print(deflate.ENGINE)"
    engine = subprocess.run([sys.executable, "-c", code], env=rootlet_env, capture_output=True, text=True,
                            check=True).stdout.strip()
    if os.environ.get("ROOTLET_NO_ISAL", "") not in ("", "0"):
        assert engine == "zlib"
    else:
        assert engine in ("isa-l", "zlib")
