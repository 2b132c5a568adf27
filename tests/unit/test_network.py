"""``-p`` and ``--add-host`` parsing and the container's /etc files, on real inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rootlet.registry.errors import RootletError, UsageError
from rootlet.registry.errors import NetworkError
from rootlet.runtime.net.addresses import NetworkInfo
from rootlet.runtime.net.etcfiles import parse_add_host, write_etc_files
from rootlet.runtime.net.ports import PortMapping, parse_publish


@pytest.mark.parametrize("spec, expected", [
    ("8080:80", [PortMapping("", 8080, 80)]),
    ("80", [PortMapping("", 0, 80)]),
    ("127.0.0.1:8080:80", [PortMapping("127.0.0.1", 8080, 80)]),
    ("127.0.0.1::80", [PortMapping("127.0.0.1", 0, 80)]),
    ("0.0.0.0:8080:80", [PortMapping("0.0.0.0", 8080, 80)]),
    ("[::1]:8080:80", [PortMapping("::1", 8080, 80)]),
    ("[::]::53/udp", [PortMapping("::", 0, 53, "udp")]),
    ("8080:80/udp", [PortMapping("", 8080, 80, "udp")]),
    ("8080:80/TCP", [PortMapping("", 8080, 80, "tcp")]),
    ("53:53/tcp,udp", [PortMapping("", 53, 53, "tcp"), PortMapping("", 53, 53, "udp")]),
    ("8000-8001:80-81", [PortMapping("", 8000, 80), PortMapping("", 8001, 81)]),
    ("127.0.0.1:8000-8002:90-92/udp",
     [PortMapping("127.0.0.1", 8000 + i, 90 + i, "udp") for i in range(3)]),
    ("80-81", [PortMapping("", 0, 80), PortMapping("", 0, 81)]),
    ("0:80", [PortMapping("", 0, 80)]),
    ("65535:1", [PortMapping("", 65535, 1)]),
])
def test_parse_publish(spec: str, expected: list[PortMapping]) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize("spec, words", [
    ("", "empty"),
    (" 80", "spaces"),
    ("abc", "not a port"),
    ("8080:http", "not a port"),
    ("0", "outside"),
    ("8080:0", "outside"),
    ("70000:80", "outside"),
    ("8080:80/sctp", "sctp"),
    ("8080:80/", "protocol"),
    ("8000-8002:80-81", "differ in length"),
    ("8000-8001:80", "differ in length"),
    ("81-80", "ends before"),
    ("300.1.1.1:8080:80", "not an IP address"),
    ("localhost:8080:80", "not an IP address"),
    (":8080:80", "empty host address"),
    ("::1:8080:80", "brackets"),
    ("[::1:8080:80", "unterminated"),
    ("[::1]:80", "expected"),
    ("1:2:3:4", "too many"),
    ("8080:-80", "not a port"),
    ("８０", "not a port"),
])
def test_parse_publish_rejects(spec: str, words: str) -> None:
    with pytest.raises(NetworkError) as info:
        parse_publish(spec)
    assert isinstance(info.value, UsageError) and isinstance(info.value, RootletError)
    assert words in info.value.message
    assert info.value.hint and "-p 8080:80" in info.value.hint
    assert info.value.exit_code == 125


def test_parse_add_host() -> None:
    assert parse_add_host("db:10.0.0.5", None) == (["db"], "10.0.0.5")
    assert parse_add_host("v6:::1", None) == (["v6"], "::1")
    assert parse_add_host("v6=[2001:db8::1]", None) == (["v6"], "2001:db8::1")
    assert parse_add_host("a.example;b:192.0.2.9", None) == (["a.example", "b"], "192.0.2.9")
    assert parse_add_host("gw:host-gateway", "10.0.2.2") == (["gw"], "10.0.2.2")


@pytest.mark.parametrize("spec", ["db", "db:", ":1.2.3.4", "db:notanip", "bad name:1.2.3.4", "-x:1.2.3.4",
                                  "db:1.2.3.4.5"])
def test_parse_add_host_rejects(spec: str) -> None:
    with pytest.raises(NetworkError) as info:
        parse_add_host(spec, "10.0.2.2")
    assert info.value.hint and "--add-host" in info.value.hint


def test_host_gateway_needs_a_gateway() -> None:
    with pytest.raises(NetworkError, match="host-gateway"):
        parse_add_host("gw:host-gateway", None)


def _read(paths: dict[str, str]) -> tuple[str, str, str]:
    return (Path(paths["/etc/hosts"]).read_text(), Path(paths["/etc/resolv.conf"]).read_text(),
            Path(paths["/etc/hostname"]).read_text())


@pytest.fixture
def host_resolv(tmp_path: Path) -> str:
    """A host resolv.conf with a loopback resolver (systemd-resolved style) and a real one."""
    path = tmp_path / "host-resolv.conf"
    path.write_text("# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\n"
                    "options edns0 trust-ad\n")
    return str(path)


def test_etc_files_slirp4netns(tmp_path: Path, host_resolv: str) -> None:
    info = NetworkInfo("slirp4netns", "10.0.2.100", "10.0.2.2", ("10.0.2.3",))
    paths = write_etc_files(str(tmp_path), hostname="web", mode="slirp4netns", info=info,
                            add_hosts=["db:192.0.2.7", "gw:host-gateway"], host_resolv_conf=host_resolv)
    assert paths == {"/etc/hosts": str(tmp_path / "hosts"), "/etc/resolv.conf": str(tmp_path / "resolv.conf"),
                     "/etc/hostname": str(tmp_path / "hostname")}
    hosts, resolv, hostname = _read(paths)
    lines = hosts.splitlines()
    assert lines[:2] == ["192.0.2.7\tdb", "10.0.2.2\tgw"]
    assert "127.0.0.1\tlocalhost localhost.localdomain" in lines
    assert any(line.startswith("::1\tlocalhost") for line in lines)
    assert "10.0.2.100\tweb" in lines
    assert resolv == "nameserver 10.0.2.3\nsearch corp.example\noptions edns0 trust-ad\n"
    assert hostname == "web\n"
    assert oct((tmp_path / "hosts").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host-resolv.conf", "hostname", "hosts", "resolv.conf"]


def test_etc_files_pasta_skips_loopback_resolvers(tmp_path: Path, host_resolv: str) -> None:
    paths = write_etc_files(str(tmp_path), hostname="box.example.com", mode="pasta", info=None,
                            host_resolv_conf=host_resolv)
    hosts, resolv, _ = _read(paths)
    assert "127.0.1.1\tbox.example.com box" in hosts.splitlines()
    assert resolv.splitlines()[0] == "nameserver 192.0.2.53"
    assert "127.0.0.53" not in resolv
    only_loopback = tmp_path / "lo-resolv.conf"
    only_loopback.write_text("nameserver 127.0.0.53\n")
    _, resolv, _ = _read(write_etc_files(str(tmp_path), hostname="box", mode="pasta", info=None,
                                         host_resolv_conf=str(only_loopback)))
    assert resolv == "nameserver 169.254.1.1\n"


def test_etc_files_pasta_info(tmp_path: Path, host_resolv: str) -> None:
    info = NetworkInfo("pasta", "192.0.2.2", "192.0.2.1", ("192.0.2.53",))
    hosts, resolv, _ = _read(write_etc_files(str(tmp_path), hostname="c1", mode="pasta", info=info,
                                             add_hosts=["h:host-gateway"], host_resolv_conf=host_resolv))
    assert "192.0.2.2\tc1" in hosts.splitlines() and "192.0.2.1\th" in hosts.splitlines()
    assert resolv.startswith("nameserver 192.0.2.53\n")


def test_etc_files_host_keeps_loopback_resolvers(tmp_path: Path, host_resolv: str) -> None:
    _, resolv, _ = _read(write_etc_files(str(tmp_path), hostname="h", mode="host", info=None,
                                         host_resolv_conf=host_resolv))
    assert resolv.splitlines()[:2] == ["nameserver 127.0.0.53", "nameserver 192.0.2.53"]


def test_etc_files_none(tmp_path: Path, host_resolv: str) -> None:
    hosts, resolv, _ = _read(write_etc_files(str(tmp_path), hostname="iso", mode="none",
                                             info=NetworkInfo("none", None, None, ()),
                                             host_resolv_conf=host_resolv))
    assert "127.0.1.1\tiso" in hosts.splitlines()
    assert "nameserver" not in resolv
    with pytest.raises(NetworkError, match="host-gateway"):
        write_etc_files(str(tmp_path), hostname="iso", mode="none", info=None, add_hosts=["x:host-gateway"],
                        host_resolv_conf=host_resolv)


def test_etc_files_dns_options(tmp_path: Path, host_resolv: str) -> None:
    _, resolv, _ = _read(write_etc_files(
        str(tmp_path), hostname="h", mode="slirp4netns", info=None, dns=["1.1.1.1", "2606:4700::1111"],
        dns_search=["a.example", "b.example"], dns_options=["ndots:2"], host_resolv_conf=host_resolv))
    assert resolv == ("nameserver 1.1.1.1\nnameserver 2606:4700::1111\nsearch a.example b.example\n"
                      "options ndots:2\n")
    _, resolv, _ = _read(write_etc_files(str(tmp_path), hostname="h", mode="slirp4netns", info=None,
                                         dns_search=["."], host_resolv_conf=host_resolv))
    assert "search" not in resolv
    with pytest.raises(NetworkError, match="--dns"):
        write_etc_files(str(tmp_path), hostname="h", mode="slirp4netns", info=None, dns=["dns.google"],
                        host_resolv_conf=host_resolv)


_FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.0
           /16 link UNICAST
     +-- 192.0.2.0/24 2 0 2
        |-- 192.0.2.0
           /24 link UNICAST
        |-- 192.0.2.2
           /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
"""


def test_host_address_is_the_first_local_address_beyond_loopback(tmp_path: Path) -> None:
    """From the kernel's routing trie: a /32 host LOCAL entry that is not 127/8 (a network
    address such as 172.17.0.0/16 is no host address)."""
    from rootlet.runtime.net.addresses import host_address

    trie = tmp_path / "fib_trie"
    trie.write_text(_FIB_TRIE)
    assert host_address(str(trie)) == "192.0.2.2"
    trie.write_text(_FIB_TRIE.split("     +-- 172.17")[0])
    assert host_address(str(trie)) is None                      # loopback only
    assert host_address(str(tmp_path / "absent")) is None
