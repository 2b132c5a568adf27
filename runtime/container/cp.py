"""``rootlet cp``: copy files between a container and the host, in both directions.

The copy runs in one process that sees both trees through directory descriptors:

* the host side is opened (by the path the user gave) *before* the process enters the container's
  view, and is only ever used relative to that descriptor;
* the container side is reached by entering the container's user and mount namespaces (running
  container: setns to its PID 1's) or by mounting its overlay in a private mount namespace and
  chrooting into it (stopped container).

Inside, the container's root is the process's root, so no path of the container (``..``,
absolute symlinks) can lead out of it; the walk itself touches every entry relative to an open
directory with O_NOFOLLOW, so no symlink in either tree is ever followed while copying: symlinks
are copied as symlinks. Files copied into the container belong to the container's user (podman's
``--archive``, its default; ``--archive=false`` keeps their owners as the container's user
namespace sees them); files copied out belong to the user who runs ``cp``. ``-`` instead of a
host path is a tar stream on stdin or stdout (``rootlet.runtime.container.cptar``).

Nothing may be imported once inside the view: there "/" is the container's, and an ``import``
would search its /usr/lib for extension modules. So every module the copy needs is imported with
this one (``cptar.preload`` runs tarfile once) before any namespace is entered.
"""

from __future__ import annotations

import contextlib
import os
import stat

from rootlet.registry.errors import ContainerStartError, CopyError, PathNotFound, UsageError
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.container import cptar
from rootlet.runtime.container.cptree import Owners, copy_contents, copy_entry
from rootlet.runtime.container.options import CopyOptions
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux import signals
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.child import as_error, error_pipe, fork_child, read_all, read_error, wait_for
from rootlet.runtime.linux.proc import same_process
from rootlet.runtime.oci.user import resolve_user

#: Said when ``--pause`` is asked for a running container (podman 4.3 accepts it and ignores it).
PAUSE_WARNING = ("rootlet cannot pause a container (there is no cgroup freezer here): the copy is made "
                 "while it runs")


class CopyRequest(Record):
    """One ``cp``: ``container_path`` inside, ``host_path`` outside (``-``: the tar stream on
    ``stream_fd``), ``into`` the container or out; the rest as ``CopyOptions`` says."""

    container: str
    container_path: str
    host_path: str
    into_container: bool
    follow_link: bool = False
    archive: bool = True
    overwrite: bool = False
    pause: bool | None = None
    stream_fd: int = -1
    stat_only: bool = False  # only describe container_path (``stat_path``)


def request_for(opts: CopyOptions, stream_fd: int) -> CopyRequest:
    """The request for ``opts``; ``stream_fd`` is where ``-`` reads or writes its tar stream."""
    container, cpath, hpath, into = parse_cp_args(opts.source, opts.destination)
    if hpath == "-" and stream_fd < 0:
        raise UsageError("cp with '-' needs a stream to read or write")
    return CopyRequest(container, cpath, hpath, into, opts.follow_link, archive=opts.archive,
                       overwrite=opts.overwrite, pause=opts.pause, stream_fd=stream_fd)


def parse_cp_args(src: str, dst: str) -> tuple[str, str, str, bool]:
    """(container, container path, host path, into container?) from docker's ``SRC DST`` forms."""
    def split(arg: str) -> tuple[str | None, str]:
        if arg.startswith("/") or arg.startswith(".") or ":" not in arg:
            return None, arg
        name, _, path = arg.partition(":")
        return name, path
    s_ctr, s_path = split(src)
    d_ctr, d_path = split(dst)
    if s_ctr and d_ctr:
        raise UsageError("copying between two containers is not supported", "copy through the host")
    if not s_ctr and not d_ctr:
        raise UsageError("one of SRC and DST must be CONTAINER:PATH",
                         "rootlet cp CONTAINER:/path /host/path, or rootlet cp /host/path CONTAINER:/path")
    if s_ctr:
        return s_ctr, s_path or "/", dst, False
    return d_ctr, d_path or "/", src, True  # type: ignore[return-value]


# --- the copy itself (runs inside the container's view) ---------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _resolve_source(path: str, follow: bool) -> tuple[int, str]:
    """(parent dir fd, leaf name) of source ``path``; the leaf itself is not followed unless asked."""
    norm = os.path.normpath("/" + path)
    if follow:
        norm = os.path.realpath(norm)
    parent, leaf = os.path.split(norm)
    try:
        if not leaf or leaf in (".", ".."):
            return os.open(norm, _DIR_FLAGS & ~os.O_NOFOLLOW), "."
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotFound(f"no such file or directory in the container: {path}") from None
    try:
        os.stat(leaf, dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        os.close(fd)
        raise PathNotFound(f"no such file or directory in the container: {path}") from None
    return fd, leaf


def _plan_destination(dst_parent_fd: int, dst_leaf: str | None, src_is_dir: bool, src_name: str,
                      contents_only: bool, dst_trailing_slash: bool, dst_display: str,
                      follow_dest_link: bool, overwrite: bool = False) -> tuple[int, str, bool]:
    """docker's rules for where a copy lands: (dir fd, name, copy contents into an existing dir?).

    ``follow_dest_link``: the destination is in the container's view, where a symlink to a
    directory is that directory. A host destination was resolved on the host before the copy
    entered the container (``_open_host``): a symlink left there is replaced, never followed in
    the container's view.
    """
    if dst_leaf is None:  # the destination is a directory given by fd
        if src_is_dir and contents_only:
            return dst_parent_fd, ".", True
        return dst_parent_fd, src_name, False
    try:
        st = os.stat(dst_leaf, dir_fd=dst_parent_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode) and follow_dest_link:
            # A destination that is a symlink to a directory is that directory, as with cp(1).
            # Safe on both sides: in the container "/" is its root, on the host it is the user's path.
            with contextlib.suppress(OSError):
                followed = os.stat(dst_leaf, dir_fd=dst_parent_fd)
                if stat.S_ISDIR(followed.st_mode):
                    st = followed
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        sub = os.open(dst_leaf, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dst_parent_fd)
        if src_is_dir and contents_only:
            return sub, ".", True
        return sub, src_name, False
    if st is None and dst_trailing_slash and not src_is_dir:
        raise CopyError(f"destination directory {dst_display} does not exist")
    if st is not None and src_is_dir and not overwrite:
        raise CopyError(f"cannot copy a directory to the non-directory {dst_display}",
                        "--overwrite replaces it, as podman's does")
    return dst_parent_fd, dst_leaf, False


def _owner(user: str) -> tuple[int, int]:
    """The container user's (uid, gid), from its own /etc/passwd and /etc/group (podman's rule)."""
    name, _, group = user.partition(":")
    if name.isdigit() and group.isdigit():
        return int(name), int(group)
    try:
        uid, gid, _ = resolve_user(user)
    except ContainerStartError as e:
        raise CopyError(f"cannot give the files to the container's user: {e.message}",
                        "copy with --archive=false to keep their owners") from None
    return uid, gid


def in_view(req: CopyRequest, user: str, host_fd: int, host_leaf: str | None) -> list[str]:
    """The copy, run where "/" is the container's root (``user`` is the container's ``--user``);
    returns warnings for the user."""
    if req.stat_only:
        return [_stat_line(req.container_path)]
    owners = Owners(owner=_owner(user) if req.archive and req.into_container else None,
                     keep=not req.archive and req.into_container, overwrite=req.overwrite)
    if req.host_path != "-":
        copy_in_view(req, host_fd, host_leaf, owners)
        return []
    if req.into_container:
        skipped = cptar.extract_tar(req.stream_fd, req.container_path, owners.owner, req.overwrite)
        if not skipped:
            return []
        return [f"{len(skipped)} device node(s) of the archive not created ({', '.join(skipped[:3])}"
                f"{', …' if len(skipped) > 3 else ''}): a rootless container cannot have them"]
    parent, leaf = _resolve_source(req.container_path, req.follow_link)
    try:
        contents = leaf == "." or req.container_path.endswith("/.")
        name = os.path.basename(os.path.normpath("/" + req.container_path))
        cptar.write_tar(req.stream_fd, parent, leaf, name, contents)
    finally:
        os.close(parent)
    return []


def copy_in_view(req: CopyRequest, host_fd: int, host_leaf: str | None, own: Owners = Owners()) -> None:
    """The copy between host paths and the view, run where "/" is the container's root and
    ``host_fd`` is the host side; ``own`` says who the copies belong to.

    ``host_fd`` is the host source's parent (with ``host_leaf``) when copying in, or the host
    destination's parent (with ``host_leaf``; None when the destination is ``host_fd`` itself).
    """
    contents_only = req.host_path.endswith("/.") if req.into_container else req.container_path.endswith("/.")
    if req.into_container:
        src_parent, src_name = host_fd, host_leaf or "."
        try:
            src_st = os.stat(src_name, dir_fd=src_parent, follow_symlinks=src_name == ".")
        except FileNotFoundError:
            raise CopyError(f"no such file or directory: {req.host_path}") from None
        cpath = os.path.normpath("/" + req.container_path)
        cparent, cleaf = os.path.split(cpath)
        try:
            dst_parent = os.open(cparent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise CopyError(f"the parent of {req.container_path} does not exist in the container") from None
        display = req.container_path
        trailing = req.container_path.endswith("/")
        leaf: str | None = cleaf or None
    else:
        src_parent, src_name = _resolve_source(req.container_path, req.follow_link)
        src_st = os.stat(src_name, dir_fd=src_parent, follow_symlinks=src_name == ".")
        dst_parent, leaf = host_fd, host_leaf
        display = req.host_path
        trailing = req.host_path.endswith("/")
    try:
        is_dir = stat.S_ISDIR(src_st.st_mode)
        base = os.path.basename(os.path.normpath(req.host_path if req.into_container else "/" + req.container_path))
        where, name, contents = _plan_destination(dst_parent, leaf, is_dir, base or "root", contents_only,
                                                  trailing, display, follow_dest_link=req.into_container,
                                                  overwrite=req.overwrite)
        try:
            if contents or (is_dir and src_name == "."):
                src_fd = os.open(src_name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=src_parent)
                try:
                    if not contents:
                        try:
                            os.mkdir(name, 0o755, dir_fd=where)
                        except FileExistsError:
                            pass
                    # The whole root of a running container: not what the runtime mounts there.
                    root = not req.into_container and os.path.samestat(os.fstat(src_fd), os.stat("/"))
                    copy_contents(src_fd, where, name, own, cptar.ROOT_EXCLUDES if root else frozenset())
                finally:
                    os.close(src_fd)
            else:
                copy_entry(src_parent, src_name, where, name, own)
        finally:
            if where not in (dst_parent, host_fd):
                os.close(where)
    except OSError as e:
        raise CopyError(f"copy failed: {e.strerror}" + (f": {e.filename}" if e.filename else "")) from None
    finally:
        if src_parent != host_fd:
            os.close(src_parent)
        if dst_parent != host_fd:
            os.close(dst_parent)


def _copy_stopped(req: CopyRequest, spec_fields: tuple, user: str) -> list[str]:
    """In a UsernsWorker with its own mount namespace: mount the container's overlay, chroot, copy."""
    from rootlet.runtime.oci.overlay import mount_overlay, unmount_overlay

    lowers, upper, work, merged, overlay, rootful, fuse_options = spec_fields
    host_fd, host_leaf = _open_host(req.host_path, req.into_container)
    fuse = mount_overlay(tuple(lowers), upper, work, merged, overlay, rootful, fuse_options=fuse_options)
    try:
        old_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.chroot(merged)
        os.chdir("/")
        try:
            return in_view(req, user, host_fd, host_leaf)
        finally:
            os.fchdir(old_root)
            os.chroot(".")
            os.close(old_root)
    finally:
        unmount_overlay(merged, fuse)
        if host_fd >= 0:
            os.close(host_fd)


def _open_host(host_path: str, into_container: bool) -> tuple[int, str | None]:
    """The host side as (directory fd, leaf name or None); (-1, None) for a tar stream ("-")."""
    if host_path == "-":
        return -1, None
    path = os.path.abspath(host_path)
    if into_container:
        if not os.path.lexists(path):
            raise CopyError(f"no such file or directory: {host_path}")
        if os.path.isdir(path):
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), None
        parent, leaf = os.path.split(path)
        return os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), leaf
    if os.path.isdir(path):
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), None
    parent, leaf = os.path.split(path)
    try:
        return os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), leaf
    except FileNotFoundError:
        raise CopyError(f"the destination directory {parent} does not exist") from None


class PathStat(Record):
    """A path in a container as ``stat_path`` finds it (not followed): its base name, size, mode
    (``st_mode``), mtime (seconds) and, for a symlink, the path it resolves to in the container."""

    name: str
    size: int
    mode: int
    mtime: float
    link_target: str = ""


def _stat_line(path: str) -> str:
    """``stat_path``'s answer, in the view, as one line of "size mode mtime target-length target name"."""
    norm = os.path.normpath("/" + path)
    try:
        st = os.lstat(norm)
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotFound(f"no such file or directory in the container: {path}") from None
    target = os.path.realpath(norm) if stat.S_ISLNK(st.st_mode) else ""
    return f"{st.st_size} {st.st_mode} {st.st_mtime!r} {len(target)} {target}{os.path.basename(norm) or '/'}"


def stat_path(store: ImageStore, container: str, path: str) -> PathStat:
    """What ``path`` is in the container, running or not (the REST API's archive HEAD), seen as
    ``cp`` sees it: inside the container's own root."""
    line = copy(store, CopyRequest(container, path, "-", False, stat_only=True))[0]
    size, mode, mtime, length, rest = line.split(" ", 4)
    n = int(length)
    return PathStat(name=rest[n:], size=int(size), mode=int(mode), mtime=float(mtime), link_target=rest[:n])


def copy(store: ImageStore, req: CopyRequest) -> list[str]:
    """Copy as ``req`` says, whether the container runs or not; returns warnings for the user."""
    cptar.preload()
    containers = ContainerStore(store)
    cid = containers.resolve(req.container)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    if state.status == "running":
        warnings = _copy_running(state.pid, state.pid_start, req, cfg.user)
        return ([PAUSE_WARNING] if req.pause else []) + warnings
    from rootlet.runtime.container.launchspec import check_layers, runtime_spec
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    check_layers(store, cfg)
    spec = runtime_spec(store, cfg)
    plan = spec.plan or plan_userns()  # the container's own maps (keep-id differs)
    keep = (req.stream_fd,) if req.stream_fd >= 0 else ()
    with containers.starting(cid):  # the container must not start while its overlay is mounted here
        with UsernsWorker(plan, mount_ns=True, keep_fds=keep) as worker:
            return worker.call(_copy_stopped, req, (spec.lower_dirs, spec.upper_dir, spec.work_dir, spec.merged_dir,
                                                    spec.overlay, plan.rootful, spec.fuse_options), cfg.user)


def _copy_running(pid: int, started: int, req: CopyRequest, user: str) -> list[str]:
    """Fork a child that joins the running container's user and mount namespaces and copies."""
    fds = linux.open_namespaces(pid, ("user", "mnt"))
    try:
        host_fd, host_leaf = _open_host(req.host_path, req.into_container)
    except BaseException:
        linux.close_namespaces(fds)
        raise
    if not same_process(pid, started):
        linux.close_namespaces(fds)
        if host_fd >= 0:
            os.close(host_fd)
        raise CopyError("the container stopped before the copy began", "try again")
    err_r, err_w = error_pipe()
    said_r, said_w = os.pipe2(os.O_CLOEXEC)

    def body() -> int:
        os.close(err_r)
        os.close(said_r)
        linux.set_pdeathsig(signals.SIGKILL)
        linux.join_namespaces(fds)
        os.chdir("/")
        warnings = in_view(req, user, host_fd, host_leaf)
        os.write(said_w, "\n".join(warnings).encode()[:4096])  # less than a pipe holds: never blocks
        return 0

    child = fork_child(body, err_w, default_code=1)
    os.close(err_w)
    os.close(said_w)
    linux.close_namespaces(fds)
    if host_fd >= 0:
        os.close(host_fd)
    error = read_error(err_r)
    status = wait_for(child)
    said = read_all(said_r, 4096).decode(errors="replace")
    os.close(said_r)
    if error is not None:
        raise as_error(error, CopyError)  # type: ignore[misc]
    if status != 0:
        raise CopyError("the copy failed")
    return said.splitlines()
