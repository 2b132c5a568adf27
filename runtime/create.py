"""``rootlet create`` (and the first half of ``run``): image + flags → a container record on disk.

Everything the container's processes will need is resolved here, once, and stored in the
container's config.json: the final argv and environment, the mounts, capabilities, limits, the
network mode and ports, the restart and log policies. ``container_spec`` turns that record back
into a ``ContainerSpec`` for every start (``run``, ``start``, the monitor's restarts), so a
container started a week later behaves exactly as it was created.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from rootlet.registry.errors import UsageError
from rootlet.registry.store import ImageStore
from rootlet.runtime import runconfig as rc
from rootlet.runtime.containers import ContainerConfig, ContainerStore

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from typing import Any

RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
LOG_DRIVERS = ("k8s-file", "json-file", "none")


def parse_restart(value: str | None) -> dict[str, Any]:
    """``--restart no|on-failure[:N]|always|unless-stopped`` → {"name", "max"}."""
    if value in (None, ""):
        return {"name": "no", "max": 0}
    name, _, count = value.partition(":")
    if name not in RESTART_POLICIES:
        raise UsageError(f"invalid --restart policy {value!r}", "use no, on-failure[:N], always or unless-stopped")
    if count:
        if name != "on-failure" or not count.isdigit():
            raise UsageError(f"invalid --restart policy {value!r}", "only on-failure takes a count: on-failure:3")
        return {"name": name, "max": int(count)}
    return {"name": name, "max": 0}


def parse_size(text: str, flag: str) -> int:
    """``10m``, ``1g``, ``512k``, ``4096`` → bytes (docker's units, powers of 1024)."""
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
    low = text.strip().lower()
    num = low.rstrip("bkmg")
    unit = low[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1
    if unit not in units or value <= 0:
        raise UsageError(f"invalid size {text!r} for {flag}", "use a number with an optional unit: 10m, 1g, 512k")
    return int(value * units[unit])


def parse_log_options(driver: str | None, options: tuple[str, ...]) -> dict[str, Any]:
    """``--log-driver`` and ``--log-opt max-size=…`` → {"driver", "max_size"} (0: unbounded)."""
    driver = driver or "k8s-file"
    if driver not in LOG_DRIVERS:
        raise UsageError(f"unsupported --log-driver {driver!r}", "rootlet supports k8s-file (default) and none")
    max_size = 0
    for opt in options:
        key, eq, value = opt.partition("=")
        if not eq:
            raise UsageError(f"invalid --log-opt {opt!r}", "use KEY=VALUE, e.g. --log-opt max-size=10m")
        if key == "max-size":
            max_size = 0 if value in ("-1", "0") else parse_size(value, "--log-opt max-size")
        else:
            raise UsageError(f"unsupported --log-opt {key!r}", "rootlet supports --log-opt max-size=SIZE")
    return {"driver": "k8s-file" if driver == "json-file" else driver, "max_size": max_size}


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
            base = signal.SIGRTMIN if name.startswith("SIGRTMIN") else signal.SIGRTMAX
            offset = name[8:]
            try:
                return int(base) + int(offset or 0)
            except ValueError:
                pass
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise UsageError(f"invalid signal {value!r} for {flag}", "use a name such as TERM, KILL, HUP or a number")


def _expected_info(mode: str):  # -> NetworkInfo | None
    from rootlet.runtime.network import NetworkInfo

    if mode == "slirp4netns":
        return NetworkInfo("slirp4netns", "10.0.2.100", "10.0.2.2", ("10.0.2.3",))
    return None


def _resolve_mounts(store: ImageStore, opts: Any) -> tuple[list[list[Any]], list[list[str]], list[str], list[dict[str, Any]]]:
    """Binds, tmpfs mounts, anonymous volume names and docker-style Mounts entries for inspect."""
    binds: list[list[Any]] = []
    tmpfs: list[list[str]] = []
    anonymous: list[str] = []
    described: list[dict[str, Any]] = []
    for v in opts.volumes:
        if v.kind == "tmpfs":
            data = ",".join(("rw", "nosuid", "nodev", *v.options)) if v.options else "rw,nosuid,nodev,mode=1777"
            if v.readonly:
                data = data.replace("rw,", "ro,", 1)
            tmpfs.append([v.destination, data])
            described.append({"Type": "tmpfs", "Source": "tmpfs", "Destination": v.destination,
                              "RW": not v.readonly, "Options": data.split(",")})
            continue
        if v.kind == "bind":
            if not os.path.exists(v.source):
                raise UsageError(f"bind mount source {v.source}: no such file or directory",
                                 "create it first; rootlet does not create host paths")
            binds.append([os.path.abspath(v.source), v.destination, v.readonly, list(getattr(v, "options", ()) or ())])
            described.append({"Type": "bind", "Source": os.path.abspath(v.source), "Destination": v.destination,
                              "RW": not v.readonly})
            continue
        name = v.source or os.urandom(32).hex()
        if not v.source:
            anonymous.append(name)
        data = os.path.join(store.root, "volumes", name, "_data")
        os.makedirs(data, mode=0o755, exist_ok=True)
        binds.append([data, v.destination, v.readonly, []])
        described.append({"Type": "volume", "Name": name, "Source": data, "Destination": v.destination,
                          "RW": not v.readonly})
    if opts.read_only:
        taken = {t[0] for t in tmpfs} | {b[1] for b in binds}
        tmpfs += [[d, "rw,nosuid,nodev,mode=1777"] for d in ("/tmp", "/run", "/var/tmp") if d not in taken]
    return binds, tmpfs, anonymous, described


def _host_home() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir or "/"
    except KeyError:
        return "/"


def _write_keep_id_db(etc: str, lowers: tuple[str, ...], home: str) -> None:
    """/etc/passwd and /etc/group with an entry for our own user, as podman writes for keep-id,
    so that ``id``, ``whoami`` and programs that look up $HOME know the user."""
    import pwd

    from rootlet.registry.fsutil import atomic_write
    from rootlet.runtime.run import read_layered_file

    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = os.environ.get("USER") or f"user{uid}"
    for db, line, taken in (("passwd", f"{name}:*:{uid}:{gid}:{name}:{home}:/bin/sh", 2),
                            ("group", f"{name}:x:{gid}:", 2)):
        current = (read_layered_file(lowers, f"/etc/{db}") or b"").decode(errors="replace")
        rows = [r.split(":") for r in current.splitlines()]
        wanted = str(uid if db == "passwd" else gid)
        if any(len(r) > taken and r[taken] == wanted for r in rows):
            text = current
        else:
            text = current + ("" if not current or current.endswith("\n") else "\n") + line + "\n"
        atomic_write(os.path.join(etc, db), text.encode(), mode=0o644, durable=False)


def create_container(store: ImageStore, opts: Any, image: Any, host_env: Mapping[str, str]) -> ContainerConfig:
    """Record a new container made from ``image`` (an ImageRecord) with ``opts`` (RunOptions).

    Nothing runs yet. Fails before anything is written when a flag cannot be honoured.
    """
    from rootlet.runtime.caps import CAPABILITIES
    from rootlet.runtime.network import check_network_mode, default_network_mode, parse_publish, write_etc_files
    from rootlet.runtime.run import final_env, lower_dirs, read_image_config

    mode = opts.network or "private"
    if mode in ("private", "default", "bridge"):
        mode = default_network_mode()
    check_network_mode(mode)
    ports = [pm for spec in opts.publish for pm in parse_publish(spec)]
    for g in opts.group_add:
        if not g or ":" in g or "," in g:
            raise UsageError(f"invalid --group-add {g!r}", "give a group name or number")
    restart = parse_restart(opts.restart)
    if restart["name"] != "no" and opts.rm:
        raise UsageError("--restart and --rm cannot be used together",
                         "a container that removes itself on exit cannot be restarted")
    log = parse_log_options(opts.log_driver, opts.log_opts)
    config = read_image_config(store, image)
    argv = rc.compose_argv(opts.entrypoint, opts.command, config)
    lowers = lower_dirs(store, image.layers)
    user = opts.user if opts.user is not None else str(config.get("User") or "")
    cwd = opts.workdir or str(config.get("WorkingDir") or "/")
    if not cwd.startswith("/"):
        raise UsageError(f"invalid --workdir {cwd!r}: must be an absolute path")
    keep_id = opts.userns == "keep-id"
    home = None
    if keep_id:
        from rootlet.runtime.idmap import keep_id_plan, plan_userns

        keep_id_plan(plan_userns(), os.getuid(), os.getgid())  # refuse now what could never start
        if opts.overlay == "kernel":
            raise UsageError("--userns keep-id needs fuse-overlayfs", "unset ROOTLET_OVERLAY=kernel")
        if opts.user is None:
            user = f"{os.getuid()}:{os.getgid()}"
        home = _host_home()
    caps = rc.compose_caps(opts.cap_add, opts.cap_drop, tuple(CAPABILITIES))
    stop_signal = parse_signal(opts.stop_signal, "--stop-signal") if opts.stop_signal else \
        parse_signal(str(config.get("StopSignal") or "SIGTERM"), "the image's StopSignal")
    binds, tmpfs, anonymous, described = _resolve_mounts(store, opts)
    containers = ContainerStore(store)
    cfg = containers.create({
        "image_id": image.id, "image_name": opts.image, "argv": argv, "env": [], "cwd": cwd, "user": user,
        "hostname": "", "layers": list(image.layers), "labels": dict(opts.labels), "network": mode,
        "auto_remove": opts.rm, "ports": [p.__dict__ for p in ports], "mounts": described,
    }, opts.name)
    try:
        hostname = opts.hostname or cfg.id[:12]
        cfg.hostname = hostname
        cfg.env = final_env(config, opts, lowers, user, hostname, host_env, home=home)
        cfg.spec = {
            "entrypoint": [str(x) for x in (config.get("Entrypoint") or [])] if opts.entrypoint is None
            else argv[:len(argv) - len(opts.command)],
            "cmd": list(opts.command) if opts.command or opts.entrypoint is not None
            else [str(x) for x in (config.get("Cmd") or [])],
            "additional_gids": [int(g) if g.isdigit() else g for g in opts.group_add],
            "binds": binds, "tmpfs": tmpfs, "anonymous_volumes": anonymous,
            "readonly_rootfs": opts.read_only, "caps": list(caps),
            "ambient_caps": [c for c in caps if c in {rc.cap_name(a) for a in opts.cap_add}],
            "no_new_privs": opts.no_new_privs, "rlimits": [list(u) for u in opts.ulimits],
            "tty": opts.tty, "interactive": opts.interactive, "init": opts.init, "overlay": opts.overlay,
            "restart": restart, "stop_signal": stop_signal,
            "stop_timeout": opts.stop_timeout if opts.stop_timeout is not None else 10,
            "log": log, "publish": list(opts.publish),
        }
        if keep_id:
            cfg.spec.update(userns="keep-id", uid=os.getuid(), gid=os.getgid())
            _write_keep_id_db(containers.path(cfg.id, "etc"), lowers, home or "/")
        write_etc_files(containers.path(cfg.id, "etc"), hostname=hostname, mode=mode, info=_expected_info(mode),
                        dns=opts.dns, dns_search=opts.dns_search, dns_options=opts.dns_option,
                        add_hosts=opts.add_host)
        containers.write_config(cfg)
    except BaseException:
        doomed = containers.forget(cfg.id)
        if doomed:
            import shutil

            shutil.rmtree(doomed, ignore_errors=True)
        raise
    return cfg


def container_spec(store: ImageStore, cfg: ContainerConfig, *, stdin_inherit: bool = False):  # -> ContainerSpec
    """The ContainerSpec that starts ``cfg`` (its lower dirs must still be in the store)."""
    from rootlet.runtime.run import lower_dirs
    from rootlet.runtime.spawn import BindMount, ContainerSpec, Rlimit, TmpfsMount

    s = cfg.spec
    d = os.path.join(store.root, "containers", cfg.id)
    plan = None
    fuse_options = ""
    overlay = s.get("overlay", "auto")
    if s.get("userns") == "keep-id":
        from rootlet.runtime.idmap import keep_id_fuse_options, keep_id_plan, plan_userns

        base = plan_userns()
        plan = keep_id_plan(base, int(s["uid"]), int(s["gid"]))
        fuse_options = keep_id_fuse_options(base, int(s["uid"]), int(s["gid"]))
        overlay = "fuse"
    lowers = lower_dirs(store, cfg.layers)
    etc = os.path.join(d, "etc")
    mode = cfg.network
    return ContainerSpec(
        lower_dirs=lowers, upper_dir=os.path.join(d, "upper"), work_dir=os.path.join(d, "work"),
        merged_dir=os.path.join(d, "merged"), overlay=overlay, argv=tuple(cfg.argv),
        env=tuple(cfg.env), cwd=cfg.cwd, user=cfg.user, additional_gids=tuple(s.get("additional_gids", ())),
        hostname=cfg.hostname,
        etc_files={f"/etc/{n}": os.path.join(etc, n) for n in ("hosts", "resolv.conf", "hostname", "passwd", "group")
                   if n in ("hosts", "resolv.conf", "hostname") or os.path.exists(os.path.join(etc, n))},
        binds=tuple(BindMount(b[0], b[1], bool(b[2]), tuple(b[3])) for b in s.get("binds", ())),
        tmpfs=tuple(TmpfsMount(t[0], t[1]) for t in s.get("tmpfs", ())),
        readonly_rootfs=bool(s.get("readonly_rootfs")), caps=tuple(s.get("caps", ())),
        ambient_caps=tuple(s.get("ambient_caps", ())), no_new_privs=bool(s.get("no_new_privs", True)),
        rlimits=tuple(Rlimit(*r) for r in s.get("rlimits", ())),
        network="host" if mode == "host" else ("none" if mode == "none" else "private"),
        tty=bool(s.get("tty")), stdin="inherit" if stdin_inherit else "null", init=bool(s.get("init")),
        plan=plan, fuse_options=fuse_options, volatile=cfg.auto_remove,
    )
