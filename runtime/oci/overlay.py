"""The container's root filesystem: the image's layers under its writable upper directory.

The keeper (``rootlet.runtime.oci.keeper``), root of the container's user namespace in a mount
namespace of its own, mounts it on the container's ``merged`` directory before the container's
PID 1 exists and takes it down after PID 1 is gone: the kernel's overlay where it works inside a
user namespace (Linux ≥ 5.11, ``userxattr``; faster, podman prefers it), else fuse-overlayfs as
the keeper's own child, so the keeper can stop and reap it instead of hunting for a daemon.
"""

from __future__ import annotations

import os
import time

from rootlet.registry.errors import ContainerStartError
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.child import describe_status, stop_child
from rootlet.runtime.linux.proc import find_program

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Iterable


def _fail(message: str, hint: str | None = None) -> ContainerStartError:
    return ContainerStartError(message, hint, 125)


def _os_fail(e: OSError, what: str) -> ContainerStartError:
    text = e.strerror or str(e)
    if e.filename is not None:
        text = f"{text}: {e.filename}"
    return ContainerStartError(f"{what}: {text}", None, 125)


def _escape_overlay_path(path: str) -> str:
    """Escape the characters overlayfs treats specially in its options (``\\ : ,``)."""
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def kernel_overlay_data(lower_dirs: Iterable[str], upper: str, work: str, userxattr: bool,
                        volatile: bool = False) -> tuple[str, str]:
    """(directory to run the mount from, mount data) for a kernel overlay.

    ``volatile`` (for containers removed at exit) lets the overlay skip syncing the upper
    filesystem, notably the sync of the whole filesystem at unmount, as podman does for ``--rm``.

    Paths are made relative to their common parent and the mount is made from there (the kernel
    resolves them against the mounter's cwd): one page of mount data then holds ~100 layers of
    64-hex names instead of ~30 absolute paths.
    """
    lowers = [os.path.abspath(p) for p in lower_dirs]
    upper, work = os.path.abspath(upper), os.path.abspath(work)
    base = os.path.commonpath([*lowers, upper, work])

    def rel(p: str) -> str:
        return _escape_overlay_path(os.path.relpath(p, base))

    data = f"lowerdir={':'.join(rel(p) for p in lowers)},upperdir={rel(upper)},workdir={rel(work)}"
    if userxattr:
        data += ",userxattr"
    if volatile:
        data += ",volatile"
    return base, data


def _mount_kernel_overlay(lower_dirs: tuple[str, ...], upper: str, work: str, merged: str, userxattr: bool,
                          volatile: bool = False) -> None:
    """Mount the kernel's overlay on ``merged`` (raises OSError)."""
    base, data = kernel_overlay_data(lower_dirs, upper, work, userxattr, volatile)
    if len(data.encode()) >= 4096:
        raise _fail(f"too many layers for one overlay mount ({len(lower_dirs)}): the options exceed a page",
                    "use --storage-opt overlay.mount_program=fuse-overlayfs or flatten the image")
    merged = os.path.abspath(merged)
    os.chdir(base)
    try:
        linux.mount("overlay", merged, "overlay", 0, data)
    finally:
        os.chdir("/")


def _mount_fuse_overlay(lower_dirs: tuple[str, ...], upper: str, work: str, merged: str,
                        close_fds: Iterable[int], timeout: float = 10.0, extra: str = "") -> int:
    """Start ``fuse-overlayfs -f`` on ``merged`` and wait until the mount is there; returns its pid.

    It runs in the foreground (``-f``) as our child, so the keeper knows its pid and can stop and
    reap it after the container exits instead of hunting for a daemonised orphan. Its stderr goes
    to a memfd that is read back when it fails.
    """
    exe = find_program("fuse-overlayfs")
    if exe is None:
        raise _fail("fuse-overlayfs is not installed", "apt-get install fuse-overlayfs (or use the kernel overlay)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise _fail("/dev/fuse is not usable", "load the fuse module and make /dev/fuse mode 0666")
    paths = [os.path.abspath(p) for p in (*lower_dirs, upper, work)]
    for p in paths:
        if "," in p or ":" in p:
            raise _fail(f"fuse-overlayfs cannot use a path containing ',' or ':': {p}")
    *lowers, upper, work = paths
    merged = os.path.abspath(merged)
    before = os.stat(merged).st_dev
    opts = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}" + (f",{extra}" if extra else "")
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    errfd = os.memfd_create("fuse-overlayfs-stderr", os.MFD_CLOEXEC)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                   (os.POSIX_SPAWN_DUP2, errfd, 2)]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in close_fds if fd > 2]
        pid = os.posix_spawn(exe, [exe, "-f", "-o", opts, merged], dict(os.environ), file_actions=actions)
        deadline = time.monotonic() + timeout
        delay = 0.0002
        while True:
            if os.stat(merged).st_dev != before:
                return pid
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                text = os.pread(errfd, 4096, 0).decode(errors="replace").strip()
                raise _fail(f"fuse-overlayfs failed ({describe_status(status)}): {text or 'no message'}")
            if time.monotonic() > deadline:
                stop_child(pid)
                raise _fail(f"fuse-overlayfs did not mount {merged} within {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
    finally:
        os.close(devnull)
        os.close(errfd)


def mount_overlay(lower_dirs: tuple[str, ...], upper: str, work: str, merged: str, mode: str, rootful: bool,
                  close_fds: Iterable[int] = (), fuse_options: str = "", volatile: bool = False) -> int | None:
    """Mount the container's root filesystem on ``merged``; returns the fuse-overlayfs pid or None.

    ``mode`` is "kernel", "fuse" or "auto" (the kernel overlay when it mounts, else fuse-overlayfs).
    Rootless kernel overlays use ``userxattr`` (the layers mark opaque directories with
    ``user.overlay.opaque``); rootful ones read ``trusted.overlay.*``, which the applier also
    writes as root. ``close_fds`` are closed in the fuse-overlayfs process. ``fuse_options`` (id
    mappings) need fuse-overlayfs: the kernel overlay cannot translate ownership here.
    """
    if not lower_dirs:
        raise _fail("an overlay needs at least one layer")
    if mode not in ("kernel", "fuse", "auto"):
        raise _fail(f"unknown overlay mode {mode!r}")
    if fuse_options and mode == "kernel":
        raise _fail("the kernel overlay cannot map ids for --userns keep-id", "use fuse-overlayfs (ROOTLET_OVERLAY=fuse)")
    if mode in ("kernel", "auto") and not fuse_options:
        try:
            _mount_kernel_overlay(lower_dirs, upper, work, merged, userxattr=not rootful, volatile=volatile)
            return None
        except OSError as e:
            if mode == "kernel":
                raise _os_fail(e, "cannot mount the kernel overlay",
                               ) from e
    return _mount_fuse_overlay(lower_dirs, upper, work, merged, close_fds, extra=fuse_options)


def unmount_overlay(merged: str, fuse_pid: int | None) -> None:
    """Take the overlay off ``merged`` and stop fuse-overlayfs (best effort: the namespace dies anyway)."""
    try:
        linux.umount2(merged, 0)
    except OSError:
        try:
            linux.umount2(merged, linux.MNT_DETACH)
        except OSError:
            pass
    if fuse_pid is not None:
        stop_child(fuse_pid)
