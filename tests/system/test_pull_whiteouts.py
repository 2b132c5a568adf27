"""OCI whiteout rules within one layer, end to end: pushed to the real registry, pulled and run
by the real ``rootlet`` command on a fresh store, under both overlays.

OCI image-spec layer.md, "Whiteouts": whiteout files apply only to resources in lower layers;
files present in the same layer as a whiteout can only be hidden by whiteouts in later layers.
So a layer that writes a name and also whites it out (or marks its directory opaque) keeps its
own entry, whatever the order of the two in the tar. Nothing is mocked.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, need
from tests.support import layouts as L
from tests.support.registries import push_layout

pytestmark = pytest.mark.system

#: What the lower layer puts under /data; the upper layer whites each name out in its own way.
LOWER = [
    L.directory("data/"),
    L.file("data/motd", b"lower\n"), L.file("data/motd2", b"lower\n"),
    L.directory("data/gone/"), L.file("data/gone/old", b"old\n"),
    L.directory("data/back/"), L.file("data/back/old", b"old\n"),
    L.directory("data/opq/"), L.file("data/opq/old", b"old\n"),
]

#: Each name in both orders: the entry before its whiteout, and the whiteout before the entry.
UPPER = [
    L.directory("data/"),
    L.file("data/motd", b"mine\n"), L.file("data/.wh.motd"),        # file, then its whiteout
    L.file("data/.wh.motd2"), L.file("data/motd2", b"mine2\n"),     # whiteout, then the file
    L.file("data/.wh.gone"), L.file("data/gone/fresh", b"new\n"),   # whiteout, then an entry under it
    L.directory("data/back/"), L.file("data/back/fresh", b"new\n"), L.file("data/.wh.back"),  # then whiteout
    L.file("data/opq/fresh", b"new\n"), L.file("data/opq/.wh..wh..opq"),  # entry, then opaque marker
]

SCRIPT = ('for d in /data /data/gone /data/back /data/opq; do echo "$d: $(ls -A "$d" | tr "\\n" " ")"; done; '
          'cat /data/motd /data/motd2 /data/gone/fresh')


@pytest.fixture(scope="module")
def same_layer_whiteouts_image(registry: str, test_images: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Alpine's rootfs, then LOWER, then UPPER, pushed under a fresh repository name; its reference."""
    need("skopeo")
    out = L.layout_dir(tmp_path_factory.mktemp("same-layer-whiteouts"), "layout")
    L.write_layout(out, [(L.alpine_rootfs_tar(test_images), "gzip"), (L.tar_bytes(LOWER), "gzip"),
                         (L.tar_bytes(UPPER), "gzip")], ref="latest")
    repo = f"whiteouts/same-layer-{uuid.uuid4().hex[:8]}:latest"
    push_layout(registry, out, "latest", repo)
    return f"{registry}/{repo}"


@pytest.fixture(params=("kernel", "fuse"))
def overlay(request: pytest.FixtureRequest, rootlet: RunRootlet) -> str:
    """ROOTLET_OVERLAY for the test: "kernel" (skipped, with the reason ``rootlet info`` gives, when
    it cannot mount here) or "fuse" (skipped without fuse-overlayfs)."""
    if request.param == "kernel":
        info = rootlet("info")
        if "kernel overlay in a user namespace works" not in info.stdout:
            line = next((ln.strip() for ln in info.stdout.splitlines() if "kernel overlay" in ln), info.stderr.strip())
            pytest.skip(f"the kernel overlay cannot mount here ({line})")
    else:
        need("fuse-overlayfs")
    return request.param


def test_layer_keeps_its_own_entries_that_it_also_whites_out(rootlet: RunRootlet, same_layer_whiteouts_image: str,
                                                            overlay: str) -> None:
    """The pull succeeds (a whiteout before entries under the same directory used to fail it with
    "Not a directory") and the container sees the upper layer's entries only: its files kept in
    both orders, each whited-out directory holding only the upper layer's new entry."""
    rootlet("pull", "-q", same_layer_whiteouts_image, check=True)
    proc = rootlet("run", "--rm", same_layer_whiteouts_image, "sh", "-c", SCRIPT, env={"ROOTLET_OVERLAY": overlay})
    assert proc.returncode == 0, proc.stderr
    assert [ln.rstrip() for ln in proc.stdout.splitlines()] == [
        "/data: back gone motd motd2 opq",
        "/data/gone: fresh",
        "/data/back: fresh",
        "/data/opq: fresh",
        "mine",
        "mine2",
        "new",
    ], proc.stdout
