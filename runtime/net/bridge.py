"""Work inside rootlet's network namespace N (``rootlet.runtime.net.netns``): bridges, iptables.

``in_netns`` runs a module-level function in a short-lived child that has entered the holder's
user and network namespaces (and, for ``network connect``, a container's network namespace). The
functions here are what such children run: making and dropping a network's bridge with its
gateway address, its NAT and isolation rules, and the DNAT rules of published ports, all through
iptables-restore (one call per change, without flushing what is there).

The rules: FORWARD drops by default; a bridge of a non-internal network may forward out of tap0
(under MASQUERADE), replies come back (conntrack), DNATed published ports come in; nothing passes
from one bridge to another, so containers on different networks cannot reach each other.
"""

from __future__ import annotations

import contextlib
import os

from rootlet.registry.errors import NetworkError
from rootlet.runtime.linux.netlink import Netlink, Veth
from rootlet.runtime.linux.proc import same_process

BASE_RULES = ("*filter\n:FORWARD DROP [0:0]\n"
              "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
              "-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT\nCOMMIT\n")


def in_netns(holder_pid: int, holder_start: int, func, *args: object, target_pid: int = 0) -> None:  # noqa: ANN001
    """Run ``func(*args)`` in a child in the holder's user and network namespaces (with
    ``target_pid``: in that process's network namespace, the holder's still open as ``args``
    received it); NetworkError with the child's reason when it fails."""
    from rootlet.runtime.linux import syscalls as linux
    from rootlet.runtime.linux.child import as_error, error_pipe, fork_child, read_error, wait_for

    fds = linux.open_namespaces(holder_pid, ("user", "net"))
    target = linux.open_namespaces(target_pid, ("net",)) if target_pid else []
    try:
        if not same_process(holder_pid, holder_start):
            raise NetworkError("rootlet's network namespace holder ended meanwhile", "try again")
        err_r, err_w = error_pipe()

        def body() -> int:
            os.close(err_r)
            linux.join_namespaces(fds[:1] if target else fds)
            if target:
                linux.join_namespaces(target)
                func(*args, fds[-1][0])
            else:
                func(*args)
            return 0

        pid = fork_child(body, err_w)
        os.close(err_w)
        error = read_error(err_r, "configuring rootlet's network namespace failed")
        wait_for(pid)
    finally:
        linux.close_namespaces(fds + target)
    if error is not None:
        raise as_error(error, NetworkError)  # type: ignore[misc]


def iptables(rules: str) -> None:
    """In N: apply iptables-restore ``rules`` without flushing what is there."""
    import subprocess

    from rootlet.runtime.linux.proc import find_program

    if not rules:
        return
    program = find_program("iptables-restore") or next(
        (p for p in ("/usr/sbin/iptables-restore", "/sbin/iptables-restore") if os.access(p, os.X_OK)), None)
    if program is None:
        raise NetworkError("iptables-restore is not installed: user networks need it for their NAT and isolation",
                           "apt-get install iptables")
    proc = subprocess.run([program, "--noflush"], input=rules.encode(), capture_output=True, timeout=30)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise NetworkError(f"iptables-restore failed in rootlet's network namespace: {'; '.join(detail[-3:])}")


def bridge_rules(interface: str, subnet: str, internal: bool, op: str) -> str:
    """A bridge's rules (``op`` -A adds, -D deletes): its containers reach each other (where
    br_netfilter is loaded, bridged frames pass FORWARD too), and out through tap0 under NAT unless
    internal."""
    inside = f"*filter\n{op} FORWARD -i {interface} -o {interface} -j ACCEPT\nCOMMIT\n"
    if internal:
        return inside
    return (inside + f"*filter\n{op} FORWARD -i {interface} -o tap0 -j ACCEPT\nCOMMIT\n"
            f"*nat\n{op} POSTROUTING -s {subnet} -o tap0 -j MASQUERADE\nCOMMIT\n")


def forward_rules(forwards: list[tuple[str, int, str, int]], op: str) -> str:
    """DNAT rules for (protocol, tap0 port, container address, container port) forwards."""
    if not forwards:
        return ""
    lines = [f"{op} PREROUTING -i tap0 -p {proto} --dport {guest} -j DNAT --to-destination {ip}:{port}"
             for proto, guest, ip, port in forwards]
    return "*nat\n" + "\n".join(lines) + "\nCOMMIT\n"


def make_bridge(interface: str, gateway: str, prefix: int, rules: str) -> None:
    """In N: the bridge, up, with its gateway address, and its rules."""
    with Netlink() as nl:
        with contextlib.suppress(FileExistsError):
            nl.add_bridge(interface)
        with contextlib.suppress(FileExistsError):
            nl.add_address(nl.link_index(interface), f"{gateway}/{prefix}")
    iptables(rules)


def drop_bridge(interface: str, rules: str) -> None:
    """In N: the bridge and its rules go (its containers' veths go with it)."""
    drop_link(interface)
    with contextlib.suppress(NetworkError):
        iptables(rules)


def drop_link(interface: str) -> None:
    """In N: remove an interface (a veth's host end: its pair goes with it)."""
    with Netlink() as nl, contextlib.suppress(OSError):
        nl.delete_link(nl.link_index(interface))


def plug_running(veths: list[Veth], holder_net_fd: int) -> None:
    """In a running container's network namespace (``in_netns(..., target_pid=…)``): its veths."""
    from rootlet.runtime.linux.netlink import plug_veths

    plug_veths(veths, holder_net_fd)


def reap_ours(pid: int) -> None:
    """Reap ``pid`` if it is our child (a holder or helper we started and just killed), waiting a
    little for it to die: a killed child must not linger as our zombie. Nothing for other pids."""
    import time

    for _ in range(200):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            return
        if done:
            return
        time.sleep(0.005)
