"""A container on disk: what it was created with (``ContainerConfig``) and where it is in its life
(``ContainerState``), as typed records.

``config.json`` is written once, whole, at create and never changed after that, except the name
(``rename``). Everything that changes while a container lives (status, pids, exit code, bound
ports, restart count) is in ``state.json``. Both are written atomically; nothing reads a field by
string: the records name every field, and nested parts (mounts, ports, restart and log policy,
limits) are records too.

Stores written by rootlet 0.1 (config version 1: a free-form ``spec`` dict beside the typed
fields) still load: ``ContainerConfig.load`` converts them in memory, and the next write (a
rename) stores the new form.
"""

from __future__ import annotations

from rootlet.registry.record import Record

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from typing import Any

    from rootlet.runtime.net.networks import NetRequest
    from rootlet.runtime.net.ports import PortMapping
    from rootlet.runtime.oci.spec import Rlimit

# Nested records of other modules, by name: they are imported only for a container that has
# some (``Record.from_json``), so listing containers loads neither the network nor the OCI code.
_PORTS = "rootlet.runtime.net.ports:PortMapping"
_RLIMITS = "rootlet.runtime.oci.spec:Rlimit"
_NETWORKS = "rootlet.runtime.net.networks:NetRequest"

CONFIG_VERSION = 2
DEFAULT_STOP_TIMEOUT = 10
SIGTERM = 15


class RestartPolicy(Record):
    """``--restart``: ``no``, ``on-failure`` (at most ``max`` restarts, 0 = no limit), ``always``,
    ``unless-stopped``."""

    name: str = "no"
    max: int = 0


class LogConfig(Record):
    """``--log-driver`` (``k8s-file`` or ``none``) and ``--log-opt max-size`` (0: unbounded)."""

    driver: str = "k8s-file"
    max_size: int = 0


class Mount(Record):
    """One mount the container was created with, in ``-v``/``--mount``/``--tmpfs`` order.

    ``type`` ``bind``: ``source`` is the host path, ``options`` mount words (``bind``, ``nosuid``,
    propagation). ``volume``: ``source`` is the volume's data directory in the store, ``name`` the
    volume's name (``anonymous`` for ``-v /path`` and image volumes). ``tmpfs``: ``options`` are the
    tmpfs's full mount words and data (``rw,nosuid,nodev,size=64m``).
    """

    type: str
    destination: str
    source: str = ""
    name: str = ""
    readonly: bool = False
    options: tuple[str, ...] = ()
    anonymous: bool = False


class HealthConfig(Record):
    """A healthcheck (docker's ``Healthcheck``): ``test`` is ``["CMD", argv…]`` or ``["CMD-SHELL",
    line]``; times in nanoseconds (``interval`` 0: no periodic checks, only ``healthcheck run``)."""

    test: list[str]
    interval: int = 30_000_000_000
    timeout: int = 30_000_000_000
    start_period: int = 0
    retries: int = 3


class ContainerConfig(Record):
    """Everything a container was created with: the engine needs nothing else to start it again.

    ``argv`` is the final command (entrypoint + cmd); ``entrypoint`` and ``cmd`` are the two parts
    as inspect shows them. ``env`` is final (image, defaults, ``--env-file``, ``-e``). ``layers``
    are the image's chain ids, bottom first. ``userns`` is ``""`` or ``keep-id`` (then
    ``keep_uid``/``keep_gid`` are the host ids kept). ``stop_signal`` is a number. ``seccomp`` is
    ``default`` (podman's profile), ``unconfined``, or ``custom`` (the profile given at create,
    kept in the container's directory as ``seccomp.json``). ``user_entries`` are ``[db, id, line]``
    lines for the container's /etc/passwd and /etc/group, added at start when no entry has that id
    (keep-id's user, a numeric ``--user`` the image does not list). ``network_options`` are
    ``--network slirp4netns:…``'s; ``timeout`` (seconds, 0: none) kills the container after its
    start (podman's ``--timeout``); ``privileged``: every capability, no seccomp filter, nothing
    of /proc or /sys masked. ``network`` is ``bridge`` on user networks (``networks``), ``pod`` in a
    pod (``pod``), ``container:ID`` in another container's network namespace.
    """

    _nested = {"mounts": Mount, "ports": _PORTS, "rlimits": _RLIMITS, "restart": RestartPolicy,
               "log": LogConfig, "networks": _NETWORKS, "healthcheck": HealthConfig}

    version: int = CONFIG_VERSION
    id: str
    name: str
    created: float
    image_id: str
    image_name: str
    layers: list[str]
    argv: list[str]
    entrypoint: list[str] = []
    cmd: list[str] = []
    env: list[str] = []
    cwd: str = "/"
    user: str = ""
    additional_gids: list[int | str] = []
    user_entries: list[list[str]] = []
    hostname: str = ""
    labels: dict[str, str] = {}
    mounts: list[Mount] = []
    readonly_rootfs: bool = False
    caps: list[str] = []
    ambient_caps: list[str] = []
    no_new_privs: bool = False
    seccomp: str = "default"
    rlimits: list[Rlimit] = []
    tty: bool = False
    interactive: bool = False
    stdin_once: bool = False             # docker's StdinOnce: an attached client's end of input closes stdin
    init: bool = False
    overlay: str = "auto"
    userns: str = ""
    keep_uid: int = 0
    keep_gid: int = 0
    network: str = "none"
    network_options: dict[str, str] = {}
    ports: list[PortMapping] = []
    restart: RestartPolicy = RestartPolicy()
    stop_signal: int = SIGTERM
    stop_timeout: int = DEFAULT_STOP_TIMEOUT
    log: LogConfig = LogConfig()
    auto_remove: bool = False
    timeout: int = 0
    privileged: bool = False
    networks: list[NetRequest] = []        # network "bridge": the user networks, in order
    pod: str = ""                          # network "pod": the id of the pod whose namespaces it joins
    healthcheck: HealthConfig | None = None

    @property
    def anonymous_volumes(self) -> list[str]:
        """Names of the anonymous volumes (removed with ``rm -v`` and ``--rm``)."""
        return [m.name for m in self.mounts if m.type == "volume" and m.anonymous]

    @classmethod
    def load(cls, doc: dict[str, Any]) -> ContainerConfig:
        """A config from its JSON, converting version 1 (rootlet 0.1) documents."""
        if not isinstance(doc.get("version"), int):
            doc = _from_v1(doc)
        return cls.from_json(doc)


class ContainerState(Record):
    """Where a container is in its life: created → running → exited (→ running again …).

    ``pid``/``pid_start`` are its PID 1 on the host and that process's start time (so a reused
    pid is never taken for it); ``owner_pid``/``owner_start`` the process that owns it (its
    monitor, or the foreground ``rootlet run``) and ``boot_id`` the boot they belong to.
    """

    _nested = {"ports": _PORTS}

    status: str = "created"                   # created | running | restarting | exited | unknown
    pid: int = 0
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    pid_start: int = 0
    owner_pid: int = 0
    owner_start: int = 0
    boot_id: str = ""
    restart_count: int = 0
    stop_requested: bool = False              # `stop`: the monitor must not restart it
    ports: list[PortMapping] = []             # published ports as bound while running
    detached: bool = False

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def shown_status(self) -> str:
        """The status ``ps`` and ``inspect`` show: ``stopping`` while a ``stop`` waits for a
        running container to exit (podman's state), else ``status``."""
        return "stopping" if self.status == "running" and self.stop_requested else self.status


def _from_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """A version-1 config (typed head + a ``spec`` dict) as a version-2 document."""
    spec = doc.get("spec") or {}
    out = {k: v for k, v in doc.items() if k not in ("spec", "mounts")}
    out["version"] = CONFIG_VERSION
    binds = {b[1]: b for b in spec.get("binds", ()) if isinstance(b, list) and len(b) >= 4}
    anonymous = set(spec.get("anonymous_volumes", ()))
    mounts = []
    for m in doc.get("mounts") or ():
        kind, dest = m.get("Type"), m.get("Destination", "")
        readonly = not m.get("RW", True)
        if kind == "bind":
            options = binds.get(dest, [None, None, None, []])[3]
            mounts.append({"type": "bind", "destination": dest, "source": m.get("Source", ""),
                           "readonly": readonly, "options": list(options or [])})
        elif kind == "volume":
            mounts.append({"type": "volume", "destination": dest, "source": m.get("Source", ""),
                           "name": m.get("Name", ""), "readonly": readonly,
                           "anonymous": m.get("Name", "") in anonymous})
        elif kind == "tmpfs":
            mounts.append({"type": "tmpfs", "destination": dest, "readonly": readonly,
                           "options": list(m.get("Options") or [])})
    out["mounts"] = mounts
    for key in ("entrypoint", "cmd", "additional_gids", "readonly_rootfs", "caps", "ambient_caps",
                "no_new_privs", "tty", "interactive", "init", "overlay", "userns", "stop_signal",
                "stop_timeout"):
        if key in spec:
            out[key] = spec[key]
    out["rlimits"] = [{"resource": r[0], "soft": r[1], "hard": r[2]} for r in spec.get("rlimits", ())]
    out["restart"] = spec.get("restart") or {}
    out["log"] = spec.get("log") or {}
    if spec.get("userns") == "keep-id":
        out["keep_uid"], out["keep_gid"] = int(spec.get("uid", 0)), int(spec.get("gid", 0))
    return out
