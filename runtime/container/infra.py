"""A pod's infra process: started when the pod starts, killed when it stops, nothing in between.

The infra is a namespace holder (``rootlet.runtime.net.holder``) titled ``rootlet-infra``: a user
namespace of its own (or, for a pod on user networks, the user networks' one, whose bridges it
joins with a veth pair as any container does) and the network, IPC and UTS namespaces its
containers join, its hostname the pod's. On the default network it holds slirp4netns's exit pipe,
so the helper, and the ports it publishes for the pod, end with it. Its pid and start time are in
the pod's state; a dead infra (SIGKILL) is found by the next look and cleaned up.
"""

from __future__ import annotations

import contextlib
import os
import time

from rootlet.registry.errors import NetworkError, UsageError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.pods import PodConfig, PodState, PodStore
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.proc import boot_id, start_time
from rootlet.runtime.net.bridge import reap_ours

TITLE = "rootlet-infra"


def _flags(cfg: PodConfig) -> int:
    flags = linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
    return flags if cfg.network == "host" else flags | linux.CLONE_NEWNET


def check_pod_network(cfg: PodConfig) -> None:
    if cfg.network not in ("slirp4netns", "bridge", "none", "host"):
        raise UsageError(f"a pod cannot use --network {cfg.network}",
                         "pods use the default network (slirp4netns), user networks, none or host")


def ensure_infra(store: ImageStore, cfg: PodConfig) -> PodState:
    """The pod's infra, started when it does not run (its namespaces then exist); its state."""
    pods = PodStore(store)
    with pods.locked(cfg.id):
        state = pods.state(cfg.id)
        if state.alive:
            return state
        _cleanup(store, cfg, state)
        pods.write_state(cfg.id, PodState(ran=True))
        state = _start(store, cfg)
        pods.write_state(cfg.id, state)
        return state


def _start(store: ImageStore, cfg: PodConfig) -> PodState:
    from rootlet.runtime.net.holder import HolderSpec, start_holder
    from rootlet.runtime.oci.idmap import plan_userns

    check_pod_network(cfg)
    spec = HolderSpec(title=TITLE, unshare=_flags(cfg), hostname=cfg.hostname or cfg.name)
    plan = plan_userns()
    if cfg.network == "bridge":
        from rootlet.runtime.net import netns
        from rootlet.runtime.net.networks import NetworkStore

        networks = NetworkStore(store)
        joined = netns.join(store, cfg.infra_id, cfg.name, list(cfg.networks),
                            {n.network: networks.config(n.network) for n in cfg.networks})
        try:
            pid = start_holder(spec.replace(join_user=joined.user_fd, veths=tuple(joined.veths),
                                            veth_netns=joined.net_fd), plan)
        except BaseException:
            netns.leave(store, cfg.infra_id)
            raise
        finally:
            joined.close()
        try:
            ports = netns.started(store, cfg.infra_id, pid, tuple(cfg.ports), owner=pid)
        except BaseException:
            _kill(pid)
            netns.leave(store, cfg.infra_id)
            raise
        return PodState(infra_pid=pid, infra_start=start_time(pid) or 0, boot_id=boot_id(), started_at=time.time(),
                        ports=list(ports), ran=True)
    if cfg.network != "slirp4netns":
        pid = start_holder(spec, plan)
        return PodState(infra_pid=pid, infra_start=start_time(pid) or 0, boot_id=boot_id(), started_at=time.time(),
                        ran=True)
    return _start_with_slirp(cfg, spec, plan)


def _start_with_slirp(cfg: PodConfig, spec, plan) -> PodState:  # noqa: ANN001 - HolderSpec, UsernsPlan
    """The infra on the default network: slirp4netns on its namespace, the pod's ports through it."""
    from rootlet.registry.fsutil import make_temp_dir
    from rootlet.runtime.net.holder import start_holder
    from rootlet.runtime.net.ports import reserve_ports
    from rootlet.runtime.net.usermode import slirp_api, start_slirp4netns

    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    pid = 0
    run_dir = ""
    try:
        pid = start_holder(spec.replace(hold_fds=(exit_w,)), plan)
        os.close(exit_w)
        exit_w = -1
        run_dir = make_temp_dir(os.environ.get("TMPDIR") or "/tmp", "rootlet-pod-")
        api = os.path.join(run_dir, "slirp4netns.sock")
        slirp = start_slirp4netns(pid, api, exit_r)
        ports = reserve_ports(cfg.ports)
        for port in ports:
            answer = slirp_api(api, {"execute": "add_hostfwd", "arguments": {
                "proto": port.protocol, "host_addr": port.host_ip or "0.0.0.0", "host_port": port.host_port,
                "guest_addr": "10.0.2.100", "guest_port": port.container_port}})
            if "error" in answer:
                raise NetworkError(f"cannot publish {port.host_ip or '0.0.0.0'}:{port.host_port} → "
                                   f"{port.container_port}/{port.protocol}: slirp4netns: {answer['error']}",
                                   "check the host port is free")
        return PodState(infra_pid=pid, infra_start=start_time(pid) or 0, boot_id=boot_id(), slirp_pid=slirp,
                        slirp_start=start_time(slirp) or 0, run_dir=run_dir, started_at=time.time(),
                        ports=list(ports), ran=True)
    except BaseException:
        if pid:
            _kill(pid)
        _remove_run_dir(run_dir)
        raise
    finally:
        os.close(exit_r)
        if exit_w != -1:
            os.close(exit_w)


def _kill(pid: int) -> None:
    from rootlet.runtime.linux import signals

    with contextlib.suppress(OSError):
        os.kill(pid, signals.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


def _remove_run_dir(path: str) -> None:
    from rootlet.runtime.linux.rmtree import remove_tree

    if path and os.path.basename(path).startswith("rootlet-pod-"):
        with contextlib.suppress(Exception):
            remove_tree(path)


def _cleanup(store: ImageStore, cfg: PodConfig, state: PodState) -> None:
    """What a stopped or dead infra leaves: its helper, its files, its place on user networks."""
    from rootlet.runtime.linux import signals

    from rootlet.runtime.linux.proc import kill_checked

    if state.boot_id == boot_id():
        kill_checked(state.infra_pid, state.infra_start, signals.SIGKILL)
        kill_checked(state.slirp_pid, state.slirp_start, signals.SIGKILL)
    for pid in (state.infra_pid, state.slirp_pid):  # our children when we started them: no zombies
        reap_ours(pid)
    _remove_run_dir(state.run_dir)
    if cfg.network == "bridge":
        from rootlet.runtime.net import netns

        netns.leave(store, cfg.infra_id)


def stop_infra(store: ImageStore, cfg: PodConfig) -> None:
    """Kill the pod's infra (its containers must be stopped first: they would lose their network)."""
    pods = PodStore(store)
    with pods.locked(cfg.id):
        state = pods.state(cfg.id)
        _cleanup(store, cfg, state)
        pods.write_state(cfg.id, PodState(ran=state.ran or state.alive))


def infra_namespaces(state: PodState, cfg: PodConfig) -> list[tuple[int, int]]:
    """(fd, CLONE flag) of the infra's user namespace and the ones the pod shares, for a container
    of the pod to join (the caller closes them)."""
    from rootlet.registry.errors import ContainerStartError
    from rootlet.runtime.linux.proc import same_process

    names = ("user",) + tuple(n for n in ("uts", "ipc", "net") if n in cfg.share)
    fds = linux.open_namespaces(state.infra_pid, names)
    if not same_process(state.infra_pid, state.infra_start):
        linux.close_namespaces(fds)
        raise ContainerStartError(f"the infra process of pod {cfg.name} ended meanwhile", "start the pod again")
    return fds
