"""The container's filesystem, set up inside its namespaces: overlay, /proc, /dev, /sys, binds, masks.

Two processes of ``rootlet.runtime.spawn`` call into this module:

* the keeper (root of the new user namespace, in a new mount namespace) mounts the overlay on
  ``merged_dir`` with ``mount_overlay`` and takes it down with ``unmount_overlay``;
* the container's PID 1, in a mount namespace of its own, builds the rest on top of the merged
  directory with ``setup_rootfs`` (ending in ``pivot_root``) and ``make_root_readonly``.

Everything under the merged directory comes from the image, which is untrusted: a destination
path is resolved inside the rootfs (absolute symlinks are taken relative to the rootfs, like
podman's securejoin) and a symlink whose ``..`` climbs above the rootfs is refused, so no mount
can land on the host. The rootfs does not change while this runs (the container has not started
and nothing else writes its upper directory), so resolving first and mounting on the resolved
path is not racy. ``/proc``, ``/dev`` and ``/sys`` must not be symlinks at all.

Mask lists and mount flags follow podman (containers/common ``DefaultMaskedPaths`` /
``DefaultReadonlyPaths``) so that containers see the same environment.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import stat
import struct
import time
from collections.abc import Iterable

from rootlet.registry.errors import RootletError
from rootlet.registry.record import Record
from rootlet.runtime import linux

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from rootlet.runtime.idmap import UsernsPlan
    from rootlet.runtime.spawn import ContainerSpec


class ContainerError(RootletError):
    """A container could not be run or managed."""


class ContainerStartError(ContainerError):
    """The container's command could not be started.

    ``exit_code`` follows podman: 125 when rootlet itself failed (namespaces, maps, mounts), 126
    when the command cannot be invoked (permission denied, unknown user, bad working directory),
    127 when it does not exist.
    """

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 125) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.hint, self.exit_code))


class BindMount(Record):
    """A host file or directory bind-mounted into the container (``-v``/``--mount type=bind``).

    ``options`` take mount words: ``bind`` (not recursive; the default is recursive like
    podman's ``-v``), ``nosuid``/``nodev``/``noexec``, ``ro``/``rw``, and propagation
    (``private``, ``rslave``, ``shared``, …). SELinux and copy words (``z``, ``Z``, ``copy``,
    ``nocopy``) are accepted and ignored.
    """

    source: str
    destination: str
    readonly: bool = False
    options: tuple[str, ...] = ()


class TmpfsMount(Record):
    """A tmpfs at ``destination``; ``options`` mixes mount words and tmpfs data (size=, mode=)."""

    destination: str
    options: str = "rw,nosuid,nodev,mode=1777"


#: podman's masked paths: files get /dev/null bound over them, directories an empty read-only tmpfs.
MASKED_PATHS = (
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux",
    "/sys/dev/block",
)
#: podman's read-only paths.
READONLY_PATHS = ("/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
#: Device nodes bind-mounted from the host into the container's /dev.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
              ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))

_NOSUID_NODEV_NOEXEC = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
_MAX_SYMLINKS = 40

# mount words → (flag, set it?)
_FLAG_WORDS: dict[str, tuple[int, bool]] = {
    "ro": (linux.MS_RDONLY, True), "rw": (linux.MS_RDONLY, False),
    "nosuid": (linux.MS_NOSUID, True), "suid": (linux.MS_NOSUID, False),
    "nodev": (linux.MS_NODEV, True), "dev": (linux.MS_NODEV, False),
    "noexec": (linux.MS_NOEXEC, True), "exec": (linux.MS_NOEXEC, False),
    "sync": (linux.MS_SYNCHRONOUS, True), "async": (linux.MS_SYNCHRONOUS, False),
    "dirsync": (linux.MS_DIRSYNC, True),
    "noatime": (linux.MS_NOATIME, True), "atime": (linux.MS_NOATIME, False),
    "nodiratime": (linux.MS_NODIRATIME, True), "diratime": (linux.MS_NODIRATIME, False),
    "relatime": (linux.MS_RELATIME, True), "norelatime": (linux.MS_RELATIME, False),
    "strictatime": (linux.MS_STRICTATIME, True), "nostrictatime": (linux.MS_STRICTATIME, False),
}
_PROPAGATION_WORDS = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
_IGNORED_WORDS = frozenset({"z", "Z", "copy", "nocopy", "bind", "rbind", "U", "idmap", ""})

# statvfs f_flag bits → the mount flags that must be kept on a bind remount (locked flags).
_ST_TO_MS = ((os.ST_NOSUID, linux.MS_NOSUID), (os.ST_NODEV, linux.MS_NODEV), (os.ST_NOEXEC, linux.MS_NOEXEC),
             (os.ST_NOATIME, linux.MS_NOATIME), (os.ST_NODIRATIME, linux.MS_NODIRATIME),
             (os.ST_RELATIME, linux.MS_RELATIME), (os.ST_SYNCHRONOUS, linux.MS_SYNCHRONOUS))

_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (unified syscall table, Linux 5.12)
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1


def _fail(message: str, hint: str | None = None, code: int = 125) -> ContainerStartError:
    """A start error (rootlet's own failure unless ``code`` says otherwise)."""
    return ContainerStartError(message, hint, code)


def _os_fail(e: OSError, what: str, code: int = 125) -> ContainerStartError:
    """A start error for an OSError from step ``what``, naming the path involved."""
    text = e.strerror or str(e)
    if e.filename is not None:
        text = f"{text}: {e.filename}"
    return ContainerStartError(f"{what}: {text}", None, code)


# --- mount options --------------------------------------------------------------------------------

def parse_mount_options(words: Iterable[str], allow_data: bool) -> tuple[int, int, str]:
    """Split mount words into (flags to set, propagation flags, fs data string).

    Words that are neither flags nor propagation become data when ``allow_data`` (tmpfs ``size=``,
    ``mode=``); otherwise they are an error, so a typo never silently weakens a mount.
    """
    flags = 0
    propagation = 0
    data: list[str] = []
    for raw in words:
        word = raw.strip()
        if word in _FLAG_WORDS:
            flag, on = _FLAG_WORDS[word]
            flags = (flags | flag) if on else (flags & ~flag)
        elif word in _PROPAGATION_WORDS:
            propagation = _PROPAGATION_WORDS[word]
        elif word in _IGNORED_WORDS:
            continue
        elif allow_data:
            data.append(word)
        else:
            raise _fail(f"unsupported mount option {word!r}")
    return flags, propagation, ",".join(data)


def _locked_flags(path: str) -> int:
    """The per-mount flags of the mount at ``path`` that a bind remount must repeat.

    In a user namespace, flags inherited from a more privileged namespace are locked: a remount
    that would clear nosuid/nodev/noexec or change atime handling fails with EPERM.
    """
    f_flag = os.statvfs(path).f_flag
    flags = 0
    for st_bit, ms_bit in _ST_TO_MS:
        if f_flag & st_bit:
            flags |= ms_bit
    return flags


def remount_bind(path: str, flags: int) -> None:
    """Change the per-mount flags of the mount at ``path`` (keeping its locked ones)."""
    linux.mount(None, path, None, linux.MS_REMOUNT | linux.MS_BIND | flags | _locked_flags(path), None)


@functools.lru_cache(maxsize=1)
def _mount_setattr_func() -> ctypes._CFuncPtr:
    """A private, typed ``syscall`` function object for mount_setattr(2)."""
    func = ctypes.CDLL(None, use_errno=True)["syscall"]
    func.restype = ctypes.c_long
    func.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_char_p, ctypes.c_size_t)
    return func


def make_readonly(path: str, recursive: bool = False) -> None:
    """Make the mount at ``path`` read-only; with ``recursive`` also every mount below it.

    The recursive form uses mount_setattr(AT_RECURSIVE) (Linux ≥ 5.12); without it only the top
    mount becomes read-only.
    """
    if recursive:
        attr = struct.pack("=QQQQ", _MOUNT_ATTR_RDONLY, 0, 0, 0)
        res = _mount_setattr_func()(_SYS_MOUNT_SETATTR, _AT_FDCWD, os.fsencode(path), _AT_RECURSIVE, attr, len(attr))
        if res == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EPERM):
            raise OSError(err, f"mount_setattr: {os.strerror(err)}", path)
    remount_bind(path, linux.MS_RDONLY)


# --- the overlay (keeper side) --------------------------------------------------------------------

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
    exe = linux.find_program("fuse-overlayfs")
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
                raise _fail(f"fuse-overlayfs failed ({_describe(status)}): {text or 'no message'}")
            if time.monotonic() > deadline:
                stop_process(pid)
                raise _fail(f"fuse-overlayfs did not mount {merged} within {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
    finally:
        os.close(devnull)
        os.close(errfd)


def _describe(status: int) -> str:
    """'exit status 1' / 'killed by signal 9'."""
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def stop_process(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM child ``pid``, SIGKILL it after ``timeout`` s, and reap it."""
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


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
        stop_process(fuse_pid)


# --- paths inside the rootfs ----------------------------------------------------------------------

def resolve_in_root(root: str, path: str) -> str:
    """The absolute in-container path of ``path`` with every existing symlink resolved.

    Resolution is confined to ``root``: an absolute link target starts again at the rootfs, as
    in a chroot. A ``..`` of a link target that would climb above the rootfs is refused — such a
    link exists only to point a mount at the host. Missing components are kept as they are.
    """
    clean = os.path.normpath("/" + path)
    todo = [c for c in reversed(clean.split("/")) if c]
    done: list[str] = []
    links = 0
    missing = False
    while todo:
        comp = todo.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if not done:
                raise _fail(f"mount destination {path} is a symlink pointing outside the container rootfs",
                            "use a destination inside the container")
            done.pop()
            continue
        if missing:
            done.append(comp)
            continue
        host = root + "/" + "/".join([*done, comp])
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            missing = True
            done.append(comp)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(comp)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise _fail(f"mount destination {path}: too many levels of symbolic links")
        target = os.readlink(host)
        if target.startswith("/"):
            done = []
        todo.extend(c for c in reversed(target.split("/")) if c)
    return "/" + "/".join(done)


def mount_point(root: str, dest: str, is_dir: bool) -> str:
    """The host path of mount destination ``dest`` in ``root``, created when missing.

    Missing parents become 0755 directories; a missing final component becomes a directory or an
    empty file to match what is mounted on it.
    """
    inner = resolve_in_root(root, dest)
    parts = [c for c in inner.split("/") if c]
    current = root
    for i, comp in enumerate(parts):
        current = current + "/" + comp
        last = i == len(parts) - 1
        try:
            os.lstat(current)
            continue
        except FileNotFoundError:
            pass
        try:
            if last and not is_dir:
                os.close(os.open(current, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
            else:
                os.mkdir(current, 0o755)
        except FileExistsError:
            pass
        except OSError as e:
            raise _os_fail(e, f"cannot create mount point {dest}") from e
    return current


# --- the container's mounts (PID 1 side) ----------------------------------------------------------

def _check_special_dir(root: str, name: str) -> str:
    """``root/name`` for /proc, /dev, /sys: created when missing, refused when a symlink."""
    path = f"{root}/{name}"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return path
    if stat.S_ISLNK(st.st_mode):
        raise _fail(f"/{name} in the image is a symlink ({os.readlink(path)}); refusing to mount over it",
                    "the image is broken or hostile")
    if not stat.S_ISDIR(st.st_mode):
        raise _fail(f"/{name} in the image is not a directory")
    return path


def _mount_proc(root: str) -> None:
    """A new procfs for the container's pid namespace (rbind of the host's only if the kernel refuses)."""
    target = _check_special_dir(root, "proc")
    try:
        linux.mount("proc", target, "proc", _NOSUID_NODEV_NOEXEC, None)
    except PermissionError:
        # The kernel refuses a new procfs when the host's is partly hidden (mount_too_revealing).
        linux.mount("/proc", target, None, linux.MS_BIND | linux.MS_REC, None)


def _mount_dev(root: str, spec: ContainerSpec, plan: UsernsPlan) -> None:
    """A private tmpfs /dev with the safe host devices bound in, devpts, shm, mqueue and the usual links."""
    dev = _check_special_dir(root, "dev")
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_STRICTATIME, "mode=755,size=65536k")
    for name in DEVICES:
        target = f"{dev}/{name}"
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
        linux.mount(f"/dev/{name}", target, None, linux.MS_BIND, None)
    for name in ("pts", "shm", "mqueue"):
        os.mkdir(f"{dev}/{name}", 0o755)
    pts_data = "newinstance,ptmxmode=0666,mode=0620"
    if plan.host_gid(5) is not None:
        pts_data += ",gid=5"
    linux.mount("devpts", f"{dev}/pts", "devpts", linux.MS_NOSUID | linux.MS_NOEXEC, pts_data)
    linux.mount("shm", f"{dev}/shm", "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k")
    try:
        linux.mount("mqueue", f"{dev}/mqueue", "mqueue", _NOSUID_NODEV_NOEXEC, None)
    except PermissionError:
        linux.mount("/dev/mqueue", f"{dev}/mqueue", None, linux.MS_BIND | linux.MS_REC, None)
    for name, target in _DEV_LINKS:
        os.symlink(target, f"{dev}/{name}")
    if spec.tty:
        # The mount point of the terminal: the caller's pty now, or (without tty_fd) the pty that
        # the container's PID 1 allocates in its own devpts after pivot_root.
        console = f"{dev}/console"
        os.close(os.open(console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        if spec.tty_fd is not None:
            linux.mount(os.ttyname(spec.tty_fd), console, None, linux.MS_BIND, None)


def _mount_sys(root: str, own_netns: bool) -> None:
    """A read-only /sys: a new sysfs when the container has its own network namespace, else the host's."""
    target = _check_special_dir(root, "sys")
    if own_netns:
        try:
            linux.mount("sysfs", target, "sysfs", linux.MS_RDONLY | _NOSUID_NODEV_NOEXEC, None)
            return
        except PermissionError:
            pass
    linux.mount("/sys", target, None, linux.MS_BIND | linux.MS_REC, None)
    make_readonly(target, recursive=True)


def _bind(root: str, source: str, dest: str, readonly: bool, options: tuple[str, ...]) -> None:
    """Bind-mount host ``source`` on ``dest`` in the rootfs."""
    try:
        is_dir = stat.S_ISDIR(os.stat(source).st_mode)
    except OSError as e:
        raise _os_fail(e, f"bind mount source {source}") from e
    flags, propagation, _ = parse_mount_options(options, allow_data=False)
    if readonly:
        flags |= linux.MS_RDONLY
    target = mount_point(root, dest, is_dir)
    recursive = 0 if "bind" in options else linux.MS_REC
    try:
        linux.mount(source, target, None, linux.MS_BIND | recursive, None)
        if flags:
            remount_bind(target, flags)
        if propagation:
            linux.mount(None, target, None, propagation, None)
    except OSError as e:
        raise _os_fail(e, f"cannot bind mount {source} on {dest}") from e


def _tmpfs(root: str, mount: TmpfsMount) -> None:
    """A tmpfs on ``mount.destination``."""
    flags, propagation, data = parse_mount_options(mount.options.split(","), allow_data=True)
    target = mount_point(root, mount.destination, True)
    try:
        linux.mount("tmpfs", target, "tmpfs", flags, data or None)
        if propagation:
            linux.mount(None, target, None, propagation, None)
    except OSError as e:
        raise _os_fail(e, f"cannot mount a tmpfs on {mount.destination}") from e


def _mask(root: str) -> None:
    """podman's masked and read-only paths (those that exist)."""
    for path in MASKED_PATHS:
        host = root + path
        try:
            st = os.lstat(host)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            linux.mount("tmpfs", host, "tmpfs", linux.MS_RDONLY | _NOSUID_NODEV_NOEXEC, "size=0k")
        else:
            linux.mount("/dev/null", host, None, linux.MS_BIND, None)
    for path in READONLY_PATHS:
        host = root + path
        try:
            os.lstat(host)
        except OSError:
            continue
        linux.mount(host, host, None, linux.MS_BIND | linux.MS_REC, None)
        remount_bind(host, linux.MS_RDONLY)


def setup_rootfs(spec: ContainerSpec, plan: UsernsPlan) -> None:
    """Build the container's mounts on ``spec.merged_dir`` and make it the root (``pivot_root``).

    Runs as root of the container's user namespace in a mount namespace of its own (so the
    pivot does not move the keeper's root). Every failure is a ContainerStartError (exit 125).
    """
    root = os.path.abspath(spec.merged_dir)
    step = "/proc"
    try:
        _mount_proc(root)
        step = "/dev"
        _mount_dev(root, spec, plan)
        step = "/sys"
        _mount_sys(root, spec.network != "host")
        for dest, source in spec.etc_files.items():
            step = dest
            _bind(root, source, dest, False, ("bind",))
        for bind in spec.binds:
            _bind(root, bind.source, bind.destination, bind.readonly, bind.options)
        for tmpfs in spec.tmpfs:
            _tmpfs(root, tmpfs)
        step = "masked paths"
        _mask(root)
        step = "pivot_root"
        os.chdir(root)
        linux.pivot_root(".", ".")
        linux.umount2(".", linux.MNT_DETACH)
        os.chdir("/")
    except OSError as e:
        raise _os_fail(e, f"cannot set up {step}") from e


def make_root_readonly() -> None:
    """Remount the container's / read-only (``--read-only``); other mounts keep their flags."""
    try:
        remount_bind("/", linux.MS_RDONLY)
    except OSError as e:
        raise _os_fail(e, "cannot make the root filesystem read-only") from e
