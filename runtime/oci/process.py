"""The container's own processes: its PID 1 (C2) up to ``execve``, and the ``--init`` reaper.

C2 is forked by the keeper (``rootlet.runtime.oci.keeper``) as the first process of the new pid
namespace. It unshares a mount namespace of its own (``pivot_root`` moves the root of every process
of a namespace that uses the old root: the keeper must keep its own), builds the container's mounts
(``rootlet.runtime.oci.rootfs``), sets the host name, allocates the console, resolves the user, then
waits at the start gate (when the caller attaches a network first) and execs the command. With
``init`` C2 stays Python: it forks the command (C3), forwards signals to it, reaps every orphan,
and exits with the command's status. ``exec_command`` is also what ``rootlet exec`` runs in the
process it adds to a running container.

Every failure before ``execve`` is an error record on the O_CLOEXEC error pipe (the child-process
toolkit), with run's exit codes: 125 for rootlet's own failures, 126 when the command cannot be
invoked, 127 when it does not exist.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import ContainerStartError
from rootlet.runtime.linux import signals
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.child import close_fds_except, exit_code, fork_child, redirect_to_null, reset_signals
from rootlet.runtime.oci import caps as capmod
from rootlet.runtime.oci.idmap import UsernsPlan
from rootlet.runtime.oci.pty import allocate_console
from rootlet.runtime.oci.rootfs import make_root_readonly, setup_rootfs
from rootlet.runtime.oci.spec import RuntimeSpec
from rootlet.runtime.oci.user import find_executable, make_workdir, resolve_user

#: Signals the ``init`` reaper passes on to the command.
FORWARDED_SIGNALS = (signals.SIGINT, signals.SIGTERM, signals.SIGHUP, signals.SIGQUIT, signals.SIGUSR1,
                     signals.SIGUSR2, signals.SIGWINCH)


def container_main(spec: RuntimeSpec, plan: UsernsPlan, err_w: int, console_fd: int | None,
                    gate_r: int | None) -> int:
    """C2, PID 1 of the new pid namespace: everything up to execve (or the init loop)."""
    signals.signal(signals.SIGTERM, signals.SIG_DFL)  # the keeper's handler; the rest is reset before exec
    linux.set_pdeathsig(signals.SIGKILL)
    os.setsid()
    if not spec.tty:
        take_stdio(spec.stdio)
    try:
        linux.unshare(linux.CLONE_NEWNS)
        setup_rootfs(spec, plan)
        if spec.hostname:
            linux.sethostname(spec.hostname)
        if console_fd is not None:
            allocate_console(console_fd, spec.winsize)
    except OSError as e:
        raise ContainerStartError(f"cannot set up the container: {e.strerror or e}") from e
    ids = resolve_user(spec.user, spec.additional_gids)
    make_workdir(spec.cwd or "/", ids[0], ids[1])
    if spec.readonly_rootfs:
        make_root_readonly()
    join_keyring()
    if not spec.init:
        exec_command(spec, plan.single_id, ids, err_w, gate_r)
        return 126  # not reached: exec_command returns only by raising

    def command() -> int:
        linux.set_pdeathsig(signals.SIGKILL)  # as C2's: a fork clears it
        exec_command(spec, plan.single_id, ids, err_w, gate_r)
        return 126

    child = fork_child(command, err_w, 126)
    close_fds_except({0, 1, 2})
    become_reaper(spec)
    return reaper(child)


def become_reaper(spec: RuntimeSpec) -> None:
    """What the ``--init`` reaper, a Python process that stays in the container as its PID 1, may
    show of itself: its name, the container's environment (the caller's was in this memory), and
    the container's capabilities plus CAP_SYS_PTRACE when the container lacks it. That one more
    capability is what stops the container's processes from tracing it or reading its memory
    (the kernel lets a process trace only one whose capabilities it all has), while the host user
    who owns the namespace still can (``exec`` opens the namespaces of PID 1)."""
    linux.set_process_name("rootlet-init")
    linux.scrub_environ(spec.env)
    os.environ.clear()
    if spec.seccomp is not None:
        linux.load_seccomp(spec.seccomp)
    keep = capmod.cap_mask(spec.caps) | capmod.cap_mask(("CAP_SYS_PTRACE",))
    capmod.drop_bounding_set(keep)
    capmod.capset(keep, keep, 0)


def join_keyring() -> None:
    """A new anonymous session keyring: the keys of the session that started rootlet stay out of
    the container (runc's and crun's rule)."""
    try:
        linux.join_session_keyring()
    except OSError as e:
        raise ContainerStartError(f"cannot give the container a session keyring of its own: {e.strerror}",
                                  "the key quota of your user may be used up (sysctl kernel.keys.maxkeys)") from e


def take_stdio(stdio: tuple[int | None, int | None, int | None]) -> None:
    """Make the caller's pipes (None: /dev/null) this process's 0, 1 and 2, and close the originals."""
    for target, fd in enumerate(stdio):
        if fd is None:
            redirect_to_null(target)
        elif fd != target:
            os.dup2(fd, target)
    for fd in set(stdio):
        if fd is not None and fd > 2:
            os.close(fd)


def exec_command(spec: RuntimeSpec, single_id: bool, ids: tuple[int, int, list[int]], err_w: int,
                 gate_r: int | None = None) -> None:
    """Credentials, capabilities, limits, descriptors, then execve. Only returns by raising.

    ``single_id``: the user namespace maps one id only, so supplementary groups cannot be set.
    ``err_w`` (the O_CLOEXEC error pipe) stays open until the execve closes it. ``gate_r``
    (``RuntimeSpec.gate``): the command waits there for the caller's "G" (its network is up), at
    the last moment before execve, so that all of the above is done while the network helper
    starts; anything else (the caller gave up, or died) ends the process with 125.
    """
    uid, gid, groups = ids
    # The credential change below clears the parent-death signal: it is set again afterwards only
    # if the caller had set one. `exec -d` has none: its parent exits at once, and a signal set
    # here would kill the detached command whenever that parent was slower to exit than this
    # process was to get here (the command then died right after its execve, 1 run in hundreds).
    pdeathsig = linux.get_pdeathsig()
    if spec.seccomp is not None:
        try:
            linux.load_seccomp(spec.seccomp)  # while we still have CAP_SYS_ADMIN in the namespace
        except OSError as e:
            raise ContainerStartError(f"cannot load the seccomp filter: {e.strerror}",
                                      "run with --security-opt seccomp=unconfined to do without") from e
    for rl in spec.rlimits:
        try:
            import resource

            resource.setrlimit(rl.resource, (rl.soft, rl.hard))
        except (OSError, ValueError) as e:
            raise ContainerStartError(f"cannot set resource limit {rl.resource} to {rl.soft}:{rl.hard}: {e}",
                                      None, 126) from e
    try:
        keep_mask = capmod.cap_mask(spec.caps)
        ambient_mask = capmod.cap_mask(spec.ambient_caps) & keep_mask if uid != 0 else 0
    except ValueError as e:
        raise ContainerStartError(str(e)) from e
    try:
        capmod.drop_bounding_set(keep_mask)
        if ambient_mask:
            capmod.set_keepcaps(True)
        if not single_id:
            os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if uid == 0:
            capmod.capset(keep_mask, keep_mask, 0)
        elif ambient_mask:
            capmod.capset(ambient_mask, ambient_mask, ambient_mask)
            capmod.raise_ambient(ambient_mask)
            capmod.set_keepcaps(False)
    except OSError as e:
        raise ContainerStartError(f"cannot switch to user {spec.user or 'root'} ({uid}:{gid}): {e.strerror}",
                                  "the id may not be mapped in the user namespace" if e.errno == 22 else None,
                                  126) from e
    if pdeathsig:
        linux.set_pdeathsig(pdeathsig)  # the credential change cleared it
    try:
        os.chdir(spec.cwd or "/")
    except OSError as e:
        raise ContainerStartError(f"chdir to `{spec.cwd}`: {e.strerror}", None, 126) from e
    if spec.no_new_privs:
        linux.set_no_new_privs()
    path = find_executable(spec.argv[0], spec.env)
    keep = {0, 1, 2, err_w, *spec.keep_fds}
    if gate_r is not None:
        keep.add(gate_r)
    close_fds_except(keep)
    for fd in (0, 1, 2, *spec.keep_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    reset_signals()
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in spec.env)
    if gate_r is not None:
        go = os.read(gate_r, 1)
        os.close(gate_r)
        if go != b"G":
            os._exit(125)
    try:
        os.execve(path, list(spec.argv), env)
    except OSError as e:
        if e.errno in (2, 20):  # ENOENT, ENOTDIR
            raise ContainerStartError(f"executable file `{spec.argv[0]}` not found: No such file or directory",
                                      None, 127) from e
        raise ContainerStartError(f"cannot execute `{spec.argv[0]}`: {e.strerror}", None, 126) from e


def reaper(child: int) -> int:
    """The ``init`` loop: forward signals to ``child``, reap everything, return its exit code."""

    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass

    for sig in FORWARDED_SIGNALS:
        signals.signal(sig, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        if pid == child:
            return exit_code(status)
