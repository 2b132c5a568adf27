"""Pulls over a bad network and pulls that die: the store stays consistent and the next pull completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command
from tests.support import layouts as L
from tests.support.registries import FaultProxy, push_layout

pytestmark = pytest.mark.system


@pytest.fixture
def big_image(registry: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image with one ~4 MB incompressible layer (slow enough to interrupt through a slow proxy)."""
    out = tmp_path_factory.mktemp("big")
    raw = L.tar_bytes([L.file("blob.bin", os.urandom(4 * 1024 * 1024)), L.file("small.txt", b"ok")])
    L.write_layout(out, [(raw, "gzip")])
    push_layout(registry, out, "latest", "test/big:1")
    return "test/big:1"


@pytest.fixture
def proxy_factory(registry: str) -> Iterator:
    made: list[FaultProxy] = []

    def make(mode: str, **kw: object) -> FaultProxy:
        p = FaultProxy(registry, mode, **kw)  # type: ignore[arg-type]
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def _images(rootlet: RunRootlet) -> list[dict]:
    return json.loads(rootlet("images", "--format", "json", check=True).stdout)


def test_up_to_date_pull_costs_one_head_request(rootlet: RunRootlet, proxy_factory) -> None:
    proxy = proxy_factory("pass")
    ref = f"{proxy.host}/library/alpine:3.20"
    rootlet("pull", "-q", ref, check=True)
    before = len(proxy.requests)
    rootlet("pull", "-q", ref, check=True)
    second = proxy.requests[before:]
    assert len(second) == 1, second
    assert second[0].startswith("HEAD /v2/library/alpine/manifests/3.20 ")


def test_dropped_connection_mid_blob_is_resumed(rootlet: RunRootlet, proxy_factory, big_image: str) -> None:
    # The first blob GET is the config (too small to cut); then the layer and its resumed GET are cut.
    proxy = proxy_factory("cut", after=1024 * 1024, times=3)
    proc = rootlet("pull", "-q", f"{proxy.host}/{big_image}", check=True)
    assert len(proc.stdout.strip()) == 64
    assert proxy.damaged == 2
    ranged = [r for r in proxy.requests if "/blobs/" in r and "range: bytes=" in r.lower()]
    assert ranged, "the retry should resume with an HTTP Range request"


def test_wrong_blob_fails_and_keeps_nothing(rootlet: RunRootlet, proxy_factory, big_image: str,
                                            store_root: Path) -> None:
    proxy = proxy_factory("flip", after=5000)
    proc = rootlet("pull", f"{proxy.host}/{big_image}")
    assert proc.returncode == 125
    assert "digest" in proc.stderr.lower()
    assert _images(rootlet) == []
    assert list((store_root / "layers").iterdir()) == []
    blobs = [p.name for p in (store_root / "blobs" / "sha256").iterdir()]
    # Only verified documents (manifest, config) may remain; never the bad layer blob.
    assert all(not (store_root / "blobs" / "sha256" / b).stat().st_size > 100_000 for b in blobs)
    assert list((store_root / "blobs" / "partial").iterdir()) == []


def test_pull_killed_midway_is_completed_by_the_next_pull(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                          proxy_factory, big_image: str, registry: str,
                                                          store_root: Path) -> None:
    proxy = proxy_factory("slow", rate=512 * 1024)
    proc = subprocess.Popen(rootlet_command() + ["pull", "-q", f"{proxy.host}/{big_image}"], env=rootlet_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    partial_dir = store_root / "blobs" / "partial"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if partial_dir.is_dir() and any(p.stat().st_size > 100_000 for p in partial_dir.iterdir()):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the pull never started downloading")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _images(rootlet) == []
    # Same registry content without the slow proxy: the partial blob is resumed, not restarted.
    again = rootlet("pull", "-q", f"{registry}/{big_image}", check=True)
    assert len(again.stdout.strip()) == 64
    assert len(_images(rootlet)) == 1
    assert list(partial_dir.iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []


def test_pull_killed_while_unpacking_leaves_no_half_layer(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                          registry: str, store_root: Path, test_images: Path,
                                                          tmp_path: Path) -> None:
    # Many small files make unpacking take long enough to interrupt.
    members = [L.directory("many/")] + [L.file(f"many/f{i:05d}", b"x" * 100) for i in range(8000)]
    out = tmp_path / "many"
    L.write_layout(out, [(L.tar_bytes(members), "gzip")])
    push_layout(registry, out, "latest", "test/many:1")
    ref = f"{registry}/test/many:1"
    proc = subprocess.Popen(rootlet_command() + ["pull", "-q", ref], env=rootlet_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    tmp = store_root / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if tmp.is_dir() and any(p.name.startswith("layer-") for p in tmp.iterdir()):
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.skip("the pull finished before it could be interrupted")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not any((store_root / "layers").iterdir()), "a half layer was moved into layers/"
    rootlet("pull", "-q", ref, check=True)
    (diff,) = list((store_root / "layers").glob("*/diff"))
    assert len(os.listdir(diff / "many")) == 8000
    assert list(tmp.iterdir()) == []
