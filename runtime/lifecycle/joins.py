"""A start that enters namespaces made by others: user networks, a pod, ``--network container:``.

``prepare_join`` runs before the container's processes are spawned and says what its keeper
enters (``RuntimeSpec.join_ns``) and which veth pairs it makes; ``Joined.started`` then records
the running container (its published ports on a user network) and returns the handle that
``launch`` keeps as the container's network: its ``stop`` takes the container off its networks
when it has exited, the last one out taking rootlet's network namespace down with it.
"""

from __future__ import annotations

import contextlib

from rootlet.registry.errors import ContainerStartError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.record import ContainerConfig
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.net.ports import PortMapping


class JoinedNetwork:
    """A joined container's network as ``Launched`` keeps it (``NetworkHandle``'s shape)."""

    process = None

    def __init__(self, store: ImageStore, cid: str, ports: tuple[PortMapping, ...], on_networks: bool) -> None:
        self.store = store
        self.cid = cid
        self.ports = ports
        self.on_networks = on_networks

    def stop(self, wait: bool = True) -> None:
        """Off its user networks (once): its forwards go, and the last container out takes the
        holder with it."""
        if self.on_networks:
            self.on_networks = False
            from rootlet.runtime.net import netns

            with contextlib.suppress(Exception):  # never keep the exit from being recorded
                netns.leave(self.store, self.cid)


class Joined:
    """What ``prepare_join`` found for one start."""

    def __init__(self, store: ImageStore, cfg: ContainerConfig, fds: list[tuple[int, int]], plan: object = None,
                 hostname: bool = True) -> None:
        self.store = store
        self.cfg = cfg
        self.fds = fds
        self.plan = plan  # a netns.JoinPlan on user networks
        self.hostname = hostname

    def spec_changes(self) -> dict[str, object]:
        changes: dict[str, object] = dict(self.plan.spec_changes()) if self.plan is not None else {}  # type: ignore[attr-defined]
        changes["join_ns"] = tuple(changes.get("join_ns", ())) + tuple(self.fds)  # type: ignore[arg-type]
        if not self.hostname:
            changes["hostname"] = ""  # a pod's UTS namespace has the pod's name
        return changes

    def close(self) -> None:
        linux.close_namespaces(self.fds)
        self.fds = []
        if self.plan is not None:
            self.plan.close()  # type: ignore[attr-defined]

    def started(self, pid: int) -> JoinedNetwork:
        """The container runs as host ``pid``: its ports published (user networks)."""
        ports: tuple[PortMapping, ...] = ()
        if self.plan is not None:
            from rootlet.runtime.net import netns

            ports = netns.started(self.store, self.cfg.id, pid, tuple(self.cfg.ports))
        return JoinedNetwork(self.store, self.cfg.id, ports, self.plan is not None)

    def abort(self) -> None:
        """The start failed: off the networks again."""
        if self.plan is not None:
            from rootlet.runtime.net import netns

            with contextlib.suppress(Exception):
                netns.leave(self.store, self.cfg.id)


def needs_join(cfg: ContainerConfig) -> bool:
    return cfg.network in ("bridge", "pod") or cfg.network.startswith("container:")


def prepare_join(store: ImageStore, containers: ContainerStore, cfg: ContainerConfig) -> Joined:
    """Enter what ``cfg`` joins: the user networks' namespace (started if need be), its pod's
    namespaces (the pod started if need be), or another running container's network namespace."""
    if cfg.network == "bridge":
        from rootlet.runtime.container.netmode import set_own_address
        from rootlet.runtime.net import netns
        from rootlet.runtime.net.networks import NetworkStore

        networks = NetworkStore(store)
        configs = {r.network: networks.config(r.network) for r in cfg.networks}
        plan = netns.join(store, cfg.id, cfg.name, list(cfg.networks), configs)
        try:
            set_own_address(containers.path(cfg.id, "etc"), plan.addresses[cfg.networks[0].network])
        except BaseException:
            plan.close()
            netns.leave(store, cfg.id)
            raise
        return Joined(store, cfg, [], plan)
    if cfg.network == "pod":
        from rootlet.runtime.container.infra import ensure_infra, infra_namespaces
        from rootlet.runtime.container.pods import PodStore

        pod = PodStore(store).config(cfg.pod)
        state = ensure_infra(store, pod)
        if "uts" in pod.share:  # its /etc/hostname says what `hostname` does: the pod's name
            from rootlet.registry.fsutil import atomic_write

            atomic_write(containers.path(cfg.id, "etc/hostname"), f"{pod.hostname or pod.name}\n".encode(), 0o644,
                         durable=False)
        return Joined(store, cfg, infra_namespaces(state, pod), hostname="uts" not in pod.share)
    return _join_container(store, containers, cfg)


def _join_container(store: ImageStore, containers: ContainerStore, cfg: ContainerConfig) -> Joined:
    """``--network container:ID``: its user and network namespaces, and its /etc/hosts and
    resolv.conf (as podman shares them)."""
    from rootlet.registry.errors import ContainerNotFound
    from rootlet.registry.fsutil import atomic_write
    from rootlet.runtime.linux.proc import same_process

    target = cfg.network.partition(":")[2]
    try:
        other = containers.config(target)
        state = containers.refresh(target)
    except ContainerNotFound:
        raise ContainerStartError(f"the container whose network {cfg.name} joins ({target[:12]}) was removed",
                                  "remove this container and create it again") from None
    if state.status != "running":
        raise ContainerStartError(f"container {other.name}, whose network {cfg.name} joins, is not running",
                                  f"start it first: rootlet start {other.name}")
    for name in ("hosts", "resolv.conf"):
        with contextlib.suppress(OSError), open(containers.path(target, f"etc/{name}"), "rb") as f:
            atomic_write(containers.path(cfg.id, f"etc/{name}"), f.read(1 << 20), 0o644, durable=False)
    fds = linux.open_namespaces(state.pid, ("user", "net"))
    if not same_process(state.pid, state.pid_start):
        linux.close_namespaces(fds)
        raise ContainerStartError(f"container {other.name} stopped meanwhile", f"start it: rootlet start {other.name}")
    return Joined(store, cfg, fds)

