"""A front end's client attached to a container's or an exec'd process's stdio (the REST API's
attach and exec start), from the front end's process.

The front end owns the client's connection and its wire format (docker's 8-byte frames, a raw
stream with a tty); it hands a ``client`` object with:

    fileno()          its connection, polled for input and for the client hanging up
    read_input()      the input bytes the client sent (b"": its input ended; None: nothing to
                      pass on yet); sets ``gone`` when it detached or left
    buffered()        whether input already read from the connection waits to be taken
    write(stream, b)  send output of "stdout" or "stderr" (raises OSError once the client left)
    gone              True once the client detached or left

``Attachment`` joins a detached container through its monitor's attach socket (``attach.py``):
made before the front end answers its client (so a container started right after is not missed),
then ``relay``. ``relay_process`` copies between the client and the pipes or pty of a process this
process owns (an exec). ``resize`` sets a detached container's pty size through its monitor.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket

from rootlet.registry.errors import ContainerNotFound, ContainerStateError
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.lifecycle.attach import (CHUNK, CLOSE_STDIN, PENDING_PREFIX, RESIZE, SOCKET_NAME, STDERR, STDIN,
                                              STDOUT, FrameReader, frame, is_missing, socket_path)

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from typing import Any

#: How often a client waiting for a container's start looks at its state.
START_POLL = 0.2


def _connect(dir_fd: int, name: str, cname: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(socket_path(dir_fd, name))
    except OSError as exc:
        sock.close()
        if is_missing(exc):
            raise ContainerStateError(f"container {cname} has no attach socket: it is not running under a monitor",
                                      "only a container started in the background (run -d, start) can be "
                                      "attached; a foreground `rootlet run` owns its container's terminal") from None
        raise
    return sock


class Attachment:
    """A client's place at a detached container's output and input: connected to its monitor when
    it runs, else a rendezvous its next start connects to."""

    def __init__(self, containers: ContainerStore, cid: str) -> None:
        self.containers = containers
        self.cid = cid
        self.name = containers.config(cid).name
        self.dir_fd = os.open(containers.dir(cid), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.sock: socket.socket | None = None
        self.listener: socket.socket | None = None
        self.pending: str | None = None
        try:
            with containers.starting(cid):  # a start cannot slip between the look and the rendezvous
                state = containers.refresh(cid)
                if state.status == "running":
                    self.sock = _connect(self.dir_fd, SOCKET_NAME, self.name)
                    return
                self.pending = PENDING_PREFIX + os.urandom(8).hex()
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                listener.bind(socket_path(self.dir_fd, self.pending))
                listener.listen(1)
                self.listener = listener
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for s in (self.sock, self.listener):
            if s is not None:
                s.close()
        self.sock = self.listener = None
        if self.pending is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.pending, dir_fd=self.dir_fd)
            self.pending = None
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def _wait_start(self, client: Any) -> bool:
        """Wait for the monitor of the container's next start to connect; False when the client
        left or the container went away first."""
        assert self.listener is not None
        while True:
            poller = select.poll()
            poller.register(self.listener, select.POLLIN)
            poller.register(client.fileno(), 0)  # hang-ups only: input waits for the container
            for fd, event in poller.poll(START_POLL * 1000):
                if fd == self.listener.fileno():
                    self.sock, _ = self.listener.accept()
                    self.close_listener()
                    return True
                if event & (select.POLLHUP | select.POLLERR):
                    return False
            try:
                state = self.containers.refresh(self.cid)
            except ContainerNotFound:
                return False
            if state.status == "running" and self.pending is not None:
                # Started without collecting us (a foreground start, a restart under way): join it.
                with contextlib.suppress(OSError):
                    os.stat(self.pending, dir_fd=self.dir_fd, follow_symlinks=False)
                    self.close_listener()
                    try:
                        self.sock = _connect(self.dir_fd, SOCKET_NAME, self.name)
                    except ContainerStateError:
                        return False
                    return True

    def close_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.pending is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.pending, dir_fd=self.dir_fd)
            self.pending = None

    def relay(self, client: Any, stdin: bool, stdout: bool, stderr: bool, stdin_once: bool) -> None:
        """Copy the container's output to ``client`` and its input to the container until the run
        ends or the client leaves; ``stdin_once``: the end of the client's input closes the
        container's stdin."""
        try:
            if self.sock is None and not self._wait_start(client):
                return
            assert self.sock is not None
            self._relay(self.sock, client, stdin, {STDOUT: stdout, STDERR: stderr}, stdin_once)
        finally:
            self.close()

    def _relay(self, sock: socket.socket, client: Any, stdin: bool, wanted: dict[int, bool], stdin_once: bool) -> None:
        reader = FrameReader()
        taking_input = stdin
        while True:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            poller.register(client.fileno(), select.POLLIN if taking_input else 0)
            events = poller.poll(0 if taking_input and client.buffered() else -1)
            if taking_input and client.buffered() and not events:
                events = [(client.fileno(), select.POLLIN)]
            for fd, event in events:
                if fd == sock.fileno():
                    data = sock.recv(CHUNK)
                    if not data:
                        return  # the run ended (or the monitor cut us off)
                    try:
                        frames = reader.feed(data)
                    except ValueError:
                        return
                    for kind, payload in frames:
                        if wanted.get(kind):
                            client.write("stdout" if kind == STDOUT else "stderr", payload)
                elif event & select.POLLIN and taking_input:
                    data = client.read_input()
                    if client.gone:
                        return
                    if data is None:
                        continue
                    if data:
                        sock.sendall(frame(STDIN, data))
                    else:
                        taking_input = False
                        if stdin_once:
                            sock.sendall(frame(CLOSE_STDIN, b""))
                elif event & (select.POLLHUP | select.POLLERR):
                    return  # the client left


def resize(containers: ContainerStore, cid: str, rows: int, cols: int) -> None:
    """Set the size of a detached container's pty (its monitor applies it)."""
    import struct

    cfg = containers.config(cid)
    if containers.refresh(cid).status != "running":
        raise ContainerStateError(f"container {cfg.name} is not running", "start it first")
    if not cfg.tty:
        return  # docker accepts a resize of a container without a tty and does nothing
    dir_fd = os.open(containers.dir(cid), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock = _connect(dir_fd, SOCKET_NAME, cfg.name)
    finally:
        os.close(dir_fd)
    with sock:
        sock.sendall(frame(RESIZE, struct.pack("!HH", rows, cols)))


def relay_process(client: Any, outputs: list[tuple[int, str]], exited_fd: int, stdin: int | None = None,
                  master: int | None = None, control: socket.socket | None = None) -> None:
    """Copy between ``client`` and a process we own until its outputs end (drained once
    ``exited_fd`` is readable) or the client leaves: ``outputs`` (fd, stream) to the client, the
    client's input to ``stdin`` (closed at the end of the input; with a tty ``master`` is both);
    ``control`` is a listening socket whose connections send ``!HH`` rows and columns for the pty.
    Closes the outputs and ``stdin``."""
    copy = _ProcessCopy(client, dict(outputs), stdin, master)
    exited = False
    try:
        while copy.live:
            masks: dict[int, int] = {fd: select.POLLIN for fd in copy.live}
            masks[client.fileno()] = select.POLLIN if copy.taking_input and len(copy.pending) < (1 << 20) else 0
            if copy.stdin is not None and copy.pending:
                masks[copy.stdin] = masks.get(copy.stdin, 0) | select.POLLOUT
            if control is not None:
                masks[control.fileno()] = select.POLLIN
            if not exited:
                masks[exited_fd] = select.POLLIN
            poller = select.poll()
            for fd, mask in masks.items():
                poller.register(fd, mask)
            buffered = copy.taking_input and client.buffered()
            events = poller.poll(0 if buffered else -1) or ([(client.fileno(), select.POLLIN)] if buffered else [])
            for fd, event in events:
                if fd == exited_fd:
                    exited = True
                elif control is not None and fd == control.fileno():
                    _take_resize(control, master)
                elif fd == client.fileno():
                    if event & select.POLLIN and copy.taking_input:
                        if not copy.take_input():
                            return
                    elif event & (select.POLLHUP | select.POLLERR):
                        return  # the client left
                else:
                    if fd in copy.live and event & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        copy.read_output(fd)
                    if fd == copy.stdin and event & (select.POLLOUT | select.POLLERR):
                        copy.write_input()
            if exited:
                for fd in list(copy.live):
                    copy.drain(fd)
    finally:
        for fd in copy.live:
            with contextlib.suppress(OSError):
                os.close(fd)
        copy.close_stdin()


class _ProcessCopy:
    """The state of one ``relay_process``."""

    def __init__(self, client: Any, live: dict[int, str], stdin: int | None, master: int | None) -> None:
        self.client = client
        self.live = live
        self.stdin = stdin
        self.master = master
        self.pending = bytearray()
        self.taking_input = stdin is not None
        self.input_ended = False
        for fd in {stdin, master} - {None}:
            os.set_blocking(fd, False)  # type: ignore[arg-type]

    def read_output(self, fd: int) -> bool:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        except OSError:  # a pty master reads EIO once the last slave is closed
            data = b""
        if not data:
            del self.live[fd]
            if fd == self.master:
                self.stdin = None
            with contextlib.suppress(OSError):
                os.close(fd)
            return False
        self.client.write(self.live[fd], data)
        return True

    def drain(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while fd in self.live and poller.poll(0) and self.read_output(fd):
            pass
        if fd in self.live:
            del self.live[fd]
            if fd == self.master:
                self.stdin = None
            with contextlib.suppress(OSError):
                os.close(fd)

    def take_input(self) -> bool:
        """Read the client's input; False when the client left or detached."""
        data = self.client.read_input()
        if self.client.gone:
            return False
        if data is None:
            return True
        if data:
            self.pending += data
        else:
            self.taking_input, self.input_ended = False, True
        self.write_input()
        return True

    def write_input(self) -> None:
        if self.stdin is None:
            self.pending.clear()
            return
        try:
            while self.pending:
                del self.pending[:os.write(self.stdin, self.pending)]
        except BlockingIOError:
            return
        except OSError:  # the process closed its stdin or is gone
            self.pending.clear()
        if self.input_ended and not self.pending:
            self.close_stdin()  # docker closes an exec's stdin at the end of the client's input

    def close_stdin(self) -> None:
        if self.stdin is not None and self.stdin != self.master:
            with contextlib.suppress(OSError):
                os.close(self.stdin)
            self.stdin = None


def _take_resize(control: socket.socket, master: int | None) -> None:
    """One resize request on the control socket: ``!HH`` rows and columns for ``master``."""
    import fcntl
    import struct
    import termios

    try:
        conn, _ = control.accept()
    except OSError:
        return
    with conn:
        conn.settimeout(1.0)
        data = b""
        with contextlib.suppress(OSError):
            while len(data) < 4:
                chunk = conn.recv(4 - len(data))
                if not chunk:
                    break
                data += chunk
    if len(data) == 4 and master is not None:
        rows, cols = struct.unpack("!HH", data)
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def send_resize(dir_fd: int, name: str, rows: int, cols: int) -> bool:
    """Ask the process relaying an exec (its control socket ``name`` in ``dir_fd``) to resize its
    pty; False when none listens there (the exec ended, or never had one)."""
    import struct

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(socket_path(dir_fd, name))
        sock.sendall(struct.pack("!HH", rows, cols))
    except OSError:
        return False
    finally:
        sock.close()
    return True
