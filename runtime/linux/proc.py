"""Facts about processes from /proc, and signalling a process only if it still is the one we mean.

There is no daemon to ask whether a container runs: rootlet records a process's pid *and* its
start time (and the boot id), and trusts the pid only while ``/proc/PID/stat`` still shows that
start time on this boot. A reused pid is therefore never signalled.
"""

from __future__ import annotations

import os

from rootlet.runtime.linux import signals


def boot_id() -> str:
    """This boot's id: pids and start times recorded on another boot mean nothing."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, None when it does not exist
    (or is a zombie: it has finished running)."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2:].split()
    try:
        if rest[0] == b"Z":
            return None
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def same_process(pid: int, started: int) -> bool:
    """Whether ``pid`` still is the process that had start time ``started``."""
    return pid > 0 and started > 0 and start_time(pid) == started


def kill_checked(pid: int, started: int, sig: int) -> bool:
    """Send ``sig`` to ``pid`` only if it still is the process we recorded; True when sent."""
    if not same_process(pid, started):
        return False
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        # The pidfd pins the process: re-check the start time, then signal that very one.
        if start_time(pid) != started:
            return False
        signals.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists (signal 0 probe; used for staging dirs named by pid)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_program(name: str) -> str | None:
    """``name`` on PATH, like shutil.which (without importing shutil, which costs milliseconds).

    PATH is read as ``os.get_exec_path()`` reads it, without its import of ``warnings``."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def read_id_map(path: str) -> list[tuple[int, int, int]]:
    """The (inner, outer, count) lines of a ``/proc/PID/uid_map`` or ``gid_map``; [] if unreadable."""
    try:
        with open(path) as f:
            return [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in f if line.strip())]
    except (OSError, ValueError):
        return []
