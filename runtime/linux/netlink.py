"""rtnetlink, the few requests a rootless bridge network needs: bridges, veth pairs, addresses, routes.

A user network (``rootlet.runtime.net.netns``) is a bridge in a network namespace of rootlet's own
with one veth pair per container. The pairs are made on every container start, by the container's
keeper, so the calls must be cheap: pyroute2 costs about 170 ms to import, ``ip`` a fork and exec
per step. These are the kernel's documented wire structures (``linux/netlink.h``,
``linux/rtnetlink.h``, ``linux/if_link.h``, ``linux/veth.h``) packed with ``struct``, over the
builtin ``_socket`` module (the ``socket`` module costs milliseconds to import).

A ``Netlink`` talks to the namespace its socket was made in, whatever namespace its user is in
later; ``Netlink.in_netns`` makes one in another namespace (the caller needs CAP_SYS_ADMIN over it).
Every request asks for the kernel's acknowledgement, and a refusal is an ``OSError`` with its errno.
"""

from __future__ import annotations

import os
import struct

from rootlet.registry.record import Record
from rootlet.runtime.linux import syscalls as linux

AF_NETLINK = 16
AF_INET = 2
SOCK_RAW = 3
SOCK_CLOEXEC = 0o2000000
NETLINK_ROUTE = 0

NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 18, 20, 24
IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5
IFF_UP = 1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=IHHII")       # nlmsghdr: length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")      # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")       # ifaddrmsg: family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")    # rtmsg: family, dst/src length, tos, table, protocol, scope, type, flags


def _attr(kind: int, payload: bytes) -> bytes:
    """One rtattr (length, type, payload), padded to 4 bytes."""
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _ipv4(address: str) -> bytes:
    parts = address.split(".")
    if len(parts) != 4:
        raise ValueError(f"not an IPv4 address: {address!r}")
    return bytes(int(p) for p in parts)


class Veth(Record):
    """One veth pair to make for a container: ``ifname`` inside it (``eth0``) with ``address``
    (``IP/PREFIX``) and, unless ``gateway`` is empty, the default route through it; ``host_ifname``
    in the network's namespace, enslaved to ``bridge``."""

    ifname: str
    host_ifname: str
    bridge: str
    address: str
    gateway: str = ""
    mtu: int = 1500


class Netlink:
    """An rtnetlink socket in one network namespace (see the module doc)."""

    def __init__(self) -> None:
        import _socket

        self.sock = _socket.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def in_netns(cls, netns_fd: int) -> Netlink:
        """A socket in the namespace ``netns_fd`` refers to; the caller stays in its own."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(netns_fd, linux.CLONE_NEWNET)
            try:
                return cls()
            finally:
                linux.setns(own, linux.CLONE_NEWNET)
        finally:
            os.close(own)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes) -> bytes:
        """Send one request and return the kernel's answer message (its payload), or b"" for a bare
        acknowledgement; a refusal raises OSError with the kernel's errno."""
        self.seq += 1
        self.sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
                       + body)
        answer = b""
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, msg_type, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise OSError(71, "malformed netlink answer")  # EPROTO
                payload = data[offset + _HEADER.size:offset + length]
                offset += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if msg_type == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", payload)[0]
                    if error:
                        raise OSError(error, os.strerror(error))
                    return answer
                answer = payload

    # --- links -----------------------------------------------------------------------------------

    def link_index(self, name: str) -> int:
        """The index of interface ``name`` (OSError ENODEV when there is none)."""
        answer = self.request(RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name)))
        if len(answer) < _IFINFO.size:
            raise OSError(19, f"no interface {name}")
        return _IFINFO.unpack_from(answer)[2]

    def add_bridge(self, name: str, mtu: int = 1500) -> None:
        """Create bridge ``name``, up (OSError EEXIST when it exists)."""
        info = _attr(IFLA_INFO_KIND, b"bridge")
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, _name(name))
                     + _attr(IFLA_MTU, struct.pack("=I", mtu)) + _attr(IFLA_LINKINFO, info))

    def add_veth(self, name: str, master: int, peer: str, peer_netns_fd: int, mtu: int = 1500) -> None:
        """Create veth ``name`` here, up and enslaved to interface ``master``, with its peer
        ``peer`` (down: the kernel brings the peer up before it is paired, which fails with ENOTCONN)
        in the namespace ``peer_netns_fd`` refers to."""
        peer_msg = _IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(peer)) \
            + _attr(IFLA_MTU, struct.pack("=I", mtu)) + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
        info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, _name(name))
                     + _attr(IFLA_MTU, struct.pack("=I", mtu)) + _attr(IFLA_MASTER, struct.pack("=I", master))
                     + _attr(IFLA_LINKINFO, info))

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))

    def delete_link(self, index: int) -> None:
        self.request(RTM_DELLINK, 0, _IFINFO.pack(0, 0, index, 0, 0))

    # --- addresses and routes --------------------------------------------------------------------

    def add_address(self, index: int, cidr: str) -> None:
        """Give interface ``index`` the IPv4 address ``IP/PREFIX``."""
        ip, _, prefix = cidr.partition("/")
        raw = _ipv4(ip)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                     _IFADDR.pack(AF_INET, int(prefix or 32), 0, RT_SCOPE_UNIVERSE, index)
                     + _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw))

    def add_default_route(self, gateway: str, index: int) -> None:
        """The IPv4 default route through ``gateway`` on interface ``index``."""
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                     _RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                     + _attr(RTA_GATEWAY, _ipv4(gateway)) + _attr(RTA_OIF, struct.pack("=I", index)))


def plug_veths(veths: tuple[Veth, ...] | list[Veth], network_netns_fd: int) -> None:
    """Connect the calling process's network namespace to bridges in the namespace
    ``network_netns_fd`` refers to: one veth pair per ``veths`` entry, addressed and routed.

    The caller needs CAP_NET_ADMIN and CAP_SYS_ADMIN over both namespaces: it runs in the user
    namespace that owns them (a container's keeper, a pod's infra process, a repair helper).
    """
    if not veths:
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Netlink.in_netns(network_netns_fd) as outside, Netlink() as inside:
            for veth in veths:
                outside.add_veth(veth.host_ifname, outside.link_index(veth.bridge), veth.ifname, own, veth.mtu)
                index = inside.link_index(veth.ifname)
                inside.add_address(index, veth.address)
                inside.set_up(index)
                if veth.gateway:
                    inside.add_default_route(veth.gateway, index)
    finally:
        os.close(own)
