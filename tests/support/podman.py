"""The real podman (and skopeo) beside rootlet, for round trips and side-by-side checks.

Every ``Podman`` has a store of its own under the test's tmp dir and names everything podman would
otherwise read from the user's configuration (storage driver, OCI runtime, cgroup manager, events
backend), so a test does not depend on ``~/.config/containers`` and podman runs the same on a
developer's machine and in CI: rootless with runc (crun refuses the hybrid cgroups of these
machines), the cgroupfs manager and file events (there is no systemd user session).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


class Podman:
    """``podman`` on a private store; call it like ``podman("images", "-q")``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        (base / "root").mkdir(parents=True, exist_ok=True)
        # podman refuses a runroot longer than 50 characters, which pytest's tmp paths always are;
        # its tmpdir must be short too: rootlessport's socket there (-p) would pass the 108 bytes of
        # a unix socket's path, and its child then hangs instead of reporting a port in use.
        self.runroot = Path(tempfile.mkdtemp(prefix="rlpm-", dir="/tmp"))
        for d in ("run", "tmp"):
            (self.runroot / d).mkdir()
        self.argv = ["podman", "--root", str(base / "root"), "--runroot", str(self.runroot / "run"),
                     "--tmpdir", str(self.runroot / "tmp"), "--storage-driver", "overlay", "--runtime", "runc",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

    def __call__(self, *args: str, check: bool = True, input: bytes | None = None,
                 timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.argv, *args], input=input.decode("latin-1") if input else None,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def remove(self) -> None:
        """Delete the store (its files belong to subordinate ids: podman unshare removes them)."""
        subprocess.run([*self.argv, "system", "reset", "-f"], capture_output=True, timeout=120)
        for path in (self.base, self.runroot):
            subprocess.run(["podman", "unshare", "rm", "-rf", str(path)], capture_output=True, timeout=120)
            shutil.rmtree(path, ignore_errors=True)


def need_podman() -> None:
    """Skip unless podman and skopeo are installed (CI installs both; a skip there is a failure)."""
    missing = [p for p in ("podman", "skopeo", "runc") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install {' '.join(missing)}; .ci/run installs them)")


def skopeo(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``skopeo`` with no policy file of the user's needed (``--insecure-policy``)."""
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture
def podman(tmp_path: Path) -> "Podman":
    """A podman with a fresh store for this test, removed afterwards."""
    need_podman()
    p = Podman(tmp_path / "podman")
    try:
        yield p
    finally:
        p.remove()
