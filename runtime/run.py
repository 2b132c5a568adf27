"""``rootlet run``: image → container record → namespaces → the command, as a child of this process.

The container's processes are our descendants for their whole life (no daemon): ``spawn`` forks a
keeper in the new namespaces, which forks the container's PID 1; we wait for it, forward signals
to it, relay a pty when asked, and clean up (``--rm``) when it exits, also after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rootlet.registry.errors import ImageNotFound, RootletError, TransferError, UsageError
from rootlet.registry.manifest import parse_config
from rootlet.registry.store import ImageRecord, ImageStore
from rootlet.runtime import runconfig as rc

#: Signals a foreground ``run`` passes on to the container (``--sig-proxy``, on by default).
PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
PULL_POLICIES = ("always", "missing", "never", "newer")


@dataclass(frozen=True)
class RunOptions:
    """Everything ``rootlet run`` accepts, already parsed and validated for syntax."""

    image: str
    command: tuple[str, ...] = ()
    rm: bool = False
    interactive: bool = False
    tty: bool = False
    name: str | None = None
    hostname: str | None = None
    env: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    group_add: tuple[str, ...] = ()
    entrypoint: str | None = None
    volumes: tuple[rc.VolumeSpec, ...] = ()
    read_only: bool = False
    init: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privs: bool = True
    ulimits: tuple[tuple[int, int, int], ...] = ()
    network: str | None = None
    publish: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_option: tuple[str, ...] = ()
    add_host: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    pull: str = "missing"
    platform: str | None = None
    sig_proxy: bool = True
    userns: str | None = None
    overlay: str = "auto"
    memory: str | None = None
    cpus: str | None = None
    pids_limit: str | None = None
    tls_verify: bool | None = None
    creds: str | None = None
    authfile: str | None = None
    quiet: bool = False


PullFn = Callable[[str, str | None], ImageRecord]


def find_or_pull(store: ImageStore, opts: RunOptions, pull: PullFn) -> ImageRecord:
    """The image to run, pulled according to ``--pull`` (podman's policies)."""
    if opts.pull not in PULL_POLICIES:
        raise UsageError(f"invalid --pull policy {opts.pull!r}", "use always, missing, never or newer")
    local: ImageRecord | None = None
    if store.exists():
        with contextlib.suppress(ImageNotFound):
            local = store.resolve(opts.image)
    if opts.platform and local is not None:
        from rootlet.registry.manifest import Platform

        if not Platform.parse(opts.platform).matches(Platform.parse(local.platform)):
            local = None
    if opts.pull == "never":
        if local is None:
            raise ImageNotFound(f"{opts.image}: image not known", "pull it first, or drop --pull=never")
        return local
    if opts.pull == "missing" and local is not None:
        return local
    try:
        return pull(opts.image, opts.platform)
    except (TransferError,) as exc:
        if opts.pull == "newer" and local is not None:
            return local
        raise exc


def check_unsupported(opts: RunOptions) -> None:
    """Refuse what this host cannot do, loudly: never a silent no-op."""
    for flag, value in (("--memory", opts.memory), ("--cpus", opts.cpus), ("--pids-limit", opts.pids_limit)):
        if value is not None:
            from rootlet.runtime.sysinfo import cgroup_version

            version = cgroup_version()
            raise UsageError(
                f"{flag} needs a cgroup v2 hierarchy delegated to your user; this host has cgroup {version}",
                "boot with systemd.unified_cgroup_hierarchy=1 and enable user delegation (systemd "
                "user@.service Delegate=yes), or run without resource limits")
    if opts.userns not in (None, "", "host", "keep-id"):
        raise UsageError(f"unsupported --userns {opts.userns!r}", "rootlet supports --userns keep-id")


def read_image_config(store: ImageStore, image: ImageRecord) -> dict[str, object]:
    return parse_config(store.read_blob(image.config_digest)).config


def lower_dirs(store: ImageStore, image: ImageRecord) -> tuple[str, ...]:
    """The image's layer diff dirs, topmost first, as the overlay wants them."""
    return tuple(os.path.join(store.layers, c, "diff") for c in reversed(image.layers))


def read_layered_file(lowers: tuple[str, ...], path: str, limit: int = 1 << 20) -> bytes | None:
    """A regular file as the merged image shows it (top layer first, whiteouts respected), or None."""
    rel = path.lstrip("/")
    for layer in lowers:
        full = os.path.join(layer, rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            return None
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None          # whited out
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            with open(full, "rb") as f:
                return f.read(limit)
        except OSError:
            return None
    return None


def home_for(lowers: tuple[str, ...], user: str) -> str:
    """HOME as podman sets it: the user's passwd entry, else ``/``."""
    name = user.split(":", 1)[0] if user else "root"
    data = read_layered_file(lowers, "/etc/passwd")
    if data:
        for line in data.decode(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) >= 7 and (parts[0] == name or parts[2] == name):
                return parts[5] or "/"
    return "/root" if name in ("", "root", "0") else "/"


def final_env(image_config: Mapping[str, object], opts: RunOptions, lowers: tuple[str, ...], user: str,
              hostname: str, host_env: Mapping[str, str]) -> list[str]:
    """Image Env, podman's defaults, then --env-file, then -e (later wins)."""
    image_env = [str(x) for x in (image_config.get("Env") or [])]  # type: ignore[union-attr]
    defaults = [f"PATH={rc.DEFAULT_PATH}", "container=rootlet", f"HOSTNAME={hostname}"]
    if opts.tty:
        defaults.append("TERM=xterm")
    from_files: list[str] = []
    for path in opts.env_files:
        from_files += rc.parse_env_file(path, host_env)
    env = rc.merge_env(defaults, image_env, from_files, rc.expand_env(opts.env, host_env))
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home_for(lowers, user)}")
    return env


def _expected_info(mode: str):  # -> NetworkInfo | None
    from rootlet.runtime.network import NetworkInfo

    if mode == "slirp4netns":
        return NetworkInfo("slirp4netns", "10.0.2.100", "10.0.2.2", ("10.0.2.3",))
    return None


def _resolve_mounts(store: ImageStore, opts: RunOptions) -> tuple[list, list, list[str]]:
    """Bind and tmpfs mounts for the spec; named volumes live in ``volumes/<name>/_data``."""
    import secrets

    from rootlet.runtime.spawn import BindMount, TmpfsMount

    binds, tmpfs, anonymous = [], [], []
    for v in opts.volumes:
        if v.kind == "tmpfs":
            data = ",".join(("rw", "nosuid", "nodev", *v.options)) if v.options else "rw,nosuid,nodev,mode=1777"
            if v.readonly:
                data = data.replace("rw,", "ro,", 1)
            tmpfs.append(TmpfsMount(v.destination, data))
            continue
        if v.kind == "bind":
            if not os.path.exists(v.source):
                raise UsageError(f"bind mount source {v.source}: no such file or directory",
                                 "create it first; rootlet does not create host paths")
            binds.append(BindMount(v.source, v.destination, v.readonly))
            continue
        name = v.source or secrets.token_hex(32)
        if not v.source:
            anonymous.append(name)
        data = os.path.join(store.root, "volumes", name, "_data")
        os.makedirs(data, mode=0o755, exist_ok=True)
        binds.append(BindMount(data, v.destination, v.readonly))
    return binds, tmpfs, anonymous


def run_container(store: ImageStore, opts: RunOptions, pull: PullFn, host_env: Mapping[str, str]) -> int:
    """Create and run one container in the foreground; returns its exit code (docker's rules)."""
    check_unsupported(opts)
    if opts.userns == "keep-id":
        raise UsageError("--userns keep-id is not available yet", "run without it; files you create as root in the "
                         "container are owned by you on the host")
    from rootlet.runtime.network import check_network_mode, default_network_mode, parse_publish, write_etc_files

    mode = opts.network or "private"
    if mode in ("private", "default"):
        mode = default_network_mode()
    check_network_mode(mode)
    ports = [pm for spec in opts.publish for pm in parse_publish(spec)]
    image = find_or_pull(store, opts, pull)
    config = read_image_config(store, image)
    argv = rc.compose_argv(opts.entrypoint, opts.command, config)
    lowers = lower_dirs(store, image)
    user = opts.user if opts.user is not None else str(config.get("User") or "")
    from rootlet.runtime.caps import CAPABILITIES

    caps = rc.compose_caps(opts.cap_add, opts.cap_drop, tuple(CAPABILITIES))
    from rootlet.runtime.containers import ContainerState, ContainerStore

    containers = ContainerStore(store)
    binds, tmpfs, anonymous = _resolve_mounts(store, opts)
    cfg = containers.create({
        "image_id": image.id, "image_name": opts.image, "argv": argv, "env": [], "cwd": "", "user": user,
        "hostname": "", "layers": list(image.layers), "labels": dict(opts.labels), "network": mode,
        "auto_remove": opts.rm, "ports": [p.__dict__ for p in ports],
    }, opts.name)
    cdir = containers.dir(cfg.id)
    hostname = opts.hostname or cfg.id[:12]
    env = final_env(config, opts, lowers, user, hostname, host_env)
    cwd = opts.workdir or str(config.get("WorkingDir") or "/")
    if not cwd.startswith("/"):
        raise UsageError(f"invalid --workdir {cwd!r}: must be an absolute path")
    etc = write_etc_files(os.path.join(cdir, "etc"), hostname=hostname, mode=mode, info=_expected_info(mode),
                          dns=opts.dns, dns_search=opts.dns_search, dns_options=opts.dns_option,
                          add_hosts=opts.add_host)
    if opts.read_only:
        existing = {t.destination for t in tmpfs} | {b.destination for b in binds}
        from rootlet.runtime.spawn import TmpfsMount

        tmpfs += [TmpfsMount(d, "rw,nosuid,nodev,mode=1777") for d in ("/tmp", "/run", "/var/tmp") if d not in existing]
    from rootlet.runtime.spawn import ContainerSpec, Rlimit, spawn

    spec = ContainerSpec(
        lower_dirs=lowers, upper_dir=os.path.join(cdir, "upper"), work_dir=os.path.join(cdir, "work"),
        merged_dir=os.path.join(cdir, "merged"), overlay=opts.overlay, argv=tuple(argv), env=tuple(env), cwd=cwd,
        user=user, additional_gids=tuple(int(g) for g in opts.group_add if g.isdigit()), hostname=hostname,
        etc_files=etc, binds=tuple(binds), tmpfs=tuple(tmpfs), readonly_rootfs=opts.read_only, caps=caps,
        ambient_caps=tuple(c for c in caps if c in {rc.cap_name(a) for a in opts.cap_add}),
        no_new_privs=opts.no_new_privs, rlimits=tuple(Rlimit(*u) for u in opts.ulimits),
        network="host" if mode == "host" else ("none" if mode == "none" else "private"),
        tty=opts.tty, stdin="inherit" if opts.interactive else "null", init=opts.init,
    )
    if any(not g.isdigit() for g in opts.group_add):
        raise UsageError("--group-add takes numeric gids in this version", "give the group's number")
    code = 125
    network = None
    old_handlers: dict[int, object] = {}
    try:
        proc = spawn(spec)
        containers.write_state(cfg.id, ContainerState("running", proc.pid, None, time.time()))
        if mode in ("slirp4netns", "pasta"):
            from rootlet.runtime.network import attach_network

            try:
                network = attach_network(mode, proc.pid, ports)
            except RootletError:
                # A command that already finished (`run --rm IMAGE true`) has no network to join;
                # that is not a failure. One that still runs without its network is.
                import select

                gone = not os.path.exists(f"/proc/{proc.pid}/ns/net")
                if not gone and not select.select([proc.status_fd], [], [], 0.2)[0]:
                    proc.signal(signal.SIGKILL)
                    proc.wait()
                    raise
        if opts.sig_proxy:
            for sig in PROXIED_SIGNALS:
                old_handlers[sig] = signal.signal(sig, lambda s, _f: proc.signal(s))
        if proc.pty_master is not None:
            _relay_pty(proc, opts.interactive)
        code = proc.wait()
        containers.write_state(cfg.id, ContainerState("exited", 0, code, None, time.time()))
        return code
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        if network is not None:
            network.stop(wait=False)
        if opts.rm:
            _remove(store, containers, cfg.id, anonymous)


def _remove(store: ImageStore, containers: object, cid: str, anonymous: list[str]) -> None:
    from rootlet.runtime.idmap import plan_userns
    from rootlet.runtime.userns import UsernsWorker, remove_tree

    doomed = containers.forget(cid)  # type: ignore[attr-defined]
    paths = ([doomed] if doomed else []) + [os.path.join(store.root, "volumes", n) for n in anonymous]
    left = []
    for p in paths:
        # Most containers leave only files of their root (= us) behind: delete those directly and
        # pay for a user-namespace worker only when subordinate-id files refuse to go.
        try:
            remove_tree(p)
        except (RootletError, OSError):
            left.append(p)
    if left:
        with UsernsWorker(plan_userns()) as worker:
            for p in left:
                with contextlib.suppress(RootletError, OSError):
                    worker.call(remove_tree, p)


def _relay_pty(proc: object, interactive: bool) -> None:
    """Copy our stdin to the container's pty and its output to our stdout, in raw mode on a TTY."""
    import select
    import termios
    import tty as ttymod

    master = proc.pty_master  # type: ignore[attr-defined]
    status_fd = proc.status_fd  # type: ignore[attr-defined]
    saved = None
    if interactive and os.isatty(0):
        saved = termios.tcgetattr(0)
        ttymod.setraw(0)
    try:
        _sync_winsize(master)
        signal.signal(signal.SIGWINCH, lambda *_: _sync_winsize(master))
        fds = [master] + ([0] if interactive else [])
        while True:
            ready, _, _ = select.select(fds, [], [], 0.5)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                else:
                    os.write(master, data)
            if not ready and select.select([status_fd], [], [], 0)[0]:
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            os.close(master)


def _sync_winsize(master: int) -> None:
    import fcntl
    import termios

    if os.isatty(1):
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
