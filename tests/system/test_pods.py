"""Pods, as the unprivileged user with the real rootlet command: two containers of a pod talk over
localhost and share the pod's hostname and IPC namespace; the lifecycle verbs (start, stop,
restart, kill, rm, prune) and their refusals; ports published on the pod; a pod on a user
network; a SIGKILLed infra cleaned up; podman's ``pod ps`` columns side by side.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from tests.conftest import RunRootlet
from tests.support.podman import podman  # noqa: F401

pytestmark = pytest.mark.system

HTTPD = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def _infras() -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == os.getuid():
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read()
                    if "(rootlet-infra)" in fields and fields.rpartition(")")[2].split()[0] != "Z":
                        found.append(int(pid))
            except OSError:
                continue
    return found


def _wait_for(predicate, timeout: float = 10.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def infras(rootlet: RunRootlet):  # noqa: ANN201
    """The infra processes started since the test began; none may be left at its end."""
    before = set(_infras())

    def new() -> list[int]:
        return sorted(set(_infras()) - before)

    yield new
    rootlet("pod", "rm", "-f", "-a")
    rootlet("rm", "-f", "-a")
    rootlet("network", "prune", "-f")
    assert _wait_for(lambda: not new()), "an infra process outlived its pod"


def _fetch(rootlet: RunRootlet, image: str, pod: str, url: str):  # -> CompletedProcess
    return rootlet("run", "--rm", "--pod", pod, image, "sh", "-c", f"timeout 5 wget -q -O - {url}; exit $?")


def test_containers_of_a_pod_talk_over_localhost_and_share_its_hostname(rootlet: RunRootlet, busybox: str,
                                                                       infras) -> None:
    pod_id = rootlet("pod", "create", "--name", "duo", check=True).stdout.strip()
    assert len(pod_id) == 64
    rows = rootlet("pod", "ps", "--format", "{{.Name}} {{.Status}}", check=True).stdout.split()
    assert rows == ["duo", "Created"]
    rootlet("run", "-d", "--pod", "duo", "--name", "web", busybox, "sh", "-c", HTTPD, check=True)
    assert len(infras()) == 1
    proc = _fetch(rootlet, busybox, "duo", "http://127.0.0.1/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello from duo"  # the pod's UTS namespace: its name
    ipc = rootlet("exec", "web", "readlink", "/proc/self/ns/ipc", check=True).stdout
    other = rootlet("run", "--rm", "--pod", "duo", busybox, "readlink", "/proc/self/ns/ipc", check=True).stdout
    assert ipc == other
    doc = json.loads(rootlet("pod", "inspect", "duo", check=True).stdout)
    assert doc["State"] == "Running" and doc["NumContainers"] == 2 and doc["Name"] == "duo"
    assert {c["Name"] for c in doc["Containers"]} >= {"web"}


def test_pod_lifecycle_verbs(rootlet: RunRootlet, busybox: str, infras) -> None:
    rootlet("pod", "create", "--name", "life", check=True)
    rootlet("create", "--pod", "life", "--name", "sleeper", busybox, "sleep", "300", check=True)
    rootlet("pod", "start", "life", check=True)
    assert rootlet("ps", "--format", "{{.Names}} {{.State}}", check=True).stdout.split() == ["sleeper", "running"]
    assert len(infras()) == 1
    refused = rootlet("pod", "rm", "life")
    assert refused.returncode == 2 and "running containers" in refused.stderr
    top = rootlet("pod", "top", "life", check=True).stdout
    assert "sleep 300" in top
    rootlet("pod", "stop", "-t", "1", "life", check=True)
    assert _wait_for(lambda: not infras())
    assert rootlet("pod", "ps", "--format", "{{.Status}}", check=True).stdout.strip() == "Exited"
    rootlet("pod", "restart", "life", check=True)
    assert rootlet("pod", "ps", "--format", "{{.Status}}", check=True).stdout.strip() == "Running"
    rootlet("pod", "kill", "life", check=True)
    assert _wait_for(lambda: not infras())
    assert rootlet("pod", "prune", "-f", check=True).stdout.strip()
    assert rootlet("pod", "exists", "life").returncode == 1
    assert rootlet("container", "exists", "sleeper").returncode == 1
    missing = rootlet("pod", "rm", "nosuch")
    assert missing.returncode == 1 and "no such pod" in missing.stderr


def test_ports_are_published_on_the_pod(rootlet: RunRootlet, busybox: str, infras) -> None:
    rootlet("pod", "create", "--name", "pubpod", "-p", "127.0.0.1::80", check=True)
    refused = rootlet("run", "--rm", "--pod", "pubpod", "-p", "8080:80", busybox, "true")
    assert refused.returncode == 125 and "when the pod is created" in refused.stderr
    rootlet("run", "-d", "--pod", "pubpod", busybox, "sh", "-c", HTTPD, check=True)
    doc = json.loads(rootlet("pod", "inspect", "pubpod", check=True).stdout)
    port = doc["InfraConfig"]["PortBindings"]["80/tcp"][0]["HostPort"]
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                assert answer.read().strip() == b"hello from pubpod"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_pod_on_a_user_network_is_reached_by_its_containers_names(rootlet: RunRootlet, busybox: str,
                                                                   infras) -> None:
    rootlet("network", "create", "podnet", check=True)
    rootlet("pod", "create", "--name", "netpod", "--network", "podnet", check=True)
    rootlet("run", "-d", "--pod", "netpod", "--name", "inpod", busybox, "sh", "-c", HTTPD, check=True)
    proc = rootlet("run", "--rm", "--network", "podnet", busybox, "sh", "-c",
                   "timeout 5 wget -q -O - http://netpod/; exit $?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello from netpod"


def test_a_sigkilled_infra_is_cleaned_and_the_pod_starts_again(rootlet: RunRootlet, busybox: str, infras) -> None:
    rootlet("pod", "create", "--name", "fragile", check=True)
    rootlet("run", "-d", "--pod", "fragile", "--name", "member", busybox, "sleep", "300", check=True)
    [infra] = infras()
    os.kill(infra, signal.SIGKILL)
    rootlet("pod", "stop", "-t", "0", "fragile", check=True)
    assert _wait_for(lambda: not infras())
    rootlet("pod", "start", "fragile", check=True)
    assert len(infras()) == 1
    assert rootlet("ps", "--format", "{{.Names}}", check=True).stdout.split() == ["member"]


def test_pod_ps_has_podmans_columns(rootlet: RunRootlet, podman, infras) -> None:  # noqa: F811
    rootlet("pod", "create", "--name", "cmp", check=True)
    podman("pod", "create", "--infra=false", "--name", "cmp")  # (no catatonit for an infra here)
    mine = rootlet("pod", "ps", check=True).stdout.splitlines()[0]
    theirs = podman("pod", "ps").stdout.splitlines()[0]
    assert mine.split("  ") and [c.strip() for c in mine.split("  ") if c.strip()] == \
        [c.strip() for c in theirs.split("  ") if c.strip()]
    mine_json = json.loads(rootlet("pod", "ps", "--format", "json", check=True).stdout)[0]
    theirs_json = json.loads(podman("pod", "ps", "--format", "json").stdout)[0]
    assert set(mine_json) == set(theirs_json)
