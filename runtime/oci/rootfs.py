"""The container's filesystem view, built by its PID 1 inside its namespaces: /proc, /dev, /sys,
the etc files, binds, tmpfs mounts, podman's masks, then ``pivot_root``.

Everything under the merged directory comes from the image, which is untrusted: a destination
path is resolved inside the rootfs (absolute symlinks are taken relative to the rootfs, like
podman's securejoin) and a symlink whose ``..`` climbs above the rootfs is refused, so no mount
can land on the host. ``/proc``, ``/dev`` and ``/sys`` must not be symlinks at all. (The overlay
under it is mounted by the keeper: ``rootlet.runtime.oci.overlay``.)

Mask lists and mount flags follow podman (containers/common ``DefaultMaskedPaths`` /
``DefaultReadonlyPaths``) so that containers see the same environment.
"""

from __future__ import annotations

import errno
import os
import stat

from rootlet.registry.errors import ContainerStartError
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.oci.idmap import UsernsPlan
from rootlet.runtime.oci.mountpoints import fd_path, open_mount_point
from rootlet.runtime.oci.spec import RuntimeSpec, TmpfsMount
from rootlet.runtime.oci.user import add_user_entries

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


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
_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC

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


def make_readonly(path: str, recursive: bool = False) -> None:
    """Make the mount at ``path`` read-only; with ``recursive`` also every mount below it.

    The recursive form uses mount_setattr(AT_RECURSIVE) (Linux ≥ 5.12); without it only the top
    mount becomes read-only.
    """
    if recursive:
        try:
            linux.mount_setattr(path, linux.MOUNT_ATTR_RDONLY, recursive=True)
            return
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM):
                raise
    remount_bind(path, linux.MS_RDONLY)


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


def _mount_dev(root: str, spec: RuntimeSpec, plan: UsernsPlan) -> None:
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
        # The mount point of the terminal: the pty that the container's PID 1 allocates in its
        # own devpts after pivot_root.
        console = f"{dev}/console"
        os.close(os.open(console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))


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
    recursive = 0 if "bind" in options else linux.MS_REC
    target = open_mount_point(root, dest, is_dir)
    try:
        linux.mount(source, fd_path(target), None, linux.MS_BIND | recursive, None)
    except OSError as e:
        raise _os_fail(e, f"cannot bind mount {source} on {dest}") from e
    finally:
        os.close(target)
    _adjust(root, dest, is_dir, flags, propagation)


def _adjust(root: str, dest: str, is_dir: bool, flags: int, propagation: int) -> None:
    """Set per-mount flags and propagation on the mount now at ``dest``, reached by descriptor again
    (the descriptor of the mount point refers to what lies under the new mount)."""
    if not flags and not propagation:
        return
    target = open_mount_point(root, dest, is_dir)
    try:
        if flags:
            remount_bind(fd_path(target), flags)
        if propagation:
            linux.mount(None, fd_path(target), None, propagation, None)
    except OSError as e:
        raise _os_fail(e, f"cannot set the mount options of {dest}") from e
    finally:
        os.close(target)


def _tmpfs(root: str, mount: TmpfsMount) -> None:
    """A tmpfs on ``mount.destination``."""
    flags, propagation, data = parse_mount_options(mount.options.split(","), allow_data=True)
    target = open_mount_point(root, mount.destination, True)
    try:
        linux.mount("tmpfs", fd_path(target), "tmpfs", flags, data or None)
    except OSError as e:
        raise _os_fail(e, f"cannot mount a tmpfs on {mount.destination}") from e
    finally:
        os.close(target)
    _adjust(root, mount.destination, True, 0, propagation)


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


def _ensure_mtab(root: str) -> None:
    """``/etc/mtab`` → ``/proc/mounts`` when the image has an /etc without one, as podman adds it
    (``mount`` and ``df`` read it). Best effort, and never through a symlinked /etc: the link is
    made in the real directory or not at all."""
    root_fd = os.open(root, _PATH_DIR)
    try:
        etc_fd = os.open("etc", _PATH_DIR | os.O_NOFOLLOW, dir_fd=root_fd)
    except OSError:  # no /etc, or a symlink: nothing of ours to add
        return
    finally:
        os.close(root_fd)
    try:
        os.symlink("/proc/mounts", "mtab", dir_fd=etc_fd)
    except OSError:  # it exists (the usual case), or the image's /etc is not writable
        pass
    finally:
        os.close(etc_fd)


def setup_rootfs(spec: RuntimeSpec, plan: UsernsPlan) -> None:
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
        step = "/etc/mtab"
        _ensure_mtab(root)
        step = "/etc/passwd"
        add_user_entries(root, spec.user_entries)
        # Shallower destinations first, as podman sorts them: a tmpfs on /run (--read-only) must not
        # hide /run/.containerenv. Equal depths keep their order: rootlet's files, then the user's.
        mounts: list[tuple[str, Any]] = [(dest, (source, dest, False, ("bind",)))
                                         for dest, source in spec.etc_files.items()]
        mounts += [(b.destination, (b.source, b.destination, b.readonly, b.options)) for b in spec.binds]
        mounts += [(t.destination, t) for t in spec.tmpfs]
        for dest, what in sorted(mounts, key=lambda m: os.path.normpath(m[0]).count("/")):
            step = dest
            if isinstance(what, TmpfsMount):
                _tmpfs(root, what)
            else:
                _bind(root, *what)
        if not spec.privileged:
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
