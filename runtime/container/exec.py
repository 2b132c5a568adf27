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
run's exit codes (126, 127), as the error records of the child-process toolkit.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import ContainerStartError, ContainerStateError, UsageError
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.container import flags
from rootlet.runtime.container.options import ExecOptions
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.linux import signals
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.child import (as_error, close_fds_except, error_pipe, exit_code, fork_child, read_error, redirect_to_null,
                                         wait_for)
from rootlet.runtime.linux.proc import read_id_map, same_process
from rootlet.runtime.oci.spec import RuntimeSpec

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

#: The namespaces an exec'd process joins (all of the container's but its cgroup).
_JOINED = ("user", "mnt", "uts", "ipc", "net", "pid")


def _single_id(pid: int) -> bool:
    """Whether the container's user namespace maps only one id (no subordinate range)."""
    rows = read_id_map(f"/proc/{pid}/uid_map")
    return len(rows) == 1 and rows[0][2] == 1


class ExecStreams(Record):
    """The exec'd process's stdio as a front end other than this process's own stdio relays it:
    ``outputs`` (fd, "stdout"|"stderr"; with a tty the pty master), ``stdin`` (fd to write its
    input to, or None), ``master`` (the pty, for resizes), ``exited_fd`` (readable once it has
    exited), ``pid`` (the helper that waits for it). The relay owns and closes every fd but
    ``exited_fd``."""

    outputs: list[tuple[int, str]]
    exited_fd: int
    pid: int
    stdin: int | None = None
    master: int | None = None


def exec_in_container(store: ImageStore, opts: ExecOptions, host_env: Mapping[str, str],
                      relay_to: Callable[[ExecStreams], None] | None = None) -> int:
    """Run ``opts.command`` in the running container; its exit code (0 at once with ``detach``).

    Its stdio is relayed to this process's own, or with ``relay_to`` handed to that function (a
    REST front end's client), which returns once the copy is over."""
    from rootlet.runtime.container.launchspec import process_spec

    if not opts.command:
        raise UsageError("exec needs a command", "rootlet exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    if opts.workdir is not None and not opts.workdir.startswith("/"):
        raise UsageError(f"invalid --workdir {opts.workdir!r}: must be an absolute path")
    if opts.user is not None:
        flags.check_user(opts.user, "--user")
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
        env_from_files += flags.parse_env_file(path, host_env)
    extra_env = ["TERM=xterm"] if opts.tty else []
    env = flags.merge_env(cfg.env, extra_env, env_from_files, flags.expand_env(opts.env, host_env))
    spec = process_spec(store, cfg).replace(
        argv=tuple(opts.command), env=tuple(env), cwd=opts.workdir or cfg.cwd or "/",
        user=opts.user if opts.user is not None else cfg.user, tty=opts.tty)
    if opts.privileged:
        from rootlet.runtime.oci.capnames import CAPABILITIES

        spec = spec.replace(caps=tuple(CAPABILITIES), no_new_privs=False, seccomp=None)
    try:
        ns_fds = linux.open_namespaces(pid, _JOINED)
    except FileNotFoundError:
        raise ContainerStateError(f"container {cfg.name} is not running") from None
    try:
        if not same_process(pid, state.pid_start):
            raise ContainerStateError(f"container {cfg.name} is not running")
        return _run(spec, _single_id(pid), ns_fds, opts, relay_to)
    finally:
        linux.close_namespaces(ns_fds)


def _run(spec: RuntimeSpec, single_id: bool, ns_fds: list[tuple[int, int]], opts: ExecOptions,
         relay_to: Callable[[ExecStreams], None] | None = None) -> int:
    # Everything the children import must be imported now: after setns(mnt) the filesystem is the
    # container's, where neither Python's library nor rootlet exists (and an image could plant a
    # module there). termios is for the terminal only, resource for the limits only (each an
    # extension module to load: 0.2-0.4 ms).
    import fcntl  # noqa: F401

    if opts.tty:
        import termios  # noqa: F401
    if spec.rlimits:
        import resource  # noqa: F401

    from rootlet.registry import jsoncodec  # noqa: F401 - the children's error records
    from rootlet.runtime.oci import process  # noqa: F401
    from rootlet.runtime.oci.pty import relay_pty, terminal_size
    from rootlet.runtime.oci.stdio import make_pipes, relay

    console_parent = console_child = None
    winsize = None
    pipes = None
    if opts.tty and not opts.detach:
        import socket

        winsize = terminal_size() if relay_to is None else None  # a front end resizes it once it runs
        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    elif not opts.detach:
        pipes = make_pipes(stdin=opts.interactive)
        spec = spec.replace(stdio=pipes.child)
    err_r, err_w = error_pipe()
    parent = os.getpid()

    def helper_body() -> int:
        os.close(err_r)
        if console_parent is not None:
            console_parent.close()
        return _helper(spec, single_id, ns_fds, opts, err_w, parent, console_child, winsize)

    helper = fork_child(helper_body, err_w, 125)
    os.close(err_w)
    if pipes is not None:
        pipes.close_child()
    master = None
    if console_child is not None:
        console_child.close()
    helper_fd = os.pidfd_open(helper)
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
        error = read_error(err_r)
        err_r = -1
        if error is None:
            if relay_to is not None and (master is not None or pipes is not None):
                if master is not None:
                    streams = ExecStreams(outputs=[(master, "stdout")], exited_fd=helper_fd, pid=helper,
                                          stdin=master if opts.interactive else None, master=master)
                else:
                    assert pipes is not None
                    streams = ExecStreams(outputs=[(pipes.stdout, "stdout"), (pipes.stderr, "stderr")],
                                          exited_fd=helper_fd, pid=helper, stdin=pipes.stdin)
                master = pipes = None  # the relay closes them
                relay_to(streams)
            elif master is not None:
                relay_pty(master, helper_fd, opts.interactive)
                master = None
            elif pipes is not None:
                relay([(pipes.stdout, "stdout", 1), (pipes.stderr, "stderr", 2)], helper_fd,
                      stdin=(0, pipes.stdin) if pipes.stdin is not None else None)
                pipes = None  # relay closed them
        status = wait_for(helper)
    except BaseException:
        os.kill(helper, signals.SIGKILL)  # the new process dies with it (parent-death signal)
        wait_for(helper)
        raise
    finally:
        os.close(helper_fd)
        if err_r != -1:
            os.close(err_r)
        if master is not None:
            os.close(master)
        if console_parent is not None:
            console_parent.close()
        if pipes is not None:
            pipes.close()
    if error is not None:
        raise as_error(error, ContainerStartError)  # type: ignore[misc]
    return exit_code(status or 0)


def _helper(spec: RuntimeSpec, single_id: bool, ns_fds: list[tuple[int, int]], opts: ExecOptions, err_w: int,
            parent: int, console: object, winsize: bytes | None) -> int:
    """X: join the namespaces, fork Y, wait for it."""
    redirect_to_null(0, 1, 2)  # none of the caller's stdio goes any further
    # Nothing else of the caller's either: above all not its ends of the pipes (the container
    # would never see the end of its input).
    keep = {0, 1, 2, err_w, *(fd for fd, _ in ns_fds), *(fd for fd in spec.stdio if fd is not None)}
    if console is not None:
        keep.add(console.fileno())  # type: ignore[attr-defined]
    close_fds_except(keep)
    linux.set_pdeathsig(signals.SIGKILL)
    if os.getppid() != parent:
        return 125
    # Y is born in the container's pid namespace with a copy of our memory: zero the caller's
    # environment in it now (/proc/PID/environ), while our /proc is still the host's, and make it
    # not dumpable, so nothing in the container may read or trace it (its execve resets that).
    linux.scrub_environ()
    linux.set_dumpable(False)
    try:
        linux.join_namespaces(ns_fds)
    except OSError as e:
        raise ContainerStartError(f"cannot join the container's namespaces: {e.strerror}",
                                  "the container may have just exited") from e
    signals.signal(signals.SIGINT, signals.SIG_IGN)  # P decides what Ctrl-C means
    child = fork_child(lambda: _process(spec, single_id, opts, err_w, console, winsize), err_w, 126)
    os.close(err_w)
    if console is not None:
        console.close()  # type: ignore[attr-defined]
    for fd in spec.stdio:
        if fd is not None:
            os.close(fd)
    if opts.detach:
        return 0
    return exit_code(wait_for(child) or 0)


def _process(spec: RuntimeSpec, single_id: bool, opts: ExecOptions, err_w: int, console: object,
             winsize: bytes | None) -> int:
    """Y: the new process, up to execve, in a session of its own (no terminal of the caller's)."""
    from rootlet.runtime.oci.process import exec_command, join_keyring, take_stdio
    from rootlet.runtime.oci.user import resolve_user

    if not opts.detach:
        linux.set_pdeathsig(signals.SIGKILL)
    os.setsid()
    if console is not None:
        import socket

        from rootlet.runtime.oci.pty import open_controlling_pty

        master = open_controlling_pty(winsize)
        socket.send_fds(console, [b"M"], [master])  # type: ignore[arg-type]
        os.close(master)
        console.close()  # type: ignore[attr-defined]
    else:
        take_stdio(spec.stdio)
    join_keyring()
    ids = resolve_user(spec.user, spec.additional_gids)
    # Unlike `run`, exec creates no working directory: one that is missing is an error (podman's 127).
    if not os.path.isdir(spec.cwd or "/"):
        raise ContainerStartError(f"workdir {spec.cwd!r} does not exist in the container", None, 127)
    exec_command(spec, single_id, ids, err_w)
    return 126
