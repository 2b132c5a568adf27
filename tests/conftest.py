"""Fixtures shared by every test tier.

Nothing here mocks the registry or the kernel: ``registry`` starts Debian's real
``docker-registry`` on a free loopback port and loads images built from this repository and the
host's static busybox (``tests/support/images.py``; the real Docker Hub images of ``../shared``
are an optional extra, ``real_images``);
``rootlet`` runs the installed ``rootlet`` command in a subprocess with a fresh store root and
private HOME/XDG directories, so no test sees another's state or the developer's own config.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ROOTLET_SHARED", REPO.parent / "shared"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "root_only: needs real root (CI runs these in a separate pass as root)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip root-only tests for unprivileged runs; CI runs them in their own pass as root."""
    if os.getuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs real root (run as root: scripts/test -m root_only)")
    for item in items:
        if "root_only" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The Debian package of each program a test may need (where the names differ).
PACKAGES = {"htpasswd": "apache2-utils", "pasta": "passt", "busybox": "busybox-static", "nsenter": "util-linux",
            "setpriv": "util-linux", "ip": "iproute2", "newuidmap": "uidmap", "newgidmap": "uidmap",
            "gcc": "gcc libc6-dev"}


def need(*programs: str) -> None:
    """Skip the calling test, naming what is missing and the package to install, unless every
    program is on PATH."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        packages = " ".join(dict.fromkeys(PACKAGES.get(p, p) for p in missing))
        pytest.skip(f"needs {', '.join(missing)} (apt-get install {packages}; scripts/setup installs it)")


@pytest.fixture(scope="session")
def test_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OCI layouts built from the repository and the host's static busybox (tests/support/images.py):
    busybox, busybox-musl, alpine-3.19, alpine-3.20."""
    need("busybox")
    from tests.support.images import build_test_images

    return build_test_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def real_images() -> Path:
    """The real Docker Hub OCI layouts of ../shared/images (or $ROOTLET_SHARED/images), for the few
    tests about real-world images; optional: a clone of the repository alone skips those."""
    images = SHARED / "images"
    if not images.is_dir():
        pytest.skip(f"optional: needs the real Docker Hub images of ../shared/images ({images}); set "
                    "ROOTLET_SHARED to a copy, or ignore: every other test uses images built from this repository")
    return images


#: Where the test registry serves each layout (layout, ref name, repository:tag), as Docker Hub does.
REGISTRY_IMAGES = (("busybox", "latest", "library/busybox:latest"), ("busybox-musl", "musl", "library/busybox:musl"),
                   ("alpine-3.20", "3.20", "library/alpine:3.20"), ("alpine-3.20", "3.20", "library/alpine:latest"),
                   ("alpine-3.19", "3.19", "library/alpine:3.19"))


@pytest.fixture(scope="session")
def registry(test_images: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real docker-registry on 127.0.0.1 holding library/busybox and library/alpine; yields host:port."""
    need("docker-registry", "skopeo", "curl")
    from tests.support.registries import push_layout, start_registry

    handle = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        for layout, ref, dest in REGISTRY_IMAGES:
            push_layout(handle.host, test_images / layout, ref, dest)
        yield handle.host
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def store_roots() -> Iterator[list[Path]]:
    """Every store root the session made; removed at its end (``tests/support/cleanup.py``)."""
    from tests.support.cleanup import remove_stores

    roots: list[Path] = []
    yield roots
    for problem in remove_stores(roots):
        sys.stderr.write(f"\nclean-up: {problem}\n")


@pytest.fixture
def store_root(tmp_path: Path, store_roots: list[Path]) -> Path:
    """A fresh, empty rootlet store root for one test."""
    root = tmp_path / "store"
    store_roots.append(root)
    return root


@pytest.fixture
def rootlet_env(tmp_path: Path, store_root: Path) -> dict[str, str]:
    """Environment for a rootlet subprocess: private HOME and XDG dirs, the fresh store root."""
    home = tmp_path / "home"
    run = tmp_path / "run"
    for d in (home, run, home / ".config"):
        d.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_RUNTIME_DIR": str(run),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "ROOTLET_ROOT": str(store_root),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }
    # The registries.conf of a test run, and the compression engine of the CI pass without isal.
    for name in ("ROOTLET_REGISTRIES_CONF", "ROOTLET_NO_ISAL"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def rootlet_command() -> list[str]:
    """The installed ``rootlet`` console script next to the running interpreter, or the command
    ``ROOTLET_TEST_COMMAND`` names (to run the system tiers against another build)."""
    if os.environ.get("ROOTLET_TEST_COMMAND"):
        return [os.environ["ROOTLET_TEST_COMMAND"]]
    exe = Path(sys.executable).parent / "rootlet"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("rootlet")
    if found is None:
        raise RuntimeError("the rootlet command is not installed (pip install -e .)")
    return [found]


RunRootlet = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def rootlet(rootlet_env: dict[str, str]) -> RunRootlet:
    """Run ``rootlet ARGS…`` as a subprocess; returns the CompletedProcess (text, captured)."""

    def run(*args: str, input: str | None = None, timeout: float = 120, env: dict[str, str] | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        full_env = dict(rootlet_env)
        if env:
            full_env.update(env)
        proc = subprocess.run(
            rootlet_command() + list(args), input=input, capture_output=True, text=True,
            timeout=timeout, env=full_env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"rootlet {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run
