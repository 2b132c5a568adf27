"""Starting a detached container: forking its monitor (monitor.py) and waiting for its word.

The monitor is a forked copy of the command that starts the container. ``run -d`` forks it first
(``MonitorFork``), before the container is even created: while this process creates the
container, the monitor imports what it will need (the launch, spawn and attach modules, ~5 ms), so
that cost is off the path of ``run -d``. ``start`` forks it when the container is to start.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import ContainerStartError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.launchspec import check_layers
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux import signals
from rootlet.runtime.linux.child import MAX_RECORD, as_error, decode_error, error_pipe, fork_child, read_all


class MonitorFork:
    """A container monitor forked ahead of its container: it imports what it needs, then waits for
    ``go(cid)`` (or ``cancel()``: it exits). ``report()`` waits for its word on the start."""

    def __init__(self, root: str, keep_fds: tuple[int, ...] = ()) -> None:
        report_r, report_w = error_pipe()
        go_r, go_w = os.pipe()

        def body() -> int:
            os.close(report_r)
            os.close(go_w)
            # Not the caller's Ctrl-C or hang-up while it creates the container: the caller cancels
            # (or dies, which closes the go pipe) instead.
            for sig in (signals.SIGINT, signals.SIGHUP):
                signals.signal(sig, signals.SIG_IGN)
            from rootlet.runtime.lifecycle import monitor  # what this fork is ahead of time for

            monitor.preload()
            cid = _read_go(go_r)
            os.close(go_r)
            if not cid:
                return 0
            os.setsid()
            return monitor.run_monitor(root, cid, report_w, keep_fds)

        self.pid = fork_child(body, long_lived=True, default_code=1)
        os.close(report_w)
        os.close(go_r)
        self.report_r = report_r
        self.go_w = go_w

    def go(self, cid: str) -> None:
        """Start the container ``cid`` (64 hex digits: one atomic pipe write). A monitor that died
        meanwhile is reported by ``report``."""
        try:
            os.write(self.go_w, cid.encode())
        except OSError:
            pass
        os.close(self.go_w)
        self.go_w = -1

    def cancel(self) -> None:
        """No container to start: the monitor exits (it is reaped here)."""
        if self.go_w != -1:
            os.close(self.go_w)
            self.go_w = -1
        os.close(self.report_r)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def report(self) -> None:
        """Wait until the container runs; raise ContainerStartError when it could not start."""
        try:
            data = read_all(self.report_r, MAX_RECORD)
        finally:
            os.close(self.report_r)
        # The monitor is not our child to wait for: it runs on after we exit (and is reaped by
        # init). Reap it now only if it already ended, so no zombie lingers while we still run.
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not data.strip():  # it died without a word (killed): there is no success record either
            raise ContainerStartError("the container's monitor exited before starting it",
                                      "run it in the foreground (without -d) to see why")
        error = decode_error(data)
        if error is not None:
            raise as_error(error, ContainerStartError)  # type: ignore[misc]


def _read_go(fd: int) -> str:
    data = b""
    while chunk := os.read(fd, 128):
        data += chunk
    return data.decode()


def start_detached(store: ImageStore, cid: str, keep_fds: tuple[int, ...] = (),
                   monitor: MonitorFork | None = None) -> None:
    """Start created or exited container ``cid`` under a new monitor (``monitor``, when one was
    forked ahead of time); returns once it runs.

    A container that already runs is left as it is (docker's and podman's ``start``).
    ``keep_fds`` (``run -d --preserve-fds``) are our descriptors its first start gets at the same
    numbers; the monitor closes its copies once the container has them (a restart has none).
    """
    try:
        containers = ContainerStore(store)
        cfg = containers.config(cid)
        check_layers(store, cfg)
        with containers.starting(cid):
            state = containers.refresh(cid)
            if state.status in ("running", "restarting"):
                if monitor is not None:
                    monitor.cancel()
                return
            if monitor is None:
                monitor = MonitorFork(store.root, keep_fds)
            starting, monitor = monitor, None  # from here on the monitor reports: no cancel
            starting.go(cid)
            starting.report()
    except BaseException:
        if monitor is not None:
            monitor.cancel()
        raise
