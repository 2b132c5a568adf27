"""Crash-safe file primitives: atomic replacement and advisory locks.

Everything rootlet persists goes through here so that a process killed at any instant leaves
either the old or the new file, never a torn one, and concurrent ``rootlet`` processes serialise
their metadata updates on ``fcntl.flock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from rootlet.registry import jsoncodec

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from typing import Any


def atomic_write(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace *path* with *data*: temp file in the same directory → fsync → rename → fsync dir.

    ``durable=False`` skips the fsyncs: the rename still makes the file whole-or-absent for any
    reader and across a killed process, only not across a power cut. Container state, rewritten
    on every start and exit, uses it; image metadata never does.
    """
    directory = os.path.dirname(path) or "."
    # A unique name made here, not by tempfile (whose import costs milliseconds on every start).
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(directory)


def atomic_write_json(path: str, obj: Any, mode: int = 0o600, durable: bool = True) -> None:
    """``atomic_write`` of *obj* as compact JSON with sorted keys (the C encoder's fast path: an
    indented layout would take json's pure-Python encoder, and its import, on every state change)."""
    atomic_write(path, jsoncodec.dumps(obj, sort_keys=True).encode() + b"\n", mode, durable)


def fsync_dir(path: str) -> None:
    """Make a rename or unlink in *path* durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str, default: Any = None, max_bytes: int = 64 * 1024 * 1024) -> Any:
    """Read a JSON file we wrote ourselves; *default* when it does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return default
    if len(data) > max_bytes:
        raise ValueError(f"{path} is larger than {max_bytes} bytes")
    return jsoncodec.loads(data)


@contextlib.contextmanager
def flocked(path: str, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Hold ``flock`` on *path* (created if missing) for the ``with`` body; yields whether it was taken.

    The kernel drops the lock when the process dies, so a SIGKILLed holder never wedges others.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            op |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, op)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def make_temp_dir(parent: str, prefix: str) -> str:
    """A new private (0700) directory ``parent/prefix<random>``; like tempfile.mkdtemp, whose
    import costs milliseconds on paths (``run --rm``, ``run -p``) that need nothing else of it."""
    while True:
        path = os.path.join(parent, f"{prefix}{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
