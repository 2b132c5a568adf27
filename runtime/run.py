"""``rootlet run``: image → container record → namespaces → the command, as a child of this process.

The container's processes are our descendants for their whole life (no daemon): ``spawn`` forks a
keeper in the new namespaces, which forks the container's PID 1; we wait for it, forward signals
to it, relay a pty when asked, and clean up (``--rm``) when it exits, also after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Mapping

from rootlet.registry.errors import ImageNotFound, RootletError, TransferError, UsageError
from rootlet.registry.record import Record
from rootlet.registry.store import ImageRecord, ImageStore
from rootlet.runtime import runconfig as rc

PULL_POLICIES = ("always", "missing", "never", "newer")


class RunOptions(Record):
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
    labels: dict[str, str] = {}
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
    detach: bool = False
    restart: str | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    log_driver: str | None = None
    log_opts: tuple[str, ...] = ()


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
    if opts.userns == "host" and os.getuid() != 0:
        raise UsageError("--userns host is not possible rootless: a container needs a user namespace to "
                         "have a root user", "drop --userns host, or use --userns keep-id to run as your own uid")


def read_image_config(store: ImageStore, image: ImageRecord) -> dict[str, object]:
    """The image's runtime config (Env, Cmd, Entrypoint, User, WorkingDir, StopSignal).

    The blob was verified and validated when it was pulled; only its ``config`` is needed here,
    so the manifest module (and its validation) stays off the run path.
    """
    import json

    doc = json.loads(store.read_blob(image.config_digest))
    cfg = doc.get("config") if isinstance(doc, dict) else None
    return cfg if isinstance(cfg, dict) else {}


def lower_dirs(store: ImageStore, layers: list[str]) -> tuple[str, ...]:
    """The diff dirs of ``layers`` (chain ids, bottom first), topmost first, as the overlay wants them."""
    return tuple(os.path.join(store.layers, c, "diff") for c in reversed(layers))


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
              hostname: str, host_env: Mapping[str, str], home: str | None = None) -> list[str]:
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
        env.append(f"HOME={home or home_for(lowers, user)}")
    return env


def create_from_options(store: ImageStore, opts: RunOptions, pull: PullFn, host_env: Mapping[str, str]):
    """``rootlet create``: the image (pulled as ``--pull`` says) and a new container record."""
    from rootlet.runtime.create import create_container

    check_unsupported(opts)
    image = find_or_pull(store, opts, pull)
    return create_container(store, opts, image, host_env)


def run_detached(store: ImageStore, opts: RunOptions, pull: PullFn, host_env: Mapping[str, str]) -> str:
    """``rootlet run -d``: create the container and start it under a monitor; its id."""
    from rootlet.runtime.monitor import start_detached

    cfg = create_from_options(store, opts, pull, host_env)
    try:
        start_detached(store, cfg.id)
    except BaseException:
        if opts.rm:
            from rootlet.runtime.lifecycle import remove_container

            with contextlib.suppress(RootletError, OSError):
                remove_container(store, cfg.id, force=True, volumes=True)
        raise
    return cfg.id


def run_container(store: ImageStore, opts: RunOptions, pull: PullFn, host_env: Mapping[str, str]) -> int:
    """Create and run one container in the foreground; returns its exit code (docker's rules)."""
    from rootlet.runtime.start import run_foreground

    cfg = create_from_options(store, opts, pull, host_env)
    try:
        return run_foreground(store, cfg.id, interactive=opts.interactive, sig_proxy=opts.sig_proxy,
                              keep_log=not opts.rm)
    finally:
        if opts.rm:
            from rootlet.runtime.lifecycle import remove_container

            with contextlib.suppress(RootletError, OSError):
                remove_container(store, cfg.id, force=True, volumes=True)
