"""Facts about the host for ``rootlet info`` and for error hints.

Rootless containers depend on a chain of host features (subordinate ids, setuid id-map
helpers, user namespaces enabled, /dev/fuse usable, fuse-overlayfs or a kernel overlay that
works in a user namespace). When one link is missing the failure shows up far away, so
``host_info`` checks each link, by trying it where that is cheap, and attaches a fix-it hint.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile

from rootlet.registry.errors import RootletError
from rootlet.registry.record import Record
from rootlet.runtime.linux import syscalls as linux
from rootlet.runtime.linux.rmtree import remove_tree
from rootlet.runtime.oci.idmap import UsernsPlan, plan_userns
from rootlet.runtime.oci.userns import UsernsWorker


class Check(Record):
    """One host prerequisite: whether it holds, what was found, and how to fix it if not."""

    name: str
    ok: bool
    detail: str
    hint: str | None = None


class HostInfo(Record):
    """What ``rootlet info`` reports about the host."""

    user: str
    uid: int
    plan: UsernsPlan
    checks: tuple[Check, ...]
    kernel: str
    cgroup_version: str  # "v1", "v2" or "hybrid"
    kernel_overlay: bool
    fuse_overlayfs: str | None
    fuse_overlayfs_version: str | None


# --- overlay probe -------------------------------------------------------------------------------

def _overlay_probe(base: str, userxattr: bool) -> tuple[bool, str]:
    """In a worker: mount a kernel overlay on dirs under ``base``, check it, unmount, clean up.

    Paths are given relative to ``base`` (the worker chdirs there for the mount) so that commas
    or colons in a temp path cannot break the mount options.
    """
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    mounted = False
    try:
        os.chdir(base)
        for name in ("lower", "upper", "work", "merged"):
            os.mkdir(name, 0o755)
        with open("lower/probe", "w") as f:
            f.write("rootlet")
        options = "lowerdir=lower,upperdir=upper,workdir=work" + (",userxattr" if userxattr else "")
        try:
            linux.mount("overlay", "merged", "overlay", 0, options)
        except OSError as e:
            return False, f"mount -t overlay -o {options} failed: {e.strerror}"
        mounted = True
        with open("merged/probe") as f:
            if f.read() != "rootlet":
                return False, "a lower-layer file is not visible through the overlay"
        with open("merged/written", "w") as f:
            f.write("x")
        if not os.path.exists("upper/written"):
            return False, "a write through the overlay did not reach the upper directory"
        return True, "overlay with userxattr mounts in a user namespace" if userxattr else "overlay mounts"
    finally:
        if mounted:
            linux.umount2("merged", linux.MNT_DETACH)
        os.fchdir(cwd)
        os.close(cwd)
        for name in ("lower", "upper", "work", "merged"):
            remove_tree(os.path.join(base, name))


def _probe_in(worker: UsernsWorker, tmpdir: str, plan: UsernsPlan) -> tuple[bool, str]:
    """Run the overlay probe in an existing mount-namespace worker, in a fresh dir under tmpdir."""
    base = tempfile.mkdtemp(prefix="rootlet-overlay-probe-", dir=tmpdir)
    try:
        return worker.call(_overlay_probe, base, not plan.rootful)
    except RootletError as e:
        return False, e.message
    except OSError as e:
        return False, str(e)
    finally:
        try:
            os.rmdir(base)
        except OSError:
            pass


def probe_kernel_overlay(tmpdir: str, plan: UsernsPlan) -> tuple[bool, str]:
    """Whether the kernel overlay mounts in a user namespace on the filesystem of ``tmpdir``.

    Actually tries it: in a fresh user+mount namespace worker, mount lower/upper/work with
    ``userxattr``, check a lower file is visible and a write lands in upper, unmount. Returns
    the verdict and a one-line reason.
    """
    try:
        worker = UsernsWorker(plan, mount_ns=True)
    except RootletError as e:
        return False, f"no user namespace: {e.message}"
    with worker:
        return _probe_in(worker, tmpdir, plan)


# --- individual checks ---------------------------------------------------------------------------

def _subid_check(name: str, plan: UsernsPlan, user: str) -> Check:
    """Whether the plan maps a subordinate range for uids or gids."""
    mapping = plan.uid_map if name == "subuid" else plan.gid_map
    if plan.rootful:
        return Check(name, True, "running as root: no subordinate ids needed")
    if plan.single_id:
        return Check(name, False, f"single-id mode: {plan.reason}", plan.hint)
    ranges = ", ".join(f"{m.outer}-{m.outer + m.count - 1}" for m in mapping[1:])
    return Check(name, True, f"{user}: {ranges} ({sum(m.count for m in mapping[1:])} ids)")


def _helper_check(program: str, plan: UsernsPlan) -> Check:
    """newuidmap/newgidmap: present, and setuid root or carrying file capabilities."""
    path = shutil.which(program)
    if path is None:
        return Check(program, plan.rootful, "not found on PATH",
                     None if plan.rootful else "apt-get install uidmap (dnf install shadow-utils)")
    st = os.stat(path)
    if st.st_mode & stat.S_ISUID and st.st_uid == 0:
        return Check(program, True, f"{path} (setuid root)")
    try:
        caps = os.getxattr(path, "security.capability")
    except OSError:
        caps = b""
    if caps:
        return Check(program, True, f"{path} (file capabilities)")
    cap = "cap_setuid" if program == "newuidmap" else "cap_setgid"
    return Check(program, plan.rootful, f"{path} is neither setuid root nor has file capabilities",
                 None if plan.rootful else f"sudo chmod u+s {path} (or sudo setcap {cap}+ep {path})")


def _read_int(path: str) -> int | None:
    """An integer sysctl from /proc/sys, or None when it does not exist here."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _sysctl_check() -> Check:
    """The sysctls that can switch unprivileged user namespaces off."""
    clone = _read_int("/proc/sys/kernel/unprivileged_userns_clone")
    max_ns = _read_int("/proc/sys/user/max_user_namespaces")
    apparmor = _read_int("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    parts = []
    if clone is not None:
        parts.append(f"kernel.unprivileged_userns_clone={clone}")
    if max_ns is not None:
        parts.append(f"user.max_user_namespaces={max_ns}")
    if apparmor:
        parts.append(f"kernel.apparmor_restrict_unprivileged_userns={apparmor}")
    detail = ", ".join(parts) or "no limiting sysctls"
    if clone == 0:
        return Check("userns sysctls", False, detail, "sudo sysctl -w kernel.unprivileged_userns_clone=1")
    if max_ns == 0:
        return Check("userns sysctls", False, detail, "sudo sysctl -w user.max_user_namespaces=28633")
    return Check("userns sysctls", True, detail)


def _fuse_overlayfs() -> tuple[str | None, str | None, Check]:
    """fuse-overlayfs: path, version (from --version) and its check."""
    path = shutil.which("fuse-overlayfs")
    if path is None:
        return None, None, Check("fuse-overlayfs", False, "not found on PATH", "apt-get install fuse-overlayfs")
    version = None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
        for line in (out.stdout + out.stderr).splitlines():
            if line.lower().startswith("fuse-overlayfs"):
                version = line.split(":", 1)[-1].strip().removeprefix("version").strip()
                break
    except (OSError, subprocess.TimeoutExpired):
        pass
    return path, version, Check("fuse-overlayfs", True, f"{path} {version or '(unknown version)'}")


def dev_fuse_check(path: str = "/dev/fuse") -> Check:
    """/dev/fuse exists and this user can open it read-write (fuse-overlayfs needs that).

    A fresh machine often has it 0600 root; rootless fuse-overlayfs then fails at mount time.
    """
    try:
        st = os.stat(path)
    except OSError:
        return Check(path, False, "missing", "sudo modprobe fuse (in a container: pass --device /dev/fuse)")
    mode = f"{stat.filemode(st.st_mode)} {_owner(st.st_uid)}"
    if not stat.S_ISCHR(st.st_mode):
        return Check(path, False, f"not a character device ({mode})", "sudo modprobe fuse")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return Check(path, False, f"{mode}: cannot open read-write: {e.strerror}",
                     f'sudo chmod 666 {path}, and to keep it across reboots a udev rule '
                     f'(/etc/udev/rules.d/99-fuse.rules: KERNEL=="fuse", MODE="0666")')
    os.close(fd)
    return Check(path, True, f"{mode}, opens read-write")


def _owner(uid: int) -> str:
    """A user name for ``uid`` when the passwd database has one."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _program_check(name: str, program: str, hint: str, required: bool = True) -> Check:
    """A helper program on PATH; ``required=False`` makes its absence informational."""
    path = shutil.which(program)
    if path:
        return Check(name, True, path)
    return Check(name, not required, "not found on PATH", hint)


def _network_check() -> Check:
    """slirp4netns or pasta, needed for rootless networking (informational)."""
    found = [f"{p}: {shutil.which(p)}" for p in ("pasta", "slirp4netns") if shutil.which(p)]
    if found:
        return Check("network helper", True, ", ".join(found))
    return Check("network helper", False, "neither pasta nor slirp4netns found (only --network none/host work)",
                 "apt-get install passt (or slirp4netns)")


def cgroup_version(mountinfo: str = "/proc/self/mountinfo") -> str:
    """'v2' (unified), 'v1' (legacy controllers) or 'hybrid' (v1 controllers plus a cgroup2 mount)."""
    v1 = v2 = False
    root_v2 = False
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                if " - " not in line or len(fields) < 5:
                    continue
                fstype = line.split(" - ", 1)[1].split()[0]
                if fstype == "cgroup2":
                    v2 = True
                    root_v2 = root_v2 or fields[4] == "/sys/fs/cgroup"
                elif fstype == "cgroup":
                    v1 = True
    except OSError:
        pass
    if root_v2 or (v2 and not v1):
        return "v2"
    return "hybrid" if v2 else "v1"


def _cgroup_check(version: str) -> Check:
    """The cgroup layout (informational: rootless resource limits need cgroup v2)."""
    if version == "v2":
        return Check("cgroups", True, "v2 (unified)")
    return Check("cgroups", True, f"{version}: resource limits (--memory, --cpus) are not available rootless")


def host_info(tmpdir: str | None = None) -> HostInfo:
    """Check every rootless prerequisite of this host for the calling user.

    ``tmpdir`` is where the kernel overlay probe makes its directories (default: the system
    temp dir; pass a dir on the store's filesystem to test the filesystem that matters).
    Forks one worker, so call it from a single-threaded state.
    """
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = os.environ.get("USER") or str(uid)
    plan = plan_userns(uid=uid, user=user)
    checks = [_subid_check("subuid", plan, user), _subid_check("subgid", plan, user),
              _helper_check("newuidmap", plan), _helper_check("newgidmap", plan), _sysctl_check()]
    try:
        worker: UsernsWorker | None = UsernsWorker(plan, mount_ns=True)
        mode = "not needed (root)" if plan.rootful else ("single-id" if plan.single_id else "subordinate ids")
        checks.append(Check("user namespace", True, f"created (maps: {mode})"))
    except RootletError as e:
        worker = None
        checks.append(Check("user namespace", False, e.message, e.hint))
    fuse_path, fuse_version, fuse_check = _fuse_overlayfs()
    checks += [fuse_check, dev_fuse_check(),
               _program_check("fusermount3", "fusermount3", "apt-get install fuse3")]
    if worker is None:
        overlay, reason = False, "no user namespace"
    else:
        with worker:
            overlay, reason = _probe_in(worker, tmpdir or tempfile.gettempdir(), plan)
    checks.append(Check("kernel overlay", overlay, reason,
                        None if overlay else "rootlet falls back to fuse-overlayfs (kernel 5.11+ allows overlay "
                                             "with userxattr in a user namespace)"))
    checks.append(_network_check())
    cgroups = cgroup_version()
    checks.append(_cgroup_check(cgroups))
    return HostInfo(user=user, uid=uid, plan=plan, checks=tuple(checks), kernel=os.uname().release,
                    cgroup_version=cgroups, kernel_overlay=overlay, fuse_overlayfs=fuse_path,
                    fuse_overlayfs_version=fuse_version)
