"""Linux system calls the standard library lacks, as functions that raise OSError like ``os``.

Each wrapper calls the libc function of the same name through the one binding
(``rootlet.runtime.linux.libc``) and turns a failure into an ``OSError`` carrying ``errno`` and the
path involved, exactly like the functions of ``os`` do, so callers handle both the same way.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from rootlet.runtime.linux.libc import check, cstr, fn, syscall_number

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# umount2(2) flags.
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# prctl(2) options used by the runtime.
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``CLONE_NEW*`` flags), like unshare(2)."""
    check(fn("unshare", ctypes.c_int, ctypes.c_int)(flags), "unshare")


#: The namespaces of /proc/PID/ns by name, in the order a process joins them: the user namespace
#: first (it grants the capabilities the others need), the pid namespace last (it only places
#: the caller's children).
NAMESPACES = (("user", CLONE_NEWUSER), ("mnt", CLONE_NEWNS), ("uts", CLONE_NEWUTS), ("ipc", CLONE_NEWIPC),
              ("net", CLONE_NEWNET), ("pid", CLONE_NEWPID))


def open_namespaces(pid: int, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """(fd, CLONE_NEW* flag) for each namespace ``names`` of process ``pid`` that is not also ours
    (a container on the host network shares ours), in join order. Raises FileNotFoundError when the
    process is gone. Opening by fd first lets the caller re-check the process before joining, so a
    pid reused meanwhile is never entered."""
    fds: list[tuple[int, int]] = []
    try:
        for name, flag in NAMESPACES:
            if name not in names:
                continue
            target = f"/proc/{pid}/ns/{name}"
            if os.stat(target).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
            fds.append((os.open(target, os.O_RDONLY | os.O_CLOEXEC), flag))
    except BaseException:
        close_namespaces(fds)
        raise
    return fds


def join_namespaces(fds: list[tuple[int, int]]) -> None:
    """setns into each namespace opened by ``open_namespaces``, in order."""
    for fd, flag in fds:
        setns(fd, flag)


def close_namespaces(fds: list[tuple[int, int]]) -> None:
    for fd, _ in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that ``fd`` (an open /proc/PID/ns/* file) refers to, like setns(2)."""
    check(fn("setns", ctypes.c_int, ctypes.c_int, ctypes.c_int)(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """Mount ``source`` on ``target`` (mount(2)); the error names the target."""
    c_mount = fn("mount", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                 ctypes.c_char_p)
    result = c_mount(cstr(source), cstr(target), cstr(fstype), flags, cstr(data))
    check(result, f"mount {fstype or ''} {source or ''}".rstrip(), str(target))


def umount2(target: str, flags: int = 0) -> None:
    """Unmount ``target`` (umount2(2)); ``MNT_DETACH`` for a lazy unmount."""
    check(fn("umount2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int)(cstr(target), flags), "umount2", str(target))


def pivot_root(new_root: str, put_old: str) -> None:
    """Make ``new_root`` the root of this mount namespace, moving the old root to ``put_old``.

    glibc has no wrapper for pivot_root(2), so this goes through syscall(2).
    """
    c_syscall = fn("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p)
    result = c_syscall(syscall_number("pivot_root"), cstr(new_root), cstr(put_old))
    check(result, "pivot_root", str(new_root), str(put_old))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Call prctl(2) with integer arguments; returns its (non-negative) result."""
    c_prctl = fn("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    return check(c_prctl(option, arg2, arg3, arg4, arg5), "prctl")


def set_pdeathsig(sig: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent thread dies."""
    prctl(PR_SET_PDEATHSIG, sig)


def get_pdeathsig() -> int:
    """The signal ``set_pdeathsig`` asked for, 0 for none (a credential change clears it)."""
    value = ctypes.c_int(0)
    c_prctl = fn("prctl", ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_ulong, ctypes.c_ulong,
                 ctypes.c_ulong)
    check(c_prctl(PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0), "prctl")
    return value.value


def set_dumpable(on: bool = True) -> None:
    """Make this process dumpable (again, after a credential change cleared the flag, so that the
    owner of its user namespace, us outside, may open its /proc/PID/ns files) or not: then only
    real root may read its memory, environment or file descriptors through /proc or trace it.
    Children inherit the flag; execve of a non-setuid program sets it again."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def set_no_new_privs() -> None:
    """Forbid this process and its children from gaining privileges through execve (setuid bits)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_child_subreaper() -> None:
    """Make this process the reaper of orphaned descendants (used by the container monitor)."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_process_name(name: str) -> None:
    """Set the thread name shown by ps/top (at most 15 bytes are kept)."""
    c_prctl = fn("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong,
                 ctypes.c_ulong)
    check(c_prctl(PR_SET_NAME, os.fsencode(name)[:15], 0, 0, 0), "prctl")


def sethostname(name: str) -> None:
    """sethostname(2) in the caller's UTS namespace."""
    raw = name.encode()
    check(fn("sethostname", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)(raw, len(raw)), "sethostname")


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (SIOCSIFFLAGS on a datagram socket).

    Through libc rather than the socket module, which costs milliseconds to import on a path
    (every container start) that needs nothing else of it.
    """
    sock = check(fn("socket", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int)(2, 2 | 0o2000000, 0),
                 "socket")
    try:
        ioctl = fn("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
        ifreq = ctypes.create_string_buffer(b"lo", 40)
        check(ioctl(sock, _SIOCGIFFLAGS, ifreq), "SIOCGIFFLAGS lo")
        flags = int.from_bytes(ifreq.raw[16:18], "little") | _IFF_UP
        ctypes.memmove(ctypes.addressof(ifreq) + 16, flags.to_bytes(2, "little"), 2)
        check(ioctl(sock, _SIOCSIFFLAGS, ifreq), "SIOCSIFFLAGS lo")
    finally:
        os.close(sock)


AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1


def mount_setattr(path: str, attr_set: int, recursive: bool) -> None:
    """mount_setattr(2) (Linux ≥ 5.12) on the mount at ``path``: set ``attr_set`` (MOUNT_ATTR_*)."""
    attr = struct.pack("=QQQQ", attr_set, 0, 0, 0)
    func = fn("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint,
              ctypes.c_char_p, ctypes.c_size_t)
    res = func(syscall_number("mount_setattr"), AT_FDCWD, os.fsencode(path), AT_RECURSIVE if recursive else 0,
               attr, len(attr))
    check(res, "mount_setattr", path)


# openat2(2) resolve flags.
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(dirfd, path, {flags, mode, resolve}) (Linux ≥ 5.6); raises OSError like os.open.

    EAGAIN (a rename raced the lookup under RESOLVE_IN_ROOT) is retried a few times.
    """
    func = fn("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
              ctypes.c_size_t)
    how = struct.pack("=QQQ", flags, mode, resolve)
    bpath = os.fsencode(path)
    for _ in range(16):
        fd = func(syscall_number("openat2"), dirfd, bpath, how, len(how))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


_KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str | None = None) -> bool:
    """Give the caller a new anonymous session keyring (KEYCTL_JOIN_SESSION_KEYRING), as runc and
    crun do, so that a container cannot read the keys of the session that started it. False when
    the kernel has no keyrings at all (then there is nothing to read either)."""
    func = fn("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p)
    try:
        check(func(syscall_number("keyctl"), _KEYCTL_JOIN_SESSION_KEYRING, name.encode() if name else None),
              "keyctl(JOIN_SESSION_KEYRING)")
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return False
        raise
    return True


def scrub_environ(replacement: tuple[str, ...] | list[str] = ()) -> None:
    """Overwrite this process's initial environment block, what /proc/PID/environ shows: zeros,
    then as many whole ``replacement`` entries as fit. Forked children share the new contents. The
    process's own ``os.environ`` (a copy made at start-up) is untouched; libc's ``getenv`` sees
    the new block."""
    with open("/proc/self/stat", "rb") as f:
        data = f.read()
    # Fields after the command name; env_start and env_end are fields 50 and 51 (proc(5)).
    fields = data[data.rfind(b")") + 2:].split()
    start, end = int(fields[47]), int(fields[48])
    if not 0 < start < end:
        return
    block = bytearray()
    for item in replacement:
        entry = os.fsencode(item) + b"\0"
        if len(block) + len(entry) > end - start:
            break
        block += entry
    ctypes.memset(start, 0, end - start)
    if block:
        ctypes.memmove(start, bytes(block), len(block))


_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


def load_seccomp(bpf: bytes) -> None:
    """Install a BPF program (libseccomp's export, ``rootlet.runtime.oci.seccomp``) as this
    process's seccomp filter. Needs CAP_SYS_ADMIN in the process's user namespace, or
    no_new_privs: call it before the capabilities are dropped."""
    if not bpf or len(bpf) % 8:
        raise OSError(errno.EINVAL, "seccomp: malformed BPF program")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = struct.pack("HxxxxxxQ", len(bpf) // 8, ctypes.addressof(buf))
    prctl = fn("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong,
               ctypes.c_ulong)
    check(prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, prog, 0, 0), "prctl(PR_SET_SECCOMP)")
