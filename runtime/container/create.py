"""``create`` (and the first half of ``run``): options + image → a container record on disk.

Everything the container's processes will need is resolved here, once, and written whole into the
container's ``config.json`` (``rootlet.runtime.container.record``): the final argv and
environment, the mounts, capabilities, limits, the network mode and ports, the restart and log
policies. ``rootlet.runtime.container.launchspec`` turns that record into a ``RuntimeSpec`` for
every start (``run``, ``start``, the monitor's restarts), so a container started a week later
behaves exactly as it was created.

``prepare`` checks the options' syntax before anything is pulled or written; ``create_container``
then needs the image.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import ImageNotFound, UsageError
from rootlet.registry.fsutil import atomic_write, flocked
from rootlet.registry.record import Record
from rootlet.registry.reference import DOCKER_HUB
from rootlet.registry.store import ImageRecord, ImageStore, match_image
from rootlet.runtime.container import flags
from rootlet.runtime.container.imagefiles import home_for, lower_dirs
from rootlet.runtime.container.options import RunOptions
from rootlet.runtime.container.record import ContainerConfig, LogConfig, Mount, RestartPolicy
from rootlet.runtime.container.store import ContainerStore, check_name
from rootlet.runtime.net.ports import PortMapping
from rootlet.runtime.oci.spec import Rlimit

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Mapping


class Prepared(Record):
    """The options of a ``create``, parsed and checked for syntax (nothing pulled or written yet)."""

    volumes: tuple[flags.VolumeSpec, ...]
    ports: tuple[PortMapping, ...]
    rlimits: tuple[Rlimit, ...]
    labels: dict[str, str]
    env_from_files: tuple[str, ...]
    env: tuple[str, ...]
    no_new_privs: bool
    seccomp: str
    seccomp_profile: bytes | None
    restart: RestartPolicy
    log: LogConfig
    stop_signal: int | None
    network: str = "private"
    network_options: dict[str, str] = {}
    warnings: tuple[str, ...] = ()


#: What ``--memory``, ``--cpus`` and ``--pids-limit`` take for "no limit" in docker and podman.
NO_LIMIT = ("0", "-1")


def check_unsupported(opts: RunOptions) -> None:
    """Refuse what this host cannot do, loudly: never a silent no-op."""
    for flag, value in (("--memory", opts.memory), ("--cpus", opts.cpus), ("--pids-limit", opts.pids_limit)):
        if value is not None and value.strip().lower().rstrip("bkmg") not in NO_LIMIT:
            from rootlet.runtime.system.hostinfo import cgroup_version

            # Refused on every host: rootlet has no cgroup code, even where a delegated cgroup v2
            # hierarchy would allow rootless limits (this one has cgroup `cgroup_version()`).
            raise UsageError(
                f"{flag} is not supported: rootlet sets no cgroup resource limits (this host has cgroup "
                f"{cgroup_version()})",
                f"run without {flag}; ulimits (--ulimit nproc=N, --ulimit as=BYTES) do work")
    if opts.userns not in (None, "", "host", "keep-id"):
        raise UsageError(f"unsupported --userns {opts.userns!r}", "rootlet supports --userns keep-id")
    if opts.userns == "host" and os.getuid() != 0:
        raise UsageError("--userns host is not possible rootless: a container needs a user namespace to "
                         "have a root user", "drop --userns host, or use --userns keep-id to run as your own uid")


def prepare(opts: RunOptions, host_env: Mapping[str, str]) -> Prepared:
    """Parse and check every option whose syntax alone can be wrong (UsageError naming the flag),
    before anything is pulled or written."""
    from rootlet.runtime.net.ports import parse_publish
    from rootlet.runtime.net.usermode import parse_network

    check_unsupported(opts)
    if opts.name:
        check_name(opts.name)
    volumes = tuple([flags.parse_volume(v) for v in opts.volumes] + [flags.parse_mount(m) for m in opts.mounts]
                    + [flags.parse_tmpfs(t) for t in opts.tmpfs])
    destinations = [os.path.normpath(v.destination) for v in volumes]
    duplicates = sorted({d for d in destinations if destinations.count(d) > 1})
    if duplicates:
        raise UsageError(f"{duplicates[0]}: duplicate mount destination", "give each mount its own destination")
    warnings = ["the :z/:Z relabel options do nothing here: rootlet sets no SELinux labels"] \
        if any(v.relabel for v in volumes) else []
    network, network_options = parse_network(opts.network or "private")
    _check_run_only_options(opts)
    for g in opts.group_add:
        if not g or ":" in g or "," in g or (g.isdigit() and int(g) > flags.MAX_ID):
            raise UsageError(f"invalid --group-add {g!r}", "give a group name or number")
    if opts.user is not None:
        flags.check_user(opts.user, "--user")
    if opts.workdir is not None and not opts.workdir.startswith("/"):
        raise UsageError(f"invalid --workdir {opts.workdir!r}: must be an absolute path")
    restart = flags.parse_restart(opts.restart)
    if restart.name != "no" and opts.rm:
        raise UsageError("--restart and --rm cannot be used together",
                         "a container that removes itself on exit cannot be restarted")
    if opts.stop_timeout is not None and opts.stop_timeout < 0:
        raise UsageError(f"invalid --stop-timeout {opts.stop_timeout}", "give whole seconds, 0 or more")
    security = flags.parse_security_opts(opts.security_opt)
    profile = None
    if security.seccomp not in ("default", "unconfined"):
        from rootlet.runtime.oci.seccomp import read_profile

        profile = read_profile(security.seccomp)
    return Prepared(
        volumes=volumes, ports=tuple(pm for spec in opts.publish for pm in parse_publish(spec)),
        rlimits=tuple(flags.parse_ulimit(u) for u in opts.ulimits), labels=flags.parse_labels(opts.labels),
        env_from_files=tuple(e for path in opts.env_files for e in flags.parse_env_file(path, host_env)),
        env=tuple(flags.expand_env(opts.env, host_env)),
        no_new_privs=security.no_new_privs, seccomp="custom" if profile is not None else security.seccomp,
        seccomp_profile=profile, restart=restart,
        log=flags.parse_log_options(opts.log_driver, opts.log_opts),
        stop_signal=flags.parse_signal(opts.stop_signal, "--stop-signal") if opts.stop_signal else None,
        network=network, network_options=network_options, warnings=tuple(warnings))


def _check_run_only_options(opts: RunOptions) -> None:
    """``--cidfile``, ``--timeout``, ``--preserve-fds`` and ``--attach``, checked before anything
    is pulled or written."""
    if opts.cidfile is not None and (not opts.cidfile or os.path.lexists(opts.cidfile)):
        raise UsageError(f"container id file {opts.cidfile!r} exists: ensure another container is not using it "
                         "or delete it")
    if opts.timeout is not None and opts.timeout < 0:
        raise UsageError(f"invalid --timeout {opts.timeout}", "give whole seconds (0: no timeout)")
    if opts.preserve_fds:
        for fd in range(3, 3 + opts.preserve_fds):
            try:
                os.fstat(fd)
            except OSError:
                raise UsageError(f"--preserve-fds {opts.preserve_fds}: descriptor {fd} is not open",
                                 "open descriptors 3 to 3+N-1 before running rootlet") from None
    if opts.preserve_fds < 0:
        raise UsageError(f"invalid --preserve-fds {opts.preserve_fds}", "give a number of descriptors")
    for stream in opts.attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise UsageError(f"invalid --attach {stream!r}", "give stdin, stdout or stderr (repeatable)")
    if opts.attach and opts.detach:
        raise UsageError("-a and -d cannot be used together", "a detached container's output is in `rootlet logs`")


def read_image_config(store: ImageStore, image: ImageRecord) -> dict[str, object]:
    """The image's runtime config (Env, Cmd, Entrypoint, User, WorkingDir, StopSignal).

    The blob was verified and validated when it was pulled; only its ``config`` is needed here,
    so the manifest module (and its validation) stays off the run path.
    """
    from rootlet.registry import jsoncodec

    doc = jsoncodec.loads(store.read_blob(image.config_digest))
    cfg = doc.get("config") if isinstance(doc, dict) else None
    return cfg if isinstance(cfg, dict) else {}


def final_env(image_config: Mapping[str, object], opts: RunOptions, prepared: Prepared, lowers: tuple[str, ...],
              user: str, hostname: str, home: str | None = None) -> list[str]:
    """Image Env, podman's defaults, then --env-file, then -e (later wins)."""
    image_env = flags.image_words(image_config, "Env")
    # podman's defaults: TERM=xterm in every container, with a terminal or not (docker sets it only
    # with -t); scripts that look at $TERM see what they see under podman.
    defaults = [f"PATH={flags.DEFAULT_PATH}", "container=rootlet", f"HOSTNAME={hostname}", "TERM=xterm"]
    env = flags.merge_env(defaults, image_env, prepared.env_from_files, prepared.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home or home_for(lowers, user)}")
    return env


def _mounts(store: ImageStore, volumes: tuple[flags.VolumeSpec, ...], made: list[str]) -> list[Mount]:
    """The container's mounts, named and anonymous volumes created in the store on the way (the
    anonymous ones' names added to ``made``, for removal if the create fails)."""
    out: list[Mount] = []
    for v in volumes:
        if v.kind == "tmpfs":
            words = ("rw", "nosuid", "nodev", *v.options) if v.options else ("rw", "nosuid", "nodev", "mode=1777")
            if v.readonly:
                words = ("ro", *words[1:])
            out.append(Mount("tmpfs", v.destination, readonly=v.readonly, options=words))
        elif v.kind == "bind":
            if not os.path.exists(v.source):
                raise UsageError(f"bind mount source {v.source}: no such file or directory",
                                 "create it first; rootlet does not create host paths")
            out.append(Mount("bind", v.destination, source=os.path.abspath(v.source), readonly=v.readonly,
                             options=tuple(v.options)))
        else:
            from rootlet.runtime.container.volumes import VolumeStore, mount_for

            mount = mount_for(VolumeStore(store), v.source, v.destination, v.readonly)
            if not v.source:
                made.append(mount.name)
            out.append(mount)
    return out


def _host_home() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir or "/"
    except KeyError:
        return "/"


def _keep_id_entries(home: str) -> list[list[str]]:
    """The passwd and group entries podman adds for keep-id: our own user and group, so that
    ``id``, ``whoami`` and programs that look up $HOME know the user."""
    import pwd

    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = os.environ.get("USER") or f"user{uid}"
    return [["passwd", str(uid), f"{name}:*:{uid}:{gid}:{name}:{home}:/bin/sh"],
            ["group", str(gid), f"{name}:x:{gid}:"]]


def _numeric_user_entries(user: str) -> list[list[str]]:
    """Entries for a numeric ``--user`` that the image may not know, as podman adds them: the uid
    as a "container user" (its group the one given, else 0) and a numeric group given explicitly,
    so that ``id`` and ``whoami`` work."""
    name, _, group = user.partition(":")
    entries = []
    if name.isdigit():
        entries.append(["passwd", name, f"{name}:*:{name}:{group if group.isdigit() else '0'}:container user:/:/bin/sh"])
    if group.isdigit():
        entries.append(["group", group, f"{group}:x:{group}:{name}"])
    return entries


def create_container(store: ImageStore, opts: RunOptions, prepared: Prepared, image: ImageRecord,
                     overlay: str) -> tuple[ContainerConfig, list[str]]:
    """Record a new container made from ``image`` with ``opts``; returns its config as written and
    what the user should be told (the warnings of ``prepare``, ports a network mode discards…).

    Nothing runs yet. Fails before anything is listed when an option cannot be honoured; the
    half-made directory is removed then.
    """
    from rootlet.runtime.container.netmode import config_extras, write_container_etc
    from rootlet.runtime.net.usermode import network_warnings
    from rootlet.runtime.oci.capnames import CAPABILITIES

    config = read_image_config(store, image)
    mode, extras = config_extras(store, opts, prepared, config)  # user networks, pods, healthchecks
    warnings = [*prepared.warnings, *network_warnings(mode, prepared.ports,
                                                      prepared.network_options.get("allow_host_loopback") == "true")]
    ports = [] if mode in ("host", "none") else list(prepared.ports)  # discarded, as podman says
    argv = flags.compose_argv(opts.entrypoint, opts.command, config)
    lowers = lower_dirs(store, image.layers)
    user = opts.user if opts.user is not None else flags.check_user(str(config.get("User") or ""), "the image's User")
    cwd = opts.workdir or str(config.get("WorkingDir") or "/")
    if not cwd.startswith("/"):
        raise UsageError(f"invalid working directory {cwd!r} in the image: must be an absolute path")
    keep_id = opts.userns == "keep-id"
    home = None
    if keep_id:
        from rootlet.runtime.oci.idmap import keep_id_plan, plan_userns

        keep_id_plan(plan_userns(), os.getuid(), os.getgid())  # refuse now what could never start
        if overlay == "kernel":
            raise UsageError("--userns keep-id needs fuse-overlayfs", "unset ROOTLET_OVERLAY=kernel")
        if opts.user is None:
            user = f"{os.getuid()}:{os.getgid()}"
        home = _host_home()
    caps = tuple(CAPABILITIES) if opts.privileged else flags.compose_caps(opts.cap_add, opts.cap_drop,
                                                                           tuple(CAPABILITIES))
    stop_signal = prepared.stop_signal if prepared.stop_signal is not None else \
        flags.parse_signal(str(config.get("StopSignal") or "SIGTERM"), "the image's StopSignal")
    containers = ContainerStore(store)
    if opts.name:
        containers.check_name_free(opts.name)
    made: list[str] = []
    cid = ""
    try:
        specs = prepared.volumes
        if config.get("Volumes"):
            from rootlet.runtime.container.volumes import image_volume_specs

            specs += image_volume_specs(config, prepared.volumes)
        mounts = _mounts(store, specs, made)
        if any(m.name for m in mounts):
            from rootlet.runtime.container.seed import seed_volumes
            from rootlet.runtime.container.volumes import VolumeStore

            seed_volumes(VolumeStore(store), lowers, user, mounts)  # copy-up: a new volume gets the image's files
        if any(v.chown for v in prepared.volumes):
            _give_to_user(lowers, user, keep_id, [m.source for m, v in zip(mounts, prepared.volumes) if v.chown])
        cid = containers.new_dir()
        hostname = opts.hostname or cid[:12]
        etc = containers.path(cid, "etc")
        if prepared.seccomp_profile is not None:
            atomic_write(containers.path(cid, "seccomp.json"), prepared.seccomp_profile, 0o600, durable=False)
        cfg = ContainerConfig(
            id=cid, name="", created=_now(), image_id=image.id, image_name=_image_name(image, opts.image), layers=list(image.layers),
            argv=argv,
            entrypoint=flags.image_words(config, "Entrypoint") if opts.entrypoint is None
            else argv[:len(argv) - len(opts.command)],
            cmd=list(opts.command) if opts.command or opts.entrypoint is not None
            else flags.image_words(config, "Cmd"),
            env=final_env(config, opts, prepared, lowers, user, hostname, home=home), cwd=cwd, user=user,
            additional_gids=[int(g) if g.isdigit() else g for g in opts.group_add], hostname=hostname,
            user_entries=_keep_id_entries(home or "/") if keep_id else _numeric_user_entries(user),
            labels=dict(prepared.labels), mounts=mounts, readonly_rootfs=opts.read_only, caps=list(caps),
            ambient_caps=[c for c in caps if c in {flags.cap_name(a) for a in opts.cap_add}],
            no_new_privs=prepared.no_new_privs, seccomp=prepared.seccomp, rlimits=list(prepared.rlimits), tty=opts.tty,
            interactive=opts.interactive, stdin_once=opts.stdin_once, init=opts.init, overlay=overlay,
            userns="keep-id" if keep_id else "", keep_uid=os.getuid() if keep_id else 0,
            keep_gid=os.getgid() if keep_id else 0, network=mode, network_options=dict(prepared.network_options),
            ports=ports, restart=prepared.restart, stop_signal=stop_signal,
            stop_timeout=opts.stop_timeout if opts.stop_timeout is not None else 10,
            log=prepared.log, auto_remove=opts.rm, timeout=opts.timeout or 0, privileged=opts.privileged, **extras)
        if opts.privileged:
            cfg = cfg.replace(seccomp="unconfined", no_new_privs=False)
        # /etc/hosts names the container too: written once its name is settled, before it is listed.
        cfg = containers.commit(cfg, opts.name, before_listing=lambda c: write_container_etc(store, etc, opts, c))
    except BaseException:
        if cid:
            _discard(containers, cid)
        if made:
            from rootlet.runtime.container.volumes import drop_volumes

            drop_volumes(store, made)
        raise
    _check_image_kept(store, containers, cfg)
    if any(m.name for m in cfg.mounts):
        _check_volumes_kept(store, containers, cfg)
    return cfg, warnings


def _image_name(image: ImageRecord, given: str) -> str:
    """The full name of the image as podman records it for the container (``ps`` IMAGE)."""
    try:
        return match_image({image.id: image}, given, [DOCKER_HUB])[1]
    except ImageNotFound:  # a name the pull resolved differently (a mirror, an alias): keep it as given
        return given


def write_cidfile(path: str, cid: str) -> None:
    """``--cidfile``: the container's id in a new file (an existing one is never overwritten:
    another container may own it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise UsageError(f"cannot write the container id file {path}: {e.strerror}",
                         "give a path to a new file in a writable directory") from None
    with open(fd, "w") as f:
        f.write(cid)


def _give_to_user(lowers: tuple[str, ...], user: str, keep_id: bool, paths: list[str]) -> None:
    """``-v SRC:DST:U``: give each source tree to the container's user (its ids resolved in the
    image, then mapped through the container's user namespace), as podman does at create."""
    from rootlet.runtime.container.imagefiles import image_ids
    from rootlet.runtime.linux.trees import chown_tree
    from rootlet.runtime.oci.idmap import keep_id_plan, plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    uid, gid = image_ids(lowers, user)
    plan = plan_userns()
    if keep_id:
        plan = keep_id_plan(plan, os.getuid(), os.getgid())
    with UsernsWorker(plan) as worker:
        for path in paths:
            try:
                worker.call(chown_tree, path, uid, gid)
            except OSError as e:
                raise UsageError(f"cannot give {path} to the container's user {uid}:{gid} (:U): {e.strerror or e}",
                                 "the user's subordinate ids must cover it; see `rootlet info`") from None


def _check_image_kept(store: ImageStore, containers: ContainerStore, cfg: ContainerConfig) -> None:
    """An ``rmi`` racing this create either saw the new container (and kept the image) or removed
    the image before we look here, under the image store's lock: then the container goes again."""
    with flocked(store.lock_path("store")):
        present = cfg.image_id in store.load()
    if not present:
        doomed = containers.forget(cfg.id)
        if doomed:
            _remove_quietly(doomed)
        raise ImageNotFound(f"image {cfg.image_name} was removed while the container was being created",
                            "pull it again and retry")


def _check_volumes_kept(store: ImageStore, containers: ContainerStore, cfg: ContainerConfig) -> None:
    """A ``volume rm`` racing this create either saw the new container (and refused) or took a
    volume before we look here: then the container goes again."""
    from rootlet.registry.errors import VolumeNotFound
    from rootlet.runtime.container.volumes import VolumeStore, check_volumes_kept

    gone = check_volumes_kept(VolumeStore(store), cfg)
    if gone:
        doomed = containers.forget(cfg.id)
        if doomed:
            _remove_quietly(doomed)
        raise VolumeNotFound(f"volume {gone[0]} was removed while the container was being created", "retry")


def _discard(containers: ContainerStore, cid: str) -> None:
    """Remove a container directory that was never started (only our own files are in it)."""
    _remove_quietly(containers.dir(cid))


def _remove_quietly(path: str) -> None:
    from rootlet.registry.errors import RootletError
    from rootlet.runtime.linux.rmtree import remove_tree

    try:
        remove_tree(path)
    except (OSError, RootletError):
        pass


def _now() -> float:
    import time

    return time.time()
