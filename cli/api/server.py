"""``rootlet system service``: the Docker Engine API on a UNIX socket (or, when asked, TCP).

One process listens; each accepted connection is served by a child of its own (forked ahead of
time, so no client waits for the fork), which answers that connection's requests one after the
other (keep-alive) and exits when the client closes it.
So the listening process never runs an engine verb, never holds a lock, and never has threads
when it forks: a verb that forks (a container's monitor, an exec, a user-namespace worker) does so
from a single-threaded child, and a child that crashes takes down one connection only. What the
children share is on disk, as for every rootlet command (containers, exec instances, events).

Containers started through the service belong to their own monitors: the service can stop (SIGTERM,
or ``--time`` seconds without a connection, 5 by default as podman's; 0 never) without stopping any
of them, and containers of the CLI are the service's and the other way round.

The socket is ``$XDG_RUNTIME_DIR/rootlet/rootlet.sock`` by default, 0600 in a 0700 directory; a
socket file left by a service that died is replaced, one that answers is not. systemd's socket
activation (``LISTEN_FDS``/``LISTEN_PID``) serves the socket it passes. Start to first answer is
kept short: the listening process imports only this module's needs; the modules the children use
are imported while it is idle, so each child starts warm.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
import time

#: Connections served at once; more wait in the listen queue.
MAX_CHILDREN = 128
#: Children kept forked and waiting to accept.
IDLE_CHILDREN = 2
#: How long a stopping service waits for its children (streams are cut after that).
STOP_GRACE = 10.0
#: Modules the children use, imported by the idle listener one per idle moment.
WARM_MODULES = ("rootlet.cli.api.connection", "rootlet.cli.api.routes", "rootlet.runtime.engine", "rootlet.runtime.container.store",
                "rootlet.runtime.container.inspect", "rootlet.runtime.container.create",
                "rootlet.runtime.lifecycle.monitor", "rootlet.runtime.lifecycle.stop",
                "rootlet.runtime.lifecycle.streams", "rootlet.runtime.image.catalog", "rootlet.cli.render",
                "rootlet.runtime.container.exec", "rootlet.runtime.system.events")


def default_uri(env: dict[str, str]) -> str:
    """``unix://$XDG_RUNTIME_DIR/rootlet/rootlet.sock`` (``/run/user/UID`` without it)."""
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix://{runtime}/rootlet/rootlet.sock"


class Listener:
    """The listening socket and what to undo at the end."""

    def __init__(self, sock: socket.socket, path: str | None) -> None:
        self.sock = sock
        self.path = path

    def close(self) -> None:
        self.sock.close()
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def listen(uri: str, env: dict[str, str]) -> tuple[Listener, list[str]]:
    """The socket to serve and warnings for the user (``UsageError`` for what cannot be served)."""
    from rootlet.registry.errors import UsageError

    warnings: list[str] = []
    fds = env.get("LISTEN_FDS")
    if fds and env.get("LISTEN_PID") == str(os.getpid()):
        if fds != "1":
            raise UsageError(f"socket activation passed {fds} sockets", "give the service exactly one socket")
        sock = socket.socket(fileno=3)  # SD_LISTEN_FDS_START
        os.set_inheritable(3, False)
        return Listener(sock, None), warnings
    if uri.startswith("unix://"):
        return Listener(*_unix(uri[len("unix://"):])), warnings
    if uri.startswith("tcp://"):
        host, _, port = uri[len("tcp://"):].rstrip("/").rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not port.isdigit() or int(port) > 65535:
            raise UsageError(f"invalid service address {uri!r}", "give tcp://HOST:PORT, e.g. tcp://127.0.0.1:2375")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot listen on {uri}: {exc.strerror}") from None
        sock.listen(128)
        warnings.append(f"serving the API on {uri} without TLS or authentication: anyone who can reach this "
                        "address (every user of this host, at least) can run containers as you")
        return Listener(sock, None), warnings
    raise UsageError(f"unsupported service address {uri!r}", "use unix:///path/to/socket or tcp://127.0.0.1:PORT")


def _unix(path: str) -> tuple[socket.socket, str]:
    from rootlet.registry.errors import UsageError

    if not path.startswith("/"):
        path = os.path.abspath(path)
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {directory}: {exc.strerror}") from None
    if os.path.lexists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            probe.connect(path)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOTSOCK, errno.ENOENT):
                raise UsageError(f"cannot use {path}: {exc.strerror}") from None
            os.unlink(path)  # left by a service that is gone
        else:
            raise UsageError(f"{path} is in use: another service answers there",
                             "stop it, or give this one another address (rootlet system service unix:///PATH)")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)  # the socket is born 0600: no moment where another user may connect
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    sock.listen(128)
    return sock, path


class Pool:
    """The children: idle ones waiting to accept a connection (each holds the read end of its
    generation's pipe: closing the write end retires them), busy ones serving one."""

    def __init__(self, lsock: socket.socket, root: str, env: dict[str, str], trace: bool) -> None:
        self.lsock = lsock
        self.root = root
        self.env = env
        self.trace = trace
        self.idle: set[int] = set()
        self.busy: set[int] = set()
        self.retired: set[int] = set()  # idle ones told to end
        self.took_r, self.took_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.gen_r, self.gen_w = os.pipe2(os.O_CLOEXEC)

    def fill(self) -> None:
        """Fork idle children up to ``IDLE_CHILDREN`` (within ``MAX_CHILDREN`` in all)."""
        while len(self.idle) < IDLE_CHILDREN and len(self.idle) + len(self.busy) < MAX_CHILDREN:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    _worker(self)
                except BaseException:  # noqa: BLE001 - a child never returns into the parent's loop
                    code = 1
                finally:
                    os._exit(code)
            self.idle.add(pid)

    def retire_idle(self) -> None:
        """End the idle children (they were forked before the warm modules): a new generation."""
        os.close(self.gen_w)
        os.close(self.gen_r)
        self.gen_r, self.gen_w = os.pipe2(os.O_CLOEXEC)
        self.retired |= self.idle
        self.idle = set()

    def took(self) -> None:
        """Children that accepted a connection say so (their pid): they are busy now."""
        import struct

        while True:
            try:
                data = os.read(self.took_r, 4096)
            except BlockingIOError:
                return
            for (pid,) in struct.iter_unpack("i", data[:len(data) - len(data) % 4]):
                if pid in self.idle or pid in self.retired:  # a retired one may have taken one first
                    self.idle.discard(pid)
                    self.retired.discard(pid)
                    self.busy.add(pid)

    def reap(self) -> None:
        for group in (self.idle, self.busy, self.retired):
            for pid in list(group):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    group.discard(pid)

    def stop(self) -> None:
        """Retire the idle children and end the busy ones: SIGTERM (a child answering a request
        finishes it), then SIGKILL after ``STOP_GRACE``. No container is touched: they belong
        to their monitors."""
        self.retire_idle()
        for pid in self.busy:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        while (self.busy or self.retired) and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)
        for pid in self.busy | self.retired:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def serve(root: str, listener: Listener, idle_time: float, env: dict[str, str], trace: bool = False) -> int:
    """Serve until SIGTERM/SIGINT, or until ``idle_time`` seconds (> 0) pass without a connection;
    ``trace``: one line per request on stderr.

    A few children wait ready to accept (forked ahead, so no connection waits for a fork); the
    one that takes a connection tells us, and we fork its replacement while it serves."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    stop = {"now": False}

    def on_stop(_sig: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.set_wakeup_fd(wake_w)
    last_activity = time.monotonic()
    warm = list(WARM_MODULES)
    listener.sock.setblocking(False)
    pool = Pool(listener.sock, root, env, trace)
    try:
        while not stop["now"]:
            pool.took()
            pool.reap()
            pool.fill()
            if pool.busy:
                last_activity = time.monotonic()
            elif idle_time > 0 and time.monotonic() - last_activity >= idle_time:
                break
            timeout = 0.05 if warm else (min(1.0, idle_time) if idle_time > 0 else 1.0)
            ready, _, _ = select.select([wake_r, pool.took_r], [], [], timeout)
            if wake_r in ready:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            if pool.took_r in ready:
                last_activity = time.monotonic()
            elif not ready and warm and not pool.busy:
                _warm(warm.pop(0))
                if not warm:
                    import gc

                    # What is imported now stays: keep the collector off it, so the pages a child
                    # shares with us are not copied by the child's collections (copy-on-write).
                    gc.freeze()
                    pool.retire_idle()  # the next children start warm
    finally:
        signal.set_wakeup_fd(-1)
        listener.close()
        pool.stop()
    return 0


def _warm(module: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - warming is an optimisation: the child imports it again and reports
        pass


def _worker(pool: Pool) -> None:
    """An idle child: wait for a connection (or retirement), tell the parent, serve it, end."""
    import struct

    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # idle: ending is all there is to do
    gen_r = pool.gen_r
    os.close(pool.gen_w)
    os.close(pool.took_r)
    while True:
        ready, _, _ = select.select([pool.lsock, gen_r], [], [])
        if gen_r in ready:
            return  # retired
        try:
            conn, _ = pool.lsock.accept()
        except (BlockingIOError, InterruptedError):
            continue  # another child took it
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.1)
            continue
        break
    os.write(pool.took_w, struct.pack("i", os.getpid()))
    for fd in (gen_r, pool.took_w):
        os.close(fd)
    pool.lsock.close()
    from rootlet.cli.api.connection import serve_connection

    serve_connection(conn, pool.root, pool.env, pool.trace)


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
