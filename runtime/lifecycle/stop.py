"""Stopping, signalling, waiting for and removing containers, from any ``rootlet`` process.

No daemon serialises these: each works from the container's recorded pids (checked against their
start times, so a reused pid is never signalled) under the container's locks, and each tolerates
the container changing state under it: the container may exit, its monitor may record the exit
or remove it (``--rm``), another ``rootlet`` may be removing it too.
"""

from __future__ import annotations

import os
import time

from rootlet.registry.errors import ContainerNotFound, ContainerRunning, ContainerStateError, RootletError
from rootlet.registry.fsutil import atomic_write
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.record import ContainerConfig, ContainerState
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux import signals
from rootlet.runtime.linux.child import wait_pid_exit
from rootlet.runtime.linux.proc import kill_checked, same_process
from rootlet.runtime.system.events import container_event

#: How long stop/rm wait for the owner to record the exit after the container's PID 1 is gone.
RECORD_TIMEOUT = 15.0
#: How long rm waits for a container's monitor to end once the container has exited.
OWNER_TIMEOUT = 10.0
#: How long the exit code of a container removed by ``--rm`` stays readable for a racing ``wait``.
EXIT_RECORD_TTL = 600.0


def _exits_dir(store: ImageStore) -> str:
    return os.path.join(store.root, "exits")


def _keep_exit_code(store: ImageStore, cid: str, code: int) -> None:
    """Leave ``code`` behind for a ``wait`` that races the removal of a ``--rm`` container (docker's
    ``wait`` still prints its code); old records are dropped on the way."""
    d = _exits_dir(store)
    os.makedirs(d, mode=0o700, exist_ok=True)
    now = time.time()
    try:
        for name in os.listdir(d):
            path = os.path.join(d, name)
            if len(name) == 64 and now - os.stat(path).st_mtime > EXIT_RECORD_TTL:
                os.unlink(path)
    except OSError:
        pass
    atomic_write(os.path.join(d, cid), str(code).encode(), durable=False)


def _kept_exit_code(store: ImageStore, cid: str) -> int | None:
    try:
        with open(os.path.join(_exits_dir(store), cid)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _wait_pid_gone(pid: int, started: int, timeout: float) -> bool:
    """Wait until process ``pid`` (with start time ``started``) has exited; True if it has.

    Not our child: it may linger as a zombie of its own parent, which the start time check sees
    as gone."""
    deadline = time.monotonic() + timeout
    while same_process(pid, started):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        wait_pid_exit(pid, min(left, 0.5))
        if same_process(pid, started):
            time.sleep(min(max(0.0, deadline - time.monotonic()), 0.02))
    return True


def wait_recorded(containers: ContainerStore, cid: str, timeout: float = RECORD_TIMEOUT) -> ContainerState:
    """Wait until the container is no longer running or restarting (its owner recorded the exit,
    or died and ``refresh`` recorded it)."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        try:
            state = containers.refresh(cid)
        except ContainerNotFound:
            return ContainerState(status="removed")
        if state.status not in ("running", "restarting"):
            return state
        if time.monotonic() > deadline:
            return state
        if state.status == "running" and state.pid:
            _wait_pid_gone(state.pid, state.pid_start, min(0.5, max(0.0, deadline - time.monotonic())))
        # The owner records the exit a few milliseconds after PID 1 is gone: poll every millisecond
        # (a state read costs ~0.1 ms) for the first 0.1 s, so `stop` returns within a millisecond
        # of the record, then every 50 ms (an owner waiting for a network helper's teardown).
        polls += 1
        time.sleep(0.001 if polls <= 100 else 0.05)


def stop_container(store: ImageStore, cid: str, timeout: float | None = None, sig: int | None = None,
                   notes: list[str] | None = None) -> ContainerState:
    """Stop a running container: its StopSignal, then SIGKILL after ``timeout`` seconds.

    The container is marked so its monitor does not restart it. Stopping a container that is
    not running is not an error (docker's behaviour). ``notes`` receives what the user should be
    told (the stop signal did not stop it and SIGKILL did, as podman says).
    """
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    if state.status not in ("running", "restarting"):
        return state
    state = containers.update_state(cid, stop_requested=True)
    if state.status == "restarting":
        return wait_recorded(containers, cid)
    stop_sig = sig if sig is not None else cfg.stop_signal
    if timeout is None:
        timeout = float(cfg.stop_timeout)
    if timeout > 0 and kill_checked(state.pid, state.pid_start, stop_sig):
        _wait_pid_gone(state.pid, state.pid_start, timeout)
    if same_process(state.pid, state.pid_start):
        if timeout > 0 and notes is not None:
            notes.append(f"StopSignal {signals.signal_name(stop_sig)} failed to stop container {cfg.name} in "
                         f"{timeout:g} seconds, resorting to SIGKILL")
        kill_checked(state.pid, state.pid_start, signals.SIGKILL)
        _wait_pid_gone(state.pid, state.pid_start, 5.0)
    state = wait_recorded(containers, cid)
    container_event(store.root, cfg, "stop")
    return state


def kill_container(store: ImageStore, cid: str, sig: int) -> None:
    """Send ``sig`` to the container's PID 1 (it must be running)."""
    containers = ContainerStore(store)
    state = containers.refresh(cid)
    if state.status != "running" or not kill_checked(state.pid, state.pid_start, sig):
        cfg = containers.config(cid)
        raise ContainerStateError(f"can only kill running containers: {cfg.name} is in state {state.status}: "
                                  "container state improper",
                                  "start it first with `rootlet start`")
    try:
        container_event(store.root, containers.config(cid), "kill")
    except (RootletError, OSError):
        pass


#: What each ``wait --condition`` accepts as a container's status.
_CONDITION_STATUSES = {"configured": ("created",), "created": ("created",), "exited": ("exited",),
                       "running": ("running",), "stopped": ("created", "exited")}


def wait_container(store: ImageStore, cid: str, conditions: tuple[str, ...] = ("stopped",),
                   interval: float = 0.25, timeout: float | None = None) -> int:
    """Block until the container meets one of ``conditions``; its exit code (0 when it never ran).

    podman's ``wait``: ``stopped`` (the default) is any status but running, so a container that
    was only created is returned at once, as is one whose start failed; ``exited`` waits for a
    created container until it has run and exited; ``running``, ``created``/``configured`` as
    named. A running container's exit is noticed as it happens; other conditions are polled
    every ``interval`` seconds.
    """
    containers = ContainerStore(store)
    wanted = {status for c in conditions for status in _CONDITION_STATUSES[c]}
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        state = containers.refresh(cid)
        if state.status in wanted:
            return state.exit_code if state.exit_code is not None else 0
        if state.status == "unknown":
            kept = _kept_exit_code(store, cid)
            if kept is not None and {"exited", "stopped"} & set(conditions):
                return kept  # a --rm container gone meanwhile: it exited
            raise ContainerNotFound(f"container {cid[:12]} was removed while waiting for it")
        if deadline is not None and time.monotonic() > deadline:
            raise ContainerStateError(f"timed out waiting for container {cid[:12]}")
        if state.status == "running" and state.pid and "running" not in wanted:
            _wait_pid_gone(state.pid, state.pid_start, 1.0)
        time.sleep(delay)
        delay = min(delay * 2, interval)


def remove_container(store: ImageStore, cid: str, force: bool = False, volumes: bool = False,
                     timeout: float | None = None) -> str:
    """Remove a container (stopping it first with ``force``: SIGKILL at once, or after ``timeout``
    seconds of its stop signal); returns its name.

    Its upper directory, logs and, with ``volumes``, its anonymous volumes go; named volumes stay.
    """
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    state = containers.refresh(cid)
    if state.status in ("running", "restarting"):
        if not force:
            raise ContainerRunning(f"cannot remove container {cfg.name} as it is running - running or paused "
                                   "containers cannot be removed without force: container state improper",
                                   "stop it first (`rootlet stop`), or use `rootlet rm -f`")
        stop_container(store, cid, timeout=timeout or 0)
    # The process that owned it (its monitor) records the exit and then ends: wait for that, so
    # nothing of the container is left running once `rm` returns (and it does not write into the
    # directory we are about to take away).
    _wait_owner_gone(containers.state(cid))
    try:
        return _remove_stopped(store, containers, cid, cfg, volumes)
    except ContainerNotFound:
        return cfg.name  # removed meanwhile by another `rm` or its own `--rm`: it is gone, as asked


def _remove_stopped(store: ImageStore, containers: ContainerStore, cid: str, cfg: ContainerConfig,
                    volumes: bool) -> str:
    with containers.starting(cid):
        state = containers.refresh(cid)
        if state.status in ("running", "restarting"):
            # Started again between our stop and the lock (a racing `start`): stop it once more.
            containers.update_state(cid, stop_requested=True)
            kill_checked(state.pid, state.pid_start, signals.SIGKILL)
            state = wait_recorded(containers, cid)
            if state.status in ("running", "restarting"):
                raise ContainerStateError(f"container {cfg.name} did not stop", "try `rootlet rm -f` again")
        if cfg.auto_remove and state.status == "exited" and state.exit_code is not None:
            _keep_exit_code(store, cid, state.exit_code)
        doomed = containers.forget(cid)
    paths = [doomed] if doomed else []
    if doomed:
        container_event(store.root, cfg, "remove")
    if volumes and cfg.anonymous_volumes:
        from rootlet.runtime.container.volumes import VolumeStore

        vols = VolumeStore(store)
        for name in cfg.anonymous_volumes:
            try:  # gone already, or another user (none can have it)
                paths.append(vols.take(name))
            except (RootletError, OSError):
                pass
    delete_trees(paths)
    return cfg.name


def _wait_owner_gone(state: ContainerState) -> None:
    """Wait (bounded) until the process that owned a container that no longer runs has exited,
    unless that process is us (a foreground ``run --rm``, a monitor removing its ``--rm`` container)."""
    if state.status in ("running", "restarting") or not state.owner_pid or state.owner_pid == os.getpid():
        return
    _wait_pid_gone(state.owner_pid, state.owner_start, OWNER_TIMEOUT)


def delete_trees(paths: list[str]) -> None:
    """Delete directory trees that may hold files of subordinate ids."""
    from rootlet.runtime.linux.rmtree import remove_tree

    left = []
    for p in paths:
        # Most containers leave only files of their root (= us) behind: delete those directly and
        # pay for a user-namespace worker only when subordinate-id files refuse to go.
        try:
            remove_tree(p)
        except (RootletError, OSError):
            left.append(p)
    if left:
        from rootlet.runtime.oci.idmap import plan_userns
        from rootlet.runtime.oci.userns import UsernsWorker

        with UsernsWorker(plan_userns()) as worker:
            for p in left:
                try:
                    worker.call(remove_tree, p)
                except (RootletError, OSError):
                    pass


def prune_containers(store: ImageStore) -> list[str]:
    """Remove every container that is not running; their ids."""
    containers = ContainerStore(store)
    removed = []
    for cid in containers.all_ids():
        try:
            if containers.refresh(cid).status in ("created", "exited", "unknown"):
                remove_container(store, cid, force=False, volumes=False)
                removed.append(cid)
        except (ContainerNotFound, ContainerStateError):
            pass
    return removed
