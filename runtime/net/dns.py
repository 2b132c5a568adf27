"""The DNS responder of user networks (what aardvark-dns is to podman), run by the netns holder.

It listens on UDP port 53 of every address of rootlet's network namespace, so each bridge's
gateway (the ``nameserver`` of the containers on it) reaches it. A query is answered from the
network the asking address belongs to: the names of the containers attached to that network
(their names, ``--network-alias`` aliases and short ids, also under the ``dns.podman`` search
domain), so containers on another network never learn them. Other names are forwarded to the
user-mode helper's resolver (10.0.2.3, which asks the host's), except on ``--internal`` networks,
which get NXDOMAIN. The names come from the netns state file (``rootlet.runtime.net.netns``),
re-read whenever it changes.

The wire format is dnslib's (a maintained DNS library) rather than a hand-written one. A flood of
queries costs bounded memory: at most ``MAX_PENDING`` forwarded queries wait (``MAX_PER_CLIENT``
from one address), each for ``FORWARD_TIMEOUT`` seconds; beyond that queries are dropped, as an
overloaded resolver does.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    import socket

UPSTREAM = ("10.0.2.3", 53)
MAX_PENDING = 512
MAX_PER_CLIENT = 64
FORWARD_TIMEOUT = 5.0
TTL = 60
DOMAIN = "dns.podman"


class Names:
    """The names of each network, from the netns state file, reloaded when it changes."""

    def __init__(self, state_path: str) -> None:
        self.path = state_path
        self.stamp: tuple[int, int, int] | None = None
        self.networks: list[tuple[object, bool, dict[str, list[str]]]] = []  # (subnet, internal, names)

    def refresh(self) -> None:
        import ipaddress
        import json

        try:
            st = os.stat(self.path)
        except OSError:
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read(16 << 20))
        except (OSError, ValueError):
            return
        self.stamp = stamp
        networks = []
        for bridge in doc.get("bridges") or ():
            names: dict[str, list[str]] = {}
            for att in doc.get("attachments") or ():
                if att.get("network") != bridge.get("network"):
                    continue
                for name in [att.get("name"), *(att.get("aliases") or ()), str(att.get("cid", ""))[:12]]:
                    if name:
                        names.setdefault(str(name).lower(), []).append(str(att.get("ip")))
            try:
                networks.append((ipaddress.IPv4Network(bridge["subnet"]), bool(bridge.get("internal")), names))
            except (KeyError, ValueError):
                continue
        self.networks = networks

    def lookup(self, source: str, name: str) -> tuple[bool, bool, list[str]] | None:
        """(network found, internal, addresses) for ``name`` asked from ``source``; None when the
        source is on no user network."""
        import ipaddress

        try:
            address = ipaddress.IPv4Address(source)
        except ValueError:
            return None
        name = name.lower().rstrip(".")
        if name.endswith("." + DOMAIN):
            name = name[:-len(DOMAIN) - 1]
        for subnet, internal, names in self.networks:
            if address in subnet:  # type: ignore[operator]
                return True, internal, names.get(name, [])
        return None


class Responder:
    """The query loop: ``serve(sock)`` until the process ends."""

    def __init__(self, state_path: str, upstream: tuple[str, int] = UPSTREAM) -> None:
        import socket

        self.names = Names(state_path)
        self.upstream = upstream
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.up.bind(("0.0.0.0", 0))
        self.pending: dict[int, tuple[tuple[str, int], int, float]] = {}  # upstream id → (client, its id, deadline)

    def serve(self, sock: socket.socket) -> None:
        import select

        while True:
            ready, _, _ = select.select([sock, self.up], [], [], 1.0)
            now = time.monotonic()
            self.pending = {k: v for k, v in self.pending.items() if v[2] > now}
            if sock in ready:
                self._query(sock, now)
            if self.up in ready:
                self._answer(sock)

    def _query(self, sock: socket.socket, now: float) -> None:
        from dnslib import QTYPE, RCODE, RR, A, DNSRecord

        try:
            data, client = sock.recvfrom(4096)
            query = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - a malformed packet is dropped, never the responder
            return
        if query.header.qr or not query.questions:
            return
        self.names.refresh()
        question = query.q
        found = self.names.lookup(client[0], str(question.qname))
        reply = query.reply()
        if found is None:
            reply.header.rcode = RCODE.REFUSED
        elif found[2]:
            if question.qtype in (QTYPE.A, QTYPE.ANY):
                for ip in found[2]:
                    reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
            # AAAA and the rest: the name exists, without records of that type (NOERROR, empty)
        elif found[1]:
            reply.header.rcode = RCODE.NXDOMAIN  # an internal network reaches no other names
        else:
            self._forward(data, client, query.header.id, now)
            return
        try:
            sock.sendto(reply.pack(), client)
        except OSError:
            pass

    def _forward(self, data: bytes, client: tuple[str, int], client_id: int, now: float) -> None:
        if len(self.pending) >= MAX_PENDING or sum(1 for v in self.pending.values() if v[0][0] == client[0]) \
                >= MAX_PER_CLIENT:
            return  # overloaded: dropped, the client retries or gives up
        for _ in range(8):
            new_id = int.from_bytes(os.urandom(2), "big")
            if new_id not in self.pending:
                break
        else:
            return
        self.pending[new_id] = (client, client_id, now + FORWARD_TIMEOUT)
        try:
            self.up.sendto(new_id.to_bytes(2, "big") + data[2:], self.upstream)
        except OSError:
            del self.pending[new_id]

    def _answer(self, sock: socket.socket) -> None:
        try:
            data, source = self.up.recvfrom(65535)
        except OSError:
            return
        if source[0] != self.upstream[0] or len(data) < 12:
            return
        entry = self.pending.pop(int.from_bytes(data[:2], "big"), None)
        if entry is None:
            return
        client, client_id, _ = entry
        try:
            sock.sendto(client_id.to_bytes(2, "big") + data[2:], client)
        except OSError:
            pass


def serve_dns(state_path: str, sock: socket.socket) -> None:
    """Answer queries on ``sock`` (bound to port 53) for the names in ``state_path``; never returns."""
    Responder(state_path).serve(sock)
