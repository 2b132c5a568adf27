"""The syntax of ``run``/``create`` options, and docker's rules for combining them with an image.

Pure functions, no I/O beyond reading files the user names (``--env-file``): the flag syntaxes are
docker's and podman's (``-v``, ``--mount``, ``--tmpfs``, ``--ulimit``, ``--cap-add``,
``--restart``, ``--log-opt``, signals, sizes), the combination rules docker's (ENTRYPOINT/CMD, Env),
and every malformed value is a ``UsageError`` naming the flag. The engine parses options here, so
every front end (CLI, REST service, kube play) gets the same rules and the same messages.
"""

from __future__ import annotations

import os

from rootlet.registry import jsoncodec
from rootlet.registry.errors import UsageError
from rootlet.registry.names import is_valid_name
from rootlet.registry.record import Record
from rootlet.runtime.container.record import LogConfig, RestartPolicy
from rootlet.runtime.linux import signals
from rootlet.runtime.oci.capnames import PODMAN_DEFAULT_CAPS
from rootlet.runtime.oci.spec import Rlimit

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Largest --env-file read.
MAX_ENV_FILE = 16 << 20
#: Largest finite resource limit (RLIM_INFINITY, 2^64-1, is "unlimited").
MAX_RLIMIT = (1 << 63) - 1
#: Largest user or group id (2^32-1 is the kernel's "no id").
MAX_ID = (1 << 32) - 2


def check_user(value: str, flag: str) -> str:
    """``--user USER[:GROUP]``: names, or numbers the kernel can take."""
    for part in value.split(":", 1):
        if part.isdigit() and int(part) > MAX_ID:
            raise UsageError(f"invalid {flag} {value!r}: {part} is larger than the largest id {MAX_ID}")
        if "\0" in part or part != part.strip():
            raise UsageError(f"invalid {flag} {value!r}")
    return value


def compose_argv(entrypoint_flag: str | None, command: Sequence[str], image_config: Mapping[str, object]) -> list[str]:
    """ENTRYPOINT + CMD as docker combines them.

    ``--entrypoint ''`` clears the image's entrypoint; any ``--entrypoint`` also drops the image's
    CMD (docker resets it). A JSON array value (``--entrypoint '["sh","-c"]'``) is taken as a list,
    as podman does; any other value is one word.
    """
    image_ep = image_words(image_config, "Entrypoint")
    image_cmd = image_words(image_config, "Cmd")
    if entrypoint_flag is not None:
        if entrypoint_flag == "":
            entrypoint: list[str] = []
        elif entrypoint_flag.startswith("["):
            try:
                parsed = jsoncodec.loads(entrypoint_flag)
            except ValueError:
                raise UsageError(f"invalid --entrypoint JSON array {entrypoint_flag!r}") from None
            if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
                raise UsageError("--entrypoint JSON must be an array of strings")
            entrypoint = parsed
        else:
            entrypoint = [entrypoint_flag]
        cmd = list(command)
    else:
        entrypoint = image_ep
        cmd = list(command) if command else image_cmd
    argv = entrypoint + cmd
    if not argv:
        raise UsageError("no command or entrypoint provided, and no CMD or ENTRYPOINT from the image",
                         "give a command after the image name")
    for word in argv:
        if "\0" in word:
            raise UsageError(f"the command {word!r} holds a NUL byte, which no program can be given")
    return argv


def image_words(image_config: Mapping[str, object], field: str) -> list[str]:
    """An image config's Entrypoint, Cmd or Env: a list of strings (or nothing), as the image spec
    says; anything else is refused rather than taken apart (a string would become one argument per
    character)."""
    value = image_config.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise UsageError(f"the image's {field} is not a list of strings ({type(value).__name__})",
                         "the image is malformed; rebuild it, or override it on the command line")
    for word in value:
        if "\0" in word:
            raise UsageError(f"the image's {field} holds a NUL byte", "the image is malformed")
    return list(value)


def parse_env_file(path: str, host_env: Mapping[str, str]) -> list[str]:
    """``--env-file``: ``K=V`` lines, bare ``K`` taken from the host (dropped if unset), ``#`` comments."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ENV_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read --env-file {path}: {exc.strerror}") from None
    if len(data) > MAX_ENV_FILE:
        raise UsageError(f"--env-file {path} is larger than {MAX_ENV_FILE} bytes", "is it the right file?")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise UsageError(f"--env-file {path} is not text (UTF-8)", "give a file of NAME=VALUE lines") from None
    out: list[str] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.extend(expand_env([line.lstrip()], host_env))
        except UsageError as exc:
            raise UsageError(f"{path}:{n}: {exc.message}") from None
    return out


def expand_env(items: Sequence[str], host_env: Mapping[str, str]) -> list[str]:
    """``-e K=V`` as is; ``-e K`` passes the host's value through (nothing when the host has none)."""
    out = []
    for item in items:
        name, eq, _ = item.partition("=")
        if not name or name[0].isspace() or "\0" in item:
            raise UsageError(f"invalid environment variable {item!r}", "use -e NAME=VALUE or -e NAME")
        if eq:
            out.append(item)
        elif name in host_env:
            out.append(f"{name}={host_env[name]}")
    return out


def merge_env(*layers: Sequence[str]) -> list[str]:
    """Later ``K=V`` entries replace earlier ones with the same K; order of first appearance kept."""
    merged: dict[str, str] = {}
    for layer in layers:
        for item in layer:
            name, _, value = item.partition("=")
            merged[name] = value
    return [f"{k}={v}" for k, v in merged.items()]


class VolumeSpec(Record):
    """A ``-v``/``--mount`` request before it is resolved against the store."""

    kind: str              # "bind" | "volume" | "tmpfs"
    source: str            # host path (bind), volume name ("" = anonymous), "" for tmpfs
    destination: str
    readonly: bool = False
    options: tuple[str, ...] = ()   # tmpfs data options such as size=64m, mode=1777
    chown: bool = False             # ``:U``: the source is given to the container's user
    relabel: bool = False           # ``:z``/``:Z`` asked for (there is no SELinux labelling here)


def _check_destination(dest: str, flag: str) -> str:
    if not dest.startswith("/"):
        raise UsageError(f"invalid {flag} destination {dest!r}: must be an absolute path in the container")
    norm = os.path.normpath(dest)
    if norm == "/" or any(part == ".." for part in dest.split("/")):
        raise UsageError(f"invalid {flag} destination {dest!r}")
    return norm


def parse_volume(spec: str) -> VolumeSpec:
    """``-v SRC:DST[:OPTS]`` — SRC an absolute/relative path (bind) or a volume name; ``-v /DST`` anonymous."""
    parts = spec.split(":")
    if len(parts) == 1:
        return VolumeSpec("volume", "", _check_destination(parts[0], "-v"))
    if len(parts) > 3:
        raise UsageError(f"invalid -v {spec!r}", "use -v SOURCE:DESTINATION[:ro|rw]")
    source, dest = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 and parts[2] else []
    readonly = chown = relabel = False
    for opt in opts:
        if opt in ("ro", "readonly"):
            readonly = True
        elif opt == "U":
            chown = True
        elif opt in ("z", "Z"):
            relabel = True  # said once at create: there are no SELinux labels to set here
        elif opt in ("rw", "rprivate", "private", "rbind", "bind"):
            continue  # what rootlet does anyway: read-write, private, recursive binds
        elif opt in ("rslave", "slave", "rshared", "shared"):
            raise UsageError(f"unsupported -v option {opt!r} in {spec!r}: a rootless container's mounts are "
                             "private", "drop it: mounts the host makes later do not appear in the container")
        else:
            raise UsageError(f"invalid -v option {opt!r} in {spec!r}", "supported: ro, rw, U, z, Z")
    dest = _check_destination(dest, "-v")
    if not source:
        raise UsageError(f"invalid -v {spec!r}: empty source")
    if source.startswith("/") or source.startswith(".") or source.startswith("~"):
        return VolumeSpec("bind", os.path.abspath(os.path.expanduser(source)), dest, readonly, chown=chown,
                          relabel=relabel)
    if not is_valid_name(source):
        raise UsageError(f"invalid volume name {source!r}", "names use letters, digits, '_', '.', '-'")
    return VolumeSpec("volume", source, dest, readonly, chown=chown, relabel=relabel)


def parse_mount(spec: str) -> VolumeSpec:
    """``--mount type=bind|volume|tmpfs,source=…,destination=…[,readonly][,tmpfs-size=…]``."""
    fields: dict[str, str] = {}
    flags: set[str] = set()
    for item in spec.split(","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if eq:
            fields[key] = value
        else:
            flags.add(key)
    kind = fields.pop("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise UsageError(f"unsupported --mount type {kind!r}", "rootlet supports type=bind, type=volume, type=tmpfs")
    source = fields.pop("source", fields.pop("src", ""))
    dest = fields.pop("destination", fields.pop("dst", fields.pop("target", "")))
    if not dest:
        raise UsageError(f"--mount {spec!r} has no destination", "add destination=/path")
    readonly = bool(flags & {"readonly", "ro"}) or fields.pop("readonly", fields.pop("ro", "false")).lower() in ("true", "1")
    flags -= {"readonly", "ro", "rw"}
    options: list[str] = []
    if kind == "tmpfs":
        if "tmpfs-size" in fields:
            options.append(f"size={fields.pop('tmpfs-size')}")
        if "tmpfs-mode" in fields:
            options.append(f"mode={fields.pop('tmpfs-mode')}")
    if fields.pop("bind-propagation", "rprivate") not in ("rprivate", "private"):
        raise UsageError(f"unsupported bind-propagation in --mount {spec!r}: a rootless container's mounts are "
                         "private", "drop bind-propagation, or give rprivate")
    relabel_value = fields.pop("relabel", None)
    if relabel_value not in (None, "shared", "private"):
        raise UsageError(f"invalid relabel={relabel_value} in --mount {spec!r}", "use relabel=shared or relabel=private")
    relabel = relabel_value is not None
    if fields or flags:
        raise UsageError(f"unsupported --mount option(s) {', '.join(sorted(set(fields) | flags))} in {spec!r}")
    dest = _check_destination(dest, "--mount")
    if kind == "bind":
        if not source:
            raise UsageError(f"--mount type=bind needs source=HOSTPATH ({spec!r})")
        return VolumeSpec("bind", os.path.abspath(os.path.expanduser(source)), dest, readonly, relabel=relabel)
    if kind == "volume":
        if source and not is_valid_name(source):
            raise UsageError(f"invalid volume name {source!r}")
        return VolumeSpec("volume", source, dest, readonly, relabel=relabel)
    if source:
        raise UsageError("--mount type=tmpfs takes no source")
    return VolumeSpec("tmpfs", "", dest, readonly, tuple(options))


def parse_tmpfs(spec: str) -> VolumeSpec:
    """``--tmpfs /path[:size=64m,mode=1777,…]``."""
    dest, _, opts = spec.partition(":")
    dest = _check_destination(dest, "--tmpfs")
    options = []
    readonly = False
    for opt in filter(None, opts.split(",")):
        key = opt.split("=", 1)[0]
        if opt == "ro":
            readonly = True
        elif opt in ("rw", "noexec", "exec", "nosuid", "suid", "nodev", "dev"):
            options.append(opt)
        elif key in ("size", "mode", "nr_inodes", "uid", "gid"):
            options.append(opt)
        else:
            raise UsageError(f"unsupported --tmpfs option {opt!r}", "supported: size=, mode=, uid=, gid=, ro, noexec, nosuid, nodev")
    return VolumeSpec("tmpfs", "", dest, readonly, tuple(options))


_RLIMITS = {
    "core": 4, "cpu": 0, "data": 2, "fsize": 1, "locks": 10, "memlock": 8, "msgqueue": 12, "nice": 13,
    "nofile": 7, "nproc": 6, "rss": 5, "rtprio": 14, "rttime": 15, "sigpending": 11, "stack": 3, "as": 9,
}


def parse_ulimit(spec: str) -> Rlimit:
    """``--ulimit nofile=1024[:2048]`` → Rlimit(resource number, soft, hard); ``-1``/``unlimited`` = infinity."""
    name, eq, values = spec.partition("=")
    if not eq or name not in _RLIMITS:
        raise UsageError(f"invalid --ulimit {spec!r}", f"use NAME=SOFT[:HARD] with NAME one of {', '.join(sorted(_RLIMITS))}")
    soft_s, _, hard_s = values.partition(":")

    def num(text: str) -> int:
        if text in ("-1", "unlimited"):
            return -1
        if not text.isascii() or not text.isdigit() or int(text) > MAX_RLIMIT:
            raise UsageError(f"invalid --ulimit value {text!r} in {spec!r}",
                             f"give a number up to {MAX_RLIMIT}, or unlimited")
        return int(text)

    soft = num(soft_s)
    hard = num(hard_s) if hard_s else soft
    if hard != -1 and (soft == -1 or soft > hard):
        raise UsageError(f"--ulimit {spec!r}: soft limit exceeds the hard limit")
    return Rlimit(_RLIMITS[name], soft, hard)


def cap_name(name: str) -> str:
    """``chown``, ``CAP_CHOWN`` and ``cap_chown`` all mean ``CAP_CHOWN``; ``all`` stays ``ALL``."""
    up = name.strip().upper()
    return up if up == "ALL" or up.startswith("CAP_") else "CAP_" + up


def compose_caps(cap_add: Sequence[str], cap_drop: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """The capability set after ``--cap-add``/``--cap-drop`` (``ALL`` allowed; names with or without CAP_)."""
    def norm(name: str) -> str:
        full = cap_name(name)
        if full != "ALL" and full not in known:
            raise UsageError(f"unknown capability {name!r}", "see capabilities(7) for names")
        return full

    adds = [norm(c) for c in cap_add]
    drops = [norm(c) for c in cap_drop]
    caps = set(PODMAN_DEFAULT_CAPS)
    if "ALL" in drops:
        caps = set()
    else:
        caps -= set(drops)
    if "ALL" in adds:
        caps |= set(known)
    else:
        caps |= set(adds)
    return tuple(sorted(caps))


class SecurityOptions(Record):
    """``--security-opt``: no_new_privs (off by default, as in docker and podman, so setuid
    programs in images work) and the seccomp profile: ``default``, ``unconfined``, or the path of
    a profile file."""

    no_new_privs: bool = False
    seccomp: str = "default"


def parse_security_opts(opts: Sequence[str]) -> SecurityOptions:
    """``--security-opt no-new-privileges[=true|false]`` and ``seccomp=unconfined|FILE``."""
    nnp = False
    seccomp = "default"
    hint = "rootlet supports --security-opt no-new-privileges[=true|false] and seccomp=unconfined|FILE"
    for opt in opts:
        key, eq, value = opt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            if not eq or value.lower() in ("true", "1"):
                nnp = True
            elif value.lower() in ("false", "0"):
                nnp = False
            else:
                raise UsageError(f"invalid --security-opt {opt!r}", hint)
        elif key == "seccomp" and eq and value:
            seccomp = value if value == "unconfined" else os.path.abspath(os.path.expanduser(value))
        else:
            raise UsageError(f"unsupported --security-opt {opt!r}", hint)
    return SecurityOptions(nnp, seccomp)


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid --label {item!r}", "use --label KEY=VALUE")
        out[key] = value
    return out


RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
LOG_DRIVERS = ("k8s-file", "json-file", "none")


def parse_restart(value: str | None) -> RestartPolicy:
    """``--restart no|on-failure[:N]|always|unless-stopped``."""
    if value in (None, ""):
        return RestartPolicy()
    name, _, count = value.partition(":")
    if name not in RESTART_POLICIES:
        raise UsageError(f"invalid --restart policy {value!r}", "use no, on-failure[:N], always or unless-stopped")
    if count:
        if name != "on-failure" or not count.isdigit():
            raise UsageError(f"invalid --restart policy {value!r}", "only on-failure takes a count: on-failure:3")
        return RestartPolicy(name, int(count))
    return RestartPolicy(name, 0)


def parse_size(text: str, flag: str, decimal: bool = False) -> int:
    """``10m``, ``1g``, ``512k``, ``4096`` → bytes: powers of 1024 (docker's RAMInBytes), or of
    1000 with ``decimal`` (go-units FromHumanSize, what docker and podman take for log sizes)."""
    base = 1000 if decimal else 1024
    units = {"": 1, "b": 1, "k": base, "kb": base, "m": base ** 2, "mb": base ** 2, "g": base ** 3, "gb": base ** 3}
    low = text.strip().lower()
    num = low.rstrip("bkmg")
    unit = low[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1
    if unit not in units or not 0 < value < float("inf"):  # also refuses nan, inf, 1e400
        raise UsageError(f"invalid size {text!r} for {flag}", "use a number with an optional unit: 10m, 1g, 512k")
    return int(value * units[unit])


def parse_log_options(driver: str | None, options: Sequence[str]) -> LogConfig:
    """``--log-driver`` and ``--log-opt max-size=…`` (0: unbounded)."""
    driver = driver or "k8s-file"
    if driver not in LOG_DRIVERS:
        raise UsageError(f"unsupported --log-driver {driver!r}", "rootlet supports k8s-file (default) and none")
    max_size = 0
    for opt in options:
        key, eq, value = opt.partition("=")
        if not eq:
            raise UsageError(f"invalid --log-opt {opt!r}", "use KEY=VALUE, e.g. --log-opt max-size=10m")
        if key == "max-size":
            max_size = 0 if value in ("-1", "0") else parse_size(value, "--log-opt max-size", decimal=True)
        else:
            raise UsageError(f"unsupported --log-opt {key!r}", "rootlet supports --log-opt max-size=SIZE")
    return LogConfig("k8s-file" if driver == "json-file" else driver, max_size)


def parse_signal(value: str, flag: str) -> int:
    """A signal by name (``TERM``, ``SIGTERM``) or number."""
    text = value.strip().upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < 65:
            return num
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
            base = signals.SIGRTMIN if name.startswith("SIGRTMIN") else signals.SIGRTMAX
            offset = name[8:]
            try:
                return int(base) + int(offset or 0)
            except ValueError:
                pass
        if name in signals.NUMBERS:
            return signals.NUMBERS[name]
    raise UsageError(f"invalid signal {value!r} for {flag}", "use a name such as TERM, KILL, HUP or a number")
