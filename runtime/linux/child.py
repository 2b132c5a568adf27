"""The child-process toolkit: fork a child that never returns into the caller, send its failure
back over one pipe in one format, close what it must not hold, and read wait statuses.

Every fork site of rootlet uses it: the container's keeper and PID 1 (``oci/spawn``), exec's
helper (``container/exec``), cp's helper, the monitor of a detached container, and the
user-namespace worker. crun is the model (``error.c`` and one sync pipe): a child that fails
before it has done its job writes one *error record* to a pipe the parent reads to EOF, so the
user gets the child's own message, hint and exit code, not "child exited 1".

The error record is one JSON line::

    {"type": "ContainerStartError", "message": "...", "hint": "...", "code": 127,
     "errno": null, "filename": null, "traceback": "..."}

``decode_error`` rebuilds the same class for rootlet's errors (they all live in
``rootlet.registry.errors``), ``OSError`` with its errno and path (so ``FileNotFoundError`` stays
``FileNotFoundError``) and the builtin exceptions; anything else becomes a ``ChildError`` naming
the original type. A success record (``{"ok": true}``) exists for children that go on living after
their report (the monitor); a child that ``execve``s instead reports success by the pipe's
O_CLOEXEC end closing with nothing written.
"""

from __future__ import annotations

import gc
import os

from rootlet.registry import errors as errors_module
from rootlet.registry import jsoncodec
from rootlet.registry.errors import ChildError, RootletError
from rootlet.runtime.linux import signals

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: Largest error record read back from a child: a hostile or broken child cannot make us
#: allocate more than this.
MAX_RECORD = 1 << 16


# --- the error pipe -----------------------------------------------------------------------------

def error_pipe() -> tuple[int, int]:
    """(read end, write end), both O_CLOEXEC: an ``execve`` in the child closes its end."""
    return os.pipe2(os.O_CLOEXEC)


def encode_error(exc: BaseException, default_code: int = 125, with_traceback: bool = False) -> bytes:
    """The error record of ``exc`` (one JSON line)."""
    code = default_code
    hint = None
    err_no = filename = None
    if isinstance(exc, RootletError):
        message, hint = exc.message, exc.hint
        code = int(getattr(exc, "exit_code", 125))
    elif isinstance(exc, OSError):
        message = exc.strerror or str(exc)
        err_no, filename = exc.errno, exc.filename
        if isinstance(filename, bytes):
            filename = os.fsdecode(filename)
    else:
        message = str(exc)
    doc = {"type": type(exc).__name__, "module": type(exc).__module__, "message": message, "hint": hint,
           "code": code, "errno": err_no, "filename": filename if isinstance(filename, str) else None}
    if with_traceback:
        import traceback

        doc["traceback"] = "".join(traceback.format_exception(exc)).rstrip()
    return jsoncodec.dumps(doc).encode() + b"\n"


def report_error(fd: int, exc: BaseException, default_code: int = 125, with_traceback: bool = False) -> int:
    """Write the error record of ``exc`` to ``fd`` (errors writing it are moot: the parent then
    sees a child that died without a word); returns the exit code the child should use."""
    data = encode_error(exc, default_code, with_traceback)
    try:
        os.write(fd, data)
    except OSError:
        pass
    try:
        return int(jsoncodec.loads(data)["code"])
    except (ValueError, KeyError):
        return default_code


def report_ok(fd: int) -> None:
    """Write the success record and close ``fd`` (a child that lives on after reporting)."""
    try:
        os.write(fd, b'{"ok": true}\n')
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


def decode_error(data: bytes, fallback: str = "the child process failed") -> BaseException | None:
    """The exception an error record describes; None for a success record or no data."""
    if not data.strip():
        return None
    try:
        doc = jsoncodec.loads(data.decode(errors="replace").splitlines()[0])
    except (ValueError, IndexError):
        return ChildError(f"{fallback}: {data[:200]!r}")
    if not isinstance(doc, dict):
        return ChildError(f"{fallback}: {data[:200]!r}")
    if doc.get("ok") is True:
        return None
    name = str(doc.get("type") or "")
    message = str(doc.get("message") or fallback)
    hint = doc.get("hint") if isinstance(doc.get("hint"), str) else None
    code = doc.get("code") if isinstance(doc.get("code"), int) else 125
    exc: BaseException
    cls = getattr(errors_module, name, None)
    if isinstance(cls, type) and issubclass(cls, RootletError):
        exc = cls(message, hint)
        exc.exit_code = code
    elif isinstance(doc.get("errno"), int):
        exc = OSError(doc["errno"], message, doc.get("filename"))
    else:
        builtin = __builtins__.get(name) if isinstance(__builtins__, dict) else getattr(__builtins__, name, None)
        if isinstance(builtin, type) and issubclass(builtin, Exception) and doc.get("module") == "builtins":
            try:
                exc = builtin(message)
            except Exception:  # noqa: BLE001 - a builtin that wants other arguments
                exc = ChildError(f"{name}: {message}", hint, code)
        else:
            exc = ChildError(f"{name}: {message}" if name else message, hint, code)
    if isinstance(doc.get("traceback"), str):
        exc.add_note("raised in a child process:\n" + doc["traceback"])
    return exc


def as_error(exc: BaseException | None, cls: type[RootletError]) -> RootletError | None:
    """A child's failure as an error of class ``cls`` (kept as it is when it already is one): how a
    caller reports "the copy failed" or "the container could not start" whatever the child raised."""
    if exc is None or isinstance(exc, cls):
        return exc  # type: ignore[return-value]
    if isinstance(exc, RootletError):
        return cls(exc.message, exc.hint, exc.exit_code)
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        return cls(f"{text}: {exc.filename}" if exc.filename else text)
    return cls(str(exc))


def read_all(fd: int, limit: int | None = None) -> bytes:
    """Everything until EOF (at most ``limit`` bytes are kept; the rest is drained)."""
    chunks = []
    size = 0
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        if limit is None or size < limit:
            chunks.append(chunk)
            size += len(chunk)


def read_error(fd: int, fallback: str = "the child process failed") -> BaseException | None:
    """Read a child's report to EOF and close ``fd``; the exception it describes, or None."""
    try:
        data = read_all(fd, MAX_RECORD)
    finally:
        os.close(fd)
    return decode_error(data, fallback)


# --- forking ------------------------------------------------------------------------------------

def fork_child(body: Callable[[], int], error_fd: int | None = None, default_code: int = 125,
               with_traceback: bool = False, long_lived: bool = False) -> int:
    """Fork; the child runs ``body()`` and exits with its result, never returning into the caller.

    An exception escaping ``body`` is reported on ``error_fd`` (when given) and the child exits
    with its code. Objects inherited from the caller are frozen out of the garbage collector:
    a finalizer of the parent's (a socket, a temp file) must never run in the child; a short-lived
    child also runs without the collector, a ``long_lived`` one (a worker, a monitor) keeps it for
    its own garbage. Call it from a single-threaded state: a lock held by another thread at fork
    time stays locked here.
    """
    pid = os.fork()
    if pid:
        return pid
    code = default_code
    try:
        gc.freeze()
        if not long_lived:
            gc.disable()
        code = body()
    except BaseException as exc:  # noqa: BLE001 - the child's one way out is os._exit
        code = report_error(error_fd, exc, default_code, with_traceback) if error_fd is not None else default_code
    finally:
        os._exit(code if isinstance(code, int) else default_code)


def close_fds_except(keep: Iterable[int]) -> None:
    """Close every descriptor not in ``keep`` (a child must hold nothing of its parent's)."""
    lowest = 0
    for fd in sorted(set(keep)):
        if fd > lowest:
            os.closerange(lowest, fd)
        lowest = max(lowest, fd + 1)
    os.closerange(lowest, 1 << 20)


def redirect_to_null(*fds: int) -> None:
    """Point ``fds`` (default 0, 1, 2) at /dev/null."""
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in fds or (0, 1, 2):
            os.dup2(null, fd)
    finally:
        if null not in (fds or (0, 1, 2)):
            os.close(null)


def reset_signals() -> None:
    """Default dispositions and an empty mask, as a freshly exec'ed program expects.

    Python ignores SIGPIPE and SIGXFSZ and execve keeps ignored signals ignored, so every signal
    is reset explicitly.
    """
    for sig in signals.valid_signals():
        if sig in (signals.SIGKILL, signals.SIGSTOP):
            continue
        try:
            if signals.getsignal(sig) is not signals.SIG_DFL:
                signals.signal(sig, signals.SIG_DFL)
        except (OSError, ValueError):
            pass
    signals.pthread_sigmask(signals.SIG_SETMASK, ())


# --- wait statuses ------------------------------------------------------------------------------

def exit_code(status: int) -> int:
    """docker's exit code for a wait status: the exit status, or 128+N when killed by signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def describe_status(status: int | None) -> str:
    """'exit status 3' / 'killed by signal 9' for a wait status ('already reaped' for None)."""
    if status is None:
        return "already reaped"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def wait_for(pid: int) -> int | None:
    """Block until child ``pid`` exits; its wait status (None when it was already reaped)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def reap(pid: int, timeout: float) -> int | None:
    """Wait up to ``timeout`` s for child ``pid`` to exit, SIGKILL it after that, and reap it.

    Waits on a pidfd (woken the moment the child exits) rather than polling. Returns the wait
    status, or None when the child was already reaped.
    """
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done:
        return status
    if not wait_pid_exit(pid, timeout):
        try:
            os.kill(pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
    return wait_for(pid)


def wait_pid_exit(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` has exited (it may be a zombie); True if it did in time."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return True  # already gone
    try:
        import select

        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(fd)


def stop_child(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM child ``pid``, SIGKILL it after ``timeout`` s, and reap it (helpers: fuse-overlayfs)."""
    try:
        os.kill(pid, signals.SIGTERM)
    except ProcessLookupError:
        return
    reap(pid, timeout)
