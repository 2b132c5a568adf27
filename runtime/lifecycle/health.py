"""Periodic healthchecks of a running container (podman runs them from systemd timers; rootlet,
having no daemon, from a small process of the container's owner).

``start_checks`` resets the container's health to ``starting`` and, unless its interval is
disabled, forks a ticker: a child of the owner (its monitor, or the foreground ``rootlet run``)
that dies with it (parent-death signal) and runs ``rootlet.runtime.container.health.run_check``
every interval while the container runs. The handle it returns wraps the container's network
handle, so that the owner's ``stop_network`` after the exit also ends the ticker.
"""

from __future__ import annotations

import contextlib
import os
import time

from rootlet.registry.store import ImageStore
from rootlet.runtime.container.record import ContainerConfig
from rootlet.runtime.linux import signals

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from typing import Any


class Checked:
    """The container's network handle (or None) with the ticker that checks its health."""

    def __init__(self, inner: Any, ticker: int) -> None:
        self.inner = inner
        self.ticker = ticker

    @property
    def process(self) -> Any:
        return getattr(self.inner, "process", None)

    @property
    def ports(self) -> Any:
        return getattr(self.inner, "ports", ())

    def stop(self, wait: bool = True) -> None:
        if self.ticker:
            with contextlib.suppress(OSError):
                os.kill(self.ticker, signals.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(self.ticker, 0)
            self.ticker = 0
        if self.inner is not None:
            self.inner.stop(wait=wait)


def start_checks(store: ImageStore, cfg: ContainerConfig, network: Any) -> Any:
    """Reset ``cfg``'s health and start its ticker; the handle to keep as its network."""
    from rootlet.runtime.container.health import SECOND, reset_health
    from rootlet.runtime.linux.child import fork_child

    reset_health(store, cfg.id)
    assert cfg.healthcheck is not None
    interval = cfg.healthcheck.interval / SECOND
    if interval <= 0:
        return network
    owner = os.getpid()
    pid = fork_child(lambda: _tick(store.root, cfg.id, interval, owner), long_lived=True, default_code=0)
    return Checked(network, pid)


def _tick(root: str, cid: str, interval: float, owner: int) -> int:
    from rootlet.registry.errors import RootletError
    from rootlet.runtime.container.health import run_check
    from rootlet.runtime.container.store import ContainerStore
    from rootlet.runtime.linux import syscalls as linux
    from rootlet.runtime.linux.child import close_fds_except, redirect_to_null

    linux.set_pdeathsig(signals.SIGKILL)
    if os.getppid() != owner:
        return 0
    redirect_to_null(0, 1, 2)
    close_fds_except({0, 1, 2})
    for sig in (signals.SIGINT, signals.SIGHUP, signals.SIGTERM, signals.SIGPIPE):
        signals.signal(sig, signals.SIG_DFL if sig == signals.SIGTERM else signals.SIG_IGN)
    linux.set_process_name("rootlet-health")
    store = ImageStore(root)
    containers = ContainerStore(store)
    while True:
        time.sleep(interval)
        with contextlib.suppress(RootletError, OSError):
            if containers.state(cid).status != "running":
                return 0
            run_check(store, cid, os.environ)
