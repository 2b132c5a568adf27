"""A container's record → the ``RuntimeSpec`` that starts its processes (``rootlet.runtime.oci``).

Built anew for every start (``run``, ``start``, the monitor's restarts), for ``exec`` (the same
environment, user and limits) and for ``cp`` of a stopped container (its overlay).
"""

from __future__ import annotations

import os

from rootlet.registry.errors import StoreError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.record import ContainerConfig
from rootlet.runtime.oci.spec import BindMount, RuntimeSpec, TmpfsMount

#: Directories a ``--read-only`` container gets a tmpfs on (docker's and podman's --read-only-tmpfs).
READ_ONLY_TMPFS = ("/tmp", "/run", "/var/tmp")
#: The files rootlet writes for a container; passwd and group only exist for keep-id containers made
#: by rootlet 0.1, which bind-mounted them (entries now go into the container's own files).
ETC_FILES = ("hosts", "resolv.conf", "hostname", "passwd", "group")


def check_layers(store: ImageStore, cfg: ContainerConfig) -> None:
    """Refuse to start a container whose image layers were removed from the store."""
    from rootlet.runtime.container.imagefiles import lower_dirs

    for lower in lower_dirs(store, cfg.layers):
        if not os.path.isdir(lower):
            raise StoreError(f"the image layers of container {cfg.name} are missing from the store",
                             "remove the container (`rootlet rm`) and create it again")


def seccomp_program(store: ImageStore, cfg: ContainerConfig, caps: list[str] | tuple[str, ...]) -> bytes:
    """The compiled seccomp filter of ``cfg``'s profile for a process with ``caps`` (cached)."""
    from rootlet.runtime.oci import seccomp

    if cfg.seccomp == "custom":
        with open(os.path.join(store.root, "containers", cfg.id, "seccomp.json"), "rb") as f:
            profile = f.read(seccomp.MAX_PROFILE + 1)
    else:
        profile = seccomp.default_profile()
    return seccomp.program(profile, caps, os.path.join(store.root, "cache", "seccomp"))


def process_spec(store: ImageStore, cfg: ContainerConfig) -> RuntimeSpec:
    """What ``exec`` needs to start a process in ``cfg``'s running container: its command,
    environment, user, capabilities, seccomp filter and limits. The filesystem part is left
    empty: the container's own is joined (so neither its layers nor its files are looked up)."""
    seccomp = None
    if cfg.seccomp != "unconfined" and not cfg.privileged:
        seccomp = seccomp_program(store, cfg, cfg.caps)
    return RuntimeSpec(
        lower_dirs=(), upper_dir="", work_dir="", merged_dir="",
        argv=tuple(cfg.argv), env=tuple(cfg.env), cwd=cfg.cwd, user=cfg.user,
        additional_gids=tuple(cfg.additional_gids), caps=tuple(cfg.caps), ambient_caps=tuple(cfg.ambient_caps),
        no_new_privs=cfg.no_new_privs, seccomp=seccomp, rlimits=tuple(cfg.rlimits), tty=cfg.tty,
        privileged=cfg.privileged,
    )


def runtime_spec(store: ImageStore, cfg: ContainerConfig) -> RuntimeSpec:
    """The RuntimeSpec that starts ``cfg`` (its layers must still be in the store): ``process_spec``
    and its filesystem, namespaces and network."""
    from rootlet.runtime.container.imagefiles import lower_dirs

    process = process_spec(store, cfg)
    d = os.path.join(store.root, "containers", cfg.id)
    plan = None
    fuse_options = ""
    overlay = cfg.overlay
    if cfg.userns == "keep-id":
        from rootlet.runtime.oci.idmap import keep_id_fuse_options, keep_id_plan, plan_userns

        base = plan_userns()
        plan = keep_id_plan(base, cfg.keep_uid, cfg.keep_gid)
        fuse_options = keep_id_fuse_options(base, cfg.keep_uid, cfg.keep_gid)
        overlay = "fuse"
    etc = os.path.join(d, "etc")
    binds = []
    tmpfs = []
    for m in cfg.mounts:
        if m.type == "tmpfs":
            tmpfs.append(TmpfsMount(m.destination, ",".join(m.options)))
        else:
            binds.append(BindMount(m.source, m.destination, m.readonly, tuple(m.options)))
    if cfg.readonly_rootfs:
        taken = {m.destination for m in cfg.mounts}
        tmpfs += [TmpfsMount(t, "rw,nosuid,nodev,mode=1777") for t in READ_ONLY_TMPFS if t not in taken]
    network = cfg.network
    etc_files = {f"/etc/{n}": os.path.join(etc, n) for n in ETC_FILES
                 if n in ("hosts", "resolv.conf", "hostname") or os.path.exists(os.path.join(etc, n))}
    if os.path.exists(os.path.join(etc, "containerenv")):  # containers made before rootlet wrote it have none
        etc_files["/run/.containerenv"] = os.path.join(etc, "containerenv")
    return process.replace(
        lower_dirs=lower_dirs(store, cfg.layers), upper_dir=os.path.join(d, "upper"),
        work_dir=os.path.join(d, "work"), merged_dir=os.path.join(d, "merged"), overlay=overlay,
        hostname=cfg.hostname, user_entries=tuple((db, wanted, line) for db, wanted, line in cfg.user_entries),
        etc_files=etc_files, binds=tuple(binds), tmpfs=tuple(tmpfs), readonly_rootfs=cfg.readonly_rootfs,
        network="host" if network == "host" else ("none" if network == "none" else "private"),
        init=cfg.init, plan=plan, fuse_options=fuse_options, volatile=cfg.auto_remove, timeout=cfg.timeout,
    )
