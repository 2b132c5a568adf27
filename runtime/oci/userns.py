"""Run Python functions inside a user namespace with the maps of a UsernsPlan.

Unpacking layers, deleting them and mounting overlays need to act as the container's root:
create files owned by subordinate ids, clear mode-0 directories, mount. A process gets those
powers only inside a user namespace whose maps were written by ``newuidmap``/``newgidmap``.
``UsernsWorker`` forks one child into such a namespace and then runs calls sent to it over a
pipe, so the parent stays an ordinary process with its threads, network connections and
terminal, and the namespace is set up once for many operations.

Requests and results are length-prefixed pickles (a call is an arbitrary module-level function
with arbitrary arguments; only rootlet itself, the parent, writes them). Failures travel as the
error records of the child-process toolkit (``rootlet.runtime.linux.child``), as every other
child's do: rootlet's errors and OSErrors keep their class, message, hint and errno, the
child's traceback is attached as a note.

Setup, as podman and crun do it: fork → child ``unshare(CLONE_NEWUSER[|CLONE_NEWNS])`` and
reports → parent writes the maps (newuidmap/newgidmap with subordinate ranges, or directly
``/proc/PID/{setgroups,uid_map,gid_map}`` in single-id mode) → child becomes root of the
namespace and serves calls. A rootful plan forks without a user namespace, so callers treat
both alike.

Fork only from a single-threaded process (see DESIGN.md "Starting a container"): a lock held by
another thread at fork time stays locked forever in the child.
"""

from __future__ import annotations

import os
import pickle
import struct
import threading
import weakref
from collections.abc import Callable, Iterable

from rootlet.registry.errors import ChildError, UsernsError
from rootlet.runtime.linux import signals
from rootlet.runtime.linux.child import (close_fds_except, decode_error, describe_status, encode_error, fork_child,
                                         reap)
from rootlet.runtime.linux.rmtree import remove_tree  # noqa: F401 - re-exported for worker.call

# What only the child (syscalls: ctypes) or the handshake needs is imported there: a pull forks
# its workers before it imports anything heavy, and pays for none of it when it needs no worker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from rootlet.runtime.oci.idmap import UsernsPlan

    T = TypeVar("T")

_HEADER = struct.Struct("!Q")
# Upper bound for one frame; a corrupt length must not make us allocate gigabytes.
_MAX_FRAME = 1 << 31
# How long close() waits for the child to finish its current call before killing it.
_CLOSE_TIMEOUT = 10.0
# Reply frames start with one of these: a pickled result, or an error record.
_RESULT = b"R"
_ERROR = b"E"
# What a deferred child is told when it is to set up its namespace.
_START = b"start"


# --- framing -------------------------------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a pipe, looping over short writes."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, size: int) -> bytes | None:
    """Read exactly ``size`` bytes; None on EOF before the first byte, EOFError on EOF later."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            if remaining == size:
                return None
            raise EOFError("pipe closed in the middle of a message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, payload: bytes) -> None:
    """Send one length-prefixed frame."""
    _write_all(fd, _HEADER.pack(len(payload)) + payload)


def _receive(fd: int) -> bytes | None:
    """Receive one length-prefixed frame; None when the other end closed the pipe."""
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > _MAX_FRAME:
        raise EOFError(f"frame of {size} bytes is larger than allowed")
    body = _read_exact(fd, size) if size else b""
    if body is None:
        raise EOFError("pipe closed in the middle of a message")
    return body


def _error_frame(exc: BaseException) -> bytes:
    return _ERROR + encode_error(exc, with_traceback=True)


def _ok_frame(result: object = None) -> bytes:
    return _RESULT + pickle.dumps(result)


# --- the child -----------------------------------------------------------------------------------

def _serve(request_fd: int, reply_fd: int) -> None:
    """Answer requests until the parent closes the request pipe."""
    while True:
        frame = _receive(request_fd)
        if frame is None:
            return
        try:
            func, args, kwargs = pickle.loads(frame)
            result = func(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported to the parent
            reply = _error_frame(exc)
        else:
            try:
                reply = _ok_frame(result)
            except Exception as exc:  # noqa: BLE001
                reply = _error_frame(UsernsError(
                    f"the result of {getattr(func, '__qualname__', func)!r} cannot be pickled: {exc}"))
        _send(reply_fd, reply)


def _child_main(plan: UsernsPlan, mount_ns: bool, request_fd: int, reply_fd: int, parent: int,
                deferred: bool = False) -> int:
    """The whole life of the worker child after fork; returns its exit status.

    A *deferred* child waits for the parent's word before it sets up its namespace, importing
    the modules the parent names meanwhile (``preload``); it exits when the parent closes the
    pipe instead."""
    signals.signal(signals.SIGINT, signals.SIG_IGN)  # the parent decides what Ctrl-C means
    signals.signal(signals.SIGTERM, signals.SIG_DFL)
    signals.signal(signals.SIGPIPE, signals.SIG_DFL)
    while deferred:
        frame = _receive(request_fd)
        if frame is None:
            return 0
        if frame == _START:
            break
        import importlib

        for name in frame.decode().split(","):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the call that needs it will say why
                pass
    from rootlet.runtime.linux import syscalls as linux
    from rootlet.runtime.oci.idmap import become_root

    try:
        flags = 0 if plan.rootful else linux.CLONE_NEWUSER
        if mount_ns:
            flags |= linux.CLONE_NEWNS
        if flags:
            linux.unshare(flags)
    except BaseException as exc:  # noqa: BLE001
        _send(reply_fd, _error_frame(exc))
        return 0
    _send(reply_fd, _ok_frame())
    if _receive(request_fd) is None:  # the parent could not write the maps
        return 0
    try:
        become_root(plan)
        if mount_ns:
            # Mounts made by the worker must not propagate back to the host (and in rootful mode the
            # host's / is usually shared).
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE, None)
        # Die with the parent. Set after setresuid: a credential change clears the death signal.
        linux.set_pdeathsig(signals.SIGKILL)
        if os.getppid() != parent:
            return 0
    except BaseException as exc:  # noqa: BLE001
        _send(reply_fd, _error_frame(exc))
        return 0
    _send(reply_fd, _ok_frame())
    _serve(request_fd, reply_fd)
    return 0


# --- the parent ----------------------------------------------------------------------------------

def _shutdown(state: dict[str, Any]) -> None:
    """Close the pipes and reap the child; used by close() and when the worker is garbage."""
    for key in ("request_fd", "reply_fd"):
        fd = state.get(key)
        if fd is not None:
            state[key] = None
            try:
                os.close(fd)
            except OSError:
                pass
    if state.get("pid") and state.get("status") is None and not state.get("reaped"):
        state["status"] = reap(state["pid"], state.get("timeout", _CLOSE_TIMEOUT))
        state["reaped"] = True


class UsernsWorker:
    """A child process forked into a new user namespace (and optionally a new mount namespace)
    that runs calls sent to it.

    Create it BEFORE starting any threads (fork from a single-threaded state). Calls are
    serialized with a lock, so threads may share one worker. The child keeps only descriptors
    0-2 and ``keep_fds``; it dies with its parent (PR_SET_PDEATHSIG), and because the kernel
    ties that to the forking thread, create workers on a long-lived thread (the main one).
    """

    pid: int

    def __init__(self, plan: UsernsPlan, *, mount_ns: bool = False, keep_fds: Iterable[int] = (),
                 deferred: bool = False) -> None:
        """Fork the worker and set up its namespace; with *deferred*, only fork it (a cheap fork
        of a process that has imported little keeps the worker small) and leave the set-up to
        ``start`` or the first ``call``."""
        self.plan = plan
        self.mount_ns = mount_ns
        self._lock = threading.Lock()
        self._dead: str | None = None
        self._started = not deferred
        self._kicked = False
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        parent = os.getpid()

        def child() -> int:
            # A sibling worker must not hold our pipes open.
            close_fds_except([0, 1, 2, request_r, reply_w, *keep_fds])
            return _child_main(plan, mount_ns, request_r, reply_w, parent, deferred)

        pid = fork_child(child, default_code=1, long_lived=True)
        os.close(request_r)
        os.close(reply_w)
        self.pid = pid
        self._state: dict[str, Any] = {"pid": pid, "request_fd": request_w, "reply_fd": reply_r,
                                       "status": None, "reaped": False, "timeout": _CLOSE_TIMEOUT}
        self._finalizer = weakref.finalize(self, _shutdown, self._state)
        if not deferred:
            self._setup(self._handshake)

    def _setup(self, step: Callable[[], None]) -> None:
        """Run a step of the set-up; a failure ends the child."""
        try:
            step()
        except BaseException:
            self._state["timeout"] = 0.5
            self._finalizer()
            raise

    def preload(self, *modules: str) -> None:
        """Have a deferred child that is not started yet import *modules* (what its calls will
        need) while it waits: best when this process waits too (on the network, say), as the
        child's imports then cost no time of its."""
        if not self._kicked and not self._started and self._state["request_fd"] is not None:
            self._setup(lambda: _send(self._state["request_fd"], ",".join(modules).encode()))

    def kick(self) -> None:
        """Let a deferred child set up its namespace (``start`` finishes it): kicking several
        first lets them do so at the same time."""
        if not self._started and not self._kicked and self._state["request_fd"] is not None:
            self._kicked = True
            self._setup(lambda: _send(self._state["request_fd"], _START))

    def start(self) -> None:
        """Set up a deferred worker's namespace now (the first ``call`` does it otherwise)."""
        if not self._started:
            self.kick()
            self._started = True
            self._setup(self._handshake)

    # The setup dialogue with the child.
    def _handshake(self) -> None:
        """Wait for unshare, write the maps, release the child and wait until it is root."""
        from rootlet.runtime.oci.mapwriter import write_id_maps

        self._expect_ok("could not create a user namespace", unshare=True)
        write_id_maps(self.pid, self.plan)
        _send(self._state["request_fd"], b"go")
        self._expect_ok("could not become root in the user namespace")

    def _expect_ok(self, what: str, unshare: bool = False) -> None:
        """Read one handshake reply; a child-side failure becomes a UsernsError."""
        frame = _receive(self._state["reply_fd"])
        if frame is None:
            status = reap(self.pid, 1.0)
            self._state["reaped"] = True
            raise UsernsError(f"{what}: the worker process {describe_status(status)}")
        if frame[:1] == _RESULT:
            return
        from rootlet.runtime.oci.mapwriter import unshare_hint

        exc = decode_error(frame[1:])
        text = getattr(exc, "message", None) or str(exc)
        raise UsernsError(f"{what}: {text}", unshare_hint(exc) if unshare else None)

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` in the child as root of the namespace; return its result.

        ``func`` must be a module-level function (pickled by reference). An exception raised in
        the child is re-raised here with its type, message and hint (the child's traceback is
        added as a note); one that cannot be rebuilt becomes a UsernsError with its text. A dead
        child raises UsernsError.
        """
        request = pickle.dumps((func, args, kwargs))  # fails here, before the protocol starts
        if not self._started:
            with self._lock:
                self.start()
        with self._lock:
            if self._dead is not None:
                raise UsernsError(f"the user namespace worker is gone ({self._dead})")
            request_fd, reply_fd = self._state["request_fd"], self._state["reply_fd"]
            if request_fd is None or reply_fd is None:
                raise UsernsError("the user namespace worker is closed")
            try:
                _send(request_fd, request)
                frame = _receive(reply_fd)
            except BaseException as exc:
                # A broken pipe or an interrupted exchange: the protocol is out of step for good.
                frame = None
                if not isinstance(exc, (OSError, EOFError)):
                    self._kill("interrupted")
                    raise
            if frame is None:
                self._kill("died")
                raise UsernsError(f"the user namespace worker (pid {self.pid}) {self._dead} while running "
                                  f"{getattr(func, '__qualname__', func)}")
        if frame[:1] == _RESULT:
            return pickle.loads(frame[1:])
        exc = decode_error(frame[1:])
        if isinstance(exc, ChildError):  # a class that cannot be rebuilt here
            err = UsernsError(exc.message, exc.hint)
            err.__notes__ = list(getattr(exc, "__notes__", []))
            raise err
        raise exc  # type: ignore[misc]

    def _kill(self, why: str) -> None:
        """Give up on the child: kill it, reap it and remember why (lock held)."""
        try:
            os.kill(self.pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
        self._state["timeout"] = 5.0
        self._finalizer()
        self._dead = f"{why}: {describe_status(self._state['status'])}"

    @property
    def alive(self) -> bool:
        """Whether the worker still accepts calls."""
        return self._dead is None and self._state["request_fd"] is not None

    def close(self) -> None:
        """Let the child finish its current call and exit, then reap it. Idempotent. A deferred
        child never started holds nothing: it is killed, not waited for (it may be importing)."""
        with self._lock:
            if not self._started and self._state["status"] is None and not self._state["reaped"]:
                try:
                    os.kill(self.pid, signals.SIGKILL)
                except ProcessLookupError:
                    pass
            self._finalizer()

    def __enter__(self) -> UsernsWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_in_userns(plan: UsernsPlan, func: Callable[..., T], *args: Any, mount_ns: bool = False,
                  **kwargs: Any) -> T:
    """One-shot: run ``func(*args, **kwargs)`` in a fresh worker for ``plan`` and return its result."""
    with UsernsWorker(plan, mount_ns=mount_ns) as worker:
        return worker.call(func, *args, **kwargs)
