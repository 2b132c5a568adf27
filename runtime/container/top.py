"""``top``: the processes of a running container, as podman's default columns show them.

Read from /proc on the host: every process whose pid namespace is the container's, with its pid
and user as seen inside (``NSpid``, the container's uid map).
"""

from __future__ import annotations

import os

from rootlet.registry.errors import ContainerStateError, UsageError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux.proc import read_id_map


#: podman top's default columns.
DEFAULT_COLUMNS = ("USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND")
_ALIASES = {"ARGS": "COMMAND", "CMD": "COMMAND", "COMM": "COMMAND", "PCPU": "%CPU", "ETIME": "ELAPSED"}


def columns_for(descriptors: tuple[str, ...] | list[str]) -> list[str]:
    """The columns of ps-style descriptors (``user``, ``pid``, ``args``, ``pcpu``…)."""
    wanted = [_ALIASES.get(d.lstrip("-").upper(), d.lstrip("-").upper()) for d in descriptors]
    unknown = [w for w in wanted if w not in DEFAULT_COLUMNS]
    if unknown:
        raise UsageError(f"unsupported top descriptor(s): {', '.join(unknown).lower()}",
                         "use user, pid, ppid, pcpu, etime, tty, time, args")
    return wanted


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
        raise ContainerStateError(f"top can only be used on running containers: {cfg.name} is {state.status}")
    try:
        target = os.stat(f"/proc/{state.pid}/ns/pid").st_ino
    except OSError:
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    uid_map = read_id_map(f"/proc/{state.pid}/uid_map")
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
