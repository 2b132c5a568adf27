"""What ``inspect``, ``ps`` and ``port`` report about containers: docker's inspect document, and
the containers ``ps`` lists (filtered as docker filters them)."""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from rootlet.runtime.net.ports import PortMapping

from rootlet.registry.errors import ContainerNotFound, RootletError, UsageError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.record import ContainerConfig, ContainerState, Mount
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux import signals


def rfc3339(ts: float | None) -> str:
    """docker's timestamp form; the zero time for "never"."""
    if not ts:
        return "0001-01-01T00:00:00Z"
    secs = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int((ts - secs) * 1e9):09d}Z"


def ports_of(cfg: ContainerConfig, state: ContainerState) -> list[PortMapping]:
    """The published ports: as bound while running, else as requested."""
    return state.ports if state.status == "running" and state.ports else cfg.ports


def port_bindings(cfg: ContainerConfig, state: ContainerState) -> dict[str, list[dict[str, str]]]:
    """NetworkSettings.Ports: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}``."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports_of(cfg, state):
        key = f"{p.container_port}/{p.protocol}"
        out.setdefault(key, []).append({"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)})
    return out


def inspect_container(store: ImageStore, cid: str) -> dict[str, Any]:
    """docker's ``container inspect`` document for ``cid``."""
    from rootlet.runtime.oci.capnames import PODMAN_DEFAULT_CAPS

    containers = ContainerStore(store)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    directory = containers.dir(cid)
    doc = {
        "Id": cfg.id,
        "Created": rfc3339(cfg.created),
        "Path": cfg.argv[0] if cfg.argv else "",
        "Args": cfg.argv[1:],
        "State": {
            "Status": state.shown_status,
            "Running": state.status == "running",
            "Paused": False,
            "Restarting": state.status == "restarting",
            "OOMKilled": False,
            "Dead": False,
            "Pid": state.pid if state.status == "running" else 0,
            "ExitCode": state.exit_code if state.exit_code is not None else 0,
            "Error": state.error or "",
            "StartedAt": rfc3339(state.started_at),
            "FinishedAt": rfc3339(state.finished_at),
        },
        "Image": "sha256:" + cfg.image_id.removeprefix("sha256:"),
        "ImageName": cfg.image_name,
        "Name": cfg.name,
        "RestartCount": state.restart_count,
        "LogPath": containers.path(cid, "ctr.log"),
        "Config": {
            "Hostname": cfg.hostname,
            "User": cfg.user,
            "Env": list(cfg.env),
            "Cmd": list(cfg.cmd),
            "Entrypoint": list(cfg.entrypoint),
            "Image": cfg.image_name,
            "WorkingDir": cfg.cwd,
            "Labels": dict(cfg.labels),
            "Tty": cfg.tty,
            "OpenStdin": cfg.interactive,
            "StdinOnce": cfg.stdin_once,
            "StopSignal": signals.signal_name(cfg.stop_signal),
            "StopTimeout": cfg.stop_timeout,
        },
        "EffectiveCaps": sorted(cfg.caps),
        "Mounts": [_mount_doc(m) for m in cfg.mounts],
        "NetworkSettings": {"Ports": port_bindings(cfg, state)},
        "HostConfig": {
            "AutoRemove": cfg.auto_remove,
            "NetworkMode": cfg.network,
            "RestartPolicy": {"Name": cfg.restart.name, "MaximumRetryCount": cfg.restart.max},
            "LogConfig": {"Type": cfg.log.driver, "Config": {"max-size": str(cfg.log.max_size)},
                          "Path": "" if cfg.log.driver == "none" else os.path.join(directory, "ctr.log"),
                          "Tag": "", "Size": _size_text(cfg.log.max_size)},
            "ReadonlyRootfs": cfg.readonly_rootfs,
            # podman's: relative to its default set (cfg.caps is the effective set).
            "CapAdd": sorted(set(cfg.caps) - set(PODMAN_DEFAULT_CAPS)),
            "CapDrop": sorted(set(PODMAN_DEFAULT_CAPS) - set(cfg.caps)), "Init": cfg.init,
        },
    }
    if cfg.networks or cfg.pod or cfg.healthcheck is not None:
        from rootlet.runtime.container.netmode import inspect_extras  # user networks, pods, healthchecks

        inspect_extras(store, cfg, state, doc)
    return doc


def _size_text(n: int) -> str:
    """A log size limit as podman prints it (``0B``: none; ``10MB``: go-units, 1000-based)."""
    size, unit = float(n), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000:
            break
        size /= 1000
    return f"{size:.4g}{unit}"


def _mount_doc(m: Mount) -> dict[str, Any]:
    """docker's ``Mounts`` entry for one mount."""
    if m.type == "tmpfs":
        return {"Type": "tmpfs", "Source": "tmpfs", "Destination": m.destination, "RW": not m.readonly,
                "Options": list(m.options)}
    if m.type == "volume":
        return {"Type": "volume", "Name": m.name, "Source": m.source, "Destination": m.destination,
                "RW": not m.readonly}
    return {"Type": m.type, "Source": m.source, "Destination": m.destination, "RW": not m.readonly}


def _parse_filters(filters: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in ("name", "status", "label", "ancestor", "id", "exited"):
            raise UsageError(f"invalid --filter {f!r}",
                             "use name=, status=, label=KEY[=VALUE], ancestor=, id= or exited=")
        out.append((key, value))
    return out


def _matches(filters: list[tuple[str, str]], cfg: ContainerConfig, state: ContainerState,
             image_names: dict[str, list[str]]) -> bool:
    """docker's rule: values of one key are OR'ed (but labels, which must all match), different keys AND'ed."""
    by_key: dict[str, list[str]] = {}
    for k, v in filters:
        by_key.setdefault(k, []).append(v)
    for key, values in by_key.items():
        if key == "name":
            import re

            ok = any(re.search(v, cfg.name) for v in values)
        elif key == "id":
            ok = any(cfg.id.startswith(v) for v in values)
        elif key == "status":
            ok = state.status in values or state.shown_status in values
        elif key == "exited":
            ok = state.status == "exited" and str(state.exit_code) in values
        elif key == "label":  # every label asked for must be there (docker's and podman's rule for labels)
            ok = all((cfg.labels.get(v.partition("=")[0]) == v.partition("=")[2]) if "=" in v
                     else v in cfg.labels for v in values)
        else:  # ancestor: an image name, id or id prefix
            names = {cfg.image_name, cfg.image_id, *image_names.get(cfg.image_id, [])}
            ok = any(v in names or (len(v) >= 4 and cfg.image_id.removeprefix("sha256:").startswith(v))
                     or _same_image_name(v, names) for v in values)
        if not ok:
            return False
    return True


def _same_image_name(value: str, names: set[str]) -> bool:
    candidates = {value, f"{value}:latest", f"docker.io/library/{value}", f"docker.io/library/{value}:latest",
                  f"docker.io/{value}", f"docker.io/{value}:latest"}
    return bool(candidates & names)


def list_containers(store: ImageStore, all_: bool = False,
                    filters: Sequence[str] = ()) -> list[tuple[ContainerConfig, ContainerState]]:
    """The containers ``ps`` shows, newest first (sub-second order: ``ps -l``, ``-n``)."""
    parsed = _parse_filters(filters)
    containers = ContainerStore(store)
    image_names: dict[str, list[str]] = {}
    if any(k == "ancestor" for k, _ in parsed):
        try:
            for rec in store.load().values():
                image_names[rec.id] = list(rec.repo_tags)
        except (RootletError, OSError):
            pass
    rows = []
    for cid in containers.all_ids():
        try:
            cfg = containers.config(cid)
            state = containers.refresh(cid)
        except (ContainerNotFound, OSError, ValueError, TypeError):
            continue  # removed while we listed
        if state.status == "unknown":
            continue
        if not all_ and state.status not in ("running", "restarting") and not any(k in ("status", "exited")
                                                                                 for k, _ in parsed):
            continue
        if parsed and not _matches(parsed, cfg, state, image_names):
            continue
        rows.append((cfg, state))
    rows.sort(key=lambda r: r[0].created, reverse=True)
    return rows


def container_ports(store: ImageStore, cid: str) -> list[tuple[str, str]]:
    """(``80/tcp``, ``0.0.0.0:8080``) pairs of a container's published ports."""
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    if state.status != "running":
        return []
    return [(f"{p.container_port}/{p.protocol}", f"{p.host_ip or '0.0.0.0'}:{p.host_port}")
            for p in ports_of(cfg, state)]
