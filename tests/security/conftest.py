"""Fixtures of the security tier: an attacker's toolbox inside busybox containers, and images
built to be hostile. Everything runs as the real ``rootlet`` command, rootless."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, need
from tests.support.layouts import busybox_members, tar_bytes, write_layout
from tests.support.registries import push_layout


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``probe.c`` built static, to bind-mount into containers (``-v PROBE:/probe:ro``)."""
    need("gcc")
    out = tmp_path_factory.mktemp("probe") / "probe"
    proc = subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(Path(__file__).with_name("probe.c"))],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"cannot build the probe (gcc -static needs libc6-dev): {proc.stderr[-2000:]}")
    return out


def push_image(registry: str, tmp_path: Path, repo: str, members: list, config: dict | None = None,
               compression: str = "gzip") -> str:
    """An image of one layer (tar ``members``) pushed to the test registry; its reference."""
    need("skopeo", "busybox")
    out = tmp_path / f"layout-{repo.replace('/', '-')}"
    write_layout(out, [(tar_bytes(members), compression)], config=config)
    push_layout(registry, out, "latest", f"{repo}:latest")
    return f"{registry}/{repo}:latest"


@pytest.fixture
def tiny(registry: str, tmp_path: Path) -> str:
    """A busybox image built from the host's static busybox (nothing else in it)."""
    return push_image(registry, tmp_path, "security/tiny", busybox_members(shutil.which("busybox") or "/bin/busybox"))


def probe_run(rootlet: RunRootlet, probe: Path, image: str, *args: str, flags: tuple[str, ...] = ()) -> str:
    proc = rootlet("run", "--rm", "-v", f"{probe}:/probe:ro", *flags, image, "/probe", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
