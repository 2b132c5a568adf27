"""``rootlet exec``: run one more process inside a running container, from any ``rootlet`` process.

Processes (P = this command, X = a helper, Y = the new process)::

    P ── fork ──> X: setns(user), then setns(mnt, uts, ipc, net, pid) of the container's PID 1
                  X ── fork ──> Y (in the container's pid namespace): user, caps, cwd, execve
                  X: wait for Y, exit with docker's code for it

X exists because joining a pid namespace only places the caller's *children* in it, and P must
stay outside (its own files and Python modules live on the host). The namespaces are opened by
path before the fork and the container's PID 1 re-checked by start time afterwards, so a pid that
was reused meanwhile is never entered. Y gets the container's environment, capabilities, limits
and no-new-privileges; failures before execve come back over an O_CLOEXEC pipe as messages with
run's exit codes (126, 127).
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Mapping
from types import SimpleNamespace

from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime import linux
from rootlet.runtime.containers import ContainerStateError, ContainerStore, same_process

#: Order matters: the user namespace first (it grants the capabilities the others need).
_NAMESPACES = (("user", linux.CLONE_NEWUSER), ("mnt", linux.CLONE_NEWNS), ("uts", linux.CLONE_NEWUTS),
               ("ipc", linux.CLONE_NEWIPC), ("net", linux.CLONE_NEWNET), ("pid", linux.CLONE_NEWPID))


class ExecOptions(Record):
    """What ``rootlet exec`` was asked to do."""

    container: str
    command: tuple[str, ...]
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    user: str | None = None
    env: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    workdir: str | None = None
    privileged: bool = False


def _single_id(pid: int) -> bool:
    """Whether the container's user namespace maps only one id (no subordinate range)."""
    try:
        with open(f"/proc/{pid}/uid_map") as f:
            rows = [line.split() for line in f if line.strip()]
    except OSError:
        return False
    return len(rows) == 1 and rows[0][2] == "1"


def exec_in_container(store: ImageStore, opts: ExecOptions, host_env: Mapping[str, str]) -> int:
    """Run ``opts.command`` in the running container; its exit code (0 at once with ``detach``)."""
    from rootlet.runtime import runconfig as rc
    from rootlet.runtime.create import container_spec

    if not opts.command:
        from rootlet.registry.errors import UsageError

        raise UsageError("exec needs a command", "rootlet exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    containers = ContainerStore(store)
    cid = containers.resolve(opts.container)
    state = containers.refresh(cid)
    cfg = containers.config(cid)
    if state.status != "running":
        raise ContainerStateError(f"can only exec in running containers: {cfg.name} is {state.status}",
                                  f"start it first: rootlet start {cfg.name}")
    pid = state.pid
    env_from_files: list[str] = []
    for path in opts.env_files:
        env_from_files += rc.parse_env_file(path, host_env)
    extra_env = ["TERM=xterm"] if opts.tty else []
    env = rc.merge_env(cfg.env, extra_env, env_from_files, rc.expand_env(opts.env, host_env))
    spec = container_spec(store, cfg).replace(argv=tuple(opts.command), env=tuple(env),
                   cwd=opts.workdir or cfg.cwd or "/", user=opts.user if opts.user is not None else cfg.user,
                   tty=opts.tty)
    if opts.workdir is not None and not opts.workdir.startswith("/"):
        from rootlet.registry.errors import UsageError

        raise UsageError(f"invalid --workdir {opts.workdir!r}: must be an absolute path")
    if opts.privileged:
        from rootlet.runtime.caps import CAPABILITIES

        spec = spec.replace(caps=tuple(CAPABILITIES), no_new_privs=False)
    ns_fds: list[tuple[int, int]] = []
    try:
        for name, flag in _NAMESPACES:
            target = f"/proc/{pid}/ns/{name}"
            try:
                if os.stat(target).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                    continue  # shared with us (--network host, or rootful: no user namespace)
                ns_fds.append((os.open(target, os.O_RDONLY | os.O_CLOEXEC), flag))
            except FileNotFoundError:
                raise ContainerStateError(f"container {cfg.name} is not running") from None
        if not same_process(pid, state.pid_start):
            raise ContainerStateError(f"container {cfg.name} is not running")
        plan = SimpleNamespace(single_id=_single_id(pid))
        return _run(spec, plan, ns_fds, opts)
    finally:
        for fd, _ in ns_fds:
            os.close(fd)


def _run(spec: object, plan: object, ns_fds: list[tuple[int, int]], opts: ExecOptions) -> int:
    # Everything the children import must be imported now: after setns(mnt) the filesystem is the
    # container's, where neither Python's library nor rootlet exists.
    import fcntl  # noqa: F401
    import json  # noqa: F401
    import resource  # noqa: F401
    import termios  # noqa: F401

    from rootlet.runtime import caps, mounts, spawn  # noqa: F401
    from rootlet.runtime.spawn import _decode_error, read_all, _report_exception

    console_parent = console_child = None
    winsize = None
    if opts.tty and not opts.detach:
        from rootlet.runtime.start import terminal_size

        winsize = terminal_size()
        import socket

        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    helper = os.fork()
    if helper == 0:
        code = 125
        try:
            gc.freeze()
            gc.disable()
            os.close(err_r)
            if console_parent is not None:
                console_parent.close()
            code = _helper(spec, plan, ns_fds, opts, err_w, parent, console_child, winsize)
        except BaseException as exc:  # noqa: BLE001 - reported to P
            code = _report_exception(err_w, exc, 125)
        finally:
            os._exit(code)
    os.close(err_w)
    master = None
    if console_child is not None:
        console_child.close()
    try:
        if console_parent is not None:
            import socket

            try:
                _, fds, _, _ = socket.recv_fds(console_parent, 1, 1)
            except OSError:
                fds = []
            master = fds[0] if fds else None
            console_parent.close()
            console_parent = None
        data = read_all(err_r)
        if master is not None and not data:
            from rootlet.runtime.start import relay_pty

            relay_pty(SimpleNamespace(pty_master=master, status_fd=None), opts.interactive)
            master = None
        _, status = os.waitpid(helper, 0)
    except BaseException:
        os.kill(helper, signal.SIGKILL)
        os.waitpid(helper, 0)
        raise
    finally:
        os.close(err_r)
        if master is not None:
            os.close(master)
        if console_parent is not None:
            console_parent.close()
    if data:
        raise _decode_error(data)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _helper(spec: object, plan: object, ns_fds: list[tuple[int, int]], opts: ExecOptions, err_w: int,
            parent: int, console: object, winsize: bytes | None) -> int:
    """X: join the namespaces, fork Y, wait for it."""
    from rootlet.runtime.mounts import ContainerStartError
    from rootlet.runtime.spawn import _report_exception

    linux.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:
        return 125
    try:
        for fd, flag in ns_fds:
            linux.setns(fd, flag)
    except OSError as e:
        raise ContainerStartError(f"cannot join the container's namespaces: {e.strerror}",
                                  "the container may have just exited") from e
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for Y (same process group) and P
    child = os.fork()
    if child == 0:
        code = 126
        try:
            code = _process(spec, plan, opts, err_w, console, winsize)
        except BaseException as exc:  # noqa: BLE001 - reported to P
            code = _report_exception(err_w, exc, 126)
        finally:
            os._exit(code)
    os.close(err_w)
    if console is not None:
        console.close()
    if opts.detach:
        return 0
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _process(spec: object, plan: object, opts: ExecOptions, err_w: int, console: object,
             winsize: bytes | None) -> int:
    """Y: the new process, up to execve."""
    from rootlet.runtime.spawn import _exec_command, _make_workdir, resolve_user

    if not opts.detach:
        linux.set_pdeathsig(signal.SIGKILL)
    if opts.detach or opts.tty:
        os.setsid()
    if opts.detach:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
    elif console is not None:
        import socket

        from rootlet.runtime.spawn import open_controlling_pty

        master = open_controlling_pty(winsize)
        socket.send_fds(console, [b"M"], [master])
        os.close(master)
        console.close()
    elif not opts.interactive:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    ids = resolve_user(spec.user, spec.additional_gids)  # type: ignore[attr-defined]
    _make_workdir(spec.cwd or "/", ids[0], ids[1])  # type: ignore[attr-defined]
    _exec_command(spec, plan, ids, err_w)  # type: ignore[arg-type]
    return 126
