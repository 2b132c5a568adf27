"""The one ctypes binding of the C library: typed function objects, errno, and syscall numbers.

Python has no ``unshare``/``setns`` (3.11), no mount API, no capget/capset, no openat2 and no
keyctl, yet these are the core of a rootless runtime. Every module that needs one asks here, so
there is one ``CDLL`` handle, one way to give a function its prototype, and one way a failure
becomes an ``OSError`` carrying ``errno`` and the path involved, like the functions of ``os``.

ctypes itself costs a few milliseconds to import; it is imported on first use, not with this
module, so that importing a module that *might* need libc costs nothing.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    import ctypes


#: The CDLL handle and the typed function objects made so far, by prototype (a dict, not
#: functools.lru_cache: functools is an import the `run` path has no other use for).
_CACHE: dict[object, object] = {}


def _handle() -> ctypes.CDLL:
    handle = _CACHE.get("")
    if handle is None:
        import ctypes

        handle = _CACHE[""] = ctypes.CDLL(None, use_errno=True)
    return handle  # type: ignore[return-value]


def fn(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:
    """A private, typed function object for libc symbol ``name``.

    ``CDLL.__getitem__`` returns a fresh function pointer each time, so two prototypes of one
    symbol (``syscall`` for pivot_root and for openat2, ``prctl`` with a string or integers) never
    overwrite each other's argtypes. Cached per prototype.
    """
    key = (name, restype, argtypes)
    func = _CACHE.get(key)
    if func is None:
        func = _handle()[name]
        func.restype = restype
        func.argtypes = argtypes
        _CACHE[key] = func
    return func  # type: ignore[return-value]


def errno_value() -> int:
    """errno of the last call made through a function of ``fn``."""
    import ctypes

    return ctypes.get_errno()


def check(result: int, what: str, path: str | None = None, path2: str | None = None) -> int:
    """Raise ``OSError(errno, "what: strerror", path)`` when a libc call returned -1."""
    if result == -1:
        err = errno_value()
        if path is None:
            raise OSError(err, f"{what}: {os.strerror(err)}")
        raise OSError(err, f"{what}: {os.strerror(err)}", path, None, path2)
    return result


def cstr(value: str | bytes | os.PathLike[str] | None) -> bytes | None:
    """A path or string argument for libc (None stays NULL)."""
    if value is None:
        return None
    return os.fsencode(value)


#: Numbers of the syscalls glibc has no wrapper for, per architecture. openat2, mount_setattr
#: and the newer ones share one number on every architecture (the unified table, Linux ≥ 5.x).
_SYSCALLS: dict[str, dict[str, int]] = {
    "pivot_root": {
        "x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "ppc64": 203,
        "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218, "armv6l": 218,
        "loongarch64": 41, "mips64": 5151,
    },
    "keyctl": {
        "x86_64": 250, "aarch64": 219, "riscv64": 219, "loongarch64": 219, "ppc64le": 271, "ppc64": 271,
        "s390x": 280, "i686": 288, "i386": 288, "armv7l": 311, "armv6l": 311,
    },
    "openat2": {"*": 437},
    "mount_setattr": {"*": 442},
}


def syscall_number(name: str) -> int:
    """The number of syscall ``name`` on the running architecture (OSError ENOSYS if unknown)."""
    table = _SYSCALLS.get(name, {})
    if "*" in table:
        return table["*"]
    machine = os.uname().machine
    if machine not in table:
        raise OSError(38, f"{name}: unknown syscall number on {machine}")  # ENOSYS
    return table[machine]
