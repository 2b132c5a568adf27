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
are copied as symlinks. Files copied into the container belong to its root, as with docker;
files copied out belong to the user who runs ``cp``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat

from rootlet.registry.errors import CopyError, UsageError
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.child import as_error, error_pipe, fork_child, read_error, wait_for
from rootlet.runtime.linux.proc import same_process


class CopyRequest(Record):
    """One ``cp``: ``container_path`` inside, ``host_path`` outside, ``into`` the container or out."""

    container: str
    container_path: str
    host_path: str
    into_container: bool
    follow_link: bool = False


def parse_cp_args(src: str, dst: str) -> tuple[str, str, str, bool]:
    """(container, container path, host path, into container?) from docker's ``SRC DST`` forms."""
    def split(arg: str) -> tuple[str | None, str]:
        if arg.startswith("/") or arg.startswith(".") or ":" not in arg:
            return None, arg
        name, _, path = arg.partition(":")
        return name, path
    s_ctr, s_path = split(src)
    d_ctr, d_path = split(dst)
    if "-" in (src, dst):
        raise UsageError("copying a tar stream from stdin or to stdout ('-') is not supported",
                         "give a host path instead")
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


def _copy_file_data(src_fd: int, dst_fd: int) -> None:
    while True:
        try:
            n = os.copy_file_range(src_fd, dst_fd, 1 << 30)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            break
        if n == 0:
            return
    while True:
        chunk = os.read(src_fd, 1 << 20)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view):]


def _copy_entry(src_dir: int, name: str, dst_dir: int, dst_name: str, depth: int = 0) -> None:
    """Copy entry ``name`` of ``src_dir`` to ``dst_name`` in ``dst_dir`` (recursively, no following)."""
    if depth > 256:
        raise CopyError(f"directory tree too deep at {name!r}")
    st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
    mode = stat.S_IMODE(st.st_mode)
    try:
        existing = os.stat(dst_name, dir_fd=dst_dir, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if stat.S_ISDIR(st.st_mode):
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            raise CopyError(f"cannot overwrite non-directory {dst_name!r} with a directory")
        if existing is None:
            os.mkdir(dst_name, 0o700, dir_fd=dst_dir)
        sfd = os.open(name, _DIR_FLAGS, dir_fd=src_dir)
        try:
            dfd = os.open(dst_name, _DIR_FLAGS, dir_fd=dst_dir)
            try:
                for entry in os.scandir(sfd):
                    _copy_entry(sfd, entry.name, dfd, entry.name, depth + 1)
                os.fchmod(dfd, mode)
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
        return
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise CopyError(f"cannot overwrite directory {dst_name!r} with a non-directory")
        os.unlink(dst_name, dir_fd=dst_dir)
    if stat.S_ISREG(st.st_mode):
        sfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
        try:
            dfd = os.open(dst_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=dst_dir)
            try:
                _copy_file_data(sfd, dfd)
                os.fchmod(dfd, mode)
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_dir), dst_name, dir_fd=dst_dir)
        os.utime(dst_name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst_name, mode, dir_fd=dst_dir)
    # Sockets and device nodes are not copied (docker skips them too; a user namespace cannot
    # create devices anyway).


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
        raise CopyError(f"no such file or directory in the container: {path}") from None
    try:
        os.stat(leaf, dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        os.close(fd)
        raise CopyError(f"no such file or directory in the container: {path}") from None
    return fd, leaf


def _plan_destination(dst_parent_fd: int, dst_leaf: str | None, src_is_dir: bool, src_name: str,
                      contents_only: bool, dst_trailing_slash: bool, dst_display: str,
                      follow_dest_link: bool) -> tuple[int, str, bool]:
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
    if st is not None and src_is_dir:
        raise CopyError(f"cannot copy a directory to the non-directory {dst_display}")
    return dst_parent_fd, dst_leaf, False


def _copy_contents(src_fd: int, dst_dir: int, dst_name: str) -> None:
    """Copy the entries of directory ``src_fd`` into ``dst_name`` (a directory) of ``dst_dir``."""
    dfd = os.open(dst_name, _DIR_FLAGS, dir_fd=dst_dir) if dst_name != "." else os.dup(dst_dir)
    try:
        for entry in os.scandir(src_fd):
            _copy_entry(src_fd, entry.name, dfd, entry.name, 1)
    finally:
        os.close(dfd)


def copy_in_view(req: CopyRequest, host_fd: int, host_leaf: str | None) -> None:
    """The copy, run where "/" is the container's root and ``host_fd`` is the host side.

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
                                                  trailing, display, follow_dest_link=req.into_container)
        try:
            if contents or (is_dir and src_name == "."):
                src_fd = os.open(src_name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=src_parent)
                try:
                    if not contents:
                        try:
                            os.mkdir(name, 0o755, dir_fd=where)
                        except FileExistsError:
                            pass
                    _copy_contents(src_fd, where, name)
                finally:
                    os.close(src_fd)
            else:
                _copy_entry(src_parent, src_name, where, name)
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


def _copy_stopped(req: CopyRequest, spec_fields: tuple, host_path: str) -> None:
    """In a UsernsWorker with its own mount namespace: mount the container's overlay, chroot, copy."""
    from rootlet.runtime.oci.overlay import mount_overlay, unmount_overlay

    lowers, upper, work, merged, overlay, rootful, fuse_options = spec_fields
    host_fd, host_leaf = _open_host(host_path, req.into_container)
    fuse = mount_overlay(tuple(lowers), upper, work, merged, overlay, rootful, fuse_options=fuse_options)
    try:
        old_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.chroot(merged)
        os.chdir("/")
        try:
            copy_in_view(req, host_fd, host_leaf)
        finally:
            os.fchdir(old_root)
            os.chroot(".")
            os.close(old_root)
    finally:
        unmount_overlay(merged, fuse)
        os.close(host_fd)


def _open_host(host_path: str, into_container: bool) -> tuple[int, str | None]:
    """The host side as (directory fd, leaf name or None)."""
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


def copy(store: ImageStore, req: CopyRequest) -> None:
    """Copy as ``req`` says, whether the container runs or not."""
    containers = ContainerStore(store)
    cid = containers.resolve(req.container)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    if state.status == "running":
        _copy_running(state.pid, state.pid_start, req)
        return
    from rootlet.runtime.container.launchspec import check_layers, runtime_spec
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    check_layers(store, cfg)
    spec = runtime_spec(store, cfg)
    plan = spec.plan or plan_userns()  # the container's own maps (keep-id differs)
    with containers.starting(cid):  # the container must not start while its overlay is mounted here
        with UsernsWorker(plan, mount_ns=True) as worker:
            worker.call(_copy_stopped, req, (spec.lower_dirs, spec.upper_dir, spec.work_dir, spec.merged_dir,
                                             spec.overlay, plan.rootful, spec.fuse_options), req.host_path)


def _copy_running(pid: int, started: int, req: CopyRequest) -> None:
    """Fork a child that joins the running container's user and mount namespaces and copies."""
    fds = linux.open_namespaces(pid, ("user", "mnt"))
    try:
        host_fd, host_leaf = _open_host(req.host_path, req.into_container)
    except BaseException:
        linux.close_namespaces(fds)
        raise
    if not same_process(pid, started):
        linux.close_namespaces(fds)
        os.close(host_fd)
        raise CopyError("the container stopped before the copy began", "try again")
    err_r, err_w = error_pipe()

    def body() -> int:
        os.close(err_r)
        linux.set_pdeathsig(signal.SIGKILL)
        linux.join_namespaces(fds)
        os.chdir("/")
        copy_in_view(req, host_fd, host_leaf)
        return 0

    child = fork_child(body, err_w, default_code=1)
    os.close(err_w)
    linux.close_namespaces(fds)
    os.close(host_fd)
    error = read_error(err_r)
    status = wait_for(child)
    if error is not None:
        raise as_error(error, CopyError)  # type: ignore[misc]
    if status != 0:
        raise CopyError("the copy failed")
