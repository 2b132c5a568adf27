"""A container's stdio: pipes made by rootlet, relayed to the caller's own descriptors.

No descriptor of the caller (its terminal, the file its output is redirected to, a socket) is ever
given to a container process: a process that holds the caller's terminal can push input into the
caller's shell (``TIOCSTI``), read what the caller reads, or keep writing to the caller's files
after ``rootlet`` has returned (runc's and crun's rule, CVE-2016-9962 and the TIOCSTI class).
Without ``-t`` the container gets pipes, and the process that owns it (``run``, ``start -a``,
``exec``, or the monitor for the log) copies them; with ``-t`` it gets a pty that rootlet creates
(``rootlet.runtime.oci.pty``).

The copy uses ``splice`` (no copy through user space) where the destination allows it, and feeds
the container's stdin without ever blocking on it, so a container that does not read its input
cannot stall its output.
"""

from __future__ import annotations

import errno
import os
import select

from rootlet.registry.record import Record

#: Bytes moved per read or splice.
CHUNK = 1 << 16


class Pipes(Record):
    """The pipes of one container process. ``child`` are the ends it gets as fds 0, 1, 2 (None:
    /dev/null); the parent keeps ``stdin`` (write end, or None), ``stdout`` and ``stderr`` (read
    ends)."""

    child: tuple[int | None, int | None, int | None]
    stdin: int | None
    stdout: int
    stderr: int

    def close_child(self) -> None:
        """Close the child's ends in the parent, once the child has them (once)."""
        child, self.child = self.child, (None, None, None)
        for fd in child:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        """Close every end that is still open (after a failed start)."""
        self.close_child()
        for fd in (self.stdin, self.stdout, self.stderr):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


def make_pipes(stdin: bool) -> Pipes:
    """Pipes for stdout and stderr, and for stdin when the container takes input."""
    in_r = in_w = None
    if stdin:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    return Pipes(child=(in_r, out_w, err_w), stdin=in_w, stdout=out_r, stderr=err_r)


class _Output:
    """One output of the container: where its bytes go (``target`` fd, the ``sink`` under
    ``stream``'s name, or both)."""

    def __init__(self, fd: int, stream: str, target: int | None, sink: object) -> None:
        self.fd = fd
        self.stream = stream
        self.target = target
        self.sink = sink
        self.splice = sink is None and target is not None

    def move(self) -> bool:
        """Move what is ready; False at EOF."""
        if self.splice:
            try:
                return os.splice(self.fd, self.target, CHUNK) > 0  # type: ignore[arg-type]
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOSYS):
                    self._drop_target()  # our reader went away: read and discard from now on
                    return True
                self.splice = False  # a tty (or an O_APPEND file): copy through user space
        try:
            data = os.read(self.fd, CHUNK)
        except OSError:  # a pty master reads EIO once the last slave is closed
            data = b""
        if not data:
            return False
        if self.sink is not None:
            self.sink.write(self.stream, data)  # type: ignore[attr-defined]
        if self.target is not None:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self.target, view):]
            except OSError:
                self._drop_target()  # our reader went away; the log still gets everything
        return True

    def _drop_target(self) -> None:
        self.target = None
        if self.sink is None:  # keep reading, or the container blocks on a full pipe
            self.sink = _Discard()
        self.splice = False


class _Discard:
    def write(self, stream: str, data: bytes) -> None:
        pass


class _Input:
    """The container's stdin: bytes from ``source`` (our fd) to ``dest`` (its pipe), never
    blocking on ``dest``: what does not fit waits in ``pending``."""

    def __init__(self, source: int, dest: int) -> None:
        self.source = source
        self.dest = dest
        self.pending = b""
        self.eof = False
        os.set_blocking(dest, False)

    def read(self) -> None:
        try:
            data = os.read(self.source, CHUNK)
        except OSError:
            data = b""
        if not data:
            self.eof = True
        self.pending += data
        self.write()

    def write(self) -> None:
        try:
            while self.pending:
                self.pending = self.pending[os.write(self.dest, self.pending):]
        except BlockingIOError:
            return
        except OSError:  # the container closed its stdin or is gone: nothing more to send
            self.pending = b""
            self.eof = True

    @property
    def done(self) -> bool:
        return self.eof and not self.pending

    def close(self) -> None:
        try:
            os.close(self.dest)
        except OSError:
            pass


def relay(outputs: list[tuple[int, str, int | None]], exited_fd: int | None, *, sink: object = None,
          stdin: tuple[int, int] | None = None) -> None:
    """Copy the container's outputs until they end, and its input meanwhile.

    ``outputs`` are (read end, stream name, our fd to echo to or None); ``sink`` (a log writer
    with ``write(stream, data)`` and ``flush()``) also gets every byte. ``stdin`` is (our fd, the
    container's stdin pipe). Once ``exited_fd`` becomes readable (the container's PID 1 is gone,
    and with it every process of its pid namespace) what is buffered is drained and the copy
    ends, even if a descriptor was passed on to a process outside. Closes the read ends and the
    stdin pipe.
    """
    live = {fd: _Output(fd, stream, target, sink) for fd, stream, target in outputs}
    feed = _Input(*stdin) if stdin is not None else None
    exited = False
    try:
        while live:
            poller = select.poll()
            for fd in live:
                poller.register(fd, select.POLLIN)
            if feed is not None and not exited:
                if feed.done:
                    feed.close()
                    feed = None
                elif feed.pending:
                    poller.register(feed.dest, select.POLLOUT)
                else:
                    poller.register(feed.source, select.POLLIN)
            if not exited and exited_fd is not None:
                poller.register(exited_fd, select.POLLIN)
            for fd, _ in poller.poll():
                if fd == exited_fd:
                    exited = True
                elif feed is not None and fd == feed.dest:
                    feed.write()
                elif feed is not None and fd == feed.source:
                    feed.read()
                elif fd in live and not live[fd].move():
                    os.close(fd)
                    del live[fd]
            if exited:
                _drain(live)
    finally:
        for fd in live:
            os.close(fd)
        if feed is not None:
            feed.close()
        if sink is not None:
            sink.flush()  # type: ignore[attr-defined]


def _drain(live: dict[int, _Output]) -> None:
    """After the exit: copy what is already buffered in each pipe, then close it."""
    for fd, out in list(live.items()):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while poller.poll(0) and out.move():
            pass
        os.close(fd)
        del live[fd]
