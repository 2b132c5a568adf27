"""The container store: one directory per container, a name index, and the truth about liveness.

    containers/<id>/config.json   what the container was created with (record.py; written once)
    containers/<id>/state.json    status, pids, exit code, times (rewritten atomically under
                                  containers/<id>/lock)
    containers/<id>/start.lock    held from "is it running?" to "recorded running" by a start
    containers/<id>/upper, work   the overlay's writable layer and its work dir
    containers/<id>/merged        the mount point of the root filesystem
    containers/<id>/etc/          hosts, resolv.conf, hostname (passwd, group) bind-mounted in
    containers/<id>/ctr.log       the container's output (lifecycle/logfile.py)
    containers.json               name → id, changed under locks/containers.lock

The name index has a lock of its own, held for a few file operations only: nothing that waits on
an image, a layer or a network ever holds it.

There is no daemon to ask whether a container runs. The process that owns a running container
(the monitor of a detached one, the ``rootlet run`` process of a foreground one) records its pid
and that pid's start time; a reader trusts "running" only while that process exists with that
start time, on this boot. Anything else means the owner died without recording the exit, and
``refresh`` finishes the job: it kills what is left and records the container as exited.
"""

from __future__ import annotations

import os
import time

from rootlet.registry.errors import ContainerError, ContainerNotFound, NameInUse, RootletError, UsageError
from rootlet.registry.fsutil import atomic_write_json, flocked, locked_document, read_json
from rootlet.registry.names import is_valid_name
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.record import ContainerConfig, ContainerState
from rootlet.runtime.linux import signals
from rootlet.runtime.linux.proc import boot_id, kill_checked, same_process

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_ADJECTIVES = ("amazing", "bold", "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "jolly",
               "keen", "lucid", "nifty", "quirky", "serene", "sharp", "stoic", "vibrant", "wizardly", "zen")
_NOUNS = ("archimedes", "babbage", "curie", "darwin", "euler", "feynman", "gauss", "hopper", "kepler",
          "lovelace", "mendel", "newton", "noether", "pascal", "ritchie", "shannon", "tesla", "turing")

#: Exit code recorded when a container's owner died and took the container with it (SIGKILL).
LOST_EXIT_CODE = 137
#: The subdirectories every container has.
CONTAINER_DIRS = (("upper", 0o755), ("work", 0o700), ("merged", 0o755), ("etc", 0o755))


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

    def _names_locked(self) -> locked_document:
        """The name index under its lock; written back when the body succeeds (and changed it)."""
        self.store.ensure()
        before: dict[str, str] = {}

        def load() -> dict[str, str]:
            names = self.names()
            before.update(names)
            return names

        def save(names: dict[str, str]) -> None:
            if names != before:
                atomic_write_json(self.index, names, durable=False)

        return locked_document(self.store.lock_path("containers"), load, save)

    # --- creating ---------------------------------------------------------------------------------

    def new_dir(self) -> str:
        """A new container id and its empty directory (invisible to listings until ``commit``)."""
        self.store.ensure()
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        cid = os.urandom(32).hex()  # the secrets module would pull in hmac and hashlib
        d = self.dir(cid)
        os.mkdir(d, 0o700)
        for sub, mode in CONTAINER_DIRS:
            os.mkdir(os.path.join(d, sub), mode)
        return cid

    def check_name_free(self, name: str) -> None:
        """Fail early (without the lock) when ``name`` is taken; ``commit`` checks again."""
        names = self.names()
        if name in names and os.path.isdir(self.dir(names[name])):
            raise _name_in_use(name, names[name])

    def commit(self, config: ContainerConfig, wanted_name: str | None,
               before_listing: Callable[[ContainerConfig], None] | None = None) -> ContainerConfig:
        """Name the container (``wanted_name``, or a generated one), write its config and initial
        state, and list it: the config is written once, whole. ``before_listing`` gets the named
        config first, to write what depends on the name. Returns the config as written."""
        with self._names_locked() as names:
            if wanted_name:
                if wanted_name in names and names[wanted_name] != config.id and \
                        os.path.isdir(self.dir(names[wanted_name])):
                    raise _name_in_use(wanted_name, names[wanted_name])
                name = wanted_name
            else:
                name = _generate_name(names)
            config = config.replace(name=name)
            if before_listing is not None:
                before_listing(config)
            atomic_write_json(self.path(config.id, "config.json"), config.to_json(), durable=False)
            self.write_state(config.id, ContainerState())
            # The name last: a container is listed by name only once it is whole.
            names[name] = config.id
        return config

    # --- locks and records --------------------------------------------------------------------

    def locked(self, cid: str) -> _ContainerLock:
        """Hold the container's own lock (state transitions serialise on it)."""
        return _ContainerLock(cid, self.path(cid, "lock"))

    def starting(self, cid: str) -> _ContainerLock:
        """Hold the container's start lock: one start (or removal) at a time, from check to record."""
        return _ContainerLock(cid, self.path(cid, "start.lock"))

    def write_state(self, cid: str, state: ContainerState) -> None:
        atomic_write_json(self.path(cid, "state.json"), state.to_json(), durable=False)

    def update_state(self, cid: str, **changes: Any) -> ContainerState:
        """Change some state fields under the container's lock; returns the new state."""
        with self.locked(cid):
            state = self.state(cid).replace(**changes)
            self.write_state(cid, state)
            return state

    def state(self, cid: str) -> ContainerState:
        try:
            doc = read_json(self.path(cid, "state.json"), default=None)
        except ValueError:
            doc = None
        return ContainerState.from_json(doc) if doc else ContainerState(status="unknown")

    def config(self, cid: str) -> ContainerConfig:
        try:
            doc = read_json(self.path(cid, "config.json"), default=None)
        except ValueError:
            doc = None
        if doc is None:
            raise ContainerNotFound(f"no container with id {cid[:12]}", "list containers with `rootlet ps -a`")
        return ContainerConfig.load(doc)

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
            raise ContainerError(f"container id prefix {name_or_id!r} is ambiguous", "give more of the id")
        # podman's words: scripts grep for "no such container".
        raise ContainerNotFound(f'no container with name or ID "{name_or_id}" found: no such container',
                                "list containers with `rootlet ps -a`")

    def rename(self, cid: str, new_name: str) -> None:
        """Give the container a new unique name (the one change a config ever sees)."""
        check_name(new_name)
        with self._names_locked() as names:
            if new_name in names and names[new_name] != cid and os.path.isdir(self.dir(names[new_name])):
                raise _name_in_use(new_name, names[new_name])
            config = self.config(cid)
            for n, i in list(names.items()):
                if i == cid:
                    del names[n]
            names[new_name] = cid
            atomic_write_json(self.path(cid, "config.json"), config.replace(name=new_name).to_json(),
                              durable=False)

    def configs(self) -> list[ContainerConfig]:
        """The configs of every container (those removed meanwhile are skipped)."""
        out = []
        for cid in self.all_ids():
            try:
                out.append(self.config(cid))
            except (RootletError, OSError, TypeError, ValueError):
                pass
        return out

    def forget(self, cid: str) -> str | None:
        """Drop the name and move the directory out of ``containers/`` (under the name lock); returns
        the path to delete (maybe in the user namespace), or None when it was already gone."""
        with self._names_locked() as names:
            for n, i in list(names.items()):
                if i == cid:
                    del names[n]
            src = self.dir(cid)
            if not os.path.exists(src):
                return None
            os.makedirs(self.store.tmp, exist_ok=True)
            dst = os.path.join(self.store.tmp, f"del-{os.getpid()}-{os.urandom(6).hex()}")
            os.mkdir(dst, 0o700)
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
                kill_checked(state.pid, state.pid_start, signals.SIGKILL)
            reap_strays(self.dir(cid))
            state = state.replace(
                status="exited", exit_code=LOST_EXIT_CODE, finished_at=state.finished_at or time.time(),
                error="the process that ran the container died without recording its exit", pid=0, ports=[])
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
            try:
                os.kill(pid, signals.SIGKILL)
            except OSError:
                pass


def _name_in_use(name: str, cid: str) -> NameInUse:
    return NameInUse(f"the container name {name!r} is already in use by {cid[:12]}",
                     "choose another name, or remove that container with `rootlet rm`")


class _ContainerLock(flocked):
    """A container's lock; its lock file missing means the container was removed (not an error
    of the ``with`` body, which this does not touch)."""

    __slots__ = ("cid",)

    def __init__(self, cid: str, path: str) -> None:
        super().__init__(path)
        self.cid = cid

    def __enter__(self) -> bool:
        try:
            return super().__enter__()
        except FileNotFoundError:
            raise ContainerNotFound(f"container {self.cid[:12]} was removed") from None


def _generate_name(existing: dict[str, str]) -> str:
    for _ in range(100):
        a, b = os.urandom(2)
        name = f"{_ADJECTIVES[a % len(_ADJECTIVES)]}_{_NOUNS[b % len(_NOUNS)]}"
        if name not in existing:
            return name
    return "c_" + os.urandom(6).hex()


def check_name(name: str) -> str:
    """Container names follow docker's rule: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``."""
    if not is_valid_name(name):
        raise UsageError(f"invalid container name {name!r}", "names use letters, digits, '_', '.', '-'")
    return name
