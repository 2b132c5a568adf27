"""Start one container process in new namespaces, from the caller's side (P), and wait for it.

``spawn`` forks the keeper (``rootlet.runtime.oci.keeper``), writes its user namespace's id maps
when it asks ("U"), lets it go on ("G"), learns the pid of the container's PID 1 ("C<pid>") and
returns a ``ContainerProcess`` once the command has been exec'ed (an empty O_CLOEXEC error pipe).
The keeper reports the container's wait status ("S<status>") after it has taken the overlay down,
so ``ContainerProcess.wait`` returns only when the container is gone and cleaned up.

Any failure before ``execve`` arrives as an error record (``rootlet.runtime.linux.child``) and is
raised as ``ContainerStartError`` with podman's exit code: 125 (rootlet's own failure), 126 (the
command cannot be invoked) or 127 (not found).

``spawn`` forks. Call it with no other threads running (stop progress and download threads
first): a lock held by another thread at fork time stays locked in the child.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import ContainerError, ContainerStartError, RootletError
from rootlet.runtime.linux import signals
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.child import (MAX_RECORD, as_error, decode_error, describe_status, error_pipe, exit_code,
                                         fork_child, read_all, read_error, wait_for)
from rootlet.runtime.oci.idmap import plan_userns
from rootlet.runtime.oci.keeper import keeper_main
from rootlet.runtime.oci.mapwriter import write_id_maps
from rootlet.runtime.oci.spec import RuntimeSpec

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable


class _Lines:
    """Line reader over a pipe descriptor (messages from the keeper may arrive together)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.closed = False

    def close(self) -> None:
        """Close the descriptor once."""
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def next(self) -> str | None:
        """The next line without its newline; None at EOF."""
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 256)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


class ContainerProcess:
    """A running container started by ``spawn``.

    ``pid`` is the host pid of the container's PID 1 (the command, or the init). ``wait`` must be
    called once the caller is done (it reaps the keeper); ``status_fd`` becomes readable when the
    container has exited, for callers that multiplex (pty relays).
    """

    pty_master: int | None
    """With ``tty``: the master of the pty allocated inside the container (the caller owns and
    closes it)."""

    def __init__(self, keeper: int, pid: int, lines: _Lines, pidfd: int | None) -> None:
        self.pty_master = None
        self.keeper = keeper
        self.pid = pid
        self._lines = lines
        self._pidfd = pidfd
        self._code: int | None = None
        self._reaped = False
        self._gate: tuple[int, int] | None = None  # (gate write end, error pipe) of a gated spawn

    def release(self) -> None:
        """Let a gated container's command start (``RuntimeSpec.gate``); a no-op otherwise.

        Raises ContainerStartError (126, 127, …) when the command then fails to start; the
        container is cleaned up and reaped by then.
        """
        if self._gate is None:
            return
        gate_w, err_r = self._gate
        self._gate = None
        try:
            os.write(gate_w, b"G")
        except OSError:
            pass  # the container is already gone: its error record says why
        os.close(gate_w)
        error = _start_error(read_error(err_r))
        if error is not None:
            while self._lines.next() is not None:
                pass
            self._reap()
            self._code = error.exit_code
            raise error

    def failed_at_gate(self, timeout: float = 0.1) -> bool:
        """Whether a gated container failed before reaching its gate (its error record is waiting:
        ``release()`` then raises it). Used when attaching its network failed, to report the real
        cause (an unknown group, a bad mount) rather than the network helper's complaint."""
        if self._gate is None:
            return False
        import select

        return bool(select.select([self._gate[1]], [], [], timeout)[0])

    def _drop_gate(self) -> None:
        """Never released: closing the gate makes the waiting container exit."""
        if self._gate is not None:
            for fd in self._gate:
                os.close(fd)
            self._gate = None

    @property
    def status_fd(self) -> int:
        """A descriptor that becomes readable (EOF or status) when the container has exited."""
        return self._lines.fd

    @property
    def returncode(self) -> int | None:
        """The exit code once ``wait`` has returned, else None."""
        return self._code

    def wait(self, reap: bool = True) -> int:
        """Block until the container has exited and been cleaned up; return docker's exit code.

        The keeper reports the exit status once it has unmounted the container's root, then exits;
        the kernel's teardown of its namespaces takes a millisecond or more. ``reap=False`` returns
        on the report and leaves the keeper to a later ``wait()``, so the monitor can record the
        exit (what ``stop`` and ``rm`` wait for) while that teardown runs.
        """
        if self._code is None:
            self._drop_gate()
            status: int | None = None
            while (line := self._lines.next()) is not None:
                if line.startswith("S"):
                    status = int(line[1:])
                    break  # the keeper's last line
            if status is None:
                keeper_status = self._reap()
                raise ContainerError(f"the container keeper process died ({describe_status(keeper_status)}) "
                                     "before reporting the container's exit")
            self._code = exit_code(status)
        if reap:
            self._reap()
        return self._code

    def _reap(self) -> int:
        """Reap the keeper (once) and close what it wrote to; its wait status (0 once reaped)."""
        if self._reaped:
            return 0
        self._reaped = True
        status = wait_for(self.keeper) or 0
        self._close()
        return status

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the container's PID 1 (nothing happens if it is gone)."""
        try:
            if self._pidfd is not None:
                signals.pidfd_send_signal(self._pidfd, sig)
            elif self._code is None:
                os.kill(self.pid, sig)
        except (ProcessLookupError, OSError):
            pass

    def userns_path(self) -> str:
        """``/proc/<pid>/ns/user`` of the container (for network helpers)."""
        return f"/proc/{self.pid}/ns/user"

    def netns_path(self) -> str:
        """``/proc/<pid>/ns/net`` of the container (for slirp4netns/pasta)."""
        return f"/proc/{self.pid}/ns/net"

    def _close(self) -> None:
        self._lines.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _abort(keeper: int, lines: _Lines | None) -> None:
    """Kill the keeper (its pdeath/SIGKILL chain takes the container down) and reap it."""
    try:
        os.kill(keeper, signals.SIGKILL)
    except ProcessLookupError:
        pass
    wait_for(keeper)
    if lines is not None:
        lines.close()


def _start_error(exc: BaseException | None) -> ContainerStartError | None:
    """A child's error record as the ContainerStartError to raise."""
    return as_error(exc, ContainerStartError)  # type: ignore[return-value]


def _collect_failure(keeper: int, lines: _Lines, err_r: int) -> ContainerStartError | None:
    """After a start failure: the children's error record (None if they wrote none), with the
    keeper's clean-up awaited and the keeper reaped."""
    error = _start_error(decode_error(read_all(err_r, MAX_RECORD)))
    while lines.next() is not None:
        pass
    wait_for(keeper)
    lines.close()
    return error


def _finish_failed(keeper: int, lines: _Lines, err_r: int) -> ContainerStartError:
    """The error to raise when the keeper stopped before the command ran."""
    failure = _collect_failure(keeper, lines, err_r)
    return failure or ContainerStartError("the container process exited before starting the command")


def spawn(spec: RuntimeSpec, on_namespaces: Callable[[int], None] | None = None) -> ContainerProcess:
    """Start the container described by ``spec``; return once its command has been exec'ed (or,
    with ``spec.gate``, waits at the gate).

    ``on_namespaces(pid)`` is called once the container's namespaces exist and have their id maps,
    while the keeper (``pid``, inside them) goes on to mount its filesystem: what needs only the
    namespaces (the network helper) starts then, in parallel with the mounts.

    Raises ContainerStartError with ``exit_code`` 125 (rootlet's own failure: namespaces, maps,
    mounts), 126 (the command cannot be invoked: permission denied, unknown user, bad workdir) or
    127 (the command does not exist). Forks: call with no other threads running.
    """
    if not spec.argv:
        raise ContainerStartError("no command or entrypoint provided, and no CMD or ENTRYPOINT from image")
    if spec.network not in ("private", "none", "host"):
        raise ContainerStartError(f"unknown network mode {spec.network!r}")
    plan = spec.plan if spec.plan is not None else plan_userns()
    flags = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
    if not plan.rootful:
        flags |= linux.CLONE_NEWUSER
    if spec.network != "host":
        flags |= linux.CLONE_NEWNET
    for _fd, joined in spec.join_ns:  # entered by the keeper instead of made anew
        flags &= ~joined
    # What the children import must be imported here: after pivot_root the filesystem is the
    # container's, where Python's library does not exist.
    if spec.tty:
        import fcntl  # noqa: F401
        import termios  # noqa: F401
    if spec.rlimits:
        import resource  # noqa: F401
    console_parent = console_fd = None
    if spec.tty:
        import socket

        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console_fd = console_child.detach()
    err_r, err_w = error_pipe()
    info_r, info_w = os.pipe()
    go_r, go_w = os.pipe()
    gate_r, gate_w = os.pipe() if spec.gate else (None, None)
    parent = os.getpid()

    def keeper_body() -> int:
        os.close(err_r)
        os.close(info_r)
        os.close(go_w)
        if console_parent is not None:
            console_parent.close()
        if gate_w is not None:
            os.close(gate_w)
        return keeper_main(spec, plan, flags, parent, err_w, info_w, go_r, console_fd, gate_r)

    keeper = fork_child(keeper_body, err_w, default_code=1)
    os.close(err_w)
    os.close(info_w)
    os.close(go_r)
    if gate_r is not None:
        os.close(gate_r)
    if console_fd is not None:
        os.close(console_fd)
    lines = _Lines(info_r)
    try:
        try:
            if lines.next() != "U":
                os.close(go_w)
                go_w = -1
                raise _finish_failed(keeper, lines, err_r)
            try:
                if flags & linux.CLONE_NEWUSER:  # a joined user namespace has its maps
                    write_id_maps(keeper, plan)
            except RootletError as map_error:
                os.close(go_w)
                go_w = -1
                # The keeper's own report (a failed unshare) explains more than the map helper.
                raise _collect_failure(keeper, lines, err_r) or map_error from None
            os.write(go_w, b"G")
        finally:
            if go_w != -1:
                os.close(go_w)
        if lines.next() != "N":  # the keeper could not make (or join) its other namespaces
            raise _finish_failed(keeper, lines, err_r)
        if on_namespaces is not None:
            on_namespaces(keeper)
        line = lines.next()
        if line is None or not line.startswith("C"):
            raise _finish_failed(keeper, lines, err_r)
        pid = int(line[1:])
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            pidfd = None
        if gate_w is None:
            # Without a gate the command runs at once: an empty error pipe means it was exec'ed.
            failure = _start_error(decode_error(read_all(err_r, MAX_RECORD)))
            if failure is not None:
                if pidfd is not None:
                    os.close(pidfd)
                while lines.next() is not None:  # let the keeper clean up, and reap it
                    pass
                wait_for(keeper)
                lines.close()
                raise failure
        proc = ContainerProcess(keeper, pid, lines, pidfd)
        if gate_w is not None:
            proc._gate = (gate_w, err_r)  # release() reads the start result
            gate_w = err_r = None
        if console_parent is not None:
            import socket

            _, fds, _, _ = socket.recv_fds(console_parent, 1, 1)
            proc.pty_master = fds[0] if fds else None
        return proc
    except ContainerStartError:
        raise
    except BaseException:
        if not lines.closed:
            _abort(keeper, lines)
        raise
    finally:
        for fd in (err_r, gate_w):
            if fd is not None:
                os.close(fd)
        if console_parent is not None:
            console_parent.close()
