"""Published ports: ``-p`` parsed as docker and podman parse it, and host ports checked free.

A rootless container's ports are published by its user-mode helper (``rootlet.runtime.net
.usermode``): slirp4netns through its API socket, pasta by listening itself. Both would fail late
and vaguely on a port in use, so ``reserve_ports`` binds each one first, says which port is taken
(in podman 4.3's words, ``listen tcp 0.0.0.0:8080: bind: address already in use``, exit 126 as
its ``run``) or privileged, and picks free ports for ``-p CONTAINER_PORT``.
"""

from __future__ import annotations

from rootlet.registry.errors import NetworkError, NetworkUsageError
from rootlet.registry.record import Record

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Sequence


class PortMapping(Record):
    """One published port: ``host_ip:host_port`` on the host → ``container_port`` inside.

    ``host_ip`` "" means all host addresses (0.0.0.0, and :: for pasta), as docker does;
    ``host_port`` 0 means "pick a free port", and attach_network reports the one it picked.
    """

    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"


_PUBLISH_HINT = ("use [[HOST_IP:][HOST_PORT]:]CONTAINER_PORT[/tcp|udp], e.g. -p 8080:80, "
                 "-p 127.0.0.1:8080:80/udp, -p 8000-8001:80-81")


def _bad_publish(spec: str, why: str) -> NetworkUsageError:
    """The error for an unusable ``-p`` value."""
    return NetworkUsageError(f"invalid port mapping {spec!r}: {why}", _PUBLISH_HINT)


def _port_range(spec: str, text: str, what: str, allow_zero: bool) -> tuple[int, int]:
    """Parse "N" or "N-M" into an inclusive range of valid port numbers."""
    low_text, dash, high_text = text.partition("-")
    bounds = []
    for part in (low_text, high_text) if dash else (low_text,):
        if not part.isdigit() or not part.isascii():
            raise _bad_publish(spec, f"{what} {text!r} is not a port number or range")
        bounds.append(int(part))
    low, high = bounds[0], bounds[-1]
    if high < low:
        raise _bad_publish(spec, f"{what} range {text!r} ends before it starts")
    smallest = 0 if allow_zero and not dash else 1
    if low < smallest or high > 65535:
        raise _bad_publish(spec, f"{what} {text!r} is outside 1-65535")
    return low, high


def _host_ip(spec: str, text: str) -> str:
    """Validate the host address of a ``-p`` value ("" stays "" = all addresses)."""
    if text == "":
        return ""
    import ipaddress

    bracketed = text.startswith("[") and text.endswith("]")
    try:
        address = ipaddress.ip_address(text[1:-1] if bracketed else text)
    except ValueError:
        raise _bad_publish(spec, f"{text!r} is not an IP address") from None
    if address.version == 6 and not bracketed:
        raise _bad_publish(spec, "write an IPv6 host address in brackets, e.g. [::1]:8080:80")
    return str(address)


def parse_publish(spec: str) -> list[PortMapping]:
    """Parse one docker/podman ``-p`` value into port mappings, one per port and protocol.

    Forms: ``80`` (random host port), ``8080:80``, ``127.0.0.1:8080:80``, ``127.0.0.1::80``,
    ``[::1]:8080:80``, ``8080:80/udp``, ``80/tcp,udp`` and ranges ``8000-8001:80-81`` (host
    and container ranges of equal length, or a container range alone for random host ports).
    Anything else raises NetworkUsageError with the accepted syntax as hint.
    """
    if not spec or spec != spec.strip():
        raise _bad_publish(spec, "empty or surrounded by spaces")
    body, slash, protos = spec.partition("/")
    protocols = protos.lower().split(",") if slash else ["tcp"]
    for proto in protocols:
        if proto not in ("tcp", "udp"):
            raise _bad_publish(spec, f"protocol {proto!r} is not supported (tcp or udp)")
    if body.startswith("["):
        close = body.find("]")
        if close < 0 or body[close + 1:close + 2] != ":":
            raise _bad_publish(spec, "unterminated IPv6 address")
        ip_text, rest = body[:close + 1], body[close + 2:]
        parts = rest.split(":")
        if len(parts) != 2:
            raise _bad_publish(spec, "expected [IP]:HOST_PORT:CONTAINER_PORT")
        host_text, ctr_text = parts
    else:
        parts = body.split(":")
        if len(parts) == 1:
            ip_text, host_text, ctr_text = "", "", parts[0]
        elif len(parts) == 2:
            ip_text, (host_text, ctr_text) = "", parts
        elif len(parts) == 3:
            ip_text, host_text, ctr_text = parts
            if not ip_text:
                raise _bad_publish(spec, "empty host address before the first ':'")
        else:
            raise _bad_publish(spec, "too many ':' (write an IPv6 host address in brackets)")
    host_ip = _host_ip(spec, ip_text)
    ctr_low, ctr_high = _port_range(spec, ctr_text, "container port", allow_zero=False)
    count = ctr_high - ctr_low + 1
    if host_text == "":
        host_ports = [0] * count
    else:
        host_low, host_high = _port_range(spec, host_text, "host port", allow_zero=True)
        if host_high - host_low + 1 != count:
            raise _bad_publish(spec, "the host and container port ranges differ in length")
        host_ports = [0] * count if host_low == host_high == 0 else list(range(host_low, host_high + 1))
    return [PortMapping(host_ip, host_port, ctr_low + i, proto)
            for proto in dict.fromkeys(protocols)
            for i, host_port in enumerate(host_ports)]


def reserve_ports(ports: Sequence[PortMapping]) -> tuple[PortMapping, ...]:
    """Check every requested host port is free and fill in ports for host_port 0.

    Binds a socket like the helper will (SO_REUSEADDR, so TIME_WAIT leftovers do not count)
    and closes it again; the helper binds it a few milliseconds later.
    """
    if not ports:
        return ()
    import errno
    import socket

    result: list[PortMapping] = []
    seen: set[tuple[str, int, str]] = set()
    for port in ports:
        ip = port.host_ip or "0.0.0.0"
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        kind = socket.SOCK_DGRAM if port.protocol == "udp" else socket.SOCK_STREAM
        while True:
            with socket.socket(family, kind) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((ip, port.host_port))
                    if kind == socket.SOCK_STREAM:
                        s.listen(1)
                except OSError as e:
                    shown = f"[{ip}]" if family == socket.AF_INET6 else ip
                    if e.errno == errno.EADDRINUSE:
                        # podman's words (Go's net error) and its exit status for ``run`` (126: the
                        # container could not be started), so scripts that grep for them match.
                        raise NetworkError(
                            f"listen {port.protocol} {shown}:{port.host_port}: bind: address already in use",
                            f"port {port.host_port} is taken: publish on another host port "
                            f"(-p OTHER:{port.container_port}) or stop what listens there "
                            f"(ss -lnp 'sport = :{port.host_port}')", exit_code=126) from None
                    if e.errno == errno.EACCES:
                        raise NetworkError(
                            f"cannot publish port {port.host_port}: ports below "
                            f"{_unprivileged_port_start()} are privileged",
                            f"publish on a port >= 1024 (-p 8080:{port.container_port}), or "
                            f"sudo sysctl -w net.ipv4.ip_unprivileged_port_start={port.host_port}") from None
                    if e.errno == errno.EADDRNOTAVAIL:
                        raise NetworkError(f"cannot publish on {shown}: no such address on this host",
                                           "use an address of this host, or leave it out for all") from None
                    raise NetworkError(f"cannot publish on {shown}:{port.host_port}: {e.strerror}") from None
                chosen = s.getsockname()[1]
            key = (ip, chosen, port.protocol)
            if key not in seen:
                break
            if port.host_port:
                raise NetworkUsageError(f"host port {chosen}/{port.protocol} on {ip} is published twice",
                                        "give each -p a different host port")
        seen.add(key)
        result.append(PortMapping(port.host_ip, chosen, port.container_port, port.protocol))
    return tuple(result)


def _unprivileged_port_start() -> int:
    """The lowest port an unprivileged user may bind (net.ipv4.ip_unprivileged_port_start)."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024
