"""The container store: one directory per container, and a name index.

    containers/<id>/config.json   what the container was created with (immutable after create)
    containers/<id>/state.json    status, pid, exit code, times (rewritten atomically)
    containers/<id>/upper, work   the overlay's writable layer and its work dir
    containers/<id>/merged        the mount point of the root filesystem
    containers/<id>/etc/          hosts, resolv.conf, hostname bind-mounted into the container
    containers.json               name → id, changed under locks/store.lock

Names are unique; every command accepts a name, a full id or a unique id prefix. Removing a
container's directory needs the user namespace (the upper dir holds files of subordinate ids).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from rootlet.registry.errors import RootletError, StoreError, UsageError
from rootlet.registry.fsutil import atomic_write_json, flocked, read_json
from rootlet.registry.store import ImageStore

_ADJECTIVES = ("amazing", "bold", "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "jolly",
               "keen", "lucid", "nifty", "quirky", "serene", "sharp", "stoic", "vibrant", "wizardly", "zen")
_NOUNS = ("archimedes", "babbage", "curie", "darwin", "euler", "feynman", "gauss", "hopper", "kepler",
          "lovelace", "mendel", "newton", "noether", "pascal", "ritchie", "shannon", "tesla", "turing")


class ContainerNotFound(RootletError):
    """No container matches a name, id or id prefix."""


class NameInUse(RootletError):
    """``--name`` names an existing container."""


@dataclass
class ContainerConfig:
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
    labels: dict[str, str] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)
    network: str = "none"
    auto_remove: bool = False
    spec: dict[str, Any] = field(default_factory=dict)   # the rest of the run options, for restart


@dataclass
class ContainerState:
    status: str = "created"                   # created | running | exited
    pid: int = 0
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None


class ContainerStore:
    """Container directories under the store root."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.root = os.path.join(store.root, "containers")
        self.index = os.path.join(store.root, "containers.json")

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def names(self) -> dict[str, str]:
        return dict(read_json(self.index, default={}) or {})

    def create(self, config_fields: dict[str, Any], name: str | None) -> ContainerConfig:
        """Reserve an id and a unique name, make the directory and write config and state."""
        self.store.ensure()
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        cid = secrets.token_hex(32)
        with flocked(self.store.lock_path("store")):
            names = self.names()
            if name:
                if name in names:
                    raise NameInUse(f"the container name {name!r} is already in use by {names[name][:12]}",
                                    "choose another --name, or remove that container with `rootlet rm`")
            else:
                name = _generate_name(names)
            names[name] = cid
            d = self.dir(cid)
            os.mkdir(d, 0o700)
            for sub in ("upper", "work", "merged", "etc"):
                os.mkdir(os.path.join(d, sub), 0o755 if sub != "work" else 0o700)
            config = ContainerConfig(id=cid, name=name, created=time.time(), **config_fields)
            atomic_write_json(os.path.join(d, "config.json"), asdict(config), durable=False)
            self.write_state(cid, ContainerState())
            atomic_write_json(self.index, names, durable=False)
        return config

    def write_state(self, cid: str, state: ContainerState) -> None:
        atomic_write_json(os.path.join(self.dir(cid), "state.json"), asdict(state), durable=False)

    def state(self, cid: str) -> ContainerState:
        doc = read_json(os.path.join(self.dir(cid), "state.json"), default=None)
        return ContainerState(**doc) if doc else ContainerState(status="unknown")

    def config(self, cid: str) -> ContainerConfig:
        doc = read_json(os.path.join(self.dir(cid), "config.json"), default=None)
        if doc is None:
            raise ContainerNotFound(f"no container with id {cid[:12]}")
        return ContainerConfig(**doc)

    def all_ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root) if len(n) == 64]
        except FileNotFoundError:
            return []

    def resolve(self, name_or_id: str) -> str:
        """The id of the container called *name_or_id*, with that id, or that unique id prefix."""
        names = self.names()
        if name_or_id in names:
            return names[name_or_id]
        ids = self.all_ids()
        if name_or_id in ids:
            return name_or_id
        hits = [i for i in ids if i.startswith(name_or_id)] if len(name_or_id) >= 1 else []
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ContainerNotFound(f"container id prefix {name_or_id!r} is ambiguous", "give more of the id")
        raise ContainerNotFound(f"no container with name or ID {name_or_id!r} found",
                                "list containers with `rootlet ps -a`")

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
            dst = tempfile.mkdtemp(prefix=f"del-{os.getpid()}-", dir=self.store.tmp)
            os.rename(src, os.path.join(dst, "container"))
            return dst


def _generate_name(existing: dict[str, str]) -> str:
    for _ in range(100):
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"
        if name not in existing:
            return name
    return "c_" + secrets.token_hex(6)


def check_name(name: str) -> str:
    """Container names follow docker's rule: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``."""
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise UsageError(f"invalid container name {name!r}", "names use letters, digits, '_', '.', '-'")
    return name


