"""User networks as records in the store: ``network create``, ``ls``, ``inspect``, ``rm``.

    networks/<name>.json    one network: subnet, gateway, bridge interface, labels (atomic)
    locks/networks.lock     held to create or remove one (names and subnets stay unique)

A network is only a description until a container uses it: its bridge lives in rootlet's network
namespace (``rootlet.runtime.net.netns``) while containers on it run. Subnets are podman's: the
first free ``10.89.N.0/24`` unless ``--subnet`` says otherwise, never overlapping another
network's, a route of this host, or the user-mode helper's own 10.0.2.0/24 in that namespace.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import NetworkNotFound, NetworkUsageError, UsageError
from rootlet.registry.fsutil import atomic_write_json, flocked, read_json
from rootlet.registry.names import is_valid_name
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: Words ``--network`` takes as modes, which therefore cannot name a network.
RESERVED = ("none", "host", "bridge", "private", "default", "slirp4netns", "pasta", "container", "ns", "pod",
            "podman")
#: Where podman (and so rootlet) takes new subnets from: 10.89.0.0/24, 10.89.1.0/24, ...
DEFAULT_POOL = "10.89.0.0/16"
#: The user-mode helper's network inside rootlet's namespace (its tap0): never a user subnet.
HELPER_CIDR = "10.0.2.0/24"
DRIVERS = ("bridge",)
#: The search domain of names on user networks (podman's, so scripts that use it resolve too).
DNS_DOMAIN = "dns.podman"


class NetworkConfig(Record):
    """One user network. ``interface`` is its bridge in rootlet's network namespace."""

    name: str
    id: str
    created: float
    subnet: str
    gateway: str
    interface: str
    driver: str = "bridge"
    internal: bool = False
    labels: dict[str, str] = {}

    @property
    def prefix(self) -> int:
        return int(self.subnet.partition("/")[2])


class NetRequest(Record):
    """What a container asks of one network: extra DNS names, a fixed address."""

    network: str
    aliases: tuple[str, ...] = ()
    ip: str = ""


def check_network_name(name: str) -> str:
    """podman's rule for network names, and none of the words ``--network`` takes as a mode."""
    if not is_valid_name(name) or len(name) > 200:
        raise NetworkUsageError(f"invalid network name {name!r}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*",
                                "use letters, digits, '_', '.' and '-', starting with a letter or digit")
    if name in RESERVED:
        raise NetworkUsageError(f"network name {name!r} is reserved: it is a --network mode",
                                "choose another name")
    return name


def host_routes(path: str = "/proc/net/route") -> list[str]:
    """The IPv4 networks this host routes to directly (``/proc/net/route``, default route excluded)."""
    import socket
    import struct

    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "00000000" and fields[7] == "00000000":
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
        out.append(f"{dest}/{mask}")
    return out


class NetworkStore:
    """The user networks of one store."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.root = os.path.join(store.root, "networks")

    def path(self, name: str) -> str:
        return os.path.join(self.root, name + ".json")

    def names(self) -> list[str]:
        try:
            return sorted(n[:-5] for n in os.listdir(self.root) if n.endswith(".json"))
        except FileNotFoundError:
            return []

    def exists(self, name: str) -> bool:
        return is_valid_name(name) and os.path.exists(self.path(name))

    def config(self, name: str) -> NetworkConfig:
        """The network called ``name``, or whose id is ``name`` (or a unique prefix of it)."""
        if is_valid_name(name):
            doc = read_json(self.path(name), default=None)
            if isinstance(doc, dict):
                return NetworkConfig.from_json(doc)
        hits = [c for c in self.configs() if name and c.id.startswith(name.lower())]
        if len(hits) == 1:
            return hits[0]
        # podman's words: scripts grep for "network not found".
        raise NetworkNotFound(f"unable to find network with name or ID {name}: network not found",
                              "list networks with `rootlet network ls`")

    def configs(self) -> list[NetworkConfig]:
        out = []
        for name in self.names():
            doc = read_json(self.path(name), default=None)
            if isinstance(doc, dict):
                out.append(NetworkConfig.from_json(doc))
        return out

    def create(self, name: str, *, subnet: str | None, gateway: str | None, internal: bool, labels: dict[str, str],
               driver: str = "bridge") -> NetworkConfig:
        """Record a new network (NetworkUsageError for a name or subnet already in use)."""
        import time

        check_network_name(name)
        if driver not in DRIVERS:
            raise NetworkUsageError(f"unsupported network driver {driver!r}",
                                    "rootless rootlet has the bridge driver only (macvlan and ipvlan need root)")
        self.store.ensure()
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        with flocked(self.store.lock_path("networks")):
            existing = self.configs()
            if any(c.name == name for c in existing):
                raise NetworkUsageError(f"network name {name} already used: network already exists",
                                        "choose another name, or remove that network first")
            net = _pick_subnet(subnet, [c.subnet for c in existing])
            cfg = NetworkConfig(name=name, id=os.urandom(32).hex(), created=time.time(), subnet=str(net),
                                gateway=_gateway(net, gateway), interface=_free_interface(existing),
                                internal=internal, labels=dict(labels))
            atomic_write_json(self.path(name), cfg.to_json(), durable=False)
        return cfg

    def remove(self, name: str, users: Callable[[str], Iterable[str]] | None = None) -> NetworkConfig:
        """Remove network ``name`` under the lock; ``users`` (called under it) names what still uses
        it, and any user refuses the removal (NetworkInUse)."""
        from rootlet.registry.errors import NetworkInUse

        cfg = self.config(name)
        with flocked(self.store.lock_path("networks")):
            cfg = self.config(cfg.name)
            using = sorted(users(cfg.name)) if users is not None else []
            if using:
                raise NetworkInUse(f'"{cfg.name}" has associated containers with it: network is being used '
                                   f"({', '.join(using[:5])})",
                                   "remove them first, or use -f to remove them with it")
            os.unlink(self.path(cfg.name))
        return cfg


def _pick_subnet(wanted: str | None, taken: list[str]):  # -> ipaddress.IPv4Network
    import ipaddress

    used = [ipaddress.IPv4Network(s) for s in [*taken, HELPER_CIDR, *host_routes()]]
    if wanted is not None:
        try:
            net = ipaddress.IPv4Network(wanted, strict=False)
        except ValueError:
            raise NetworkUsageError(f"invalid subnet {wanted!r}", "give an IPv4 network, e.g. 10.90.0.0/24") from None
        if net.prefixlen > 30 or net.is_loopback or net.is_multicast or net.prefixlen < 8:
            raise NetworkUsageError(f"invalid subnet {wanted!r}: it must hold container addresses",
                                    "give an IPv4 network from /8 to /30, e.g. 10.90.0.0/24")
        if any(net.overlaps(u) for u in used):
            raise NetworkUsageError(f"subnet {net} is already used on the host or by another config",
                                    "choose a subnet no other network (and no route of this host) overlaps")
        return net
    for candidate in ipaddress.IPv4Network(DEFAULT_POOL).subnets(new_prefix=24):
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetworkUsageError(f"no free subnet left in {DEFAULT_POOL}", "give one with --subnet")


def _gateway(net: object, wanted: str | None) -> str:
    import ipaddress

    assert isinstance(net, ipaddress.IPv4Network)
    if wanted is None:
        return str(net.network_address + 1)
    try:
        gw = ipaddress.IPv4Address(wanted)
    except ValueError:
        raise NetworkUsageError(f"invalid gateway {wanted!r}", "give an IPv4 address in the subnet") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise NetworkUsageError(f"gateway {wanted} is not a host address of subnet {net}",
                                "give an address inside the subnet")
    return str(gw)


def _free_interface(existing: list[NetworkConfig]) -> str:
    """``rootlet1``, ``rootlet2``…: the first bridge name no network has (podman's podman1…)."""
    taken = {c.interface for c in existing}
    n = 1
    while f"rootlet{n}" in taken:
        n += 1
    return f"rootlet{n}"


def inspect_doc(cfg: NetworkConfig) -> dict[str, object]:
    """podman's ``network inspect`` document (netavark's fields, dns on)."""
    doc: dict[str, object] = {
        "name": cfg.name, "id": cfg.id, "driver": cfg.driver, "network_interface": cfg.interface,
        "created": _rfc3339(cfg.created), "subnets": [{"subnet": cfg.subnet, "gateway": cfg.gateway}],
        "ipv6_enabled": False, "internal": cfg.internal, "dns_enabled": True}
    if cfg.labels:
        doc["labels"] = dict(cfg.labels)
    doc["ipam_options"] = {"driver": "host-local"}
    return doc


def _rfc3339(ts: float) -> str:
    import time

    whole = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((ts - whole) * 1e9):09d}Z"


def select_networks(configs: list[NetworkConfig], filters: tuple[str, ...], used: set[str],
                    parse_time: Callable[[str], float]) -> list[NetworkConfig]:
    """``network ls --filter``: name= (regex), id= (prefix), driver=, label=K[=V], until=, dangling=
    (true: no container uses it). One key's values are alternatives; different keys must all match."""
    wanted: dict[str, list[str]] = {}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq or key not in ("name", "id", "driver", "label", "until", "dangling"):
            raise UsageError(f"invalid network filter {item!r}",
                             "use name=, id=, driver=, label=KEY[=VALUE], until=TIME or dangling=true|false")
        wanted.setdefault(key, []).append(value)

    def one(cfg: NetworkConfig, key: str, value: str) -> bool:
        if key == "name":
            import re  # only here: the import costs milliseconds on every command that touches networks

            try:
                return re.search(value, cfg.name) is not None
            except re.error:
                raise UsageError(f"invalid name filter {value!r}: not a regular expression") from None
        if key == "id":
            return cfg.id.startswith(value.lower())
        if key == "driver":
            return cfg.driver == value
        if key == "label":
            k, eq, v = value.partition("=")
            return k in cfg.labels and (not eq or cfg.labels[k] == v)
        if key == "until":
            return cfg.created < parse_time(value)
        if value not in ("true", "false"):
            raise UsageError(f"invalid dangling filter {value!r}", "use dangling=true or dangling=false")
        return (cfg.name not in used) == (value == "true")

    return [c for c in configs if all(any(one(c, k, v) for v in vs) for k, vs in wanted.items())]
