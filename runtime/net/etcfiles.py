"""The container's /etc/hosts, /etc/resolv.conf and /etc/hostname, written at create.

They live in the container's directory and are bind-mounted into it at every start, owned by the
container's root (as in podman): ``--add-host``, ``--dns*`` and ``--hostname`` end up here.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import NetworkUsageError
from rootlet.registry.fsutil import atomic_write
from rootlet.runtime.net.addresses import (PASTA_DNS_FORWARD, SLIRP_DNS, SLIRP_GATEWAY, SLIRP_IP, NetworkInfo,
                                           host_resolv, is_loopback)

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Sequence


def _valid_hostname(name: str) -> bool:
    """A host name for /etc/hosts: dot-separated labels of letters, digits, '-' and '_'."""
    if not name or len(name) > 253 or name.startswith("-"):
        return False
    labels = name.rstrip(".").split(".")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
    return all(0 < len(label) <= 63 and set(label) <= allowed for label in labels)


def parse_add_host(spec: str, gateway: str | None) -> tuple[list[str], str]:
    """Parse ``--add-host NAME:IP`` (also ``NAME=IP`` and ``A;B:IP``) into names and an address.

    ``host-gateway`` as the address becomes ``gateway`` (the container's default gateway).
    """
    import ipaddress

    hint = "use --add-host NAME:IP, e.g. --add-host db:10.0.0.5, --add-host v6:::1 or --add-host gw:host-gateway"
    separator = "=" if "=" in spec else ":"
    names_text, found, address_text = spec.partition(separator)
    if not found or not names_text or not address_text:
        raise NetworkUsageError(f"invalid --add-host {spec!r}: expected NAME:IP", hint)
    names = names_text.split(";")
    for name in names:
        if not _valid_hostname(name):
            raise NetworkUsageError(f"invalid --add-host {spec!r}: {name!r} is not a valid host name", hint)
    if address_text == "host-gateway":
        if gateway is None:
            raise NetworkUsageError(f"--add-host {spec!r}: this network mode has no gateway for host-gateway",
                                    "give the address explicitly, or use --network slirp4netns or pasta")
        return names, gateway
    if address_text.startswith("[") and address_text.endswith("]"):
        address_text = address_text[1:-1]
    try:
        return names, str(ipaddress.ip_address(address_text))
    except ValueError:
        raise NetworkUsageError(f"invalid --add-host {spec!r}: {address_text!r} is not an IP address",
                                hint) from None


def write_etc_files(directory: str, *, hostname: str, mode: str, info: NetworkInfo | None,
                    dns: Sequence[str] = (), dns_search: Sequence[str] = (), dns_options: Sequence[str] = (),
                    add_hosts: Sequence[str] = (), host_resolv_conf: str = "/etc/resolv.conf", name: str = "",
                    host_ip: str | None = None) -> dict[str, str]:
    """Write the container's hosts, resolv.conf and hostname into ``directory`` atomically.

    Returns ``{"/etc/hosts": path, "/etc/resolv.conf": path, "/etc/hostname": path}`` for the
    bind mounts. hosts: ``--add-host`` entries first (so they win, as in podman), localhost
    for 127.0.0.1 and ::1, ``host.containers.internal`` (and docker's ``host.docker.internal``)
    for ``host_ip`` when the container can reach the host there, then the container's own
    address (127.0.1.1 without one) with ``hostname`` and the container's ``name``. resolv.conf: ``dns`` when given; else slirp4netns's forwarder 10.0.2.3;
    for pasta the host's nameservers minus loopback ones (unreachable from the container's
    netns), or pasta's DNS forwarder when only loopback ones remain; for host all of the
    host's; for none nothing. ``dns_search`` (``.`` = none) and ``dns_options`` replace the
    host's search and options.
    """
    mode = info.mode if info is not None else mode
    gateway = info.gateway if info is not None else (SLIRP_GATEWAY if mode == "slirp4netns" else None)
    own_ip = info.ip if info is not None and info.ip else (SLIRP_IP if mode == "slirp4netns" else None)

    lines = []
    for spec in add_hosts:
        names, address = parse_add_host(spec, gateway)
        lines.append(f"{address}\t{' '.join(names)}")
    lines += ["127.0.0.1\tlocalhost localhost.localdomain", "::1\tlocalhost localhost.localdomain ip6-localhost ip6-loopback"]
    if host_ip:
        lines.append(f"{host_ip}\thost.containers.internal host.docker.internal")
    names = [hostname] + ([hostname.split(".", 1)[0]] if "." in hostname.strip(".") else [])
    names += [name] if name and name not in names else []
    lines.append(f"{own_ip or '127.0.1.1'}\t{' '.join(names)}")
    hosts = "\n".join(lines) + "\n"

    host_servers, host_search, host_options = host_resolv(host_resolv_conf)
    if dns:
        import ipaddress

        for server in dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise NetworkUsageError(f"invalid --dns {server!r}: not an IP address",
                                        "use --dns 1.1.1.1 (an address, not a name)") from None
        servers = list(dns)
    elif info is not None and info.dns and mode != "host":
        servers = list(info.dns)
    elif mode == "slirp4netns":
        servers = [SLIRP_DNS]
    elif mode == "pasta":
        servers = [s for s in host_servers if not is_loopback(s)] or [PASTA_DNS_FORWARD]
    elif mode == "host":
        servers = host_servers
    else:
        servers = []
    search = [] if list(dns_search) == ["."] else list(dns_search or host_search)
    options = list(dns_options or host_options)
    resolv = [f"nameserver {s}" for s in servers]
    if search:
        resolv.append("search " + " ".join(search))
    if options:
        resolv.append("options " + " ".join(options))
    resolv_text = "\n".join(resolv) + "\n" if resolv else ""

    paths = {"/etc/hosts": os.path.join(directory, "hosts"),
             "/etc/resolv.conf": os.path.join(directory, "resolv.conf"),
             "/etc/hostname": os.path.join(directory, "hostname")}
    atomic_write(paths["/etc/hosts"], hosts.encode(), 0o644, durable=False)
    atomic_write(paths["/etc/resolv.conf"], resolv_text.encode(), 0o644, durable=False)
    atomic_write(paths["/etc/hostname"], (hostname + "\n").encode(), 0o644, durable=False)
    return paths
