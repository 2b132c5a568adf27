"""``stats``: what a running container's processes use, read from /proc.

rootlet puts containers in no cgroup of their own (it has no cgroup code; rootless cgroups need
a delegated cgroup v2), so the figures are those of the container's processes, found as ``top``
finds them (every process in the container's pid namespace): CPU time (their own and their
reaped children's), resident memory (RSS; shared pages are counted once per process), the
number of processes, network bytes of the container's interfaces (``/proc/PID/net/dev`` of its
PID 1, loopback left out) and storage bytes read and written (``/proc/PID/io``). The memory
limit is the host's memory, as podman shows for a container without a limit.
"""

from __future__ import annotations

import os
import time

from rootlet.registry.errors import ContainerStateError
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.store import ContainerStore


class ContainerStats(Record):
    """One container's figures at ``sampled`` (monotonic seconds). ``cpu_seconds`` is CPU time
    since it started, ``up_seconds`` the time since then; bytes for memory and I/O (None: not
    readable here)."""

    id: str
    name: str
    running: bool
    cpu_seconds: float = 0.0
    up_seconds: float = 0.0
    mem_usage: int = 0
    mem_limit: int = 0
    pids: int = 0
    net_in: int | None = None
    net_out: int | None = None
    block_in: int | None = None
    block_out: int | None = None
    sampled: float = 0.0

    def cpu_percent(self, previous: ContainerStats | None = None) -> float:
        """CPU use in % of one CPU: since ``previous`` (the same container's earlier sample), or
        over its whole run (podman's first sample, and its AVG CPU %)."""
        if previous is not None and previous.id == self.id and self.sampled > previous.sampled \
                and self.cpu_seconds >= previous.cpu_seconds:
            return 100.0 * (self.cpu_seconds - previous.cpu_seconds) / (self.sampled - previous.sampled)
        return 100.0 * self.cpu_seconds / self.up_seconds if self.up_seconds > 0 else 0.0

    @property
    def mem_percent(self) -> float:
        return 100.0 * self.mem_usage / self.mem_limit if self.mem_limit else 0.0


def container_stats(store: ImageStore, cid: str, required: bool = True) -> ContainerStats:
    """The figures of container ``cid``; one that is not running has zeros (an error when
    ``required``: it was named)."""
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    if state.status != "running":
        if required:
            raise ContainerStateError(f"container {cfg.name} is not running: container state improper",
                                      "start it first, or use `rootlet stats -a` to list every container")
        return ContainerStats(cfg.id, cfg.name, False, mem_limit=_mem_total(), sampled=time.monotonic())
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        target = os.stat(f"/proc/{state.pid}/ns/pid").st_ino
    except OSError:
        target = None
    cpu = 0
    rss = 0
    pids = 0
    read = written = 0
    io_ok = True
    sampled = time.monotonic()
    for entry in os.listdir("/proc") if target is not None else ():
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino != target:
                continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/statm", "rb") as f:
                rss += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        pids += 1
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), counted after the comm's ")".
        cpu += sum(int(x) for x in fields[11:15])
        io = _io_bytes(entry)
        if io is None:
            io_ok = False
        else:
            read, written = read + io[0], written + io[1]
    net = None if cfg.network == "host" else _net_bytes(state.pid)  # the host's own interfaces otherwise
    up = max(0.0, time.time() - (state.started_at or time.time()))
    return ContainerStats(cfg.id, cfg.name, True, cpu_seconds=cpu / ticks, up_seconds=up, mem_usage=rss,
                          mem_limit=_mem_total(), pids=pids, net_in=net[0] if net else None,
                          net_out=net[1] if net else None, block_in=read if io_ok and pids else None,
                          block_out=written if io_ok and pids else None, sampled=sampled)


def _io_bytes(pid: str) -> tuple[int, int] | None:
    """Bytes the process made the storage layer read and write (``/proc/PID/io``)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            values = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        return int(values["read_bytes"]), int(values["write_bytes"])
    except (OSError, KeyError, ValueError):
        return None


def _net_bytes(pid: int) -> tuple[int, int] | None:
    """Received and sent bytes of every interface but loopback in ``pid``'s network namespace."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    rx = tx = 0
    for line in lines:
        name, _, rest = line.partition(":")
        values = rest.split()
        if name.strip() == "lo" or len(values) < 9:
            continue
        rx += int(values[0])
        tx += int(values[8])
    return rx, tx


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0
