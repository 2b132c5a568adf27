"""Start one container process in new namespaces and wait for it.

Processes (P = the caller, C1 = the keeper, C2 = the container's PID 1)::

    P ── fork ──> C1: unshare(user, mount, uts, ipc[, net]) ── "U" ──> P writes the id maps
                  C1 <── "G" ── P
                  C1: become root of the namespace, mount the overlay on merged_dir,
                      unshare(pid), fork ──> C2 (PID 1): own mount namespace, /proc, /dev, /sys,
                      binds, masks, pivot_root, hostname, user, caps, execve(command)
                  C1 ── "C<pid of C2>" ──> P
                  C1: waitpid(C2), unmount, stop fuse-overlayfs ── "S<wait status>" ──> P

* The keeper stays outside the container's pid namespace and mount namespace, so after the
  container exits it can take the overlay down and stop fuse-overlayfs (its direct child, run in
  the foreground) before reporting. It dies with P (PR_SET_PDEATHSIG → SIGTERM → it SIGKILLs C2),
  and C2 dies with it (PR_SET_PDEATHSIG SIGKILL); the kernel then kills the whole pid namespace.
* The pid namespace is unshared only just before C2 is forked: the first child after
  unshare(CLONE_NEWPID) becomes the namespace's init, and that must be C2, not fuse-overlayfs.
* C2 unshares a mount namespace of its own before pivot_root, because pivot_root moves the root
  of every process of the namespace that uses the old root — the keeper included.
* Any failure before execve is written as one JSON line ``{code, message, hint}`` to an error pipe
  opened O_CLOEXEC; P reads it to EOF, so an empty read means the exec happened.
* With ``init`` C2 stays Python: it forks the command (C3, which does the exec steps), forwards
  signals to it, reaps every orphan, and exits with the command's status.

``spawn`` forks. Call it with no other threads running (stop progress and download threads
first): a lock held by another thread at fork time stays locked in the child. The children never
return into the caller's stack (``os._exit`` in ``finally``).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import signal
from collections.abc import Mapping

from rootlet.registry.errors import RootletError
from rootlet.registry.record import Record
from rootlet.runtime import caps as capmod
from rootlet.runtime import linux, mounts
from rootlet.runtime.caps import PODMAN_DEFAULT_CAPS
from rootlet.runtime.idmap import UsernsPlan, plan_userns
from rootlet.runtime.mounts import BindMount, ContainerError, ContainerStartError, TmpfsMount

__all__ = [
    "BindMount", "TmpfsMount", "Rlimit", "ContainerSpec", "ContainerProcess", "ContainerError",
    "ContainerStartError", "spawn", "resolve_user", "find_executable", "PODMAN_DEFAULT_CAPS",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Signals the ``init`` reaper passes on to the command.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                     signal.SIGUSR2, signal.SIGWINCH)

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


class Rlimit(Record):
    """One resource limit (``resource`` is an ``RLIMIT_*`` number from the resource module)."""

    resource: int
    soft: int
    hard: int


class ContainerSpec(Record):
    """Everything the container process needs; paths are host paths unless said otherwise.

    ``lower_dirs`` are layer diff dirs, topmost first; ``upper_dir``, ``work_dir`` and
    ``merged_dir`` are the container's own (created empty by the caller). ``argv`` is the final
    entrypoint+cmd (argv[0] is looked up on the container's PATH when it has no "/"), ``env`` the
    final environment. ``user`` is resolved inside the rootfs ("", "name", "uid", "name:group",
    "uid:gid"). ``caps`` is the capability set of container root and the bounding set of
    everyone; ``ambient_caps`` are the capabilities a non-root user keeps (podman gives a non-root
    user only its ``--cap-add`` ones, raised into the ambient set). ``network``: "private" and
    "none" get a new network namespace with lo up (the caller attaches slirp4netns/pasta for
    "private"), "host" keeps the host's. ``keep_fds`` stay open in the command; every other
    descriptor but 0-2 is closed. ``fuse_options`` are extra fuse-overlayfs options (id mappings
    for ``--userns keep-id``); they force fuse-overlayfs. ``winsize`` (a struct winsize) is set on
    the allocated pty before the command starts. With ``gate`` the command waits, fully set up,
    until the caller's ``ContainerProcess.release()`` (the network is attached meanwhile, so the
    command has it from its first instruction). ``volatile``: the upper dir is thrown away after
    the run (``--rm``), so the kernel overlay need not sync it.
    """

    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    merged_dir: str
    overlay: str = "auto"
    argv: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    additional_gids: tuple[int | str, ...] = ()
    hostname: str = ""
    etc_files: Mapping[str, str] = {}
    binds: tuple[BindMount, ...] = ()
    tmpfs: tuple[TmpfsMount, ...] = ()
    readonly_rootfs: bool = False
    caps: tuple[str, ...] = PODMAN_DEFAULT_CAPS
    ambient_caps: tuple[str, ...] = ()
    no_new_privs: bool = True
    rlimits: tuple[Rlimit, ...] = ()
    network: str = "private"
    tty: bool = False
    tty_fd: int | None = None
    stdin: str = "null"
    init: bool = False
    plan: UsernsPlan | None = None
    keep_fds: tuple[int, ...] = ()
    fuse_options: str = ""
    winsize: bytes | None = None
    gate: bool = False
    volatile: bool = False


# --- small helpers shared by the processes ---------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _libc_fn(name: str, restype: type, *argtypes: type) -> ctypes._CFuncPtr:
    """A private, typed libc function object (sethostname, socket, ioctl)."""
    func = ctypes.CDLL(None, use_errno=True)[name]
    func.restype = restype
    func.argtypes = argtypes
    return func


def _sethostname(name: str) -> None:
    """sethostname(2) in the container's UTS namespace."""
    raw = name.encode()
    if _libc_fn("sethostname", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)(raw, len(raw)) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"sethostname: {os.strerror(err)}")


def _loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (SIOCSIFFLAGS on a datagram socket).

    Uses libc through ctypes: the socket module costs milliseconds to import and nothing else here
    needs it.
    """
    sock = _libc_fn("socket", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int)(2, 2 | 0o2000000, 0)
    if sock == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"socket: {os.strerror(err)}")
    try:
        ioctl = _libc_fn("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
        ifreq = ctypes.create_string_buffer(b"lo", 40)
        if ioctl(sock, _SIOCGIFFLAGS, ifreq) == -1:
            err = ctypes.get_errno()
            raise OSError(err, f"SIOCGIFFLAGS lo: {os.strerror(err)}")
        flags = int.from_bytes(ifreq.raw[16:18], "little") | _IFF_UP
        ctypes.memmove(ctypes.addressof(ifreq) + 16, flags.to_bytes(2, "little"), 2)
        if ioctl(sock, _SIOCSIFFLAGS, ifreq) == -1:
            err = ctypes.get_errno()
            raise OSError(err, f"SIOCSIFFLAGS lo: {os.strerror(err)}")
    finally:
        os.close(sock)


def _close_fds_except(keep: set[int]) -> None:
    """Close every descriptor not in ``keep``."""
    lowest = 0
    for fd in sorted(keep):
        if fd > lowest:
            os.closerange(lowest, fd)
        lowest = max(lowest, fd + 1)
    os.closerange(lowest, 1 << 20)


def _report(err_fd: int, code: int, message: str, hint: str | None) -> None:
    """Write one start-failure record to the error pipe (children only; errors here are moot)."""
    import json

    try:
        os.write(err_fd, json.dumps({"code": code, "message": message, "hint": hint}).encode() + b"\n")
    except OSError:
        pass


def _report_exception(err_fd: int, exc: BaseException, default_code: int) -> int:
    """Report ``exc`` on the error pipe; returns the exit code the child should use."""
    if isinstance(exc, ContainerStartError):
        code, message, hint = exc.exit_code, exc.message, exc.hint
    elif isinstance(exc, RootletError):
        code, message, hint = 125, exc.message, exc.hint
    elif isinstance(exc, OSError):
        code = default_code
        message = exc.strerror or str(exc)
        if exc.filename is not None:
            message = f"{message}: {exc.filename}"
        hint = None
    else:
        code, message, hint = default_code, f"{type(exc).__name__}: {exc}", None
    _report(err_fd, code, message, hint)
    return code


def _reset_signals() -> None:
    """Default dispositions and an empty mask, as a freshly exec'ed program expects.

    Python ignores SIGPIPE and SIGXFSZ and execve keeps ignored signals ignored, so every signal
    is reset explicitly.
    """
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) is not signal.SIG_DFL:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


# --- the user inside the rootfs ------------------------------------------------------------------

def _read_db(path: str) -> list[list[str]]:
    """The colon-separated records of /etc/passwd or /etc/group (missing file: none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(user: str, additional_gids: tuple[int | str, ...] = (), etc: str = "/etc") -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for a podman ``--user`` value, from ``etc``/passwd and group.

    Follows runc/podman: "" is uid 0; a numeric uid needs no passwd entry (its gid is then 0); a
    name must exist. Supplementary groups are the /etc/group groups listing the user's name, unless
    a group was given explicitly; ``additional_gids`` (numbers, or group names looked up in
    ``etc``/group: ``--group-add``) are added in both cases.
    """
    name, _, group = user.partition(":")
    passwd = _read_db(f"{etc}/passwd")
    uid, gid, login = 0, 0, None
    if name == "" or name.isdigit():
        uid = int(name or 0)
        for rec in passwd:
            if len(rec) >= 4 and rec[2] == str(uid):
                login = rec[0]
                gid = int(rec[3]) if rec[3].isdigit() else 0
                break
    else:
        for rec in passwd:
            if len(rec) >= 4 and rec[0] == name and rec[2].isdigit():
                login, uid = name, int(rec[2])
                gid = int(rec[3]) if rec[3].isdigit() else 0
                break
        else:
            raise ContainerStartError(f"unable to find user {name}: no matching entries in passwd file", None, 126)
    named = [g for g in additional_gids if isinstance(g, str) and not g.isdigit()]
    groups_db = _read_db(f"{etc}/group") if (group and not group.isdigit()) or login or named else []
    supplementary: list[int] = []
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for rec in groups_db:
                if len(rec) >= 3 and rec[0] == group and rec[2].isdigit():
                    gid = int(rec[2])
                    break
            else:
                raise ContainerStartError(f"unable to find group {group}: no matching entries in group file",
                                          None, 126)
    elif login:
        for rec in groups_db:
            if len(rec) >= 4 and rec[2].isdigit() and login in rec[3].split(","):
                supplementary.append(int(rec[2]))
    for extra in additional_gids:
        if isinstance(extra, str):
            if extra.isdigit():
                extra = int(extra)
            else:
                gids = [int(rec[2]) for rec in groups_db if len(rec) >= 3 and rec[0] == extra and rec[2].isdigit()]
                if not gids:
                    raise ContainerStartError(f"unable to find group {extra}: no matching entries in group file",
                                              "give the group's number, or a group of the image's /etc/group", 126)
                extra = gids[0]
        if extra not in supplementary:
            supplementary.append(extra)
    return uid, gid, supplementary


def find_executable(name: str, env: tuple[str, ...]) -> str:
    """The path execve should run for argv[0] ``name``: itself when it has a "/", else the first
    executable regular file named so on the PATH of ``env`` (like Go's exec.LookPath)."""
    if "/" in name:
        return name
    path = DEFAULT_PATH
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    for d in path.split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o111:
            return candidate
    raise ContainerStartError(f"executable file `{name}` not found in $PATH: No such file or directory", None, 127)


def _make_workdir(cwd: str, uid: int, gid: int) -> None:
    """Create the working directory (mkdir -p, new parts owned by the user) like podman does."""
    missing: list[str] = []
    path = os.path.normpath("/" + cwd)
    while path != "/" and not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o755)
            os.lchown(p, uid, gid)
        except FileExistsError:
            pass
        except OSError as e:
            raise ContainerStartError(f"cannot create workdir `{cwd}`: {e.strerror}", None, 126) from e


# --- the container's processes (C2, and C3 under --init) ----------------------------------------------

def _exec_command(spec: ContainerSpec, plan: UsernsPlan, ids: tuple[int, int, list[int]], err_w: int) -> None:
    """Credentials, capabilities, limits, descriptors, then execve. Only returns by raising."""
    uid, gid, groups = ids
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
        if not plan.single_id:
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
    linux.set_pdeathsig(signal.SIGKILL)  # the credential change cleared it
    try:
        os.chdir(spec.cwd or "/")
    except OSError as e:
        raise ContainerStartError(f"chdir to `{spec.cwd}`: {e.strerror}", None, 126) from e
    if spec.no_new_privs:
        linux.set_no_new_privs()
    path = find_executable(spec.argv[0], spec.env)
    keep = {0, 1, 2, err_w, *spec.keep_fds}
    _close_fds_except(keep)
    for fd in (0, 1, 2, *spec.keep_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    _reset_signals()
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in spec.env)
    try:
        os.execve(path, list(spec.argv), env)
    except OSError as e:
        if e.errno in (2, 20):  # ENOENT, ENOTDIR
            raise ContainerStartError(f"executable file `{spec.argv[0]}` not found: No such file or directory",
                                      None, 127) from e
        raise ContainerStartError(f"cannot execute `{spec.argv[0]}`: {e.strerror}", None, 126) from e


def _reaper(child: int) -> int:
    """The ``init`` loop: forward signals to ``child``, reap everything, return its exit code."""

    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        if pid == child:
            return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)


def open_controlling_pty(winsize: bytes | None) -> int:
    """Open a pty in the devpts at /dev/pts (call it in the container's mount namespace, after
    setsid), size it, make it the controlling terminal and stdio; returns the master.

    A pty of the container's devpts is what ``tty``/``ttyname`` can find inside the container; a
    pty of the host's devpts works but is "not a tty" for them. Used by ``run -t`` and ``exec -t``.
    """
    import fcntl
    import termios

    master, slave = os.openpty()  # /dev/ptmx → pts/ptmx: the container's devpts instance
    try:
        if winsize:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize)
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return master


def _allocate_console(console_fd: int, winsize: bytes | None) -> None:
    """Give the container a pty as its terminal and /dev/console, and send the master to the
    caller over the ``console_fd`` socket (like crun's console socket)."""
    import socket

    master = open_controlling_pty(winsize)
    try:
        linux.mount(os.ttyname(0), "/dev/console", None, linux.MS_BIND, None)
        with socket.socket(fileno=console_fd) as sock:
            socket.send_fds(sock, [b"M"], [master])
    finally:
        os.close(master)


def _container_main(spec: ContainerSpec, plan: UsernsPlan, err_w: int, console_fd: int | None,
                    gate_r: int | None) -> int:
    """C2, PID 1 of the new pid namespace: everything up to execve (or the init loop)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the keeper's handler; the rest is reset before exec
    linux.set_pdeathsig(signal.SIGKILL)
    os.setsid()
    if spec.tty and spec.tty_fd is not None:
        import fcntl
        import termios

        fcntl.ioctl(spec.tty_fd, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(spec.tty_fd, fd)
    elif spec.stdin != "inherit":
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    try:
        linux.unshare(linux.CLONE_NEWNS)
        mounts.setup_rootfs(spec, plan)
        if spec.hostname:
            _sethostname(spec.hostname)
        if console_fd is not None:
            _allocate_console(console_fd, spec.winsize)
    except OSError as e:
        raise ContainerStartError(f"cannot set up the container: {e.strerror or e}") from e
    ids = resolve_user(spec.user, spec.additional_gids)
    _make_workdir(spec.cwd or "/", ids[0], ids[1])
    if spec.readonly_rootfs:
        mounts.make_root_readonly()
    if gate_r is not None:
        if os.read(gate_r, 1) != b"G":  # the caller gave up (its network attach failed, or it died)
            return 125
        os.close(gate_r)
    if not spec.init:
        _exec_command(spec, plan, ids, err_w)
        return 126  # not reached: _exec_command returns only by raising
    child = os.fork()
    if child == 0:
        code = 126
        try:
            _exec_command(spec, plan, ids, err_w)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            code = _report_exception(err_w, exc, 126)
        finally:
            os._exit(code)
    _close_fds_except({0, 1, 2})
    return _reaper(child)


# --- the keeper (C1) -------------------------------------------------------------------------------

def _keeper(spec: ContainerSpec, plan: UsernsPlan, flags: int, parent: int, err_w: int, info_w: int,
            go_r: int, console_fd: int | None, gate_r: int | None = None) -> int:
    """C1: namespaces, overlay, fork C2, wait for it, clean up, report its wait status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # P decides what Ctrl-C means
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    extra = set(spec.keep_fds)
    if spec.tty_fd is not None:
        extra.add(spec.tty_fd)
    if console_fd is not None:
        extra.add(console_fd)
    if gate_r is not None:
        extra.add(gate_r)
    _close_fds_except({0, 1, 2, err_w, info_w, go_r, *extra})
    # The user namespace first, so that P can write its maps while the other namespaces (a
    # network namespace costs over a millisecond) are created, owned by it, and lo is brought up.
    user_flag = flags & linux.CLONE_NEWUSER
    try:
        if user_flag:
            linux.unshare(user_flag)
            os.write(info_w, b"U\n")
        linux.unshare(flags & ~user_flag)
        if not user_flag:
            os.write(info_w, b"U\n")
        if spec.network != "host":
            _loopback_up()
    except OSError as e:
        from rootlet.runtime.mapwriter import _unshare_hint

        _report(err_w, 125, f"cannot create the container's namespaces: {e.strerror}", _unshare_hint(e))
        return 1
    if os.read(go_r, 1) != b"G":  # P could not write the maps
        return 1
    os.close(go_r)
    children: dict[str, int] = {}

    def on_term(_sig: int, _frame: object) -> None:
        if "c2" in children:
            try:
                os.kill(children["c2"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:  # no container yet: stop fuse-overlayfs if it runs, and go
            if "fuse" in children:
                mounts.stop_process(children["fuse"], timeout=1.0)
            os._exit(1)

    fuse_pid: int | None = None
    try:
        if not plan.rootful:
            os.setresgid(0, 0, 0)
            if not plan.single_id:
                os.setgroups([])
            os.setresuid(0, 0, 0)
        signal.signal(signal.SIGTERM, on_term)
        linux.set_pdeathsig(signal.SIGTERM)  # after the id change, which clears it
        # The id change also cleared "dumpable" when root here is not our host uid (keep-id), and
        # slirp4netns/pasta could then not open the namespaces of the container held at its gate.
        linux.set_dumpable()
        if os.getppid() != parent:
            return 1
        linux.set_child_subreaper()
        # The files rootlet provides (/etc/hosts, resolv.conf, hostname, passwd, group) belong to
        # the container's root, as in podman. Under --userns keep-id that is not our host uid, and
        # left as ours the unprivileged user (= us) could rewrite the container's /etc/passwd.
        for source in spec.etc_files.values():
            os.chown(source, 0, 0)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE, None)
        fuse_pid = mounts.mount_overlay(spec.lower_dirs, spec.upper_dir, spec.work_dir, spec.merged_dir,
                                        spec.overlay, plan.rootful, close_fds=(err_w, info_w, *extra),
                                        fuse_options=spec.fuse_options, volatile=spec.volatile)
        if fuse_pid is not None:
            children["fuse"] = fuse_pid
        linux.unshare(linux.CLONE_NEWPID)
    except BaseException as exc:  # noqa: BLE001 - reported to P
        _report_exception(err_w, exc, 125)
        if fuse_pid is not None:
            mounts.unmount_overlay(spec.merged_dir, fuse_pid)
        return 1
    c2 = os.fork()
    if c2 == 0:
        code = 125
        try:
            os.close(info_w)
            code = _container_main(spec, plan, err_w, console_fd, gate_r)
        except BaseException as exc:  # noqa: BLE001 - reported to P
            code = _report_exception(err_w, exc, 125)
        finally:
            os._exit(code)
    children["c2"] = c2
    os.write(info_w, b"C%d\n" % c2)
    os.close(err_w)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    for fd in extra:
        try:
            os.close(fd)
        except OSError:
            pass
    _, status = os.waitpid(c2, 0)
    mounts.unmount_overlay(spec.merged_dir, fuse_pid)
    try:
        os.write(info_w, b"S%d\n" % status)
    except OSError:
        pass
    return 0


# --- the caller's side (P) -------------------------------------------------------------------------

class _Lines:
    """Line reader over a pipe descriptor (messages from the keeper may arrive together)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.closed = False

    def close(self) -> None:
        """Close the descriptor once."""
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def next(self) -> str | None:
        """The next line without its newline; None at EOF."""
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 256)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


def read_all(fd: int) -> bytes:
    """Everything until EOF."""
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _decode_error(data: bytes) -> ContainerStartError:
    """The ContainerStartError of a failure record from the error pipe."""
    import json

    try:
        doc = json.loads(data.decode(errors="replace").splitlines()[0])
        return ContainerStartError(str(doc["message"]), doc.get("hint"), int(doc["code"]))
    except (ValueError, KeyError, IndexError, TypeError):
        return ContainerStartError(f"the container failed to start: {data[:200]!r}")


def _status_to_code(status: int) -> int:
    """docker's exit code for a wait status: the exit status, or 128+N when killed by signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


class ContainerProcess:
    """A running container started by ``spawn``.

    ``pid`` is the host pid of the container's PID 1 (the command, or the init). ``wait`` must be
    called once the caller is done (it reaps the keeper); ``status_fd`` becomes readable when the
    container has exited, for callers that multiplex (pty relays).
    """

    pty_master: int | None
    """With ``tty`` and no ``tty_fd``: the master of the pty allocated inside the container (the
    caller owns and closes it)."""

    def __init__(self, keeper: int, pid: int, lines: _Lines, pidfd: int | None) -> None:
        self.pty_master = None
        self.keeper = keeper
        self.pid = pid
        self._lines = lines
        self._pidfd = pidfd
        self._code: int | None = None
        self._gate: tuple[int, int] | None = None  # (gate write end, error pipe) of a gated spawn

    def release(self) -> None:
        """Let a gated container's command start (``ContainerSpec.gate``); a no-op otherwise.

        Raises ContainerStartError (126, 127, …) when the command then fails to start; the
        container is cleaned up and reaped by then.
        """
        if self._gate is None:
            return
        gate_w, err_r = self._gate
        self._gate = None
        try:
            os.write(gate_w, b"G")
        except OSError:
            pass  # the container is already gone: its error record says why
        os.close(gate_w)
        try:
            data = read_all(err_r)
        finally:
            os.close(err_r)
        if data:
            error = _decode_error(data)
            while self._lines.next() is not None:
                pass
            try:
                os.waitpid(self.keeper, 0)
            except ChildProcessError:
                pass
            self._close()
            self._code = error.exit_code
            raise error

    def failed_at_gate(self, timeout: float = 0.1) -> bool:
        """Whether a gated container failed before reaching its gate (its error record is waiting:
        ``release()`` then raises it). Used when attaching its network failed, to report the real
        cause (an unknown group, a bad mount) rather than the network helper's complaint."""
        if self._gate is None:
            return False
        import select

        return bool(select.select([self._gate[1]], [], [], timeout)[0])

    def _drop_gate(self) -> None:
        """Never released: closing the gate makes the waiting container exit."""
        if self._gate is not None:
            for fd in self._gate:
                os.close(fd)
            self._gate = None

    @property
    def status_fd(self) -> int:
        """A descriptor that becomes readable (EOF or status) when the container has exited."""
        return self._lines.fd

    @property
    def returncode(self) -> int | None:
        """The exit code once ``wait`` has returned, else None."""
        return self._code

    def wait(self) -> int:
        """Block until the container has exited and been cleaned up; return docker's exit code."""
        if self._code is not None:
            return self._code
        self._drop_gate()
        status: int | None = None
        while True:
            line = self._lines.next()
            if line is None:
                break
            if line.startswith("S"):
                status = int(line[1:])
        try:
            _, keeper_status = os.waitpid(self.keeper, 0)
        except ChildProcessError:
            keeper_status = 0
        self._close()
        if status is None:
            raise ContainerError(f"the container keeper process died ({_describe(keeper_status)}) "
                                 "before reporting the container's exit")
        self._code = _status_to_code(status)
        return self._code

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the container's PID 1 (nothing happens if it is gone)."""
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            elif self._code is None:
                os.kill(self.pid, sig)
        except (ProcessLookupError, OSError):
            pass

    def userns_path(self) -> str:
        """``/proc/<pid>/ns/user`` of the container (for network helpers)."""
        return f"/proc/{self.pid}/ns/user"

    def netns_path(self) -> str:
        """``/proc/<pid>/ns/net`` of the container (for slirp4netns/pasta)."""
        return f"/proc/{self.pid}/ns/net"

    def _close(self) -> None:
        self._lines.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _abort(keeper: int, lines: _Lines | None) -> None:
    """Kill the keeper (its pdeath/SIGKILL chain takes the container down) and reap it."""
    try:
        os.kill(keeper, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(keeper, 0)
    except ChildProcessError:
        pass
    if lines is not None:
        lines.close()


def _collect_failure(keeper: int, lines: _Lines, err_r: int) -> ContainerStartError | None:
    """After a start failure: the children's error record (None if they wrote none), with the
    keeper's clean-up awaited and the keeper reaped."""
    data = read_all(err_r)
    while lines.next() is not None:
        pass
    try:
        os.waitpid(keeper, 0)
    except ChildProcessError:
        pass
    lines.close()
    return _decode_error(data) if data else None


def _finish_failed(keeper: int, lines: _Lines, err_r: int) -> ContainerStartError:
    """The error to raise when the keeper stopped before the command ran."""
    failure = _collect_failure(keeper, lines, err_r)
    return failure or ContainerStartError("the container process exited before starting the command")


def spawn(spec: ContainerSpec) -> ContainerProcess:
    """Start the container described by ``spec``; return once its command has been exec'ed.

    Raises ContainerStartError with ``exit_code`` 125 (rootlet's own failure: namespaces, maps,
    mounts), 126 (the command cannot be invoked: permission denied, unknown user, bad workdir) or
    127 (the command does not exist). Forks: call with no other threads running.
    """
    if not spec.argv:
        raise ContainerStartError("no command or entrypoint provided, and no CMD or ENTRYPOINT from image")
    if spec.network not in ("private", "none", "host"):
        raise ContainerStartError(f"unknown network mode {spec.network!r}")
    plan = spec.plan if spec.plan is not None else plan_userns()
    flags = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
    if not plan.rootful:
        flags |= linux.CLONE_NEWUSER
    if spec.network != "host":
        flags |= linux.CLONE_NEWNET
    # What the children import must be imported here: after pivot_root the filesystem is the
    # container's, where Python's library does not exist.
    if spec.tty:
        import fcntl  # noqa: F401
        import termios  # noqa: F401
    if spec.rlimits:
        import resource  # noqa: F401
    console_parent = console_fd = None
    if spec.tty and spec.tty_fd is None:
        import socket

        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console_fd = console_child.detach()
    err_r, err_w = os.pipe()
    info_r, info_w = os.pipe()
    go_r, go_w = os.pipe()
    gate_r, gate_w = os.pipe() if spec.gate else (None, None)
    parent = os.getpid()
    keeper = os.fork()
    if keeper == 0:  # C1: never return into the caller's code
        code = 1
        try:
            gc.freeze()  # objects inherited from the caller must never be finalized here
            gc.disable()
            os.close(err_r)
            os.close(info_r)
            os.close(go_w)
            if console_parent is not None:
                console_parent.close()
            if gate_w is not None:
                os.close(gate_w)
            code = _keeper(spec, plan, flags, parent, err_w, info_w, go_r, console_fd, gate_r)
        except BaseException as exc:  # noqa: BLE001
            _report_exception(err_w, exc, 125)
            code = 1
        finally:
            os._exit(code)
    os.close(err_w)
    os.close(info_w)
    os.close(go_r)
    if gate_r is not None:
        os.close(gate_r)
    if console_fd is not None:
        os.close(console_fd)
    lines = _Lines(info_r)
    try:
        try:
            if lines.next() != "U":
                os.close(go_w)
                go_w = -1
                raise _finish_failed(keeper, lines, err_r)
            try:
                from rootlet.runtime.mapwriter import write_id_maps

                write_id_maps(keeper, plan)
            except RootletError as map_error:
                os.close(go_w)
                go_w = -1
                # The keeper's own report (a failed unshare) explains more than the map helper.
                raise _collect_failure(keeper, lines, err_r) or map_error from None
            os.write(go_w, b"G")
        finally:
            if go_w != -1:
                os.close(go_w)
        line = lines.next()
        if line is None or not line.startswith("C"):
            raise _finish_failed(keeper, lines, err_r)
        pid = int(line[1:])
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            pidfd = None
        if gate_w is None:
            data = read_all(err_r)
            if data:
                if pidfd is not None:
                    os.close(pidfd)
                _collect_failure(keeper, lines, err_r)  # let the keeper clean up, and reap it
                raise _decode_error(data)
        proc = ContainerProcess(keeper, pid, lines, pidfd)
        if gate_w is not None:
            proc._gate = (gate_w, err_r)  # release() reads the start result
            gate_w = err_r = None
        if console_parent is not None:
            import socket

            _, fds, _, _ = socket.recv_fds(console_parent, 1, 1)
            proc.pty_master = fds[0] if fds else None
        return proc
    except ContainerStartError:
        raise
    except BaseException:
        if not lines.closed:
            _abort(keeper, lines)
        raise
    finally:
        for fd in (err_r, gate_w):
            if fd is not None:
                os.close(fd)
        if console_parent is not None:
            console_parent.close()
