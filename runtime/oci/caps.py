"""Linux capabilities: applying a set to the process (the names, numbers and podman's default set
are in ``capnames``, which plain data modules import without ctypes).

A container's root is only as strong as its capabilities. Like podman, rootlet gives container
root a small default set (``PODMAN_DEFAULT_CAPS``) and removes everything else from the bounding
set, so no execve (setuid binary, file capabilities) can bring a dropped capability back.

Python has no binding for capget/capset or the ambient-capability prctls, so this module calls
them through ctypes (glibc exports ``capget``/``capset``). The functions run in the container's
child process just before execve (see ``rootlet.runtime.oci.process``).
"""

from __future__ import annotations

import ctypes
import errno

from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.libc import check, fn
from rootlet.runtime.oci.capnames import CAPABILITIES

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _cap_funcs() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr]:
    """Typed ``capget`` and ``capset`` function objects of libc."""
    argtypes = (ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData * 2))
    return fn("capget", ctypes.c_int, *argtypes), fn("capset", ctypes.c_int, *argtypes)


def cap_number(name: str) -> int:
    """The number of capability ``name`` (``CAP_CHOWN`` or ``chown``); ValueError if unknown."""
    up = name.strip().upper()
    if not up.startswith("CAP_"):
        up = "CAP_" + up
    try:
        return CAPABILITIES[up]
    except KeyError:
        raise ValueError(f"unknown capability {name!r}") from None


def cap_mask(names: tuple[str, ...] | list[str] | set[str]) -> int:
    """The 64-bit mask of a set of capability names."""
    mask = 0
    for name in names:
        mask |= 1 << cap_number(name)
    return mask


def last_cap() -> int:
    """The highest capability number the running kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def drop_bounding_set(keep_mask: int, top: int | None = None) -> None:
    """Remove every capability not in ``keep_mask`` from the bounding set (needs CAP_SETPCAP).

    Capabilities the kernel does not know (EINVAL) are skipped; already-dropped ones cost nothing.
    """
    top = last_cap() if top is None else top
    for n in range(top + 1):
        if keep_mask & (1 << n):
            continue
        try:
            linux.prctl(linux.PR_CAPBSET_DROP, n)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) masks of ``pid`` (0: this thread)."""
    get, _ = _cap_funcs()
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    check(get(ctypes.byref(header), ctypes.byref(data)), "capget")
    eff, prm, inh = (getattr(data[0], f) | (getattr(data[1], f) << 32)
                     for f in ("effective", "permitted", "inheritable"))
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's effective, permitted and inheritable sets (masks) with capset(2)."""
    _, put = _cap_funcs()
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    check(put(ctypes.byref(header), ctypes.byref(data)), "capset")


def set_keepcaps(on: bool) -> None:
    """Keep the permitted set across a change from uid 0 to another uid (PR_SET_KEEPCAPS)."""
    linux.prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def raise_ambient(mask: int) -> None:
    """Raise each capability of ``mask`` into the ambient set (it must be permitted and inheritable)."""
    n = 0
    while mask >> n:
        if mask & (1 << n):
            linux.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n)
        n += 1


def clear_ambient() -> None:
    """Empty the ambient set (kernels without ambient capabilities are ignored)."""
    try:
        linux.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise


def names_of(mask: int) -> tuple[str, ...]:
    """The capability names in a mask, in number order (for messages and tests)."""
    by_number = {v: k for k, v in CAPABILITIES.items()}
    return tuple(by_number.get(n, f"CAP_{n}") for n in range(64) if mask & (1 << n))
