"""What a container sees of its network: addresses of the user-mode helpers, and the host's DNS.

Shared by the helpers (``rootlet.runtime.net.usermode``) and the /etc files written at create
(``rootlet.runtime.net.etcfiles``), which must agree on them.
"""

from __future__ import annotations

from rootlet.registry.record import Record

# slirp4netns --configure with its default --cidr 10.0.2.0/24.
SLIRP_IP = "10.0.2.100"
SLIRP_GATEWAY = "10.0.2.2"
SLIRP_DNS = "10.0.2.3"
SLIRP_IFNAME = "tap0"
# Address inside the container whose DNS queries pasta forwards to the host's resolver (podman 5
# uses the same link-local address); used when the host only has loopback resolvers.
PASTA_DNS_FORWARD = "169.254.1.1"


class NetworkInfo(Record):
    """What the container sees: its mode, IPv4 address, default gateway and DNS servers."""

    mode: str
    ip: str | None
    gateway: str | None
    dns: tuple[str, ...]


def slirp_addresses(cidr: str | None) -> tuple[str, str, str]:
    """(container, gateway, DNS) addresses slirp4netns gives in ``cidr`` (its default 10.0.2.0/24):
    the network's .100, .2 and .3, as ``slirp4netns --configure --cidr`` assigns them."""
    if not cidr:
        return SLIRP_IP, SLIRP_GATEWAY, SLIRP_DNS
    import ipaddress

    net = ipaddress.IPv4Network(cidr, strict=False)
    return str(net.network_address + 100), str(net.network_address + 2), str(net.network_address + 3)


def is_loopback(address: str) -> bool:
    """Whether a nameserver address is the host's loopback (unreachable from another netns)."""
    return address.startswith("127.") or address in ("::1", "0:0:0:0:0:0:0:1")


def host_address(fib_trie: str = "/proc/net/fib_trie") -> str | None:
    """One of the host's own IPv4 addresses beyond loopback, or None (only loopback, or no /proc).

    ``host.containers.internal`` names it (as in podman): through slirp4netns a connection to any
    of the host's own addresses reaches the host, while its loopback stays closed to containers.
    Read from the kernel's routing trie (its ``/32 host LOCAL`` entries), not through a socket:
    importing the socket module would cost ``create`` several milliseconds.
    """
    try:
        with open(fib_trie, "rb") as f:  # decoded by hand: a text file's ascii codec is a module to load
            text = f.read(1 << 20).decode("ascii", "replace")
    except OSError:
        return None
    previous = ""
    for line in text.splitlines():
        words = line.split()
        if words == ["/32", "host", "LOCAL"]:
            if previous and not previous.startswith("127."):
                return previous
        elif words[:1] == ["|--"] and len(words) == 2:
            previous = words[1]
    return None


def host_resolv(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str], list[str]]:
    """The host's nameservers, search domains and options (empty when unreadable)."""
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return servers, search, options
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) < 2:
            continue
        if fields[0] == "nameserver":
            servers.append(fields[1].split("%", 1)[0] if fields[1].startswith("fe80") else fields[1])
        elif fields[0] in ("search", "domain"):
            search = fields[1:]
        elif fields[0] == "options":
            options += fields[1:]
    return servers, search, options
