"""User networks, as the unprivileged user with the real rootlet command: containers on one network
find each other by name and alias (rootlet's DNS responder) and not across networks, ``-p`` on a
network, ``--network container:``, connect/disconnect, and the namespace's life: nothing left
after the last container (no holder process, helper, namespace or veth), a SIGKILLed holder or
owner cleaned up by the next run. Bad input: overlapping subnets, a name used twice, a network in
use, a DNS query flood. podman's ``network inspect`` field names side by side.

Everything stays on this machine: the containers talk inside rootlet's namespaces, and published
ports are reached on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RunRootlet
from tests.support.podman import podman  # noqa: F401

pytestmark = pytest.mark.system

#: Serves /www (index.html says "hello from NAME") on port 80 in the foreground.
HTTPD = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def _holders() -> list[int]:
    """Our processes titled as rootlet's network namespace holder."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != os.getuid():
                continue
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            if "(rootlet-netns)" in stat and stat.rpartition(")")[2].split()[0] != "Z":
                found.append(int(pid))
        except OSError:
            continue
    return found


def _in_netns(inode: int) -> list[int]:
    """Our processes in the network namespace of that inode number."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == os.getuid() and os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                    out.append(int(pid))
            except OSError:
                continue
    return out


def _wait_for(predicate, timeout: float = 10.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _serve(rootlet: RunRootlet, image: str, name: str, network: str, *extra: str) -> None:
    rootlet("run", "-d", "--name", name, "--network", network, *extra, image, "sh", "-c", HTTPD, check=True)


def _fetch(rootlet: RunRootlet, image: str, network: str, url: str, *extra: str):  # -> CompletedProcess
    # Debian 12's static busybox wget crashes with -T: busybox timeout bounds it instead, under sh
    # (timeout's target must not be PID 1, which ignores its signal).
    return rootlet("run", "--rm", "--network", network, *extra, image, "sh", "-c", f"timeout 5 wget -q -O - {url}; exit $?")


@pytest.fixture
def holders(rootlet: RunRootlet):  # noqa: ANN201
    """A function giving the holders started since the test began (other stores may have theirs);
    at the end every container, pod and network of the test is removed, and none may be left."""
    before = set(_holders())

    def new() -> list[int]:
        return sorted(set(_holders()) - before)

    yield new
    rootlet("rm", "-f", "-a")
    rootlet("pod", "rm", "-f", "-a")
    rootlet("network", "prune", "-f")
    assert _wait_for(lambda: not new()), "a network namespace holder outlived the test"  # noqa


def test_containers_on_a_network_reach_each_other_by_name_and_alias(rootlet: RunRootlet, busybox: str,
                                                                     holders) -> None:
    rootlet("network", "create", "web", check=True)
    _serve(rootlet, busybox, "srv", "web", "--network-alias", "www", "--hostname", "srvhost")
    for url in ("http://srv/", "http://www/", "http://srv.dns.podman/"):
        proc = _fetch(rootlet, busybox, "web", url)
        assert proc.returncode == 0, (url, proc.stderr)
        assert proc.stdout.strip() == "hello from srvhost"
    inspect = json.loads(rootlet("inspect", "srv", check=True).stdout)[0]
    address = inspect["NetworkSettings"]["Networks"]["web"]["IPAddress"]
    assert address.startswith("10.89.")
    resolv = rootlet("exec", "srv", "cat", "/etc/resolv.conf", check=True).stdout
    assert "nameserver 10.89." in resolv and "dns.podman" in resolv
    hosts = rootlet("exec", "srv", "cat", "/etc/hosts", check=True).stdout
    assert f"{address}\tsrvhost" in hosts


def test_a_second_network_cannot_see_the_first(rootlet: RunRootlet, busybox: str, holders) -> None:
    rootlet("network", "create", "one", check=True)
    rootlet("network", "create", "two", check=True)
    _serve(rootlet, busybox, "hidden", "one")
    address = json.loads(rootlet("inspect", "hidden", check=True).stdout)[0]["NetworkSettings"]["Networks"]["one"][
        "IPAddress"]
    by_name = _fetch(rootlet, busybox, "two", "http://hidden/")
    assert by_name.returncode != 0 and "bad address" in by_name.stderr
    by_address = _fetch(rootlet, busybox, "two", f"http://{address}/")
    assert by_address.returncode != 0
    same = _fetch(rootlet, busybox, "one", f"http://{address}/")
    assert same.returncode == 0, same.stderr


def test_published_port_on_a_network_and_the_namespace_goes_with_the_last_container(
        rootlet: RunRootlet, busybox: str, holders) -> None:
    rootlet("network", "create", "pub", check=True)
    _serve(rootlet, busybox, "pubsrv", "pub", "-p", "127.0.0.1::80", "--hostname", "pubhost")
    port = rootlet("port", "pubsrv", "80/tcp", check=True).stdout.strip().rpartition(":")[2]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
        assert answer.read().strip() == b"hello from pubhost"
    [holder] = holders()
    netns = os.stat(f"/proc/{holder}/ns/net").st_ino
    helper = [p for p in _helpers() if str(holder) in _cmdline(p)]
    assert len(helper) == 1, "one slirp4netns for the network namespace"
    inside = _in_netns(netns)
    assert holder in inside
    rootlet("rm", "-f", "pubsrv", check=True)
    assert _wait_for(lambda: not holders())
    # Nothing that was in the namespace lives on (its inode number may be reused by another one).
    assert _wait_for(lambda: not any(_pid_alive(p) for p in inside)), "the network namespace was left"
    assert _wait_for(lambda: not _pid_alive(helper[0])), "slirp4netns was left"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(port))) != 0, "the published port still answers"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "rootlet" not in links and "veth" not in links


def _helpers() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline(int(p)).startswith("/usr/bin/slirp4netns")]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_network_container_joins_another_containers_network(rootlet: RunRootlet, busybox: str, holders) -> None:
    _serve(rootlet, busybox, "base", "slirp4netns", "--hostname", "basehost")
    proc = rootlet("run", "--rm", "--network", "container:base", busybox, "sh", "-c",
                   "timeout 5 wget -q -O - http://127.0.0.1/; exit $?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello from basehost"
    refused = rootlet("run", "--rm", "--network", "container:base", "-p", "8080:80", busybox, "true")
    assert refused.returncode == 125 and "conflicting options" in refused.stderr


def test_sigkilled_holder_and_owner_are_cleaned_by_the_next_run(rootlet: RunRootlet, busybox: str,
                                                                 holders) -> None:
    rootlet("network", "create", "crash", check=True)
    _serve(rootlet, busybox, "victim", "crash")
    [holder] = holders()
    os.kill(holder, signal.SIGKILL)
    rootlet("rm", "-f", "victim", check=True)
    assert _wait_for(lambda: not holders())
    _serve(rootlet, busybox, "again", "crash", "--hostname", "againhost")
    proc = _fetch(rootlet, busybox, "crash", "http://again/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello from againhost"
    # The owner of a container (its monitor) killed: the next run drops its attachment.
    state = json.loads(rootlet("inspect", "again", check=True).stdout)[0]
    monitor = _monitor_of(state["State"]["Pid"])
    os.kill(monitor, signal.SIGKILL)
    assert _wait_for(lambda: not _pid_alive(state["State"]["Pid"]))
    proc = rootlet("run", "--rm", "--network", "crash", busybox, "true")
    assert proc.returncode == 0, proc.stderr
    assert _wait_for(lambda: not holders())


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _monitor_of(pid: int) -> int:
    """The container's monitor: the parent of its keeper, the parent of its PID 1."""
    def parent(p: int) -> int:
        with open(f"/proc/{p}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])

    return parent(parent(pid))


def test_connect_and_disconnect_a_running_container(rootlet: RunRootlet, busybox: str, holders) -> None:
    rootlet("network", "create", "front", check=True)
    rootlet("network", "create", "back", check=True)
    _serve(rootlet, busybox, "multi", "front", "--hostname", "multihost")
    assert _fetch(rootlet, busybox, "back", "http://multi/").returncode != 0
    rootlet("network", "connect", "--alias", "db", "back", "multi", check=True)
    proc = _fetch(rootlet, busybox, "back", "http://db/")
    assert proc.returncode == 0, proc.stderr
    rootlet("network", "disconnect", "back", "multi", check=True)
    assert _fetch(rootlet, busybox, "back", "http://db/").returncode != 0
    assert _fetch(rootlet, busybox, "front", "http://multi/").returncode == 0


def test_bad_input_is_refused_with_one_line(rootlet: RunRootlet, busybox: str, holders) -> None:
    rootlet("network", "create", "--subnet", "10.90.0.0/24", "taken", check=True)
    cases = [
        (("network", "create", "taken"), 125, "already exists"),
        (("network", "create", "--subnet", "10.90.0.128/25", "overlap"), 125, "already used"),
        (("network", "create", "--subnet", "10.0.2.0/24", "helper"), 125, "already used"),
        (("network", "create", "--subnet", "nonsense", "bad"), 125, "invalid subnet"),
        (("network", "create", "--gateway", "10.91.0.1", "--subnet", "10.92.0.0/24", "gw"), 125, "gateway"),
        (("network", "create", "-d", "macvlan", "mac"), 125, "unsupported network driver"),
        (("network", "create", "host"), 125, "reserved"),
        (("network", "rm", "nosuch"), 1, "network not found"),
        (("run", "--rm", "--network", "nosuch", busybox, "true"), 125, "network not found"),
        (("run", "--rm", "--network", "taken", "--ip", "10.91.0.5", busybox, "true"), 125, "not a host address"),
    ]
    for argv, code, words in cases:
        proc = rootlet(*argv)
        assert proc.returncode == code, (argv, proc.stderr)
        assert words in proc.stderr, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
    rootlet("create", "--name", "user", "--network", "taken", busybox, "true", check=True)
    busy = rootlet("network", "rm", "taken")
    assert busy.returncode == 2 and "is being used" in busy.stderr
    assert rootlet("network", "exists", "taken").returncode == 0
    rootlet("network", "rm", "-f", "taken", check=True)
    assert rootlet("network", "exists", "taken").returncode == 1
    assert rootlet("container", "exists", "user").returncode == 1


def test_a_dns_query_flood_leaves_the_responder_answering(rootlet: RunRootlet, busybox: str, holders) -> None:
    # An internal network: its responder forwards nothing, so no query leaves the machine.
    rootlet("network", "create", "--internal", "flood", check=True)
    _serve(rootlet, busybox, "target", "flood", "--hostname", "targethost")
    flood = ("i=0; while [ $i -lt 200 ]; do nslookup n$i.example.invalid 10.89.0.1 >/dev/null 2>&1 & "
             "printf 'garbage' | nc -u -w 1 10.89.0.1 53 & i=$((i+1)); done; wait; nslookup target 10.89.0.1")
    proc = rootlet("run", "--rm", "--network", "flood", busybox, "sh", "-c", flood, timeout=120)
    assert proc.returncode == 0 and "Address: 10.89" in proc.stdout, proc.stdout + proc.stderr
    proc = _fetch(rootlet, busybox, "flood", "http://target/")
    assert proc.returncode == 0, proc.stderr
    assert len(holders()) == 1


def test_network_inspect_has_podmans_field_names(rootlet: RunRootlet, podman, holders) -> None:  # noqa: F811
    rootlet("network", "create", "--label", "a=b", "--subnet", "10.93.0.0/24", "cmp", check=True)
    podman("network", "create", "--label", "a=b", "--subnet", "10.93.0.0/24", "cmp")
    mine = json.loads(rootlet("network", "inspect", "cmp", check=True).stdout)[0]
    theirs = json.loads(podman("network", "inspect", "cmp").stdout)[0]
    assert set(mine) == set(theirs)
    assert mine["subnets"] == theirs["subnets"] and mine["labels"] == theirs["labels"]
    assert (mine["driver"], mine["internal"], mine["ipv6_enabled"]) == (theirs["driver"], theirs["internal"],
                                                                       theirs["ipv6_enabled"])
    header = rootlet("network", "ls", check=True).stdout.splitlines()[0].split()
    assert header == podman("network", "ls").stdout.splitlines()[0].split()


def test_a_sigkilled_helper_is_replaced_by_the_next_run_with_its_ports(rootlet: RunRootlet, busybox: str,
                                                                        holders) -> None:
    rootlet("network", "create", "helped", check=True)
    _serve(rootlet, busybox, "kept", "helped", "-p", "127.0.0.1::80", "--hostname", "kepthost")
    port = rootlet("port", "kept", "80/tcp", check=True).stdout.strip().rpartition(":")[2]
    [holder] = holders()
    [helper] = [p for p in _helpers() if str(holder) in _cmdline(p)]
    os.kill(helper, signal.SIGKILL)
    assert _wait_for(lambda: not _pid_alive(helper))
    proc = rootlet("run", "--rm", "--network", "helped", busybox, "true")
    assert proc.returncode == 0, proc.stderr
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
        assert answer.read().strip() == b"hello from kepthost"
    rootlet("rm", "-f", "kept", check=True)
    assert _wait_for(lambda: not holders())
    assert not [p for p in _helpers() if str(holder) in _cmdline(p)], "the new helper outlived the namespace"
