"""``--network pasta:OPTIONS``: podman's comma-separated pasta(1) options, checked before use.

podman (4.4 and later) appends whatever follows ``pasta:`` to pasta's command line, split at the
commas: ``pasta:-a,10.0.2.0,-n,24,-g,10.0.2.2,--mtu,1500``, and takes ``--map-gw`` (its own word,
not pasta's) to let the container reach the host through the gateway address. rootlet passes on
the options of the installed pasta (Debian 12's passt 2023-03-09 has them all) that do not clash
with what it sets itself, checks their values here (at create, not when the container starts),
and refuses the others naming the option and why: ports are published with ``-p`` (recorded for
``port`` and ``ps``), the container's DNS is rootlet's /etc/resolv.conf, and pasta's process,
namespaces and logging are rootlet's to run.
"""

from __future__ import annotations

import re

from rootlet.registry.errors import NetworkUsageError

#: Options passed to pasta as given, with what their value must be (None: they take none).
PASSED: dict[str, str | None] = {
    "-4": None, "--ipv4-only": None, "-6": None, "--ipv6-only": None, "--no-tcp": None, "--no-udp": None,
    "--no-icmp": None, "--no-dhcp": None, "--no-ndp": None, "--no-dhcpv6": None, "--no-ra": None,
    "--no-map-gw": None,
    "-a": "address", "--address": "address", "-n": "netmask", "--netmask": "netmask", "-g": "address",
    "--gateway": "address", "-m": "mtu", "--mtu": "mtu", "-o": "address", "--outbound": "address",
    "-I": "name", "--ns-ifname": "name", "-i": "name", "--interface": "name", "--outbound-if4": "name",
    "--outbound-if6": "name", "-M": "mac", "--mac-addr": "mac", "--ns-mac-addr": "mac",
    "-T": "ports", "--tcp-ns": "ports", "-U": "ports", "--udp-ns": "ports",
}
#: podman's own option: the container reaches the host at the gateway address.
MAP_GW = "--map-gw"
_REFUSED = (
    (("-t", "--tcp-ports", "-u", "--udp-ports"),
     "publish ports with -p HOST:CONTAINER (rootlet records them for `port` and `ps`)"),
    (("-D", "--dns", "-S", "--search", "--dns-forward", "--dhcp-dns", "--dhcp-search"),
     "rootlet writes the container's /etc/resolv.conf itself: use --dns, --dns-search and --dns-option"),
    (("-f", "--foreground", "-P", "--pid", "--config-net", "--runas", "--netns", "--userns", "--netns-only",
      "--no-netns-quit", "-q", "--quiet", "-e", "--stderr", "-l", "--log-file", "--log-size", "-d", "--debug",
      "--trace", "-F", "--fd", "-p", "--pcap", "-h", "--help", "--version"),
     "rootlet runs pasta itself and sets its process, namespace and logging options"),
)
#: The key of ``network_options`` holding the options to pass (one per line).
KEY = "pasta_args"
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_PORTS = re.compile(r"^[0-9A-Za-z.:/%,~\-\[\]]+$")
_NAME = re.compile(r"^[^\s/:]{1,15}$")


def _valid(kind: str, value: str) -> bool:
    import ipaddress

    if kind == "address":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
    if kind == "netmask":
        if value.isdigit():
            return int(value) <= 32
        try:
            ipaddress.IPv4Network(f"0.0.0.0/{value}")
        except ValueError:
            return False
        return True
    if kind == "mtu":
        return value.isdigit() and (int(value) == 0 or 68 <= int(value) <= 65520)
    if kind == "mac":
        return bool(_MAC.match(value))
    if kind == "ports":
        return bool(_PORTS.match(value))
    return bool(_NAME.match(value))


_WHAT = {"address": "an IPv4 or IPv6 address", "netmask": "a prefix length or a dotted netmask",
         "mtu": "0 or a number from 68 to 65520", "mac": "a MAC address such as 9a:55:9a:55:9a:55",
         "ports": "a pasta port spec such as 5201 or 8000-8010", "name": "an interface name"}


def parse_pasta_options(text: str) -> dict[str, str]:
    """``network_options`` for ``--network pasta:TEXT``: the options to pass (``KEY``), and
    ``allow_host_loopback`` with ``--map-gw``. NetworkUsageError names the first bad option."""
    items = text.split(",")
    args: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(items):
        item = items[i]
        name, eq, inline = item.partition("=") if item.startswith("--") else (item, "", "")
        i += 1
        if name == MAP_GW and not eq:
            options["allow_host_loopback"] = "true"
            continue
        if name not in PASSED:
            why = next((why for names, why in _REFUSED if name in names), None)
            if why is not None:
                raise NetworkUsageError(f"pasta option {name!r} is not supported by rootlet", why)
            raise NetworkUsageError(f"unknown pasta option {item!r} in --network pasta:{text}",
                                    "rootlet passes these to pasta: " + ", ".join(n for n in PASSED if n.startswith("--"))
                                    + f", and podman's {MAP_GW}; options are separated by commas: pasta:--mtu,1500")
        kind = PASSED[name]
        if kind is None:
            if eq:
                raise NetworkUsageError(f"pasta option {name} takes no value ({item!r})")
            args.append(name)
            continue
        if eq:
            value = inline
        elif i < len(items):
            value = items[i]
            i += 1
        else:
            raise NetworkUsageError(f"pasta option {name} needs a value", f"--network pasta:{name},VALUE")
        if not _valid(kind, value):
            raise NetworkUsageError(f"invalid value {value!r} for pasta option {name}", f"give {_WHAT[kind]}")
        args += [name, value]
    if {"-4", "--ipv4-only"} & set(args) and {"-6", "--ipv6-only"} & set(args):
        raise NetworkUsageError("pasta options --ipv4-only and --ipv6-only exclude each other")
    if args:
        options[KEY] = "\n".join(args)
    return options


def pasta_args(options: dict[str, str]) -> list[str]:
    """The options ``parse_pasta_options`` kept, for pasta's command line."""
    text = options.get(KEY, "")
    return text.split("\n") if text else []
