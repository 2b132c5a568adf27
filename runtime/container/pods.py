"""Pods: containers that share a network, IPC and UTS namespace, held by an infra process.

    pods/<id>/pod.json     what the pod was created with (``PodConfig``; written once)
    pods/<id>/state.json   its infra process and network helper, by pid and start time (``PodState``)
    pods/<id>/lock         held while the infra starts or stops
    locks/pods.lock        held to create or remove a pod (names stay unique)

A pod has no process until it starts (``pod start``, or the first ``run --pod``): then its infra
(``rootlet.runtime.container.infra``, rootlet's catatonit) holds the namespaces its containers
join. Ports are the pod's, published to the infra's network namespace; a container of the pod
publishes none of its own. The infra is counted among the pod's containers, as podman counts its
infra container (``# OF CONTAINERS``), and named by its own id (``INFRA ID``).
"""

from __future__ import annotations

import os

from rootlet.registry.errors import NameInUse, PodNotFound, UsageError
from rootlet.registry.fsutil import atomic_write_json, flocked, read_json
from rootlet.registry.names import is_valid_name
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.linux.proc import boot_id, same_process
from rootlet.runtime.net.networks import NetRequest
from rootlet.runtime.net.ports import PortMapping

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from rootlet.runtime.container.record import ContainerConfig, ContainerState

#: Namespaces a pod can share (podman's default: all of these; rootlet makes no cgroups).
SHAREABLE = ("net", "ipc", "uts")


class PodConfig(Record):
    """A pod as created: ``network`` is a mode (slirp4netns, none, host) or ``bridge`` with
    ``networks``; ``ports`` are published on the pod; ``share`` the namespaces its containers join."""

    _nested = {"networks": NetRequest, "ports": PortMapping}

    id: str
    name: str
    created: float
    infra_id: str
    share: list[str] = list(SHAREABLE)
    network: str = "slirp4netns"
    networks: list[NetRequest] = []
    ports: list[PortMapping] = []
    hostname: str = ""
    labels: dict[str, str] = {}


class PodState(Record):
    """The pod's infra process (0: not running) and its network helper."""

    _nested = {"ports": PortMapping}

    infra_pid: int = 0
    infra_start: int = 0
    boot_id: str = ""
    slirp_pid: int = 0
    slirp_start: int = 0
    run_dir: str = ""
    started_at: float | None = None
    ports: list[PortMapping] = []
    ran: bool = False  # it has run since it was created (podman's Exited rather than Created)

    @property
    def alive(self) -> bool:
        return bool(self.infra_pid) and self.boot_id == boot_id() and same_process(self.infra_pid, self.infra_start)


def check_pod_name(name: str) -> str:
    if not is_valid_name(name or "") or len(name) > 200:
        raise UsageError(f"invalid pod name {name!r}", "names use letters, digits, '_', '.', '-'")
    return name


class PodStore:
    """The pods of one store."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.root = os.path.join(store.root, "pods")

    def dir(self, pid: str) -> str:
        return os.path.join(self.root, pid)

    def ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if os.path.exists(os.path.join(self.root, n, "pod.json")))
        except FileNotFoundError:
            return []

    def configs(self) -> list[PodConfig]:
        out = []
        for pid in self.ids():
            doc = read_json(os.path.join(self.dir(pid), "pod.json"), default=None)
            if isinstance(doc, dict):
                out.append(PodConfig.from_json(doc))
        return sorted(out, key=lambda c: -c.created)

    def config(self, name_or_id: str) -> PodConfig:
        """The pod of that name, id or unique id prefix (PodNotFound in podman's words)."""
        configs = self.configs()
        for cfg in configs:
            if name_or_id in (cfg.name, cfg.id):
                return cfg
        hits = [c for c in configs if name_or_id and c.id.startswith(name_or_id.lower())]
        if len(hits) == 1:
            return hits[0]
        raise PodNotFound(f'no pod with name or ID {name_or_id} found: no such pod', "list pods with `rootlet pod ps`")

    def exists(self, name_or_id: str) -> bool:
        try:
            self.config(name_or_id)
        except PodNotFound:
            return False
        return True

    def create(self, cfg: PodConfig) -> PodConfig:
        """Record a new pod (NameInUse when its name is taken)."""
        self.store.ensure()
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        with flocked(self.store.lock_path("pods")):
            if any(c.name == cfg.name for c in self.configs()):
                raise NameInUse(f"the pod name {cfg.name!r} is already in use", "choose another name, or remove that pod")
            d = self.dir(cfg.id)
            os.mkdir(d, 0o700)
            self.write_state(cfg.id, PodState())
            atomic_write_json(os.path.join(d, "pod.json"), cfg.to_json(), durable=False)
        return cfg

    def state(self, pid: str) -> PodState:
        try:
            doc = read_json(os.path.join(self.dir(pid), "state.json"), default=None)
        except ValueError:
            doc = None
        return PodState.from_json(doc) if isinstance(doc, dict) else PodState()

    def write_state(self, pid: str, state: PodState) -> None:
        atomic_write_json(os.path.join(self.dir(pid), "state.json"), state.to_json(), durable=False)

    def locked(self, pid: str):  # -> contextlib.AbstractContextManager
        if not os.path.isdir(self.dir(pid)):
            raise PodNotFound(f"pod {pid[:12]} was removed")
        return flocked(os.path.join(self.dir(pid), "lock"))

    def forget(self, pid: str) -> None:
        """Remove the pod's directory (its infra stopped, its containers gone)."""
        from rootlet.runtime.linux.rmtree import remove_tree

        with flocked(self.store.lock_path("pods")):
            remove_tree(self.dir(pid))


def pod_status(state: PodState, members: list[tuple[ContainerConfig, ContainerState]]) -> str:
    """podman's pod status: Created, Running, Degraded (some containers not running), Exited."""
    running = [s for _, s in members if s.status == "running"]
    if state.alive:
        return "Running" if len(running) == len(members) else "Degraded"
    if running:
        return "Degraded"
    if state.ran or any(s.status == "exited" for _, s in members):
        return "Exited"
    return "Created"


def inspect_doc(cfg: PodConfig, state: PodState, members: list[tuple[ContainerConfig, ContainerState]],
                rfc3339) -> dict[str, object]:  # noqa: ANN001 - the inspect module's time format
    """podman's ``pod inspect`` document (the fields that mean something without cgroups)."""
    status = pod_status(state, members)
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in state.ports if state.alive and state.ports else cfg.ports:
        bindings.setdefault(f"{p.container_port}/{p.protocol}", []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""})
    return {
        "Id": cfg.id, "Name": cfg.name, "Created": rfc3339(cfg.created), "ExitPolicy": "continue", "State": status,
        "Hostname": cfg.hostname or cfg.name, "Labels": dict(cfg.labels), "CreateCgroup": False, "CgroupParent": "",
        "CreateInfra": True, "InfraContainerId": cfg.infra_id,
        "InfraConfig": {"PortBindings": bindings, "HostNetwork": cfg.network == "host",
                        "StaticIP": cfg.networks[0].ip if cfg.networks else "",
                        "NoManageResolvConf": False, "NoManageHosts": False,
                        "Networks": [n.network for n in cfg.networks] if cfg.network == "bridge" else [cfg.network],
                        "NetworkOptions": None, "pid_ns": "private", "userns": "host"},
        "SharedNamespaces": list(cfg.share), "NumContainers": len(members) + 1,
        "Containers": [{"Id": cfg.infra_id, "Name": f"{cfg.id[:12]}-infra", "State": "running" if state.alive
                        else ("exited" if state.ran else "created")}]
        + [{"Id": c.id, "Name": c.name, "State": s.shown_status} for c, s in members],
    }
