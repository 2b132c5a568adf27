"""Crash-safe file primitives: atomic replacement and advisory locks.

Everything rootlet persists goes through here so that a process killed at any instant leaves
either the old or the new file, never a torn one, and concurrent ``rootlet`` processes serialise
their metadata updates on ``fcntl.flock``.
"""

from __future__ import annotations

import fcntl
import os

from rootlet.registry import jsoncodec

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from collections.abc import Callable
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
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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
            # Sized by the file: read(max_bytes + 1) has the buffer allocated (an mmap of 64 MiB and
            # its release) on every read, 25 us of the ~40 a record costs (`ps` reads two per container).
            size = os.fstat(f.fileno()).st_size
            data = f.read(size + 1 if 0 < size <= max_bytes else max_bytes + 1)
    except FileNotFoundError:
        return default
    if len(data) > max_bytes:
        raise ValueError(f"{path} is larger than {max_bytes} bytes")
    return jsoncodec.loads(data)


class flocked:  # noqa: N801 - used as a function: ``with flocked(path) as taken:``
    """Hold ``flock`` on *path* (created if missing) for the ``with`` body; gives whether it was taken.

    The kernel drops the lock when the process dies, so a SIGKILLed holder never wedges others.
    A class rather than a ``contextlib.contextmanager`` generator: every command takes a lock, and
    contextlib (with the collections and functools it imports) costs 1-2 ms to import.
    """

    __slots__ = ("path", "shared", "blocking", "fd")

    def __init__(self, path: str, shared: bool = False, blocking: bool = True) -> None:
        self.path, self.shared, self.blocking = path, shared, blocking
        self.fd = -1

    def __enter__(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        op = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        if not self.blocking:
            op |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, op)
        except BlockingIOError:
            self.fd = fd  # not taken; closed on exit all the same
            return False
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def __exit__(self, *_exc: object) -> None:
        fd, self.fd = self.fd, -1
        os.close(fd)


class locked_document:  # noqa: N801 - used as a function: ``with locked_document(…) as doc:``
    """Read-modify-write under a lock: hold ``flock`` on *lock_path*, give ``load()``'s document to
    the ``with`` body, and ``save(document)`` when the body succeeds (not when it raises)."""

    def __init__(self, lock_path: str, load: Callable[[], Any], save: Callable[[Any], None]) -> None:
        self.lock = flocked(lock_path)
        self.load, self.save = load, save
        self.doc: Any = None

    def __enter__(self) -> Any:
        self.lock.__enter__()
        try:
            self.doc = self.load()
        except BaseException:
            self.lock.__exit__()
            raise
        return self.doc

    def __exit__(self, exc_type: object, *_exc: object) -> None:
        try:
            if exc_type is None:
                self.save(self.doc)
        finally:
            self.lock.__exit__()


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
