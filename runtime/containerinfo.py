"""What ``ps``, ``inspect``, ``port`` and ``top`` report about containers, in docker's field names."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from rootlet.registry.errors import RootletError, UsageError
from rootlet.registry.store import ImageStore
from rootlet.runtime.containers import ContainerConfig, ContainerNotFound, ContainerState, ContainerStore
from rootlet.runtime.lifecycle import describe_status


def rfc3339(ts: float | None) -> str:
    """docker's timestamp form; the zero time for "never"."""
    if not ts:
        return "0001-01-01T00:00:00Z"
    secs = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int((ts - secs) * 1e9):09d}Z"


def _ports_of(cfg: ContainerConfig, state: ContainerState) -> list[dict[str, Any]]:
    """The published ports: as bound while running, else as requested."""
    return state.ports if state.status == "running" and state.ports else cfg.ports


def port_bindings(cfg: ContainerConfig, state: ContainerState) -> dict[str, list[dict[str, str]]]:
    """NetworkSettings.Ports: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}``."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in _ports_of(cfg, state):
        key = f"{p['container_port']}/{p.get('protocol', 'tcp')}"
        out.setdefault(key, []).append({"HostIp": p.get("host_ip") or "0.0.0.0", "HostPort": str(p["host_port"])})
    return out


def ports_text(cfg: ContainerConfig, state: ContainerState) -> str:
    """The PORTS column: ``0.0.0.0:8080->80/tcp``."""
    return ", ".join(f"{p.get('host_ip') or '0.0.0.0'}:{p['host_port']}->{p['container_port']}/{p.get('protocol', 'tcp')}"
                     for p in _ports_of(cfg, state))


def command_text(cfg: ContainerConfig) -> str:
    return " ".join(cfg.argv)


def inspect_container(store: ImageStore, cid: str) -> dict[str, Any]:
    """docker's ``container inspect`` document for ``cid``."""
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    spec = cfg.spec
    restart = spec.get("restart") or {"name": "no", "max": 0}
    return {
        "Id": cfg.id,
        "Created": rfc3339(cfg.created),
        "Path": cfg.argv[0] if cfg.argv else "",
        "Args": cfg.argv[1:],
        "State": {
            "Status": state.status,
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
            "Cmd": spec.get("cmd", cfg.argv),
            "Entrypoint": spec.get("entrypoint", []),
            "Image": cfg.image_name,
            "WorkingDir": cfg.cwd,
            "Labels": dict(cfg.labels),
            "Tty": bool(spec.get("tty")),
            "OpenStdin": bool(spec.get("interactive")),
            "StopSignal": _signal_name(int(spec.get("stop_signal") or signal.SIGTERM)),
            "StopTimeout": int(spec.get("stop_timeout", 10)),
        },
        "Mounts": list(cfg.mounts),
        "NetworkSettings": {"Ports": port_bindings(cfg, state)},
        "HostConfig": {
            "AutoRemove": cfg.auto_remove,
            "NetworkMode": cfg.network,
            "RestartPolicy": {"Name": restart.get("name", "no"), "MaximumRetryCount": int(restart.get("max", 0))},
            "LogConfig": {"Type": (spec.get("log") or {}).get("driver", "k8s-file"),
                          "Config": {"max-size": str((spec.get("log") or {}).get("max_size", 0))}},
            "ReadonlyRootfs": bool(spec.get("readonly_rootfs")),
            "CapAdd": [], "Init": bool(spec.get("init")),
        },
    }


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


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
    """docker's rule: values of one key are OR'ed, different keys AND'ed."""
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
            ok = state.status in values
        elif key == "exited":
            ok = state.status == "exited" and str(state.exit_code) in values
        elif key == "label":
            ok = any((cfg.labels.get(v.partition("=")[0]) == v.partition("=")[2]) if "=" in v
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


def list_containers(store: ImageStore, all_: bool = False, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One record per container, newest first, in podman's ``ps --format json`` shape."""
    parsed = _parse_filters(filters)
    containers = ContainerStore(store)
    image_names: dict[str, list[str]] = {}
    if any(k == "ancestor" for k, _ in parsed):
        with contextlib.suppress(RootletError, OSError):
            for rec in store.load().values():
                image_names[rec.id] = list(rec.repo_tags)
    rows = []
    now = time.time()
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
        rows.append({
            "Id": cfg.id, "Names": [cfg.name], "Image": cfg.image_name, "ImageID": cfg.image_id,
            "Command": list(cfg.argv), "Created": int(cfg.created), "_created": cfg.created, "CreatedAt": rfc3339(cfg.created),
            "State": state.status, "Status": describe_status(state, now),
            "ExitCode": state.exit_code if state.exit_code is not None else 0,
            "Exited": state.status == "exited", "StartedAt": int(state.started_at or 0),
            "ExitedAt": int(state.finished_at or 0), "Pid": state.pid if state.status == "running" else 0,
            "Ports": [{"host_ip": p.get("host_ip") or "", "host_port": p["host_port"],
                       "container_port": p["container_port"], "protocol": p.get("protocol", "tcp")}
                      for p in _ports_of(cfg, state)],
            "PortsText": ports_text(cfg, state),
            "Labels": dict(cfg.labels), "AutoRemove": cfg.auto_remove, "RestartCount": state.restart_count,
        })
    rows.sort(key=lambda r: r["_created"], reverse=True)  # sub-second order: ps -l, -n
    for r in rows:
        del r["_created"]
    return rows


def container_ports(store: ImageStore, cid: str) -> list[tuple[str, str]]:
    """(``80/tcp``, ``0.0.0.0:8080``) pairs of a container's published ports."""
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    if state.status != "running":
        return []
    return [(f"{p['container_port']}/{p.get('protocol', 'tcp')}", f"{p.get('host_ip') or '0.0.0.0'}:{p['host_port']}")
            for p in _ports_of(cfg, state)]


# --- top ---------------------------------------------------------------------------------------------

def _ns_pid(status_text: str) -> str:
    for line in status_text.splitlines():
        if line.startswith("NSpid:"):
            return line.split()[-1]
    return "?"


def container_processes(store: ImageStore, cid: str) -> list[dict[str, str]]:
    """The processes of a running container (podman top's default columns), pids as seen inside."""
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    if state.status != "running":
        from rootlet.runtime.containers import ContainerStateError

        raise ContainerStateError(f"top can only be used on running containers: {cfg.name} is {state.status}")
    try:
        target = os.stat(f"/proc/{state.pid}/ns/pid").st_ino
    except OSError:
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    uid_map = _read_map(f"/proc/{state.pid}/uid_map")
    inner_pids: dict[str, str] = {}
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino != target:
                continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        inner_pids[entry] = _ns_pid(status)
        rest = stat[stat.rfind(b")") + 2:].split()
        ppid = rest[1].decode()
        utime, stime, start = int(rest[11]), int(rest[12]), int(rest[19])
        cpu_secs = (utime + stime) / ticks
        elapsed = max(0.001, uptime - start / ticks)
        uid = next((line.split()[1] for line in status.splitlines() if line.startswith("Uid:")), "0")
        comm = stat[stat.find(b"(") + 1:stat.rfind(b")")].decode(errors="replace")
        args = cmdline.replace(b"\0", b" ").decode(errors="replace").strip() or f"[{comm}]"
        rows.append({"host_pid": entry, "ppid_host": ppid, "USER": _inner_user(int(uid), uid_map),
                     "%CPU": f"{100 * cpu_secs / elapsed:.3f}", "ELAPSED": _clock(elapsed),
                     "TIME": _clock(cpu_secs, hours=True), "COMMAND": args, "TTY": _tty(rest[4])})
    for r in rows:
        r["PID"] = inner_pids.get(r["host_pid"], "?")
        r["PPID"] = inner_pids.get(r["ppid_host"], "0")
    rows.sort(key=lambda r: int(r["PID"]) if r["PID"].isdigit() else 0)
    return rows


def _read_map(path: str) -> list[tuple[int, int, int]]:
    try:
        with open(path) as f:
            return [tuple(int(x) for x in line.split()) for line in f if line.strip()]  # type: ignore[misc]
    except OSError:
        return []


def _inner_user(host_uid: int, uid_map: list[tuple[int, int, int]]) -> str:
    for inner, outer, count in uid_map:
        if outer <= host_uid < outer + count:
            n = inner + host_uid - outer
            return "root" if n == 0 else str(n)
    return str(host_uid)


def _tty(tty_nr: bytes) -> str:
    n = int(tty_nr)
    if n == 0:
        return "?"
    major, minor = (n >> 8) & 0xFFF, (n & 0xFF) | ((n >> 12) & 0xFFF00)
    return f"pts/{minor}" if major == 136 else f"{major}:{minor}"


def _clock(seconds: float, hours: bool = False) -> str:
    s = int(seconds)
    if hours:
        return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    if s < 60:
        return f"{seconds:.3f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    return f"{s // 3600}h{s % 3600 // 60}m"
