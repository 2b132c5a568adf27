"""``launch``: the one way a container's processes come to life.

It builds the runtime spec from the container's record, spawns it, attaches its network, and
records it as running, owned by the calling process (the monitor of a detached container, the
``rootlet run`` of a foreground one). The caller then waits for it and calls ``record_exit``.
"""

from __future__ import annotations

import os
import time

from rootlet.registry.errors import RootletError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.launchspec import runtime_spec
from rootlet.runtime.container.record import ContainerConfig
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux import signals
from rootlet.runtime.linux.proc import boot_id, start_time
from rootlet.runtime.oci.spawn import ContainerProcess, spawn
from rootlet.runtime.system.events import container_event

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from typing import Any

class Launched:
    """A container process we own, and its network helper (a NetworkHandle, or None)."""

    def __init__(self, proc: ContainerProcess, network: Any) -> None:
        self.proc = proc
        self.network = network

    def stop_network(self, wait: bool) -> None:
        if self.network is not None:
            self.network.stop(wait=wait)
            self.network = None


def launch(store: ImageStore, containers: ContainerStore, cfg: ContainerConfig, *, detached: bool,
           stdio: tuple[int | None, int | None, int | None] = (None, None, None), restart_count: int | None = None,
           winsize: bytes | None = None, keep_fds: tuple[int, ...] = ()) -> Launched:
    """Spawn ``cfg``'s container as our descendant, attach its network, record it running.

    With a user-mode network the command is held at the start gate until slirp4netns or pasta
    has configured its interface, so it has the network from its first instruction.
    """
    mode = cfg.network
    gated = mode in ("slirp4netns", "pasta")
    spec = runtime_spec(store, cfg).replace(stdio=stdio, winsize=winsize, gate=gated, keep_fds=keep_fds)
    joined = None
    if cfg.network in ("bridge", "pod") or cfg.network.startswith("container:"):
        from rootlet.runtime.lifecycle.joins import prepare_join  # user networks, pods, container:

        joined = prepare_join(store, containers, cfg)
        spec = spec.replace(**joined.spec_changes())
    # A user-mode network's helper starts as soon as the namespaces exist (spawn's on_namespaces),
    # while the keeper mounts the container's filesystem: its ~5 ms start overlaps with that. A
    # failure to start it is raised after spawn, as before, so that the container's own failure
    # at the gate still comes first.
    early: dict[str, Any] = {}

    def start_helper(keeper_pid: int) -> None:
        from rootlet.runtime.net.usermode import start_network

        try:
            early["pending"] = start_network(
                mode, keeper_pid, cfg.ports, options=cfg.network_options,
                allow_host_loopback=cfg.network_options.get("allow_host_loopback") == "true")
        except RootletError as exc:
            early["error"] = exc

    try:
        proc = spawn(spec, on_namespaces=start_helper if gated else None)
    except BaseException:
        if "pending" in early:
            early["pending"].abort()
        if joined is not None:
            joined.abort()
        raise
    finally:
        if joined is not None:
            joined.close()
    network = None
    try:
        if joined is not None:
            network = joined.started(proc.pid)
        if gated:
            try:
                if "error" in early:
                    raise early["error"]
                network = early.pop("pending").ready()
            except RootletError:
                if proc.failed_at_gate():
                    proc.release()  # raises the container's own start failure
                raise
            proc.release()
        me = os.getpid()
        changes: dict[str, Any] = dict(
            status="running", pid=proc.pid, pid_start=start_time(proc.pid) or 0, owner_pid=me,
            owner_start=start_time(me) or 0, boot_id=boot_id(), started_at=time.time(), finished_at=None,
            exit_code=None, error=None, detached=detached, stop_requested=False,
            ports=list(network.ports) if network is not None else [])
        if restart_count is not None:
            changes["restart_count"] = restart_count
        containers.update_state(cfg.id, **changes)
        container_event(store.root, cfg, "start")
        if cfg.healthcheck is not None:
            from rootlet.runtime.lifecycle.health import start_checks

            network = start_checks(store, cfg, network)
    except BaseException:
        if proc.returncode is None:
            proc.signal(signals.SIGKILL)
            try:
                proc.wait()
            except Exception:
                pass
        if "pending" in early:
            early["pending"].abort()
        if network is not None:
            network.stop()
        elif joined is not None:
            joined.abort()
        raise
    return Launched(proc, network)


def record_exit(containers: ContainerStore, cid: str, code: int, error: str | None = None) -> None:
    """Record that the container exited with docker's ``code``."""
    try:
        containers.update_state(cid, status="exited", exit_code=code, finished_at=time.time(), pid=0,
                                pid_start=0, ports=[], error=error)
        container_event(containers.store.root, containers.config(cid), "died", exit_code=code)
    except (RootletError, OSError):
        pass
