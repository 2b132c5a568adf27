"""Writing a new user namespace's uid and gid maps from outside it.

Subordinate ranges need the setuid helpers newuidmap/newgidmap (shadow-utils), which check
/etc/subuid and /etc/subgid; single-id mode maps only our own ids, which an unprivileged process
may write itself. Kept apart from userns.py (the worker protocol, with pickle and threads) because
every container start needs this and nothing else from there.
"""

from __future__ import annotations

import os
import stat

from rootlet.registry.errors import UsernsError
from rootlet.runtime.linux.proc import find_program
from rootlet.runtime.oci.idmap import UsernsPlan, map_text

_INSTALL_UIDMAP = "install the uidmap package (apt-get install uidmap / dnf install shadow-utils)"


def _helper_hint(program: str, path: str | None) -> str:
    """A fix-it hint for a newuidmap/newgidmap that ran but failed."""
    if path is None:
        return _INSTALL_UIDMAP
    try:
        st = os.stat(path)
    except OSError:
        return _INSTALL_UIDMAP
    if not (st.st_mode & stat.S_ISUID and st.st_uid == 0) and not _has_file_caps(path):
        cap = "cap_setuid" if program == "newuidmap" else "cap_setgid"
        return (f"{path} is neither setuid root nor has file capabilities: "
                f"sudo chmod u+s {path} (or sudo setcap {cap}+ep {path})")
    kind = "subuid" if program == "newuidmap" else "subgid"
    return f"check the ranges granted in /etc/{kind} (they must match what rootlet maps)"


def _has_file_caps(path: str) -> bool:
    """Whether ``path`` carries file capabilities (``security.capability``)."""
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def _run_id_helpers(pid: int, plan: UsernsPlan) -> None:
    """Write the child's maps with newuidmap and newgidmap, run concurrently to halve the wait.

    posix_spawn (vfork) rather than subprocess: this is on the start-up path of every container.
    Each helper's stderr goes to a memfd that is read back only when it fails.
    """
    commands = []
    for program, mapping in (("newuidmap", plan.uid_map), ("newgidmap", plan.gid_map)):
        path = find_program(program)
        if path is None:
            raise UsernsError(f"{program} is not installed; it is needed to map subordinate ids", _INSTALL_UIDMAP)
        argv = [path, str(pid)] + [str(v) for m in mapping for v in (m.inner, m.outer, m.count)]
        commands.append((program, path, argv))
    running: list[tuple[str, str, int, int]] = []
    errors: list[UsernsError] = []
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        for program, path, argv in commands:
            errfd = os.memfd_create(program, os.MFD_CLOEXEC)
            try:
                child = os.posix_spawn(path, argv, os.environ, file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, errfd, 2)])
            except OSError as e:
                os.close(errfd)
                errors.append(UsernsError(f"cannot run {path}: {e.strerror}", _helper_hint(program, path)))
                break
            running.append((program, path, child, errfd))
    finally:
        os.close(null)
    for program, path, child, errfd in running:
        _, status = os.waitpid(child, 0)
        if status != 0:
            text = os.pread(errfd, 4096, 0).decode(errors="replace").strip() or \
                f"exit status {os.waitstatus_to_exitcode(status)}"
            errors.append(UsernsError(f"{program} failed: {text}", _helper_hint(program, path)))
        os.close(errfd)
    if errors:
        raise errors[0]


def _write_maps_directly(pid: int, plan: UsernsPlan) -> None:
    """Single-id mode: map only our own ids, which an unprivileged parent may do itself."""
    try:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(map_text(plan.uid_map))
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(map_text(plan.gid_map))
    except OSError as e:
        raise UsernsError(f"cannot write the id map of the user namespace: {e.strerror} ({e.filename})",
                          plan.hint) from e


def write_id_maps(pid: int, plan: UsernsPlan) -> None:
    """Write ``plan``'s id maps for ``pid``, a process that has just unshared a user namespace.

    Subordinate ranges go through newuidmap/newgidmap, single-id mode writes our own ids directly,
    a rootful plan needs nothing. Used by the container keeper and the user-namespace worker.
    """
    if plan.rootful:
        return
    if plan.single_id:
        _write_maps_directly(pid, plan)
    else:
        _run_id_helpers(pid, plan)


def unshare_hint(exc: BaseException) -> str | None:
    """Why unshare(CLONE_NEWUSER) may fail, and what to do about it."""
    err = getattr(exc, "errno", None)
    if err == 28:  # ENOSPC
        return "user namespaces are limited to 0: sudo sysctl -w user.max_user_namespaces=28633"
    if err in (1, 13):  # EPERM, EACCES
        return ("unprivileged user namespaces are disabled: sudo sysctl -w kernel.unprivileged_userns_clone=1 "
                "(Debian) or allow them in the container/seccomp/AppArmor policy that runs rootlet")
    return None
