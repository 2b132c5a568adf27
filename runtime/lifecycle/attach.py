"""A detached container's attach socket: the monitor's side (what conmon's attach socket is to podman).

While a detached container runs, its monitor listens on ``containers/<id>/attach``. Any number of
clients may connect: each receives the container's output from then on (beside the log, which
still gets every byte), its input goes to the container's stdin (the pipe of ``-i``, or the pty
of ``-t``), and it may resize the pty. A client that must not miss the first byte of a container
that has not started yet (docker's attach-then-start, as ``docker run`` does it) leaves a listening
socket ``containers/<id>/attach-<random>`` instead: the monitor connects to every such socket
before it starts the container's process, and removes it.

Frames in both directions: a 5-byte header (kind, payload length as a big-endian 32-bit number),
then the payload.

    monitor → client   STDOUT (1), STDERR (2): output bytes (with a tty everything is STDOUT)
    client → monitor   STDIN (0): input bytes; CLOSE_STDIN (3): close the container's stdin once
                       what was sent is written (docker's StdinOnce); RESIZE (4): ``!HH`` rows
                       and columns of the pty

The monitor never blocks on a client: what a client does not read waits in a buffer of at most
``CLIENT_BUFFER`` bytes, past which that client is cut off (the container and the log go on).
Sockets are reached through ``/proc/self/fd/<dir fd>/NAME``: a container's directory can be longer
than a UNIX socket address may be, and the store's 0700 directories keep other users out.
"""

from __future__ import annotations

import errno
import os
import select
import struct

# The C module behind ``socket``: socket.py wraps it in IntEnums and imports selectors (with enum,
# collections and functools), 5-8 ms in the monitor of every detached start, before the container
# starts. Its socket class has every method the hub uses; accept is ``_accept``, which gives a
# descriptor (close-on-exec, as socket.accept's).
import _socket

#: Frame kinds (see the module doc).
STDIN, STDOUT, STDERR, CLOSE_STDIN, RESIZE = 0, 1, 2, 3, 4
HEADER = struct.Struct("!BI")
#: Largest frame payload accepted from a client (a longer one ends that client).
MAX_FRAME = 1 << 20
#: Output bytes a client may leave unread before it is cut off.
CLIENT_BUFFER = 8 << 20
#: Input bytes waiting for the container to read them before clients are no longer read.
INPUT_BUFFER = 1 << 20
SOCKET_NAME = "attach"
PENDING_PREFIX = "attach-"
CHUNK = 1 << 16
#: How long the end of a run waits for slow clients to take the output still buffered for them.
FLUSH_TIMEOUT = 2.0


def socket_path(dir_fd: int, name: str) -> str:
    """The address of socket ``name`` in the directory open as ``dir_fd`` (any length of path)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def frame(kind: int, data: bytes) -> bytes:
    return HEADER.pack(kind, len(data)) + data


class FrameReader:
    """Splits a byte stream into frames; ``feed`` returns the complete ones, raises ValueError on a
    frame longer than ``MAX_FRAME``."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= HEADER.size:
            kind, size = HEADER.unpack_from(self.buf)
            if size > MAX_FRAME:
                raise ValueError("frame too long")
            if len(self.buf) < HEADER.size + size:
                break
            out.append((kind, bytes(self.buf[HEADER.size:HEADER.size + size])))
            del self.buf[:HEADER.size + size]
        return out


class _Peer:
    """One attached client: its socket, the output it has yet to take, its partial frames."""

    def __init__(self, sock: _socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.out = bytearray()
        self.reader = FrameReader()


class AttachHub:
    """The monitor's attach socket and the clients attached to the current run."""

    def __init__(self, container_dir: str) -> None:
        self.dir = container_dir
        self.dir_fd = os.open(container_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.unlink(SOCKET_NAME, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        self.listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        self.listener.bind(socket_path(self.dir_fd, SOCKET_NAME))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.peers: dict[int, _Peer] = {}

    def collect_pending(self) -> None:
        """Connect to every client waiting for this start (call it before the container's process
        exists, so they get its output from the first byte)."""
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.startswith(PENDING_PREFIX))
        except OSError:
            return
        for name in names:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            sock.settimeout(1.0)
            try:
                sock.connect(socket_path(self.dir_fd, name))
            except OSError:  # its client is gone: a stale file
                sock.close()
                sock = None  # type: ignore[assignment]
            try:
                os.unlink(name, dir_fd=self.dir_fd)
            except OSError:
                pass
            if sock is not None:
                self._add(sock)

    def _add(self, sock: _socket.socket) -> None:
        peer = _Peer(sock)
        self.peers[sock.fileno()] = peer

    def _drop(self, peer: _Peer) -> None:
        self.peers.pop(peer.sock.fileno(), None)
        peer.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                fd, _ = self.listener._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._add(_socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd))

    def run(self, outputs: list[tuple[int, str]], exited_fd: int | None, log: object, stdin: int | None = None,
            master: int | None = None) -> None:
        """Relay one run of the container until its outputs end: ``outputs`` (fd, stream name) to the
        log (``write(stream, data)``, ``flush()``; None: no log) and to every client; the clients'
        input to ``stdin`` (the stdin pipe's write end, or the pty ``master`` of a container that
        takes input; None: input is dropped), resizes to ``master`` (with a tty, also its one
        output). Once ``exited_fd`` becomes readable what is buffered is drained and the relay
        ends. Closes the outputs and ``stdin``."""
        live = dict(outputs)
        run = _Run(self, live, stdin, master, log)
        exited = False
        try:
            while live:
                masks: dict[int, int] = {fd: select.POLLIN for fd in live}
                masks[self.listener.fileno()] = select.POLLIN
                for fd, peer in self.peers.items():
                    masks[fd] = (select.POLLIN if len(run.pending) < INPUT_BUFFER else 0) | \
                        (select.POLLOUT if peer.out else 0)
                if run.stdin is not None and run.pending:
                    masks[run.stdin] = masks.get(run.stdin, 0) | select.POLLOUT
                if not exited and exited_fd is not None:
                    masks[exited_fd] = select.POLLIN
                poller = select.poll()
                for fd, mask in masks.items():
                    poller.register(fd, mask)
                for fd, event in poller.poll():
                    if fd == exited_fd:
                        exited = True
                        continue
                    if fd == self.listener.fileno():
                        self._accept()
                        continue
                    if fd in live and event & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        run.read_output(fd)
                    if run.stdin is not None and fd == run.stdin and event & (select.POLLOUT | select.POLLERR):
                        run.write_input()
                    peer = self.peers.get(fd)
                    if peer is not None:
                        run.serve_peer(peer, event)
                if exited:
                    for fd in list(live):
                        run.drain(fd)
        finally:
            for fd in list(live):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if run.stdin is not None and run.stdin != master:
                try:
                    os.close(run.stdin)
                except OSError:
                    pass
            if log is not None:
                log.flush()  # type: ignore[attr-defined]

    def finish_run(self) -> None:
        """Hand the clients what is left for them (bounded) and close them: their attach ends with
        the run, as docker's does."""
        for peer in list(self.peers.values()):
            try:
                peer.sock.settimeout(FLUSH_TIMEOUT)
                if peer.out:
                    peer.sock.sendall(peer.out)
                peer.sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
            self._drop(peer)

    def close(self) -> None:
        """Stop listening (the monitor is ending) and remove the socket."""
        self.finish_run()
        self.listener.close()
        try:
            os.unlink(SOCKET_NAME, dir_fd=self.dir_fd)
        except OSError:
            pass
        os.close(self.dir_fd)


class _Run:
    """The state of one ``AttachHub.run``: outputs still open, input waiting for the container."""

    def __init__(self, hub: AttachHub, live: dict[int, str], stdin: int | None, master: int | None,
                 log: object) -> None:
        self.hub = hub
        self.live = live
        self.stdin = stdin
        self.master = master
        self.log = log
        self.pending = bytearray()
        self.close_stdin = False
        if stdin is not None:
            os.set_blocking(stdin, False)
        if master is not None:
            os.set_blocking(master, False)

    def read_output(self, fd: int) -> bool:
        """Move what the output ``fd`` has; False once it ended (then it is closed)."""
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        except OSError:  # a pty master reads EIO once the last slave is closed
            data = b""
        if not data:
            self._close_output(fd)
            return False
        stream = self.live[fd]
        if self.log is not None:
            self.log.write(stream, data)  # type: ignore[attr-defined]
        kind = STDOUT if stream == "stdout" else STDERR
        message = frame(kind, data)
        for peer in list(self.hub.peers.values()):
            if len(peer.out) + len(message) > CLIENT_BUFFER:
                self.hub._drop(peer)  # it stopped reading: cut it off rather than hold the container
                continue
            peer.out += message
        return True

    def drain(self, fd: int) -> None:
        """After the exit: what is already buffered in ``fd``, then close it."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while fd in self.live and poller.poll(0) and self.read_output(fd):
            pass
        if fd in self.live:
            self._close_output(fd)

    def _close_output(self, fd: int) -> None:
        del self.live[fd]
        if fd == self.master:
            self.stdin = None  # the pty is gone: nothing more to write to it
        try:
            os.close(fd)
        except OSError:
            pass

    def write_input(self) -> None:
        assert self.stdin is not None
        try:
            while self.pending:
                del self.pending[:os.write(self.stdin, self.pending)]
        except BlockingIOError:
            return
        except OSError:  # the container closed its stdin or is gone
            self.pending.clear()
        if not self.pending and self.close_stdin:
            self._end_input()

    def _end_input(self) -> None:
        if self.stdin is not None and self.stdin != self.master:
            try:
                os.close(self.stdin)
            except OSError:
                pass
            self.stdin = None

    def serve_peer(self, peer: _Peer, event: int) -> None:
        if event & select.POLLOUT and peer.out:
            try:
                del peer.out[:peer.sock.send(peer.out)]
            except BlockingIOError:
                pass
            except OSError:
                self.hub._drop(peer)
                return
        if event & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                data = peer.sock.recv(CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.hub._drop(peer)
                return
            try:
                frames = peer.reader.feed(data)
            except ValueError:
                self.hub._drop(peer)
                return
            for kind, payload in frames:
                self._take(kind, payload)

    def _take(self, kind: int, payload: bytes) -> None:
        if kind == STDIN and self.stdin is not None:
            self.pending += payload
            self.write_input()
        elif kind == CLOSE_STDIN:
            self.close_stdin = True
            if not self.pending:
                self._end_input()
        elif kind == RESIZE and self.master is not None and len(payload) == 4:
            import fcntl
            import termios

            rows, cols = struct.unpack("!HH", payload)
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            except OSError:
                pass


def is_missing(exc: OSError) -> bool:
    """Whether a connect failed because nothing listens there (no monitor, or it ended)."""
    return exc.errno in (errno.ENOENT, errno.ECONNREFUSED)
