"""User networks' pure parts: subnets and names (runtime/net/networks.py), the DNS responder over
real UDP sockets on loopback (runtime/net/dns.py), healthcheck flags (runtime/container/health.py),
and attach's detach keys (cli/attach.py)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, RR, DNSRecord

from rootlet.cli.attach import TerminalClient, detach_sequence
from rootlet.registry.errors import NetworkUsageError, UsageError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.health import health_config, parse_duration
from rootlet.runtime.container.options import RunOptions
from rootlet.runtime.net import dns
from rootlet.runtime.net.networks import NetworkStore, check_network_name, select_networks


def test_subnets_are_podmans_and_never_overlap(tmp_path: Path) -> None:
    nets = NetworkStore(ImageStore(str(tmp_path)))
    a = nets.create("a", subnet=None, gateway=None, internal=False, labels={})
    b = nets.create("b", subnet=None, gateway=None, internal=True, labels={"k": "v"})
    assert (a.subnet, a.gateway, a.interface) == ("10.89.0.0/24", "10.89.0.1", "rootlet1")
    assert (b.subnet, b.interface) == ("10.89.1.0/24", "rootlet2")
    c = nets.create("c", subnet="10.95.0.0/16", gateway="10.95.3.4", internal=False, labels={})
    assert c.gateway == "10.95.3.4"
    for subnet in ("10.89.1.128/25", "10.0.2.0/24", "10.95.7.0/24"):
        with pytest.raises(NetworkUsageError, match="already used"):
            nets.create("x", subnet=subnet, gateway=None, internal=False, labels={})
    with pytest.raises(NetworkUsageError, match="already exists"):
        nets.create("a", subnet=None, gateway=None, internal=False, labels={})
    with pytest.raises(NetworkUsageError, match="not a host address"):
        nets.create("y", subnet="10.96.0.0/24", gateway="10.96.0.255", internal=False, labels={})
    assert nets.config(a.id[:10]).name == "a"
    assert [n.name for n in select_networks(nets.configs(), ("label=k",), set(), float)] == ["b"]
    assert [n.name for n in select_networks(nets.configs(), ("dangling=false",), {"c"}, float)] == ["c"]
    with pytest.raises(UsageError, match="invalid network filter"):
        select_networks(nets.configs(), ("colour=red",), set(), float)


@pytest.mark.parametrize("name", ["", "-x", "host", "none", "a/b", "x" * 201])
def test_bad_network_names(name: str) -> None:
    with pytest.raises(NetworkUsageError):
        check_network_name(name)


def _state(tmp_path: Path, internal: bool = False) -> str:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({
        "bridges": [{"network": "n", "subnet": "127.0.0.0/8", "internal": internal},
                    {"network": "other", "subnet": "10.89.5.0/24"}],
        "attachments": [{"cid": "ab" * 32, "name": "web", "network": "n", "ip": "10.89.0.7", "aliases": ["www"]},
                        {"cid": "cd" * 32, "name": "secret", "network": "other", "ip": "10.89.5.2"}]}))
    return str(path)


def _ask(responder: dns.Responder, server: socket.socket, client: socket.socket, name: str,
         qtype: str = "A") -> DNSRecord | None:
    client.sendto(DNSRecord.question(name, qtype).pack(), server.getsockname())
    responder._query(server, 0.0)  # noqa: SLF001 - one turn of the loop
    client.settimeout(0.5)
    try:
        return DNSRecord.parse(client.recv(4096))
    except TimeoutError:
        return None


@pytest.fixture
def sockets():  # noqa: ANN201
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 0))
    yield server, client, upstream
    for s in (server, client, upstream):
        s.close()


def test_names_of_the_askers_network_are_answered_and_no_others(tmp_path: Path, sockets) -> None:
    server, client, upstream = sockets
    responder = dns.Responder(_state(tmp_path, internal=True), upstream.getsockname())
    for name in ("web", "WWW.", "web.dns.podman", "abababababab"):
        answer = _ask(responder, server, client, name)
        assert answer is not None and [str(r.rdata) for r in answer.rr] == ["10.89.0.7"], name
    empty = _ask(responder, server, client, "web", "AAAA")
    assert empty is not None and empty.header.rcode == RCODE.NOERROR and not empty.rr
    hidden = _ask(responder, server, client, "secret")  # on another network: unknown here
    assert hidden is not None and hidden.header.rcode == RCODE.NXDOMAIN


def test_other_names_are_forwarded_and_a_flood_stays_bounded(tmp_path: Path, sockets) -> None:
    server, client, upstream = sockets
    responder = dns.Responder(_state(tmp_path), upstream.getsockname())
    assert _ask(responder, server, client, "example.invalid") is None  # forwarded, not answered yet
    query, _ = upstream.recvfrom(4096)
    reply = DNSRecord.parse(query).reply()
    reply.add_answer(*RR.fromZone("example.invalid. 60 A 192.0.2.1"))
    upstream.sendto(reply.pack(), responder.up.getsockname())
    responder._answer(server)  # noqa: SLF001
    relayed = DNSRecord.parse(client.recv(4096))
    assert relayed.q.qname == "example.invalid." and relayed.q.qtype == QTYPE.A and relayed.rr
    for i in range(dns.MAX_PER_CLIENT * 3):
        client.sendto(DNSRecord.question(f"n{i}.invalid").pack(), server.getsockname())
        responder._query(server, 0.0)  # noqa: SLF001
        client.sendto(os.urandom(7), server.getsockname())
        responder._query(server, 0.0)  # noqa: SLF001 - garbage is dropped, not fatal
    assert len(responder.pending) == dns.MAX_PER_CLIENT


def test_healthcheck_flags_and_the_images_check() -> None:
    image = {"Healthcheck": {"Test": ["CMD-SHELL", "curl -f x"], "Interval": 5_000_000_000, "Retries": 7}}
    hc = health_config(RunOptions(image="i"), image)
    assert hc is not None and (hc.test, hc.interval, hc.retries, hc.timeout) == \
        (["CMD-SHELL", "curl -f x"], 5_000_000_000, 7, 30_000_000_000)
    hc = health_config(RunOptions(image="i", health_cmd='["true", "x"]', health_interval="1m30s"), image)
    assert hc is not None and (hc.test, hc.interval, hc.retries) == (["CMD", "true", "x"], 90_000_000_000, 7)
    assert health_config(RunOptions(image="i", no_healthcheck=True), image) is None
    assert health_config(RunOptions(image="i", health_cmd="none"), image) is None
    assert health_config(RunOptions(image="i"), {"Healthcheck": {"Test": ["NONE"]}}) is None
    off = health_config(RunOptions(image="i", health_cmd="true", health_interval="disable"), {})
    assert off is not None and off.interval == 0
    assert parse_duration("500ms", "x") == 500_000_000 and parse_duration("0", "x") == 0
    for bad in ("5", "1x", "s", ""):
        with pytest.raises(UsageError):
            parse_duration(bad, "--health-timeout")


def test_detach_keys_are_held_back_until_they_decide() -> None:
    assert detach_sequence("ctrl-p,ctrl-q") == b"\x10\x11" and detach_sequence("a,ctrl-@") == b"a\x00"
    assert detach_sequence("") == b""
    with pytest.raises(UsageError):
        detach_sequence("ctrl-!")
    r, w = os.pipe()
    client = TerminalClient(b"\x10\x11")
    feed = [b"ab\x10", b"c\x10", b"\x11"]
    seen = []
    for chunk in feed:
        os.write(w, chunk)
        saved = os.dup(0)
        os.dup2(r, 0)
        try:
            seen.append(client.read_input())
        finally:
            os.dup2(saved, 0)
            os.close(saved)
    os.close(r)
    os.close(w)
    assert seen == [b"ab", b"\x10c", None] and client.detached
