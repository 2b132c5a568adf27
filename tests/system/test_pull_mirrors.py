"""`rootlet pull` through registries.conf mirrors (issue 10): a mirror without the tag is passed
over, and when every source fails the one error line names each, mirror first, with its answer.

docker.io is sent to a name that cannot resolve: docker.io itself would resolve wherever there is
internet, and these tests send traffic to loopback only."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, free_port

pytestmark = pytest.mark.system

#: Never resolves, and its lookup never leaves the machine: glibc refuses a name that starts with
#: "-" before asking any DNS server.
UNRESOLVABLE = "-unresolvable.invalid"
#: ``hub_conf(location, *mirrors)``: the environment of a registries.conf with docker.io there.
HubConf = Callable[..., dict[str, str]]


@pytest.fixture
def hub_conf(tmp_path: Path) -> HubConf:
    """Write a registries.conf that puts docker.io at a location behind mirrors; returns the env."""
    def write(location: str, *mirrors: str) -> dict[str, str]:
        conf = tmp_path / "registries.conf"
        conf.write_text('unqualified-search-registries = ["docker.io"]\n'
                        f'[[registry]]\nprefix = "docker.io"\nlocation = "{location}"\n'
                        + "".join(f'[[registry.mirror]]\nlocation = "{m}"\n' for m in mirrors))
        return {"ROOTLET_REGISTRIES_CONF": str(conf)}
    return write


@pytest.fixture
def unresolvable() -> str:
    """``UNRESOLVABLE``, after checking that this machine's resolver refuses it."""
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(UNRESOLVABLE, 443)
    return UNRESOLVABLE


def test_mirror_without_the_tag_is_passed_over(rootlet: RunRootlet, registry: str, hub_conf: HubConf) -> None:
    env = hub_conf(registry, f"{registry}/empty")   # the mirror path holds no repositories
    image_id = rootlet("pull", "-q", "alpine:3.20", env=env, check=True).stdout.strip()
    doc = json.loads(rootlet("image", "inspect", image_id, check=True).stdout)[0]
    assert doc["RepoTags"] == ["docker.io/library/alpine:3.20"]


def test_mirror_lacking_the_tag_and_unresolvable_registry_are_both_reported(
        rootlet: RunRootlet, registry: str, hub_conf: HubConf, unresolvable: str) -> None:
    proc = rootlet("pull", "alpine:3.21", env=hub_conf(unresolvable, registry), timeout=60)
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr.splitlines() == [
        (f"Error: cannot pull docker.io/library/alpine:3.21: {registry} (mirror): manifest unknown; "
         f"{unresolvable}: cannot resolve host"),
        "Hint: check the registry name and your network",
    ]


def test_mirror_down_and_unresolvable_registry_are_both_reported(rootlet: RunRootlet, hub_conf: HubConf,
                                                                 unresolvable: str) -> None:
    down = f"127.0.0.1:{free_port()}"
    proc = rootlet("pull", "alpine:3.20", env=hub_conf(unresolvable, down), timeout=60)
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr.splitlines() == [
        (f"Error: cannot pull docker.io/library/alpine:3.20: {down} (mirror): connection refused; "
         f"{unresolvable}: cannot resolve host"),
        "Hint: check the registry name and your network",
    ]


def test_tag_missing_everywhere_keeps_the_not_found_hint(rootlet: RunRootlet, registry: str, hub_conf: HubConf) -> None:
    proc = rootlet("pull", "alpine:3.21", env=hub_conf(registry, f"{registry}/empty"), timeout=60)
    assert proc.returncode == 125, proc.stderr
    error, hint = proc.stderr.splitlines()
    assert error == (f"Error: cannot pull docker.io/library/alpine:3.21: {registry} (mirror): manifest unknown; "
                     f"{registry}: manifest unknown")
    assert hint.startswith("Hint: check the image name and tag")
