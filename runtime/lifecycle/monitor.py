"""The monitor of a detached container: rootlet's conmon, one per container, no daemon.

``detach.start_detached`` forks the monitor and returns once the container runs (or raises the
reason it could not start). The monitor is a session leader of its own, with its stdio on /dev/null, so it
outlives the command that started it and holds no terminal or pipe of the caller's. It

* owns the container: the keeper is its child, so mounts and fuse-overlayfs live exactly as long
  as the container, and it records the container's pid and its own in state.json;
* copies the container's stdout and stderr into the container's log (logfile.py), and to the
  clients attached on its attach socket, whose input goes to the container's stdin (attach.py);
* attaches the network helper and keeps it for the container's life;
* records the exit code atomically, restarts the container as ``--restart`` says (not after
  ``stop``), and removes it at the end with ``--rm``.

Killed with SIGKILL, a monitor takes its container with it (the keeper's parent-death signal);
``ContainerStore.refresh`` then records the exit for it.
"""

from __future__ import annotations

import os
import time

from rootlet.registry.errors import ContainerNotFound, RootletError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.record import RestartPolicy
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.lifecycle.launch import launch, record_exit
from rootlet.runtime.linux import signals
from rootlet.runtime.linux.child import close_fds_except, redirect_to_null, report_error, report_ok
from rootlet.runtime.oci.stdio import make_pipes
from rootlet.runtime.system.events import container_event

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from typing import Any

#: Longest pause between two restarts (docker doubles from 100 ms up to a minute; shorter here).
MAX_BACKOFF = 10.0
#: A run at least this long resets the back-off.
STABLE_RUN = 10.0


def should_restart(policy: RestartPolicy, code: int, restarts: int, stop_requested: bool) -> bool:
    """Whether the monitor starts the container again after it exited with ``code``."""
    if stop_requested:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    if policy.name == "on-failure" and code != 0:
        return policy.max == 0 or restarts < policy.max
    return False


def preload() -> None:
    """Import what ``run_monitor`` imports when it starts (a monitor forked ahead of its container
    does it while its container is being created)."""
    from rootlet.runtime.lifecycle import attach, logfile  # noqa: F401 - imported to have them loaded


def run_monitor(root: str, cid: str, report_w: int, keep_fds: tuple[int, ...] = ()) -> int:
    """The monitor's life: start, log, record, restart, clean up (in a session of its own, forked by
    detach.py; it reports on ``report_w`` whether the container started)."""
    from rootlet.runtime.lifecycle.logfile import LogWriter

    redirect_to_null(0, 1, 2)
    close_fds_except({0, 1, 2, report_w, *keep_fds})
    os.chdir("/")  # do not keep the caller's directory (or its filesystem) busy for the container's life
    for sig in (signals.SIGHUP, signals.SIGINT, signals.SIGPIPE, signals.SIGTTOU, signals.SIGTTIN):
        signals.signal(sig, signals.SIG_IGN)
    store = ImageStore(root)
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    policy = cfg.restart
    log = None if cfg.log.driver == "none" else LogWriter(containers.path(cid, "ctr.log"), cfg.log.max_size)
    current: dict[str, Any] = {}

    def on_term(_sig: int, _frame: object) -> None:
        # `kill MONITOR` stops the container the way `rootlet stop` would.
        try:
            containers.update_state(cid, stop_requested=True)
        except (RootletError, OSError):
            pass
        if "launched" in current:
            current["launched"].proc.signal(cfg.stop_signal)

    signals.signal(signals.SIGTERM, on_term)
    from rootlet.runtime.lifecycle.attach import AttachHub

    try:  # clients attach here (the REST API's attach); it listens before the first start
        hub = AttachHub(containers.dir(cid))
    except OSError as exc:
        report_error(report_w, exc)
        return 1
    restarts = 0
    first = True
    backoff = 0.1
    while True:
        # -d -i: the container's stdin is a pipe we keep open and never write to (a shell then
        # waits on it instead of exiting at EOF). With -t the pty carries everything.
        pipes = None if cfg.tty else make_pipes(stdin=cfg.interactive)
        hub.collect_pending()  # clients waiting for this start get its output from the first byte
        try:
            launched = launch(store, containers, cfg, detached=True,
                              stdio=pipes.child if pipes is not None else (None, None, None),
                              restart_count=restarts, keep_fds=keep_fds)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller or recorded
            if pipes is not None:
                pipes.close()
            if first:
                report_error(report_w, exc)
                return 1
            record_exit(containers, cid, 125, error=getattr(exc, "message", str(exc)))
            break
        if pipes is not None:
            pipes.close_child()
        for fd in keep_fds:  # the container has its own: ours would keep a pipe's reader waiting
            try:
                os.close(fd)
            except OSError:
                pass
        keep_fds = ()
        current["launched"] = launched
        if first:
            report_ok(report_w)
            first = False
        began = time.monotonic()
        outputs = [(pipes.stdout, "stdout"), (pipes.stderr, "stderr")] if pipes is not None else []
        master = launched.proc.pty_master
        if master is not None:
            outputs.append((master, "stdout"))
        # The hub owns (and closes) the outputs and the stdin pipe: attached clients write into it;
        # without any, -d -i keeps it open and unwritten (a shell waits on it instead of ending).
        hub.run(outputs, launched.proc.status_fd, log, master=master,
                stdin=pipes.stdin if pipes is not None else master if cfg.interactive else None)
        hub.finish_run()
        # The exit is known once the keeper has reported it: record it now, and reap the keeper
        # (whose namespaces the kernel is still tearing down) after, since `stop` waits for the record.
        code = launched.proc.wait(reap=False)
        del current["launched"]
        # Kill the network helper now. Its exit takes the kernel 20-50 ms (the tap device's
        # teardown): a container with published ports waits for it before its exit is recorded,
        # since `stop` and `rm` return on the record and the ports must be free by then
        # (`rm -f web && run -p 8080:80 …`); any other waits only before a restart, or not at all
        # (when this process ends, init reaps it; it holds nothing of the host's).
        helper = launched.network.process if launched.network is not None else None
        launched.stop_network(wait=False)
        if helper is not None and cfg.ports:
            helper.wait()
            helper = None
        again = False
        try:
            with containers.starting(cid):
                state = containers.state(cid)
                again = should_restart(policy, code, restarts, state.stop_requested)
                containers.update_state(cid, status="restarting" if again else "exited", exit_code=code,
                                        finished_at=time.time(), pid=0, pid_start=0, ports=[])
            container_event(root, containers.config(cid), "died", exit_code=code)  # its name now (a rename)
        except (ContainerNotFound, OSError):
            hub.close()
            return 0  # removed under us (`rm -f`): nothing left to record
        finally:
            launched.proc.wait()
            if helper is not None and again:
                helper.wait()
        if not again:
            break
        restarts += 1
        backoff = 0.1 if time.monotonic() - began >= STABLE_RUN else min(backoff * 2, MAX_BACKOFF)
        if _sleep_unless_stopped(containers, cid, backoff):
            try:
                containers.update_state(cid, status="exited")
            except (RootletError, OSError):
                pass
            break
    hub.close()
    if log is not None:
        log.close()
    if cfg.auto_remove:
        from rootlet.runtime.lifecycle.stop import remove_container

        try:
            remove_container(store, cid, force=True, volumes=True)
        except (RootletError, OSError):
            pass
    return 0


def _sleep_unless_stopped(containers: ContainerStore, cid: str, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as a stop (or removal) was requested."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            state = containers.state(cid)
        except (RootletError, OSError):
            return True
        if state.stop_requested or state.status == "unknown":
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 0.05))


