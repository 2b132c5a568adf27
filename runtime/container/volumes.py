"""Volumes: named and anonymous directories in the store that outlive the containers using them.

    volumes/<name>/_data         what the container sees (podman's Mountpoint)
    volumes/<name>/volume.json   driver, options, labels, created time, copy-up state (atomic)
    volumes/<name>/seed.lock     held while the image's content is copied in (first use)
    locks/volumes.lock           held to create, check and take away a volume (short)

A volume is created by ``volume create`` or on first use (``run -v NAME:/path``, ``-v /path``,
an image's ``VOLUME``). Until a container first uses it, it "needs copy-up": that container's
``create`` seeds it, when it is still empty, with the image's content at the mount's destination
(``rootlet.runtime.container.seed``), as podman and docker do. A volume a container refers to is
never removed: ``rm`` of it is refused, and a ``create`` racing an ``rm`` either is seen by the
``rm`` or sees the volume gone (``check_volumes_kept``). Options (``-o``) make a volume a tmpfs
of each container's own, or a bind mount of a host directory (podman's ``type=none,o=bind``).
Volumes written before metadata existed (no ``volume.json``) read as plain local volumes.
"""

from __future__ import annotations

import contextlib
import os

from rootlet.registry.errors import UsageError, VolumeInUse, VolumeNotFound
from rootlet.registry.fsutil import atomic_write_json, flocked, read_json
from rootlet.registry.names import is_valid_name
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.flags import VolumeSpec
from rootlet.runtime.container.record import ContainerConfig, Mount
from rootlet.runtime.system.events import record_event

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

#: Words a tmpfs volume's ``o=`` may hold (tmpfs's own data and per-mount flags).
TMPFS_WORDS = ("size", "mode", "nr_inodes", "uid", "gid", "noexec", "exec", "nosuid", "suid", "nodev", "dev",
               "ro", "rw", "noatime", "relatime", "strictatime")
#: Words a bind volume's ``o=`` may hold.
BIND_WORDS = ("bind", "rbind", "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "private", "rprivate")


class VolumeConfig(Record):
    """One volume's metadata (``volume.json``). ``options`` are ``volume create -o``'s (``type``,
    ``device``, ``o``); ``needs_copy_up``/``needs_chown`` stay true until a container first uses it."""

    name: str
    driver: str = "local"
    created: float = 0.0
    labels: dict[str, str] = {}
    options: dict[str, str] = {}
    anonymous: bool = False
    needs_copy_up: bool = True
    needs_chown: bool = True

    @property
    def kind(self) -> str:
        """``plain`` (a directory in the store), ``tmpfs`` or ``bind``."""
        kind = self.options.get("type", "")
        return "tmpfs" if kind == "tmpfs" else ("bind" if kind in ("none", "bind") else "plain")


def check_volume_name(name: str) -> str:
    """podman's rule for volume names: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``."""
    if not is_valid_name(name or "") or len(name) > 255:
        raise UsageError(f"invalid volume name {name!r}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*",
                         "use letters, digits, '_', '.' and '-', starting with a letter or digit")
    return name


def parse_volume_options(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``-o type=tmpfs|none|bind``, ``-o device=…``, ``-o o=…`` (each may also be one
    comma-separated ``-o type=tmpfs,o=size=64m``… as docker's ``--opt`` is not); checked here so
    that a volume that could never be mounted is never created."""
    options: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in ("type", "device", "o"):
            raise UsageError(f"invalid volume option {item!r}", "use -o type=tmpfs|bind, -o device=PATH, -o o=OPTIONS")
        options[key] = value
    kind = options.get("type")
    words = [w for w in options.get("o", "").split(",") if w]
    if kind is None:
        if options:
            raise UsageError("volume options need a type", "add -o type=tmpfs or -o type=bind")
    elif kind == "tmpfs":
        bad = [w for w in words if w.split("=", 1)[0] not in TMPFS_WORDS]
        if bad:
            raise UsageError(f"unsupported tmpfs volume option {bad[0]!r}", f"use {', '.join(TMPFS_WORDS)}")
        if options.get("device", "tmpfs") != "tmpfs":
            raise UsageError("a tmpfs volume takes no device but tmpfs", "drop -o device=…")
    elif kind in ("none", "bind"):
        device = options.get("device", "")
        if not device.startswith("/"):
            raise UsageError("a bind volume needs -o device=ABSOLUTE_PATH", "e.g. -o type=none -o device=/srv/data -o o=bind")
        if not os.path.isdir(device):
            raise UsageError(f"bind volume device {device}: no such directory", "create it first")
        if not {"bind", "rbind"} & set(words):
            raise UsageError(f"volume type {kind} needs -o o=bind (or rbind)", "rootless, only bind mounts of host "
                             "paths are possible: -o type=none -o device=PATH -o o=bind")
        bad = [w for w in words if w not in BIND_WORDS]
        if bad:
            raise UsageError(f"unsupported bind volume option {bad[0]!r}", f"use {', '.join(BIND_WORDS)}")
    else:
        raise UsageError(f"unsupported volume type {kind!r}", "rootless volumes can be type=tmpfs or type=bind "
                         "(podman's type=none,o=bind); other filesystems need root to mount")
    return options


class VolumeStore:
    """The volumes of one store root."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.root = os.path.join(store.root, "volumes")

    def dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def data(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def locked(self) -> contextlib.AbstractContextManager[bool]:
        """The volume lock: creating, checking for users and taking away a volume."""
        self.store.ensure()
        return flocked(self.store.lock_path("volumes"))

    def names(self) -> list[str]:
        """Every volume's name, sorted (podman lists them so)."""
        try:
            return sorted(n for n in os.listdir(self.root) if is_valid_name(n) and os.path.isdir(self.data(n)))
        except FileNotFoundError:
            return []

    def exists(self, name: str) -> bool:
        return is_valid_name(name) and os.path.isdir(self.data(name))

    def config(self, name: str) -> VolumeConfig:
        """A volume's metadata; a volume without any (made by rootlet 0.1) as a plain local one."""
        if not self.exists(name):
            raise VolumeNotFound(f'no volume with name "{name}" found: no such volume',
                                 "list volumes with `rootlet volume ls`")
        try:
            doc = read_json(os.path.join(self.dir(name), "volume.json"), default=None)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            with contextlib.suppress(TypeError, ValueError):
                return VolumeConfig.from_json(doc).replace(name=name)
        created = os.stat(self.dir(name)).st_mtime
        return VolumeConfig(name=name, created=created, needs_copy_up=False, needs_chown=False,
                            anonymous=len(name) == 64 and all(c in "0123456789abcdef" for c in name))

    def write(self, cfg: VolumeConfig) -> None:
        atomic_write_json(os.path.join(self.dir(cfg.name), "volume.json"), cfg.to_json(), durable=False)

    def create(self, cfg: VolumeConfig, ignore: bool = False) -> tuple[VolumeConfig, bool]:
        """Create ``cfg``'s volume; (its config, whether it is new). An existing name is an error
        unless ``ignore`` (then the existing volume is returned as it is)."""
        check_volume_name(cfg.name)
        with self.locked():
            if self.exists(cfg.name):
                if ignore:
                    return self.config(cfg.name), False
                raise UsageError(f"volume with name {cfg.name} already exists: volume already exists",
                                 "choose another name, or add --ignore")
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # a leftover of a create killed half-way
                os.mkdir(self.dir(cfg.name), 0o700)
            self.write(cfg)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.data(cfg.name), 0o755)
        record_event(self.store.root, "volume", "create", name=cfg.name)
        return cfg, True

    def ensure(self, name: str, anonymous: bool = False) -> VolumeConfig:
        """The volume ``name``, created (plain, local) when it does not exist yet: first use."""
        if self.exists(name):
            return self.config(name)
        import time

        return self.create(VolumeConfig(name=name, created=time.time(), anonymous=anonymous), ignore=True)[0]

    def users(self) -> dict[str, list[ContainerConfig]]:
        """Volume name → the containers whose mounts name it."""
        from rootlet.runtime.container.store import ContainerStore

        out: dict[str, list[ContainerConfig]] = {}
        for cfg in ContainerStore(self.store).configs():
            for m in cfg.mounts:
                if m.name:
                    out.setdefault(m.name, []).append(cfg)
        return out

    def take(self, name: str, users: bool = True) -> str:
        """Take the volume out of ``volumes/`` (under the lock, refused while a container refers to
        it unless ``users`` is false); returns the directory to delete (maybe holding files of
        subordinate ids: ``lifecycle.stop.delete_trees``)."""
        with self.locked():
            if not self.exists(name):
                raise VolumeNotFound(f'no volume with name "{name}" found: no such volume',
                                     "list volumes with `rootlet volume ls`")
            if users:
                using = self.users().get(name, [])
                if using:
                    raise VolumeInUse(f"volume {name} is being used by the following container(s): "
                                      f"{', '.join(c.id for c in using)}: volume is being used",
                                      "remove those containers first, or use `rootlet volume rm -f`")
            os.makedirs(self.store.tmp, exist_ok=True)
            dst = os.path.join(self.store.tmp, f"del-{os.getpid()}-{os.urandom(6).hex()}")
            os.mkdir(dst, 0o700)
            os.rename(self.dir(name), os.path.join(dst, "volume"))
        record_event(self.store.root, "volume", "remove", name=name)
        return dst

    def all_configs(self) -> Iterator[VolumeConfig]:
        for name in self.names():
            with contextlib.suppress(VolumeNotFound, OSError):
                yield self.config(name)


# --- the mounts of a new container ----------------------------------------------------------------

def mount_for(volumes: VolumeStore, name: str, destination: str, readonly: bool) -> Mount:
    """The container mount of volume ``name`` (created when new; ``name`` "" makes an anonymous one)."""
    anonymous = not name
    cfg = volumes.ensure(name or os.urandom(32).hex(), anonymous=anonymous)
    if cfg.kind == "tmpfs":
        words = [w for w in cfg.options.get("o", "").split(",") if w and w not in ("ro", "rw")]
        return Mount("tmpfs", destination, name=cfg.name, readonly=readonly,
                     options=("ro" if readonly else "rw", "nosuid", "nodev", *words))
    if cfg.kind == "bind":
        device = cfg.options.get("device", "")
        if not os.path.isdir(device):
            raise UsageError(f"volume {cfg.name}: its device {device} is no directory any more",
                             "create it again, or remove the volume")
        words = tuple(w for w in cfg.options.get("o", "").split(",") if w)
        return Mount("volume", destination, source=device, name=cfg.name,
                     readonly=readonly or "ro" in words, options=words)
    return Mount("volume", destination, source=volumes.data(cfg.name), name=cfg.name, readonly=readonly,
                 anonymous=cfg.anonymous)


def check_volumes_kept(volumes: VolumeStore, cfg: ContainerConfig) -> list[str]:
    """The volumes of a just-listed container that a racing ``volume rm`` took away first (under
    the volume lock: an ``rm`` after this point sees the container and refuses)."""
    names = [m.name for m in cfg.mounts if m.name]
    if not names:
        return []
    with volumes.locked():
        return [n for n in names if not volumes.exists(n)]


# --- listing -------------------------------------------------------------------------------------

def inspect_doc(volumes: VolumeStore, cfg: VolumeConfig) -> dict[str, object]:
    """podman's ``volume inspect`` document (its field names and order)."""
    doc: dict[str, object] = {
        "Name": cfg.name, "Driver": cfg.driver, "Mountpoint": volumes.data(cfg.name),
        "CreatedAt": go_rfc3339(cfg.created), "Labels": dict(cfg.labels), "Scope": "local",
        "Options": dict(cfg.options)}
    if cfg.anonymous:
        doc["Anonymous"] = True
    doc.update({"MountCount": 0, "NeedsCopyUp": cfg.needs_copy_up, "NeedsChown": cfg.needs_chown})
    return doc


def go_rfc3339(ts: float) -> str:
    """A Unix time as Go marshals a ``time.Time`` to JSON: local time, RFC 3339 with nanoseconds
    (trailing zeros trimmed) and ``Z`` or the offset."""
    import time

    secs = int(ts)
    local = time.localtime(secs)
    frac = f"{int(round((ts - secs) * 1e9)) % 1_000_000_000:09d}".rstrip("0")
    off = local.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + (f".{frac}" if frac else "") + zone


#: ``volume ls --filter`` keys (``volume prune`` takes label= and until=).
LS_FILTERS = ("name", "label", "driver", "dangling", "anonymous", "until")


def select_volumes(volumes: VolumeStore, filters: tuple[str, ...] | list[str], allowed: tuple[str, ...] = LS_FILTERS,
                   users: dict[str, list[ContainerConfig]] | None = None,
                   parse_time: Callable[[str], float] | None = None) -> list[VolumeConfig]:
    """The volumes that pass every filter (values of one key are alternatives; ``label!=`` excludes).
    ``until=`` values are read by ``parse_time`` (seconds since the epoch)."""
    wanted: dict[str, list[str]] = {}
    for item in filters:
        key, eq, value = item.partition("=")
        negate = key.endswith("!")
        key = key.rstrip("!")
        if not eq or key not in allowed or (negate and key != "label"):
            raise UsageError(f"{key!r} is an invalid volume filter", f"use {', '.join(k + '=' for k in allowed)}")
        if key in ("dangling", "anonymous") and value.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"invalid --filter {item!r}", "give true or false")
        if key == "until":
            if parse_time is None:
                raise UsageError("until= is not available here")
            value = repr(parse_time(value))
        wanted.setdefault(key + ("!" if negate else ""), []).append(value)
    if users is None and "dangling" in wanted:
        users = volumes.users()
    out = []
    for cfg in volumes.all_configs():
        keep = all(any(_passes(cfg, key, v, users) for v in values) for key, values in wanted.items()
                   if not key.endswith("!"))
        if keep and not any(_passes(cfg, key[:-1], v, users) for key, values in wanted.items() if key.endswith("!")
                            for v in values):
            out.append(cfg)
    return out


def _passes(cfg: VolumeConfig, key: str, value: str, users: dict[str, list[ContainerConfig]] | None) -> bool:
    truth = value.lower() in ("true", "1")
    if key == "name":
        import re  # only here: `run -v NAME:/dst` has no use for it

        try:
            return re.search(value, cfg.name) is not None
        except re.error:
            return value == cfg.name
    if key == "label":
        k, eq, v = value.partition("=")
        return k in cfg.labels and (not eq or cfg.labels[k] == v)
    if key == "driver":
        return cfg.driver == value
    if key == "dangling":
        return (not (users or {}).get(cfg.name)) == truth
    if key == "anonymous":
        return cfg.anonymous == truth
    if key == "until":
        return cfg.created < float(value)
    return False


def image_volume_specs(config: Mapping[str, object], given: tuple[VolumeSpec, ...]) -> tuple[VolumeSpec, ...]:
    """Anonymous volumes for the image's ``VOLUME`` paths that no mount given covers (podman makes
    them at create; ``run --rm`` and ``rm -v`` remove them)."""
    paths = config.get("Volumes")
    if not isinstance(paths, dict):
        return ()
    taken = {os.path.normpath(v.destination) for v in given}
    out = []
    for path in sorted(p for p in paths if isinstance(p, str) and p.startswith("/")):
        dest = os.path.normpath(path)
        if dest != "/" and dest not in taken:
            taken.add(dest)
            out.append(VolumeSpec("volume", "", dest))
    return tuple(out)


def drop_volumes(store: ImageStore, names: list[str]) -> None:
    """Remove the anonymous volumes a failed create made (no container refers to them); what only
    a user namespace could delete is left for ``volume prune``."""
    from rootlet.registry.errors import RootletError
    from rootlet.runtime.linux.rmtree import remove_tree

    volumes = VolumeStore(store)
    for name in names:
        with contextlib.suppress(OSError, RootletError):
            remove_tree(volumes.take(name, users=False))
