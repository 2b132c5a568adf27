"""A container in the foreground: ``run`` without ``-d``, and ``start -a``.

The container is a descendant of this process for its whole life (no daemon): we start it, proxy
signals to it (``--sig-proxy``), relay its pipes (or its pty with ``-t``) to and from our own
stdio, copying its output into its log on the way, and record its exit, also after Ctrl-C.
"""

from __future__ import annotations

import os
import time

from rootlet.registry.errors import ContainerStateError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.launchspec import check_layers
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.lifecycle.launch import Launched, launch, record_exit
from rootlet.runtime.linux import signals
from rootlet.runtime.oci.pty import relay_pty, terminal_size
from rootlet.runtime.oci.stdio import Pipes, make_pipes, relay

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Signals a foreground container receives from us (``--sig-proxy``, on by default).
PROXIED_SIGNALS = (signals.SIGINT, signals.SIGTERM, signals.SIGHUP, signals.SIGQUIT, signals.SIGUSR1, signals.SIGUSR2)
#: A second Ctrl-C this soon after the first stops the container; a third kills it.
DOUBLE_PRESS = 5.0
#: How long a container stopped by a second Ctrl-C gets before SIGKILL.
CTRL_C_GRACE = 5.0


def run_foreground(store: ImageStore, cid: str, *, interactive: bool, sig_proxy: bool, keep_log: bool = True,
                   notify: Callable[[str], None] | None = None,
                   streams: tuple[str, ...] = ("stdout", "stderr"), keep_fds: tuple[int, ...] = ()) -> int:
    """Start created container ``cid``, relay its stdio to ours, and wait for it; its exit code.

    The container gets pipes (or, with ``-t``, a pty) that this process copies to and from its own
    stdin, stdout and stderr: never our descriptors themselves. With ``keep_log`` (a container that
    outlives the run: not ``--rm``) its output also goes into its log, as docker does, so
    ``rootlet logs`` shows a foreground run too; it is written through at once, nothing held back.

    Only the output ``streams`` named are copied to ours (``run -a``); the others still reach the
    log. ``keep_fds`` (``--preserve-fds``) are our descriptors the command gets at the same numbers:
    the user hands them over; nothing else of ours reaches the container.

    Ctrl-C is forwarded to the container (a PID 1 without a handler ignores it, as in docker); a
    second one within a few seconds stops the container, its stop signal then SIGKILL after a short
    grace, and a third kills it at once: ``notify`` tells the user so, in one line.
    """
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    check_layers(store, cfg)
    log = None
    if keep_log and not cfg.tty and cfg.log.driver != "none":
        from rootlet.runtime.lifecycle.logfile import LogWriter

        log = LogWriter(containers.path(cid, "ctr.log"), cfg.log.max_size)
    pipes: Pipes | None = None
    old_handlers: dict[int, Any] = {}
    started: Launched | None = None
    # Signals are proxied from before the container exists: one that arrives while it starts is
    # delivered once it runs, instead of killing us half-way (default action).
    holder: dict[str, Any] = {"pending": [], "interrupts": []}

    def kill(_sig: int, _frame: object) -> None:
        if "proc" in holder:
            holder["proc"].signal(signals.SIGKILL)

    def proxy(sig: int, _frame: object) -> None:
        if "proc" not in holder:
            holder["pending"].append(sig)
            return
        proc = holder["proc"]
        if sig == signals.SIGINT:
            now = time.monotonic()
            presses = [t for t in holder["interrupts"] if now - t < DOUBLE_PRESS] + [now]
            holder["interrupts"] = presses
            if len(presses) == 2:
                if notify is not None:
                    notify(f"Stopping {cfg.name}: {signals.signal_name(cfg.stop_signal)} now, SIGKILL in "
                           f"{CTRL_C_GRACE:g} seconds (press Ctrl-C again to kill it now)")
                proc.signal(cfg.stop_signal)
                old_handlers.setdefault(signals.SIGALRM, signals.signal(signals.SIGALRM, kill))
                signals.setitimer(signals.ITIMER_REAL, CTRL_C_GRACE)
                return
            if len(presses) > 2:
                proc.signal(signals.SIGKILL)
                return
        proc.signal(sig)

    try:
        with containers.starting(cid):
            if containers.refresh(cid).running:
                raise ContainerStateError(f"container {cfg.name} is already running",
                                          "attach to it with `rootlet logs -f`, or stop it first")
            if not cfg.tty:
                pipes = make_pipes(stdin=interactive)
            for sig in PROXIED_SIGNALS if sig_proxy else ():
                old_handlers[sig] = signals.signal(sig, proxy)
            if not sig_proxy:
                # docker and podman ignore these when not proxying, rather than die of them.
                for sig in (signals.SIGUSR1, signals.SIGUSR2):
                    old_handlers[sig] = signals.signal(sig, signals.SIG_IGN)
            for fd in keep_fds:
                # Not into the helpers we start (slirp4netns, newuidmap): only the container gets them.
                os.set_inheritable(fd, False)
            try:
                started = launch(store, containers, cfg, detached=False,
                                 stdio=pipes.child if pipes is not None else (None, None, None),
                                 winsize=terminal_size() if cfg.tty else None, keep_fds=keep_fds)
            finally:
                if pipes is not None:
                    pipes.close_child()
        proc = started.proc
        holder["proc"] = proc
        for sig in holder["pending"]:
            proc.signal(sig)
        if proc.pty_master is not None:
            relay_pty(proc.pty_master, proc.status_fd, interactive)
        elif pipes is not None:
            relay([(pipes.stdout, "stdout", 1 if "stdout" in streams else None),
                   (pipes.stderr, "stderr", 2 if "stderr" in streams else None)], proc.status_fd, sink=log,
                  stdin=(0, pipes.stdin) if pipes.stdin is not None else None)
            pipes = None  # relay closed them
        code = proc.wait(reap=False)  # recorded while the kernel tears the keeper's namespaces down
        record_exit(containers, cid, code)
        return code
    finally:
        if signals.SIGALRM in old_handlers:
            signals.setitimer(signals.ITIMER_REAL, 0)
        for sig, handler in old_handlers.items():
            signals.signal(sig, handler)
        if pipes is not None:
            pipes.close()
        if log is not None:
            log.close()
        if started is not None:
            # Published host ports are free when `run` returns (a script's next `run -p` may take
            # them); otherwise the helper's 20-50 ms teardown is not waited for.
            started.stop_network(wait=bool(cfg.ports))
            if started.proc.returncode is None:  # interrupted before the container was reaped
                started.proc.signal(signals.SIGKILL)
                try:
                    record_exit(containers, cid, started.proc.wait())
                except Exception:
                    pass
            try:
                started.proc.wait()  # the keeper, when its report was all the code above waited for
            except Exception:
                pass
