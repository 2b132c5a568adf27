"""Thin ctypes wrappers for Linux system calls the standard library lacks.

Python 3.11 has no ``os.unshare``/``os.setns`` and no mount API at all, yet user namespaces,
overlay mounts and ``pivot_root`` are the core of a rootless runtime. Each wrapper calls the libc
function of the same name and turns a failure into an ``OSError`` carrying ``errno`` and the path
involved, exactly like the functions of ``os`` do, so callers handle both the same way.
"""

from __future__ import annotations

import ctypes
import functools
import os

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
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    """The process's libc, loaded once, with errno capture enabled."""
    return ctypes.CDLL(None, use_errno=True)


@functools.lru_cache(maxsize=None)
def _fn(name: str, restype: type, *argtypes: type) -> ctypes._CFuncPtr:
    """A private, typed function object for libc ``name``.

    ``CDLL.__getitem__`` returns a fresh function pointer, so setting argtypes on it cannot
    race with another prototype of the same symbol (prctl with a string vs integers).
    """
    func = _libc()[name]
    func.restype = restype
    func.argtypes = argtypes
    return func


def _check(result: int, what: str, path: str | None = None, path2: str | None = None) -> int:
    """Raise ``OSError(errno, strerror, path)`` when a libc call returned -1."""
    if result == -1:
        err = ctypes.get_errno()
        if path is None:
            raise OSError(err, f"{what}: {os.strerror(err)}")
        raise OSError(err, f"{what}: {os.strerror(err)}", path, None, path2)
    return result


def _b(value: str | bytes | os.PathLike[str] | None) -> bytes | None:
    """Encode a path or string argument for libc (None stays NULL)."""
    if value is None:
        return None
    return os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``CLONE_NEW*`` flags), like unshare(2)."""
    _check(_fn("unshare", ctypes.c_int, ctypes.c_int)(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that ``fd`` (an open /proc/PID/ns/* file) refers to, like setns(2)."""
    _check(_fn("setns", ctypes.c_int, ctypes.c_int, ctypes.c_int)(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """Mount ``source`` on ``target`` (mount(2)); the error names the target."""
    c_mount = _fn("mount", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                  ctypes.c_char_p)
    result = c_mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    _check(result, f"mount {fstype or ''} {source or ''}".rstrip(), str(target))


def umount2(target: str, flags: int = 0) -> None:
    """Unmount ``target`` (umount2(2)); ``MNT_DETACH`` for a lazy unmount."""
    _check(_fn("umount2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int)(_b(target), flags), "umount2", str(target))


def pivot_root(new_root: str, put_old: str) -> None:
    """Make ``new_root`` the root of this mount namespace, moving the old root to ``put_old``.

    glibc has no wrapper for pivot_root(2), so this goes through syscall(2).
    """
    c_syscall = _fn("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p)
    result = c_syscall(_syscall_number("pivot_root"), _b(new_root), _b(put_old))
    _check(result, "pivot_root", str(new_root), str(put_old))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Call prctl(2) with integer arguments; returns its (non-negative) result."""
    c_prctl = _fn("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    return _check(c_prctl(option, arg2, arg3, arg4, arg5), "prctl")


def set_pdeathsig(sig: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent thread dies."""
    prctl(PR_SET_PDEATHSIG, sig)


def set_dumpable() -> None:
    """Make this process dumpable again after a credential change cleared the flag, so that the
    owner of its user namespace (us, outside) may open its /proc/PID/ns files."""
    prctl(PR_SET_DUMPABLE, 1)


def set_no_new_privs() -> None:
    """Forbid this process and its children from gaining privileges through execve (setuid bits)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_child_subreaper() -> None:
    """Make this process the reaper of orphaned descendants (used by the container monitor)."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_process_name(name: str) -> None:
    """Set the thread name shown by ps/top (at most 15 bytes are kept)."""
    c_prctl = _fn("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong,
                  ctypes.c_ulong)
    _check(c_prctl(PR_SET_NAME, os.fsencode(name)[:15], 0, 0, 0), "prctl")


def _syscall_number(name: str) -> int:
    """The number of a syscall without a glibc wrapper, for the running architecture."""
    machine = os.uname().machine
    table = _SYSCALLS.get(name, {})
    if machine not in table:
        raise OSError(38, f"{name}: unknown syscall number on {machine}")  # ENOSYS
    return table[machine]


_SYSCALLS: dict[str, dict[str, int]] = {
    "pivot_root": {
        "x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "ppc64": 203,
        "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218, "armv6l": 218,
        "loongarch64": 41, "mips64": 5151,
    },
}


def find_program(name: str) -> str | None:
    """``name`` on PATH, like shutil.which (without importing shutil, which costs milliseconds)."""
    for d in os.get_exec_path():
        path = os.path.join(d, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None
