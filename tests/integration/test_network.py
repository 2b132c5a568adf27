"""slirp4netns and pasta attached to real user+net namespaces, with real published ports.

Each test makes its own target: ``unshare --user --map-root-user --net sleep`` (a process in a
new user namespace owning a new net namespace, like a container), with ``lo`` brought up by
``nsenter``. Traffic goes only to host loopback and into these namespaces. Run as an
unprivileged user (CI does): as root the /dev/net/tun permission test cannot fail an open.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rootlet.registry.errors import NetworkError
from rootlet.runtime.net.ports import PortMapping, parse_publish
from rootlet.runtime.net.usermode import attach_network, check_network_mode, default_network_mode

HELPERS = ["slirp4netns", "pasta"]
NSENTER = ["nsenter", "--preserve-credentials", "-U", "-n", "-t"]


def need_helper(mode: str) -> None:
    """Skip unless the helper, the namespace tools and a usable /dev/net/tun are present."""
    for program in (mode, "unshare", "nsenter", "ip"):
        if shutil.which(program) is None:
            package = {"pasta": "passt", "ip": "iproute2", "unshare": "util-linux",
                       "nsenter": "util-linux"}.get(program, program)
            pytest.skip(f"needs {program} (apt-get install {package})")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        pytest.skip("/dev/net/tun is not usable by this user (sudo chmod 666 /dev/net/tun)")


class Target:
    """A process in its own user and net namespace (the stand-in for a container)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "sleep", "120"])
        self.pid = self.proc.pid
        deadline = time.monotonic() + 5
        own_ns = os.readlink("/proc/self/ns/net")
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{self.pid}/ns/net") != own_ns and Path(f"/proc/{self.pid}/comm").read_text() == "sleep\n":
                    break
            except OSError:
                pass
            time.sleep(0.005)
        else:
            raise RuntimeError("unshare did not start its target")
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *argv: str) -> str:
        """Run a command in the target's namespaces and return its stdout."""
        out = subprocess.run([*NSENTER, str(self.pid), *argv], capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def serve(self, port: int, protocol: str = "tcp") -> subprocess.Popen[str]:
        """Start a one-shot server in the namespace on ``port`` answering "hi"; returns once it listens."""
        code = (
            "import socket,sys\n"
            f"udp = {protocol == 'udp'}\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('0.0.0.0', {port}))\n"
            "udp or s.listen(5)\n"
            "print('ready', flush=True)\n"
            "if udp:\n"
            "    data, peer = s.recvfrom(100); s.sendto(b'hi ' + data, peer)\n"
            "else:\n"
            "    c, _ = s.accept(); c.sendall(b'hi\\n'); c.close()\n"
        )
        server = subprocess.Popen([*NSENTER, str(self.pid), sys.executable, "-c", code],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        return server

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def target() -> Iterator[Target]:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (apt-get install util-linux)")
    t = Target()
    yield t
    t.stop()


def helpers_for(pid: int) -> list[int]:
    """Pids of live slirp4netns/pasta processes whose command line names ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        name = os.path.basename(argv[0]).decode()
        if name in ("slirp4netns", "pasta", "passt", "passt.avx2", "setpriv") and str(pid).encode() in argv \
                and state != "Z":
            found.append(int(entry))
    return found


def port_is_free(port: int, protocol: str = "tcp") -> bool:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        data = b""
        while chunk := c.recv(100):
            data += chunk
        return data


def host_ipv4_route() -> tuple[str, str] | None:
    """(interface address, gateway) of the host's IPv4 default route, as pasta copies them."""
    out = subprocess.run(["ip", "-4", "-o", "route", "show", "default"], capture_output=True, text=True).stdout
    fields = out.split()
    if "via" not in fields or "dev" not in fields:
        return None
    gateway, dev = fields[fields.index("via") + 1], fields[fields.index("dev") + 1]
    addr = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", dev], capture_output=True, text=True).stdout
    return addr.split()[3].split("/")[0], gateway


# --- helpers attached to a namespace ------------------------------------------------------------

@pytest.mark.parametrize("mode", HELPERS)
def test_attach_configures_interface_and_publishes(mode: str, target: Target) -> None:
    need_helper(mode)
    if mode == "pasta" and host_ipv4_route() is None:
        pytest.skip("pasta copies the host's IPv4 default route and this host has none")
    started = time.perf_counter()
    handle = attach_network(mode, target.pid, parse_publish("127.0.0.1::80"))
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 2, f"attach_network took {elapsed:.3f}s"
        helper_pid = handle.pid
        assert helper_pid is not None and helpers_for(target.pid) == [helper_pid]
        # configured before attach_network returned: no waiting here
        addresses = target.run("ip", "-4", "addr")
        routes = target.run("ip", "-4", "route")
        if mode == "slirp4netns":
            assert handle.info.ip == "10.0.2.100" and handle.info.gateway == "10.0.2.2"
            assert handle.info.dns == ("10.0.2.3",)
            assert "inet 10.0.2.100/24" in addresses and "tap0" in addresses
        else:
            expected = host_ipv4_route()
            assert expected is not None and (handle.info.ip, handle.info.gateway) == expected
            assert f"inet {handle.info.ip}/" in addresses
        assert f"default via {handle.info.gateway}" in routes

        (port,) = handle.ports
        assert port.host_ip == "127.0.0.1" and port.container_port == 80 and port.host_port > 0
        server = target.serve(80)
        assert fetch(port.host_port) == b"hi\n"
        server.wait(timeout=5)
        assert not port_is_free(port.host_port)
    finally:
        handle.stop()
    handle.stop()  # idempotent
    assert handle.pid is None
    assert not os.path.exists(f"/proc/{helper_pid}") or helpers_for(target.pid) == []
    assert helpers_for(target.pid) == []
    assert port_is_free(port.host_port)


@pytest.mark.parametrize("mode", HELPERS)
def test_udp_and_fixed_port(mode: str, target: Target) -> None:
    need_helper(mode)
    with socket.socket() as s, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        s.bind(("127.0.0.1", 0))
        u.bind(("127.0.0.1", 0))
        fixed, udp_port = s.getsockname()[1], u.getsockname()[1]
    # Host-loopback UDP clients get replies only (a) from slirp4netns with host loopback allowed
    # (--disable-host-loopback cannot tell replies from new flows: podman issue 4586) and (b) from
    # Debian 12's pasta when the host and container port numbers are equal; both are warned about.
    ports = [PortMapping("", fixed, 8080), PortMapping("127.0.0.1", udp_port, udp_port, "udp")]
    handle = attach_network(mode, target.pid, ports, allow_host_loopback=mode == "slirp4netns")
    with handle:
        assert handle.ports == tuple(ports) and handle.warnings == ()
        server = target.serve(8080)
        assert fetch(fixed) == b"hi\n"
        server.wait(timeout=5)
        server = target.serve(udp_port, "udp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(5)
            c.sendto(b"there", ("127.0.0.1", udp_port))
            assert c.recvfrom(100)[0] == b"hi there"
        server.wait(timeout=5)
    assert helpers_for(target.pid) == []
    assert port_is_free(fixed) and port_is_free(udp_port, "udp")


def test_udp_limits_are_warned(target: Target) -> None:
    for mode in HELPERS:
        if shutil.which(mode) is None:
            continue
        need_helper(mode)
        with attach_network(mode, target.pid, parse_publish("127.0.0.1::53/udp")) as handle:
            assert any("UDP" in w for w in handle.warnings), handle.warnings
        with attach_network(mode, target.pid, parse_publish("127.0.0.1::53/tcp")) as handle:
            assert handle.warnings == ()


@pytest.mark.parametrize("mode", HELPERS)
def test_taken_port_is_refused(mode: str, target: Target) -> None:
    need_helper(mode)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(NetworkError) as info:
            attach_network(mode, target.pid, [PortMapping("", port, 80)])
        assert info.value.message == f"listen tcp 0.0.0.0:{port}: bind: address already in use"  # podman's
        assert info.value.exit_code == 126 and info.value.hint
        with pytest.raises(NetworkError, match=f"listen tcp 127.0.0.1:{port}: bind: address already in use"):
            attach_network(mode, target.pid, parse_publish(f"127.0.0.1:{port}:80"))
    assert helpers_for(target.pid) == []


@pytest.mark.parametrize("mode", HELPERS)
def test_helper_failure_is_reported(mode: str) -> None:
    need_helper(mode)
    dead = subprocess.Popen(["true"])
    dead.wait()
    with pytest.raises(NetworkError) as info:
        attach_network(mode, dead.pid)
    assert mode in info.value.message and info.value.hint
    assert helpers_for(dead.pid) == []


def test_none_leaves_only_lo(target: Target) -> None:
    handle = attach_network("none", target.pid)
    assert handle.info.mode == "none" and handle.info.ip is None and handle.pid is None
    devices = [line.split(":")[0].strip() for line in Path(f"/proc/{target.pid}/net/dev").read_text().splitlines()[2:]]
    assert devices == ["lo"]
    handle.stop()
    discarded = attach_network("host", target.pid, parse_publish("8080:80"))
    assert discarded.ports == () and discarded.warnings


# --- mode checks --------------------------------------------------------------------------------

def test_check_network_mode_known_and_unknown() -> None:
    check_network_mode("none")
    check_network_mode("host")
    with pytest.raises(NetworkError, match="unsupported network mode 'bridge'") as info:
        check_network_mode("bridge")
    assert info.value.hint and "slirp4netns" in info.value.hint
    assert default_network_mode() in ("slirp4netns", "pasta", "none")


@pytest.mark.skipif(os.getuid() == 0, reason="root opens any device file regardless of its mode")
@pytest.mark.parametrize("mode", HELPERS)
def test_unusable_tun_is_explained(mode: str, tmp_path: Path) -> None:
    need_helper(mode)
    tun = tmp_path / "tun"
    tun.write_text("")
    tun.chmod(0o600)
    os.chmod(tun, 0)
    with pytest.raises(NetworkError) as info:
        check_network_mode(mode, tun_path=str(tun))
    assert info.value.hint and f"sudo chmod 666 {tun}" in info.value.hint
    assert "slirp4netns and pasta need it" in info.value.message
    with pytest.raises(NetworkError, match="does not exist"):
        check_network_mode(mode, tun_path=str(tmp_path / "missing"))
    assert default_network_mode(tun_path=str(tun)) == "none"


def test_missing_helper_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    for mode, package in (("slirp4netns", "slirp4netns"), ("pasta", "passt")):
        if os.access(f"/usr/bin/{mode}", os.X_OK):
            continue  # found through the fixed fallback locations
        with pytest.raises(NetworkError) as info:
            check_network_mode(mode)
        assert info.value.hint and f"apt-get install {package}" in info.value.hint
