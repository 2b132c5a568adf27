"""The container store: one directory per container, a name index, and the truth about liveness.

    containers/<id>/config.json   what the container was created with (immutable after create,
                                  except its name)
    containers/<id>/state.json    status, pids, exit code, times (rewritten atomically under
                                  containers/<id>/lock)
    containers/<id>/upper, work   the overlay's writable layer and its work dir
    containers/<id>/merged        the mount point of the root filesystem
    containers/<id>/etc/          hosts, resolv.conf, hostname bind-mounted into the container
    containers/<id>/ctr.log       the output of a detached container (see logfile.py)
    containers.json               name → id, changed under locks/store.lock

There is no daemon to ask whether a container runs. The process that owns a running container
(the monitor of a detached one, the ``rootlet run`` process of a foreground one) records its pid
and that pid's start time; a reader trusts "running" only while that process exists with that
start time, on this boot. Anything else means the owner died without recording the exit, and
``refresh`` finishes the job: it kills what is left and records the container as exited.
"""

from __future__ import annotations

import contextlib
import os

import signal
import time
from collections.abc import Iterator

from rootlet.registry.errors import RootletError, UsageError
from rootlet.registry.fsutil import atomic_write_json, flocked, read_json
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from typing import Any

_ADJECTIVES = ("amazing", "bold", "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "jolly",
               "keen", "lucid", "nifty", "quirky", "serene", "sharp", "stoic", "vibrant", "wizardly", "zen")
_NOUNS = ("archimedes", "babbage", "curie", "darwin", "euler", "feynman", "gauss", "hopper", "kepler",
          "lovelace", "mendel", "newton", "noether", "pascal", "ritchie", "shannon", "tesla", "turing")

#: Exit code recorded when a container's owner died and took the container with it (SIGKILL).
LOST_EXIT_CODE = 137


class ContainerNotFound(RootletError):
    """No container matches a name, id or id prefix."""


class NameInUse(RootletError):
    """``--name`` names an existing container."""


class ContainerStateError(RootletError):
    """The container is in the wrong state for the request (running when it must be stopped…)."""


class ContainerConfig(Record):
    """What a container was created with; the engine needs nothing else to start it again."""

    id: str
    name: str
    image_id: str
    image_name: str
    argv: list[str]
    env: list[str]
    cwd: str
    user: str
    hostname: str
    created: float
    layers: list[str]                          # chain ids, bottom first
    labels: dict[str, str] = {}
    mounts: list[dict[str, Any]] = []
    ports: list[dict[str, Any]] = []
    network: str = "none"
    auto_remove: bool = False
    spec: dict[str, Any] = {}   # the rest of what start needs (see engine.py)


class ContainerState(Record):
    """Where a container is in its life: created → running → exited (→ running again …)."""

    status: str = "created"                   # created | running | exited
    pid: int = 0                              # host pid of the container's PID 1 while running
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    pid_start: int = 0                        # /proc start time of pid (guards against pid reuse)
    owner_pid: int = 0                        # the monitor, or the foreground `rootlet run`
    owner_start: int = 0
    boot_id: str = ""
    restart_count: int = 0
    stop_requested: bool = False              # `stop`: the monitor must not restart it
    ports: list[dict[str, Any]] = []   # published ports as bound
    detached: bool = False

    @property
    def running(self) -> bool:
        return self.status == "running"


# --- processes --------------------------------------------------------------------------------------

def boot_id() -> str:
    """This boot's id: pids and start times recorded on another boot mean nothing."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, None when it does not exist."""
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
        if rest[0] == b"Z":  # a zombie has finished running
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
        if hasattr(os, "pidfd_open"):
            fd = os.pidfd_open(pid)
            try:
                # The pidfd pins the process: re-check the start time, then signal that very one.
                if start_time(pid) != started:
                    return False
                signal.pidfd_send_signal(fd, sig)
            finally:
                os.close(fd)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, OSError):
        return False


# --- the store ---------------------------------------------------------------------------------------

class ContainerStore:
    """Container directories under the store root."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.root = os.path.join(store.root, "containers")
        self.index = os.path.join(store.root, "containers.json")

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def path(self, cid: str, name: str) -> str:
        return os.path.join(self.root, cid, name)

    def names(self) -> dict[str, str]:
        return dict(read_json(self.index, default={}) or {})

    def create(self, config_fields: dict[str, Any], name: str | None) -> ContainerConfig:
        """Reserve an id and a unique name, make the directory and write config and state."""
        self.store.ensure()
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        cid = os.urandom(32).hex()  # the secrets module would pull in hmac and hashlib
        with flocked(self.store.lock_path("store")):
            names = self.names()
            if name:
                if name in names:
                    raise NameInUse(f"the container name {name!r} is already in use by {names[name][:12]}",
                                    "choose another --name, or remove that container with `rootlet rm`")
            else:
                name = _generate_name(names)
            d = self.dir(cid)
            os.mkdir(d, 0o700)
            for sub in ("upper", "work", "merged", "etc"):
                os.mkdir(os.path.join(d, sub), 0o755 if sub != "work" else 0o700)
            config = ContainerConfig(id=cid, name=name, created=time.time(), **config_fields)
            atomic_write_json(os.path.join(d, "config.json"), config.to_dict(), durable=False)
            self.write_state(cid, ContainerState())
            # The name last: a container is listed by name only once it is whole.
            names[name] = cid
            atomic_write_json(self.index, names, durable=False)
        return config

    @contextlib.contextmanager
    def locked(self, cid: str) -> Iterator[None]:
        """Hold the container's own lock (state transitions serialise on it)."""
        try:
            with flocked(self.path(cid, "lock")):
                yield
        except FileNotFoundError:
            raise ContainerNotFound(f"container {cid[:12]} was removed") from None

    @contextlib.contextmanager
    def starting(self, cid: str) -> Iterator[None]:
        """Hold the container's start lock: one start (or removal) at a time, from check to record."""
        try:
            with flocked(self.path(cid, "start.lock")):
                yield
        except FileNotFoundError:
            raise ContainerNotFound(f"container {cid[:12]} was removed") from None

    def write_state(self, cid: str, state: ContainerState) -> None:
        atomic_write_json(self.path(cid, "state.json"), state.to_dict(), durable=False)

    def update_state(self, cid: str, **changes: Any) -> ContainerState:
        """Change some state fields under the container's lock; returns the new state."""
        with self.locked(cid):
            state = self.state(cid)
            for key, value in changes.items():
                setattr(state, key, value)
            self.write_state(cid, state)
            return state

    def state(self, cid: str) -> ContainerState:
        try:
            doc = read_json(self.path(cid, "state.json"), default=None)
        except ValueError:
            doc = None
        return ContainerState.from_dict(doc) if doc else ContainerState(status="unknown")

    def config(self, cid: str) -> ContainerConfig:
        try:
            doc = read_json(self.path(cid, "config.json"), default=None)
        except ValueError:
            doc = None
        if doc is None:
            raise ContainerNotFound(f"no container with id {cid[:12]}", "list containers with `rootlet ps -a`")
        return ContainerConfig.from_dict(doc)

    def write_config(self, config: ContainerConfig) -> None:
        atomic_write_json(self.path(config.id, "config.json"), config.to_dict(), durable=False)

    def all_ids(self) -> list[str]:
        """Ids of the containers that are whole (their config is written)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return [n for n in names if len(n) == 64 and os.path.exists(os.path.join(self.root, n, "config.json"))]

    def resolve(self, name_or_id: str) -> str:
        """The id of the container called *name_or_id*, with that id, or that unique id prefix."""
        if not name_or_id:
            raise ContainerNotFound("no container name or id given")
        names = self.names()
        if name_or_id in names and os.path.isdir(self.dir(names[name_or_id])):
            return names[name_or_id]
        ids = self.all_ids()
        if name_or_id in ids:
            return name_or_id
        hits = [i for i in ids if i.startswith(name_or_id.lower())]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ContainerNotFound(f"container id prefix {name_or_id!r} is ambiguous", "give more of the id")
        raise ContainerNotFound(f"no container with name or ID {name_or_id!r} found",
                                "list containers with `rootlet ps -a`")

    def rename(self, cid: str, new_name: str) -> None:
        """Give the container a new unique name."""
        check_name(new_name)
        with flocked(self.store.lock_path("store")):
            names = self.names()
            if new_name in names and names[new_name] != cid:
                raise NameInUse(f"the container name {new_name!r} is already in use by {names[new_name][:12]}",
                                "choose another name")
            config = self.config(cid)
            names.pop(config.name, None)
            for n, i in list(names.items()):
                if i == cid:
                    del names[n]
            names[new_name] = cid
            config.name = new_name
            self.write_config(config)
            atomic_write_json(self.index, names, durable=False)

    def images_in_use(self) -> dict[str, list[str]]:
        """image id → names of the containers created from it (for ``rmi``)."""
        out: dict[str, list[str]] = {}
        for cid in self.all_ids():
            with contextlib.suppress(RootletError, OSError, TypeError, ValueError):
                cfg = self.config(cid)
                out.setdefault(cfg.image_id, []).append(cfg.name)
        return out

    def forget(self, cid: str) -> str | None:
        """Drop the name and move the directory out of ``containers/`` (under the lock); returns the
        path to delete (in the user namespace), or None when it was already gone."""
        import tempfile

        with flocked(self.store.lock_path("store")):
            names = self.names()
            for n, i in list(names.items()):
                if i == cid:
                    del names[n]
            atomic_write_json(self.index, names, durable=False)
            src = self.dir(cid)
            if not os.path.exists(src):
                return None
            os.makedirs(self.store.tmp, exist_ok=True)
            dst = tempfile.mkdtemp(prefix=f"del-{os.getpid()}-", dir=self.store.tmp)
            os.rename(src, os.path.join(dst, "container"))
            return dst

    # --- liveness ------------------------------------------------------------------------------

    def owner_alive(self, state: ContainerState) -> bool:
        """Whether the process that owns a running container is still there (this boot)."""
        return state.boot_id == boot_id() and same_process(state.owner_pid, state.owner_start)

    def refresh(self, cid: str) -> ContainerState:
        """The container's state, corrected when its owner died without recording the exit.

        Such a container cannot still run (its keeper dies with the owner and takes PID 1 with
        it); whatever is left of it is killed here, and it is recorded as exited.
        """
        state = self.state(cid)
        if state.status != "running" or self.owner_alive(state):
            return state
        with self.locked(cid):
            state = self.state(cid)
            if state.status != "running" or self.owner_alive(state):
                return state
            if state.boot_id == boot_id():
                kill_checked(state.pid, state.pid_start, signal.SIGKILL)
            reap_strays(self.dir(cid))
            state.status = "exited"
            state.exit_code = LOST_EXIT_CODE
            state.finished_at = state.finished_at or time.time()
            state.error = "the process that ran the container died without recording its exit"
            state.pid = 0
            state.ports = []
            self.write_state(cid, state)
            return state


def reap_strays(container_dir: str) -> None:
    """Kill helper processes (fuse-overlayfs) still serving ``container_dir`` after their keeper died."""
    needle = os.path.realpath(container_dir).encode()
    me = os.getuid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}").st_uid != me:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"fuse-overlayfs") and any(needle in a for a in argv[1:]):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _generate_name(existing: dict[str, str]) -> str:
    for _ in range(100):
        a, b = os.urandom(2)
        name = f"{_ADJECTIVES[a % len(_ADJECTIVES)]}_{_NOUNS[b % len(_NOUNS)]}"
        if name not in existing:
            return name
    return "c_" + os.urandom(6).hex()


def check_name(name: str) -> str:
    """Container names follow docker's rule: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``."""
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise UsageError(f"invalid container name {name!r}", "names use letters, digits, '_', '.', '-'")
    return name
