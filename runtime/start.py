"""Starting a created container: in the foreground (``run``, ``start -a``) or under a monitor.

``launch`` is the one way a container's processes come to life: it builds the spec from the
container's record, spawns it, attaches its network, and records it as running, owned by the
calling process. The caller then waits for it and calls ``record_exit``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from rootlet.registry.errors import RootletError
from rootlet.registry.store import ImageStore
from rootlet.runtime.containers import ContainerConfig, ContainerStore, boot_id, start_time

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from typing import Any

#: Signals a foreground container receives from us (``--sig-proxy``, on by default).
PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


class Launched:
    """A container process we own, and its network helper."""

    def __init__(self, proc: Any, network: Any) -> None:
        self.proc = proc
        self.network = network

    def stop_network(self, wait: bool) -> None:
        if self.network is not None:
            self.network.stop(wait=wait)
            self.network = None


def check_layers(store: ImageStore, cfg: ContainerConfig) -> None:
    """Refuse to start a container whose image layers were removed from the store."""
    for chain in cfg.layers:
        if not os.path.isdir(os.path.join(store.layers, chain, "diff")):
            from rootlet.registry.errors import StoreError

            raise StoreError(f"the image layers of container {cfg.name} are missing from the store",
                             "remove the container (`rootlet rm`) and create it again")


def launch(store: ImageStore, containers: ContainerStore, cfg: ContainerConfig, *, detached: bool,
           stdin_inherit: bool, restart_count: int | None = None, winsize: bytes | None = None) -> Launched:
    """Spawn ``cfg``'s container as our descendant, attach its network, record it running.

    With a user-mode network the command is held at the start gate until slirp4netns or pasta
    has configured its interface, so it has the network from its first instruction.
    """
    from rootlet.runtime.create import container_spec
    from rootlet.runtime.spawn import spawn

    mode = cfg.network
    gated = mode in ("slirp4netns", "pasta")
    spec = container_spec(store, cfg, stdin_inherit=stdin_inherit).replace(winsize=winsize, gate=gated)
    proc = spawn(spec)
    network = None
    try:
        if gated:
            from rootlet.runtime.network import PortMapping, attach_network

            try:
                network = attach_network(mode, proc.pid, [PortMapping(**p) for p in cfg.ports])
            except RootletError:
                if proc.failed_at_gate():
                    proc.release()  # raises the container's own start failure
                raise
            proc.release()
        me = os.getpid()
        changes: dict[str, Any] = dict(
            status="running", pid=proc.pid, pid_start=start_time(proc.pid) or 0, owner_pid=me,
            owner_start=start_time(me) or 0, boot_id=boot_id(), started_at=time.time(), finished_at=None,
            exit_code=None, error=None, detached=detached, stop_requested=False,
            ports=[p.__dict__ for p in network.ports] if network is not None else [])
        if restart_count is not None:
            changes["restart_count"] = restart_count
        containers.update_state(cfg.id, **changes)
    except BaseException:
        if proc.returncode is None:
            proc.signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait()
        if network is not None:
            network.stop()
        raise
    return Launched(proc, network)


def record_exit(containers: ContainerStore, cid: str, code: int, error: str | None = None) -> None:
    """Record that the container exited with docker's ``code``."""
    with contextlib.suppress(RootletError, OSError):
        containers.update_state(cid, status="exited", exit_code=code, finished_at=time.time(), pid=0,
                                pid_start=0, ports=[], error=error)


def run_foreground(store: ImageStore, cid: str, *, interactive: bool, sig_proxy: bool, keep_log: bool = True) -> int:
    """Start created container ``cid`` attached to our stdio and wait for it; its exit code.

    With ``keep_log`` (a container that outlives the run: not ``--rm``) its output is also
    written to its log, as docker does, so ``rootlet logs`` shows a foreground run too: the
    output then passes through this process (written through at once, nothing is held back).
    Without it, and with a pty, the container writes straight to our stdout and stderr.
    """
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    check_layers(store, cfg)
    log = None
    if keep_log and not cfg.spec.get("tty") and (cfg.spec.get("log") or {}).get("driver") != "none":
        from rootlet.runtime.logfile import LogWriter

        log = LogWriter(containers.path(cid, "ctr.log"), int((cfg.spec.get("log") or {}).get("max_size") or 0))
    pipes: list[int] = []
    old_handlers: dict[int, Any] = {}
    started: Launched | None = None
    # Signals are proxied from before the container exists: one that arrives while it starts is
    # delivered once it runs, instead of killing us half-way (default action).
    holder: dict[str, Any] = {"pending": []}

    def proxy(sig: int, _frame: object) -> None:
        if "proc" in holder:
            holder["proc"].signal(sig)
        else:
            holder["pending"].append(sig)

    try:
        with containers.starting(cid):
            if containers.refresh(cid).running:
                from rootlet.runtime.containers import ContainerStateError

                raise ContainerStateError(f"container {cfg.name} is already running",
                                          "attach to it with `rootlet logs -f`, or stop it first")
            saved: list[int] = []
            if log is not None:
                # The container inherits fds 1 and 2 from us: point them at pipes just for the spawn.
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                saved = [os.dup(1), os.dup(2)]
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.close(out_w)
                os.close(err_w)
                pipes = [out_r, err_r]
            for sig in PROXIED_SIGNALS if sig_proxy else ():
                old_handlers[sig] = signal.signal(sig, proxy)
            if not sig_proxy:
                # docker and podman ignore these when not proxying, rather than die of them.
                for sig in (signal.SIGUSR1, signal.SIGUSR2):
                    old_handlers[sig] = signal.signal(sig, signal.SIG_IGN)
            try:
                started = launch(store, containers, cfg, detached=False, stdin_inherit=interactive,
                                 winsize=terminal_size() if cfg.spec.get("tty") else None)
            finally:
                for fd, saved_fd in zip((1, 2), saved):
                    os.dup2(saved_fd, fd)
                    os.close(saved_fd)
        proc = started.proc
        holder["proc"] = proc
        for sig in holder["pending"]:
            proc.signal(sig)
        if proc.pty_master is not None:
            relay_pty(proc, interactive)
        elif log is not None:
            from rootlet.runtime.monitor import pump

            pump(proc, pipes[0], pipes[1], log, echo=True)
            pipes = []  # pump closed them
        code = proc.wait()
        record_exit(containers, cid, code)
        return code
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        for fd in pipes:
            os.close(fd)
        if log is not None:
            log.close()
        if started is not None:
            started.stop_network(wait=False)
            if started.proc.returncode is None:  # interrupted before the container was reaped
                started.proc.signal(signal.SIGKILL)
                with contextlib.suppress(Exception):
                    record_exit(containers, cid, started.proc.wait())


def relay_pty(proc: Any, interactive: bool) -> None:
    """Copy our stdin to the container's pty and its output to our stdout, in raw mode on a TTY."""
    import select
    import termios
    import tty as ttymod

    master = proc.pty_master
    status_fd = proc.status_fd
    saved = None
    if interactive and os.isatty(0):
        saved = termios.tcgetattr(0)
        ttymod.setraw(0, termios.TCSANOW)  # not TCSAFLUSH: keep what was typed ahead
    try:
        _sync_winsize(master)
        signal.signal(signal.SIGWINCH, lambda *_: _sync_winsize(master))
        fds = [master] + ([0] if interactive else [])
        while True:
            ready, _, _ = select.select(fds, [], [], 0.5)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                else:
                    os.write(master, data)
            if not ready and status_fd is not None and select.select([status_fd], [], [], 0)[0]:
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            os.close(master)


def terminal_size() -> bytes | None:
    """Our terminal's struct winsize (stdout's, else stdin's), for a pty made before the command runs."""
    import fcntl
    import termios

    for fd in (1, 0):
        if os.isatty(fd):
            with contextlib.suppress(OSError):
                return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    return None


def _sync_winsize(master: int) -> None:
    import fcntl
    import termios

    if os.isatty(1):
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
