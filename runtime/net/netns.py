"""rootlet's network namespace for user networks: podman's rootless netns, without a daemon.

    holder (rootlet-netns)      a user namespace U and a network namespace N, DNS on N's :53
      └ N: tap0 ← slirp4netns (10.0.2.100/24, default route; it ends with the holder)
           rootlet1 (bridge of network A, its gateway 10.89.0.1/24) ── vethXXXX ═ eth0 of a container
           rootlet2 (bridge of network B) …, iptables: NAT out of tap0, nothing between bridges

A container on a user network joins U (its keeper enters it instead of making a user namespace of
its own: ``RuntimeSpec.join_ns``), gets a network namespace of its own in it, and its keeper makes
the veth pair into the network's bridge before the command runs (``rootlet.runtime.linux.netlink
.plug_veths``). Outbound traffic leaves through the one slirp4netns of N; a published port is a
slirp4netns forward to N (``add_hostfwd``) and a DNAT rule there to the container's address.

State is in ``netns/state.json`` (``NetnsState``: holder and helper by pid and start time, the
bridges made, each container attached with the process that owns it, each forward), changed under
``locks/netns.lock`` only (no network I/O under it); the holder reads it to answer DNS. The first
container starts the holder, the last one out kills it (slirp4netns ends with it; N, its bridges
and veths go too). Crashes are cleaned by the next one to take the lock: attachments whose owner
is gone (pid and start time) are dropped, a holder that died or that nothing needs is killed.
"""

from __future__ import annotations

import contextlib
import os

from rootlet.registry.errors import NetworkError, NetworkUsageError
from rootlet.registry.store import ImageStore
from rootlet.runtime.linux.netlink import Veth
from rootlet.runtime.linux.proc import boot_id, same_process, start_time
from rootlet.runtime.net.bridge import (BASE_RULES, bridge_rules, drop_bridge, drop_link, forward_rules, iptables,
                                        make_bridge, reap_ours)
from rootlet.runtime.net.netstate import (TAP_ADDRESS, TITLE, Attachment, Bridge, Forward, JoinPlan, NetnsState,
                                          holder_alive, load_state, locked, owner_alive, run_in, save_state,
                                          state_path)
from rootlet.runtime.net.networks import NetRequest, NetworkConfig
from rootlet.runtime.net.ports import PortMapping

# --- the holder's life ------------------------------------------------------------------------------

def _start(store: ImageStore) -> NetnsState:
    """Start the holder and its slirp4netns; the new state (saved at once, so a crash right after
    still leaves the pids to clean up)."""
    from rootlet.registry.fsutil import make_temp_dir
    from rootlet.runtime.linux.syscalls import CLONE_NEWNET
    from rootlet.runtime.net.holder import HolderSpec, start_holder
    from rootlet.runtime.net.usermode import check_network_mode, start_slirp4netns
    from rootlet.runtime.oci.idmap import plan_userns

    check_network_mode("slirp4netns")
    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    try:
        spec = HolderSpec(title=TITLE, unshare=CLONE_NEWNET, hold_fds=(exit_w,), dns_state=state_path(store),
                          forward=True)
        pid = start_holder(spec, plan_userns())
        os.close(exit_w)
        exit_w = -1
        state = NetnsState(holder_pid=pid, holder_start=start_time(pid) or 0, boot_id=boot_id(),
                           run_dir=make_temp_dir(os.environ.get("TMPDIR") or "/tmp", "rootlet-netns-"))
        save_state(store, state)
        slirp = start_slirp4netns(pid, os.path.join(state.run_dir, "slirp4netns.sock"), exit_r)
        state = state.replace(slirp_pid=slirp, slirp_start=start_time(slirp) or 0)
        save_state(store, state)
        run_in(state, iptables, BASE_RULES)
    except BaseException:
        with contextlib.suppress(Exception):
            _teardown(load_state(store))
            save_state(store, NetnsState())
        raise
    finally:
        os.close(exit_r)
        if exit_w != -1:
            os.close(exit_w)
    return state


def _restart_helper(store: ImageStore, state: NetnsState) -> NetnsState:
    """slirp4netns died (killed) while the holder lives: a new one with the published ports again
    (N's DNAT rules are still there). It ends with ``_teardown`` (the holder cannot take a new exit
    pipe)."""
    from rootlet.runtime.net.usermode import slirp_api, start_slirp4netns

    api = os.path.join(state.run_dir, "slirp4netns.sock")
    with contextlib.suppress(OSError):
        os.unlink(api)
    slirp = start_slirp4netns(state.holder_pid, api, None)
    state = state.replace(slirp_pid=slirp, slirp_start=start_time(slirp) or 0)
    save_state(store, state)
    forwards = []
    for f in state.forwards:
        answer = slirp_api(api, {"execute": "add_hostfwd", "arguments": {
            "proto": f.port.protocol, "host_addr": f.port.host_ip or "0.0.0.0", "host_port": f.port.host_port,
            "guest_addr": TAP_ADDRESS, "guest_port": f.guest_port}})
        result = answer.get("return")
        forwards.append(f.replace(slirp_id=int(result.get("id", -1)) if isinstance(result, dict) else -1))
    return state.replace(forwards=forwards)


def _teardown(state: NetnsState) -> None:
    """Kill the holder and slirp4netns (only the processes recorded) and remove the helper's files."""
    from rootlet.runtime.linux import signals

    from rootlet.runtime.linux.proc import kill_checked
    from rootlet.runtime.linux.rmtree import remove_tree

    if state.boot_id == boot_id():
        kill_checked(state.holder_pid, state.holder_start, signals.SIGKILL)
        kill_checked(state.slirp_pid, state.slirp_start, signals.SIGKILL)
    for pid in (state.holder_pid, state.slirp_pid):  # our children when we started them: no zombies
        reap_ours(pid)
    if state.run_dir and os.path.basename(state.run_dir).startswith("rootlet-netns-"):
        with contextlib.suppress(Exception):
            remove_tree(state.run_dir)


def _tidy(store: ImageStore, state: NetnsState) -> NetnsState:
    """The state without what died: attachments whose owner is gone (their forwards removed), and
    the holder when it died or no live container needs it (then an empty state)."""
    live = [a for a in state.attachments if owner_alive(a)]
    if not holder_alive(state) or not live:
        if state.holder_pid or state.slirp_pid or state.run_dir:
            _teardown(state)
        return NetnsState()
    gone = {a.cid for a in state.attachments} - {a.cid for a in live}
    if gone:
        _unforward(state, [f for f in state.forwards if f.cid in gone])
        state = state.replace(attachments=live, forwards=[f for f in state.forwards if f.cid not in gone])
    return state


def tidy(store: ImageStore) -> NetnsState:
    """Clean up after crashes now (``network ls``, ``rm``, ``prune`` call it); the state left."""
    with locked(store):
        before = load_state(store)
        state = _tidy(store, before)
        if state != before:
            save_state(store, state)
        return state


def _rule_args(forwards: list[Forward]) -> list[tuple[str, int, str, int]]:
    return [(f.port.protocol, f.guest_port, f.ip, f.port.container_port) for f in forwards]


def _unforward(state: NetnsState, forwards: list[Forward]) -> None:
    """Remove forwards from slirp4netns and N (best effort: the holder may be going anyway)."""
    from rootlet.runtime.net.usermode import slirp_api

    if not forwards or not holder_alive(state):
        return
    api = os.path.join(state.run_dir, "slirp4netns.sock")
    for f in forwards:
        if f.slirp_id >= 0:
            with contextlib.suppress(OSError, NetworkError):
                slirp_api(api, {"execute": "remove_hostfwd", "arguments": {"id": f.slirp_id}})
    with contextlib.suppress(NetworkError, OSError):
        run_in(state, iptables, forward_rules(_rule_args(forwards), "-D"))


# --- containers in and out ------------------------------------------------------------------------

def _bridge_for(state: NetnsState, cfg: NetworkConfig) -> NetnsState:
    """``state`` with ``cfg``'s bridge made in N (replacing a stale one of the same interface)."""
    wanted = Bridge(cfg.name, cfg.interface, cfg.subnet, cfg.gateway, cfg.internal)
    if wanted in state.bridges:
        return state
    bridges = list(state.bridges)
    for old in [b for b in bridges if b.interface == cfg.interface or b.network == cfg.name]:
        run_in(state, drop_bridge, old.interface, bridge_rules(old.interface, old.subnet, old.internal, "-D"))
        bridges.remove(old)
    rules = bridge_rules(wanted.interface, wanted.subnet, wanted.internal, "-A")
    run_in(state, make_bridge, wanted.interface, wanted.gateway, cfg.prefix, rules)
    return state.replace(bridges=[*bridges, wanted])


def _allocate(state: NetnsState, cfg: NetworkConfig, wanted: str) -> str:
    """A free address of ``cfg`` (``wanted`` when given and free)."""
    import ipaddress

    net = ipaddress.IPv4Network(cfg.subnet)
    used = {a.ip: a for a in state.attachments if a.network == cfg.name}
    if wanted:
        try:
            ip = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise NetworkUsageError(f"invalid --ip {wanted!r}", "give an IPv4 address") from None
        if ip not in net or ip in (net.network_address, net.broadcast_address) or str(ip) == cfg.gateway:
            raise NetworkUsageError(f"requested ip address {wanted} is not a host address of network {cfg.name} "
                                    f"({cfg.subnet}, gateway {cfg.gateway})", "give a free address of the subnet")
        if wanted in used:
            raise NetworkUsageError(f"IPAM error: requested ip address {wanted} is already allocated to container "
                                    f"ID {used[wanted].cid}", "give another --ip, or none for a free one")
        return str(ip)
    for ip in net.hosts():
        text = str(ip)
        if text != cfg.gateway and text not in used:
            return text
    raise NetworkError(f"IPAM error: no free address left in network {cfg.name} ({cfg.subnet})",
                       "remove containers from it, or use a network with a larger subnet")


def _attach(state: NetnsState, cid: str, name: str, requests: list[NetRequest], configs: dict[str, NetworkConfig],
            owner: int, first_index: int, default_route: bool) -> tuple[NetnsState, list[Veth], dict[str, str]]:
    veths: list[Veth] = []
    addresses: dict[str, str] = {}
    owner_start = start_time(owner) or 0
    for i, req in enumerate(requests, first_index):
        cfg = configs[req.network]
        state = _bridge_for(state, cfg)
        ip = _allocate(state, cfg, req.ip)
        host_ifname = f"veth{cid[:9]}{i}"
        gateway = cfg.gateway if default_route and not cfg.internal else ""
        default_route = default_route and not gateway
        veths.append(Veth(f"eth{i}", host_ifname, cfg.interface, f"{ip}/{cfg.prefix}", gateway))
        addresses[cfg.name] = ip
        state = state.replace(attachments=[*state.attachments, Attachment(
            cid=cid, name=name, network=cfg.name, ip=ip, host_ifname=host_ifname, owner_pid=owner,
            owner_start=owner_start, aliases=list(req.aliases))])
    return state, veths, addresses


def join(store: ImageStore, cid: str, name: str, requests: list[NetRequest],
         configs: dict[str, NetworkConfig]) -> JoinPlan:
    """Attach container ``cid`` (owned by this process) to the networks ``requests`` name: the holder
    started if it is not running, bridges made, addresses allocated. The caller starts the container
    with ``JoinPlan.spec_changes()`` and calls ``started`` (or ``leave`` when it failed)."""
    from rootlet.runtime.linux.syscalls import open_namespaces

    with locked(store):
        state = _tidy(store, load_state(store))
        state = state.replace(attachments=[a for a in state.attachments if a.cid != cid],
                              forwards=[f for f in state.forwards if f.cid != cid])
        if not holder_alive(state):
            state = _start(store)
        elif not same_process(state.slirp_pid, state.slirp_start):
            state = _restart_helper(store, state)
        try:
            state, veths, addresses = _attach(state, cid, name, requests, configs, os.getpid(), 0, True)
        finally:
            save_state(store, state)
        fds = dict((flag, fd) for fd, flag in open_namespaces(state.holder_pid, ("user", "net")))
    from rootlet.runtime.linux.syscalls import CLONE_NEWNET, CLONE_NEWUSER

    return JoinPlan(fds.get(CLONE_NEWUSER, -1), fds.get(CLONE_NEWNET, -1), veths, addresses)


def started(store: ImageStore, cid: str, pid: int, ports: tuple[PortMapping, ...] | list[PortMapping] = (),
            owner: int = 0) -> tuple[PortMapping, ...]:
    """The container of ``cid`` runs as host ``pid``: record it (``owner``: another process owns its
    attachments from now on: a pod's infra) and publish ``ports`` to its first address; the ports as
    bound (a host port 0 gets a free one)."""
    from rootlet.runtime.net.ports import reserve_ports

    with locked(store):
        state = load_state(store)
        mine = [a for a in state.attachments if a.cid == cid]
        if not mine or not holder_alive(state):
            raise NetworkError("rootlet's network namespace went away while the container started", "run it again")
        changes: dict[str, object] = {"pid": pid}
        if owner:
            changes.update(owner_pid=owner, owner_start=start_time(owner) or 0)
        state = state.replace(attachments=[a.replace(**changes) if a.cid == cid else a for a in state.attachments])
        bound = reserve_ports(ports) if ports else ()
        if bound:
            state = _forward(state, cid, mine[0].ip, bound)
        save_state(store, state)
    return tuple(bound)


def _forward(state: NetnsState, cid: str, ip: str, ports: tuple[PortMapping, ...]) -> NetnsState:
    """Publish ``ports`` of the container at ``ip``: slirp4netns forwards, then N's DNAT rules."""
    from rootlet.runtime.net.usermode import slirp_api

    api = os.path.join(state.run_dir, "slirp4netns.sock")
    taken = {(f.port.protocol, f.guest_port) for f in state.forwards}
    made: list[Forward] = []
    try:
        for port in ports:
            guest = port.host_port
            while (port.protocol, guest) in taken:
                guest = 20000 + (guest + 1) % 40000
            taken.add((port.protocol, guest))
            answer = slirp_api(api, {"execute": "add_hostfwd", "arguments": {
                "proto": port.protocol, "host_addr": port.host_ip or "0.0.0.0", "host_port": port.host_port,
                "guest_addr": TAP_ADDRESS, "guest_port": guest}})
            result = answer.get("return")
            if "error" in answer or not isinstance(result, dict):
                raise NetworkError(f"cannot publish {port.host_ip or '0.0.0.0'}:{port.host_port} → "
                                   f"{port.container_port}/{port.protocol}: slirp4netns: {answer.get('error')}",
                                   "check the host port is free")
            made.append(Forward(cid=cid, ip=ip, port=port, guest_port=guest, slirp_id=int(result.get("id", -1))))
        run_in(state, iptables, forward_rules(_rule_args(made), "-A"))
    except BaseException:
        for f in made:
            with contextlib.suppress(Exception):
                slirp_api(api, {"execute": "remove_hostfwd", "arguments": {"id": f.slirp_id}})
        raise
    return state.replace(forwards=[*state.forwards, *made])


def leave(store: ImageStore, cid: str, network: str | None = None) -> None:
    """Detach container ``cid`` (from ``network`` only, else from all); the last one out takes the
    holder down."""
    with locked(store):
        state = load_state(store)
        mine = [a for a in state.attachments if a.cid == cid and network in (None, a.network)]
        if not mine and state == _tidy(store, state):
            return
        if network is not None:
            with contextlib.suppress(NetworkError, OSError):
                for a in mine:
                    run_in(state, drop_link, a.host_ifname)
        forwards = [f for f in state.forwards if f.cid == cid] if network is None else []
        _unforward(state, forwards)
        state = state.replace(attachments=[a for a in state.attachments if a not in mine],
                              forwards=[f for f in state.forwards if f not in forwards])
        save_state(store, _tidy(store, state))


def connect(store: ImageStore, cid: str, name: str, pid: int, request: NetRequest, cfg: NetworkConfig) -> str:
    """Attach running container ``cid`` (host ``pid``, already on a user network) to one more; its
    address there."""
    from rootlet.runtime.net.bridge import plug_running

    with locked(store):
        state = _tidy(store, load_state(store))
        mine = [a for a in state.attachments if a.cid == cid]
        if not mine or not holder_alive(state):
            raise NetworkError(f"container {name} is not running on a user network, so it cannot join one while it runs",
                               "stop it: `network connect` then takes effect at its next start")
        if any(a.network == cfg.name for a in mine):
            raise NetworkUsageError(f"container {name} is already connected to network {cfg.name}")
        index = 1 + max(int(a.host_ifname[13:] or 0) for a in mine)
        new, veths, addresses = _attach(state, cid, name, [request], {cfg.name: cfg}, mine[0].owner_pid, index, False)
        run_in(new, plug_running, veths, target_pid=pid)
        save_state(store, new.replace(attachments=[a.replace(pid=pid) if a.cid == cid else a for a in new.attachments]))
    return addresses[cfg.name]


def forget_network(store: ImageStore, name: str) -> None:
    """A removed network's bridge goes from N (no container is on it any more)."""
    with locked(store):
        state = _tidy(store, load_state(store))
        gone = [b for b in state.bridges if b.network == name]
        for b in gone:
            with contextlib.suppress(NetworkError, OSError):
                run_in(state, drop_bridge, b.interface, bridge_rules(b.interface, b.subnet, b.internal, "-D"))
        save_state(store, state.replace(bridges=[b for b in state.bridges if b not in gone]))


def attachments(store: ImageStore) -> list[Attachment]:
    """The live attachments (what is running on which network, at which address)."""
    return [a for a in load_state(store).attachments if owner_alive(a)]
