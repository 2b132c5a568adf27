"""``rootlet.runtime.oci.spawn`` on a real pulled alpine: real user, pid, mount, net namespaces, real overlays.

The image is pulled once per module with the real ``rootlet pull`` from the local registry; each
test gets fresh upper/work/merged directories. Output is captured by pointing the container's
stdout/stderr at a file (the container inherits descriptors 1 and 2 from the caller).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rootlet.registry.errors import ContainerStartError
from rootlet.runtime.oci import caps
from rootlet.runtime.oci.capnames import PODMAN_DEFAULT_CAPS
from rootlet.runtime.oci.spawn import spawn
from rootlet.runtime.oci.spec import BindMount, RuntimeSpec, TmpfsMount
from tests.conftest import rootlet_command

ROOTLESS = os.getuid() != 0
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def alpine(registry: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """The diff dirs of alpine:3.20 (topmost first), pulled with the real rootlet command."""
    base = tmp_path_factory.mktemp("alpine-store")
    home = base / "home"
    (home / ".config").mkdir(parents=True)
    run = base / "run"
    run.mkdir(mode=0o700)
    store = base / "store"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_RUNTIME_DIR": str(run),
           "XDG_DATA_HOME": str(home / ".local" / "share"), "LANG": "C.UTF-8"}
    proc = subprocess.run(rootlet_command() + ["--root", str(store), "pull", f"{registry}/library/alpine:3.20"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    images = json.loads((store / "images.json").read_text())["images"]
    layers = images[image_id]["layers"]
    return tuple(str(store / "layers" / chain / "diff") for chain in reversed(layers))


@dataclass
class Dirs:
    upper: Path
    work: Path
    merged: Path


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    d = Dirs(tmp_path / "upper", tmp_path / "work", tmp_path / "merged")
    for p in (d.upper, d.work, d.merged):
        p.mkdir()
    return d


def make_spec(alpine: tuple[str, ...], dirs: Dirs, argv: tuple[str, ...], **kw: Any) -> RuntimeSpec:
    kw.setdefault("env", (PATH_ENV,))
    lowers = kw.pop("lower_dirs", alpine)
    return RuntimeSpec(lower_dirs=lowers, upper_dir=str(dirs.upper), work_dir=str(dirs.work),
                         merged_dir=str(dirs.merged), argv=argv, **kw)


@contextlib.contextmanager
def captured(tmp_path: Path) -> Iterator[tuple[None, int, int]]:
    """Files for the container's stdout and stderr: the ``stdio`` to spawn it with."""
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        yield None, out.fileno(), err.fileno()


def run(alpine: tuple[str, ...], dirs: Dirs, *argv: str, **kw: Any) -> Result:
    """Spawn, wait, and return the exit code and output."""
    spec = make_spec(alpine, dirs, argv, **kw)
    tmp = dirs.upper.parent
    with captured(tmp) as stdio:
        proc = spawn(spec.replace(stdio=stdio))
    code = proc.wait()
    return Result(code, (tmp / "stdout").read_text(), (tmp / "stderr").read_text())


def start_error(alpine: tuple[str, ...], dirs: Dirs, *argv: str, **kw: Any) -> ContainerStartError:
    with pytest.raises(ContainerStartError) as info:
        run(alpine, dirs, *argv, **kw)
    return info.value


def mounted_in_host(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


# --- exit codes and start errors -------------------------------------------------------------------

def test_echo(alpine: tuple[str, ...], dirs: Dirs) -> None:
    r = run(alpine, dirs, "echo", "hi")
    assert (r.code, r.out) == (0, "hi\n")


def test_exit_status(alpine: tuple[str, ...], dirs: Dirs) -> None:
    assert run(alpine, dirs, "sh", "-c", "exit 3").code == 3


def test_pid1_is_the_command(alpine: tuple[str, ...], dirs: Dirs) -> None:
    assert run(alpine, dirs, "sh", "-c", "echo $$").out == "1\n"


def test_self_kill_under_init_is_128_plus_signal(alpine: tuple[str, ...], dirs: Dirs) -> None:
    # Without an init the command is PID 1, which the kernel shields from default-action signals
    # (also from itself), exactly as in podman; under --init it is an ordinary process.
    assert run(alpine, dirs, "sh", "-c", "kill -TERM $$", init=True).code == 143


def test_killed_by_signal_is_128_plus_signal(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    with captured(tmp_path) as stdio:
        proc = spawn(make_spec(alpine, dirs, ("sleep", "100"), stdio=stdio))
    proc.signal(signal.SIGKILL)
    assert proc.wait() == 137


def test_missing_command_is_127(alpine: tuple[str, ...], dirs: Dirs) -> None:
    err = start_error(alpine, dirs, "nosuchcmd")
    assert err.exit_code == 127
    assert "executable file `nosuchcmd` not found in $PATH" in err.message


def test_missing_absolute_command_is_127(alpine: tuple[str, ...], dirs: Dirs) -> None:
    err = start_error(alpine, dirs, "/no/such/file")
    assert err.exit_code == 127 and "/no/such/file" in err.message


def test_not_executable_is_126(alpine: tuple[str, ...], dirs: Dirs) -> None:
    err = start_error(alpine, dirs, "/etc/passwd")
    assert err.exit_code == 126 and "Permission denied" in err.message


def test_unknown_user(alpine: tuple[str, ...], dirs: Dirs) -> None:
    err = start_error(alpine, dirs, "id", user="nobody123")
    assert err.exit_code == 126
    assert err.message == "unable to find user nobody123: no matching entries in passwd file"


def test_workdir_on_a_file_is_126(alpine: tuple[str, ...], dirs: Dirs) -> None:
    err = start_error(alpine, dirs, "pwd", cwd="/etc/passwd")
    assert err.exit_code == 126


def test_start_error_leaves_nothing_mounted(alpine: tuple[str, ...], dirs: Dirs) -> None:
    start_error(alpine, dirs, "nosuchcmd")
    assert not mounted_in_host(dirs.merged)


# --- users, ids, environment -----------------------------------------------------------------------

def test_numeric_user_and_group(alpine: tuple[str, ...], dirs: Dirs) -> None:
    out = run(alpine, dirs, "id", user="1000:1000").out
    assert out.startswith("uid=1000 gid=1000"), out


def test_named_user_gets_passwd_gid_and_groups(alpine: tuple[str, ...], dirs: Dirs) -> None:
    out = run(alpine, dirs, "id", user="daemon").out
    assert out.startswith("uid=2(daemon) gid=2(daemon)"), out
    assert "4(adm)" in out  # daemon is a member of adm in alpine's /etc/group


def test_root_supplementary_groups(alpine: tuple[str, ...], dirs: Dirs) -> None:
    out = run(alpine, dirs, "id").out
    assert out.startswith("uid=0(root) gid=0(root) groups=0(root),1(bin)"), out


@pytest.mark.skipif(not ROOTLESS, reason="rootful containers have no user namespace")
def test_uid_map_is_podmans(alpine: tuple[str, ...], dirs: Dirs) -> None:
    lines = [line.split() for line in run(alpine, dirs, "cat", "/proc/self/uid_map").out.splitlines()]
    from rootlet.runtime.oci.idmap import plan_userns

    sub = plan_userns().uid_map[1]  # the user's own subordinate range, whatever /etc/subuid says
    assert lines == [["0", str(os.getuid()), "1"], ["1", str(sub.outer), str(sub.count)]]


def test_hostname(alpine: tuple[str, ...], dirs: Dirs) -> None:
    assert run(alpine, dirs, "hostname", hostname="box").out == "box\n"


def test_env(alpine: tuple[str, ...], dirs: Dirs) -> None:
    r = run(alpine, dirs, "sh", "-c", 'echo "$FOO|$EMPTY|"', env=(PATH_ENV, "FOO=bar baz", "EMPTY="))
    assert r.out == "bar baz||\n"


def test_cwd_created(alpine: tuple[str, ...], dirs: Dirs) -> None:
    r = run(alpine, dirs, "sh", "-c", "pwd; stat -c %u:%g .", cwd="/work/deep", user="1000:1001")
    assert r.out == "/work/deep\n1000:1001\n"


# --- filesystem ------------------------------------------------------------------------------------

def test_dev_has_only_the_safe_nodes(alpine: tuple[str, ...], dirs: Dirs) -> None:
    names = set(run(alpine, dirs, "ls", "-A", "/dev").out.split())
    assert names == {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
                     "fd", "stdin", "stdout", "stderr", "ptmx"}
    r = run(alpine, dirs, "sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c && "
            "grep -E ' /dev/(pts|shm|mqueue) ' /proc/mounts | cut -d' ' -f2,3")
    assert r.out.split("\n", 1) == ["4", "/dev/pts devpts\n/dev/shm tmpfs\n/dev/mqueue mqueue\n"], r


def test_proc_masks_and_readonly_paths(alpine: tuple[str, ...], dirs: Dirs) -> None:
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    masked_dirs = [p for p in ("/proc/acpi", "/sys/firmware", "/sys/dev/block") if os.path.exists(p)]
    assert files and masked_dirs, "this kernel has none of the masked paths"
    script = "".join(f"wc -c < {f}; " for f in files) + "".join(f"ls -A {d} | wc -l; " for d in masked_dirs)
    script += ("grep -E ' /proc/sys | /sys ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1; "
               "echo 1 > /proc/sys/kernel/domainname && echo writable")
    r = run(alpine, dirs, "sh", "-c", script)
    lines = r.out.split("\n")
    n = len(files) + len(masked_dirs)
    assert lines[:n] == ["0"] * n, r
    assert set(lines[n:n + 2]) == {"/proc/sys ro", "/sys ro"}, r
    assert "writable" not in r.out


def test_writes_go_to_upper_and_lowers_stay(alpine: tuple[str, ...], dirs: Dirs) -> None:
    motd_lower = [Path(d) / "etc/motd" for d in alpine if (Path(d) / "etc/motd").exists()]
    r = run(alpine, dirs, "sh", "-c", "echo data > /newfile && rm /etc/motd && echo ok")
    assert r.out == "ok\n", r
    assert (dirs.upper / "newfile").read_text() == "data\n"
    assert stat.S_ISCHR(os.lstat(dirs.upper / "etc/motd").st_mode)  # a whiteout
    assert motd_lower and all(p.exists() for p in motd_lower)
    assert not any((Path(d) / "newfile").exists() for d in alpine)


def test_readonly_rootfs(alpine: tuple[str, ...], dirs: Dirs) -> None:
    r = run(alpine, dirs, "sh", "-c", "touch /x; echo $?; echo y > /dev/shm/y && echo shm-ok",
            readonly_rootfs=True)
    assert r.out.split() == ["1", "shm-ok"], r


def test_bind_mounts_rw_and_ro(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from host\n")
    hostfile = tmp_path / "single"
    hostfile.write_text("file\n")
    binds = (BindMount(str(host), "/data"), BindMount(str(host), "/ro/nested", readonly=True),
             BindMount(str(hostfile), "/etc/single"))
    r = run(alpine, dirs, "sh", "-c", "cat /data/in /etc/single; echo out > /data/out; touch /ro/nested/x; echo $?",
            binds=binds)
    assert r.out == "from host\nfile\n1\n", r
    assert (host / "out").read_text() == "out\n"
    assert not (host / "x").exists()


def test_etc_files(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost box\n")
    r = run(alpine, dirs, "cat", "/etc/hosts", etc_files={"/etc/hosts": str(hosts)})
    assert r.out == "127.0.0.1 localhost box\n"


def test_bind_through_symlink_out_of_rootfs_is_refused(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.mkdir()
    os.symlink("../../../../../../../../../../" + str(target).lstrip("/"), dirs.upper / "escape")
    err = start_error(alpine, dirs, "true", binds=(BindMount(str(tmp_path), "/escape"),))
    assert err.exit_code == 125 and "outside the container rootfs" in err.message
    assert list(target.iterdir()) == []


def test_absolute_symlink_destination_stays_inside(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("inside\n")
    os.symlink("/opt/landing", dirs.upper / "abs")
    r = run(alpine, dirs, "cat", "/opt/landing/f", binds=(BindMount(str(src), "/abs"),))
    assert r.out == "inside\n", r


def test_tmpfs_mount(alpine: tuple[str, ...], dirs: Dirs) -> None:
    r = run(alpine, dirs, "sh", "-c", "echo x > /scratch/f && grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4",
            tmpfs=(TmpfsMount("/scratch", "rw,nosuid,size=1m,mode=1777"),))
    assert r.out.startswith("tmpfs rw,nosuid"), r
    assert "size=1024k" in r.out


def test_whiteout_and_opaque_layers(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    lower, upper = tmp_path / "l1", tmp_path / "l2"
    for d in (lower / "a", lower / "opq", upper / "a", upper / "opq"):
        d.mkdir(parents=True)
    for name in ("a/keep", "a/gone", "opq/hidden"):
        (lower / name).write_text(name)
    (upper / "opq" / "new").write_text("new")
    os.mknod(upper / "a" / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.setxattr(upper / "opq", "user.overlay.opaque", b"y")
    if not ROOTLESS:
        os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    r = run(alpine, dirs, "sh", "-c", "ls /a; echo --; ls /opq", lower_dirs=(str(upper), str(lower), *alpine))
    assert r.out.split() == ["keep", "--", "new"], r


# --- privileges ------------------------------------------------------------------------------------

def _status_fields(out: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_capabilities_of_root(alpine: tuple[str, ...], dirs: Dirs) -> None:
    fields = _status_fields(run(alpine, dirs, "cat", "/proc/self/status").out)
    mask = caps.cap_mask(PODMAN_DEFAULT_CAPS)
    assert int(fields["CapEff"], 16) == mask
    assert int(fields["CapPrm"], 16) == mask
    assert int(fields["CapBnd"], 16) == mask
    assert int(fields["CapInh"], 16) == 0 and int(fields["CapAmb"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "0"  # docker's and podman's default: setuid programs work


def test_capabilities_of_a_user(alpine: tuple[str, ...], dirs: Dirs) -> None:
    fields = _status_fields(run(alpine, dirs, "cat", "/proc/self/status", user="1000").out)
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert int(fields["CapBnd"], 16) == caps.cap_mask(PODMAN_DEFAULT_CAPS)


def test_added_capability_of_a_user_is_ambient(alpine: tuple[str, ...], dirs: Dirs) -> None:
    fields = _status_fields(run(alpine, dirs, "cat", "/proc/self/status", user="1000",
                                ambient_caps=("CAP_NET_BIND_SERVICE",)).out)
    assert int(fields["CapEff"], 16) == 1 << 10 and int(fields["CapAmb"], 16) == 1 << 10


def test_reduced_capability_set(alpine: tuple[str, ...], dirs: Dirs) -> None:
    fields = _status_fields(run(alpine, dirs, "cat", "/proc/self/status", caps=("CAP_CHOWN",)).out)
    assert int(fields["CapEff"], 16) == 1 and int(fields["CapBnd"], 16) == 1


def test_no_new_privs_can_be_on(alpine: tuple[str, ...], dirs: Dirs) -> None:
    fields = _status_fields(run(alpine, dirs, "cat", "/proc/self/status", no_new_privs=True).out)
    assert fields["NoNewPrivs"].strip() == "1"


def test_only_std_fds_and_keep_fds(alpine: tuple[str, ...], dirs: Dirs) -> None:
    leak_r, leak_w = os.pipe()
    os.set_inheritable(leak_w, True)
    keep_r, keep_w = os.pipe()
    try:
        out = run(alpine, dirs, "ls", "-l", "/proc/self/fd", keep_fds=(keep_w,)).out
    finally:
        for fd in (leak_r, leak_w, keep_r, keep_w):
            os.close(fd)
    # "N -> target" lines; ls's own handle on the directory it lists does not count.
    fds = {int(line.split(" -> ")[0].split()[-1]) for line in out.splitlines()
           if " -> " in line and not line.endswith("/fd")}
    assert fds == {0, 1, 2, keep_w}, out


def test_rlimits(alpine: tuple[str, ...], dirs: Dirs) -> None:
    import resource

    from rootlet.runtime.oci.spec import Rlimit

    r = run(alpine, dirs, "sh", "-c", "ulimit -n", rlimits=(Rlimit(resource.RLIMIT_NOFILE, 123, 456),))
    assert r.out == "123\n"


# --- network ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["none", "private"])
def test_network_namespace_has_only_lo_up(alpine: tuple[str, ...], dirs: Dirs, mode: str) -> None:
    r = run(alpine, dirs, "sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags", network=mode)
    name, flags = r.out.split()
    assert name == "lo" and int(flags, 16) & 1, r


# --- init, signals, clean-up -----------------------------------------------------------------------

def test_signal_under_init(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    with captured(tmp_path) as stdio:
        proc = spawn(make_spec(alpine, dirs, ("sleep", "100"), init=True, stdio=stdio))
    time.sleep(0.2)
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 143


def test_init_reaps_zombies(alpine: tuple[str, ...], dirs: Dirs) -> None:
    r = run(alpine, dirs, "sh", "-c", 'sh -c "sleep 0.2 & exit 0"; sleep 1; cat /proc/[0-9]*/stat', init=True)
    states = [line.split(") ", 1)[1][0] for line in r.out.splitlines() if ") " in line]
    assert states and "Z" not in states, r.out


def test_nothing_remains_after_wait(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    with captured(tmp_path) as stdio:
        proc = spawn(make_spec(alpine, dirs, ("sh", "-c", "sleep 100 & sleep 100 & echo started; wait"),
                               stdio=stdio))
    keeper = proc.keeper
    ns = os.readlink(f"/proc/{proc.pid}/ns/pid")
    proc.signal(signal.SIGKILL)
    assert proc.wait() == 137
    for pid in (proc.pid, keeper):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                assert os.readlink(entry / "ns/pid") != ns, entry
    assert not mounted_in_host(dirs.merged)
    assert list(dirs.merged.iterdir()) == []


def _read_pty(master: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(master, 1024)
        except OSError:  # EIO: every slave descriptor is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode().replace("\r\n", "\n")


TTY_SCRIPT = "[ -t 0 ] && [ -t 1 ] && echo is-tty; ls /dev/console; tty"


def test_tty_allocated_in_the_container(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    proc = spawn(make_spec(alpine, dirs, ("sh", "-c", TTY_SCRIPT + "; stty size"), tty=True))
    assert proc.pty_master is not None
    try:
        out = _read_pty(proc.pty_master)
    finally:
        os.close(proc.pty_master)
    assert proc.wait() == 0
    lines = [line.replace("\x1b[1;35m", "").replace("\x1b[m", "") for line in out.splitlines()]
    assert lines[:3] == ["is-tty", "/dev/console", "/dev/pts/0"], out


# --- fuse-overlayfs --------------------------------------------------------------------------------

def _fuse_usable() -> str | None:
    if not os.path.exists("/usr/bin/fuse-overlayfs") and subprocess.run(
            ["sh", "-c", "command -v fuse-overlayfs"], capture_output=True).returncode:
        return "fuse-overlayfs is not installed"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"/dev/fuse is not usable: {e.strerror}"
    return None


def test_fuse_overlay(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    why = _fuse_usable()
    if why:
        pytest.skip(why)
    lower, upper = tmp_path / "l1", tmp_path / "l2"
    for d in (lower / "a", upper / "a"):
        d.mkdir(parents=True)
    (lower / "a" / "keep").write_text("k")
    (lower / "a" / "gone").write_text("g")
    os.mknod(upper / "a" / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    r = run(alpine, dirs, "sh", "-c", "ls /a; id -u; echo x > /w; grep ' / ' /proc/mounts | cut -d' ' -f3",
            overlay="fuse", user="1000", cwd="/tmp", lower_dirs=(str(upper), str(lower), *alpine))
    assert r.out.split() == ["keep", "1000", "fuse.fuse-overlayfs"], r
    assert not mounted_in_host(dirs.merged)


def test_kernel_overlay_mode_is_kernel(alpine: tuple[str, ...], dirs: Dirs) -> None:
    r = run(alpine, dirs, "sh", "-c", "grep ' / ' /proc/mounts | cut -d' ' -f3", overlay="kernel")
    assert r.out == "overlay\n"


@pytest.mark.root_only
def test_rootful_has_no_user_namespace(alpine: tuple[str, ...], dirs: Dirs) -> None:
    r = run(alpine, dirs, "cat", "/proc/self/uid_map")
    assert r.out.split() == ["0", "0", "4294967295"]


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (it may vanish while we look)."""
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return False


def test_container_dies_with_its_caller(alpine: tuple[str, ...], dirs: Dirs, tmp_path: Path) -> None:
    code = f"""
import os, sys
from rootlet.runtime.oci.spawn import spawn
from rootlet.runtime.oci.spec import RuntimeSpec
spec = RuntimeSpec(lower_dirs={alpine!r}, upper_dir={str(dirs.upper)!r}, work_dir={str(dirs.work)!r},
                     merged_dir={str(dirs.merged)!r}, argv=("sleep", "100"), env=({PATH_ENV!r},))
proc = spawn(spec)
print(proc.pid, proc.keeper, flush=True)
sys.stdin.read()
"""
    caller = subprocess.Popen([os.sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=str(Path(__file__).resolve().parents[2]))
    try:
        pids = [int(x) for x in caller.stdout.readline().split()]  # type: ignore[union-attr]
        assert len(pids) == 2
        caller.kill()
        caller.wait()
        deadline = time.monotonic() + 5
        alive = pids
        while alive and time.monotonic() < deadline:
            alive = [p for p in pids if _running(p)]
            time.sleep(0.02)
        assert alive == [], "the container outlived its caller"
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()


@pytest.mark.skipif(not ROOTLESS, reason="single-id mode is for users without subordinate ids")
def test_single_id_mode(alpine: tuple[str, ...], dirs: Dirs) -> None:
    from rootlet.runtime.oci.idmap import plan_userns

    plan = plan_userns(subuid_path="/nonexistent", subgid_path="/nonexistent")
    assert plan.single_id
    r = run(alpine, dirs, "sh", "-c", "cat /proc/self/uid_map; id -u; ls /dev/pts", plan=plan)
    assert r.out.split()[:4] == ["0", str(os.getuid()), "1", "0"], r


# --- the start gate: a user-mode network is attached while the command waits -------------------------

def _waiting_status(pid: int) -> dict[str, str]:
    """/proc/PID/status of a container process, read from the host."""
    with open(f"/proc/{pid}/status") as f:
        return _status_fields(f.read())


def test_a_gated_command_waits_fully_set_up_and_runs_once_released(alpine: tuple[str, ...], dirs: Dirs,
                                                                     tmp_path: Path) -> None:
    """Everything but the execve is done at the gate (so it overlaps the network helper's start):
    the capabilities are the container's and no_new_privs is set, yet the command has not run."""
    with captured(tmp_path) as stdio:
        proc = spawn(make_spec(alpine, dirs, ("echo", "ran"), stdio=stdio, gate=True, no_new_privs=True))
    try:
        deadline = time.monotonic() + 10
        while _waiting_status(proc.pid)["NoNewPrivs"] != "1" and time.monotonic() < deadline:
            time.sleep(0.01)  # setting up, not yet at the gate
        fields = _waiting_status(proc.pid)
        assert fields["NoNewPrivs"] == "1" and int(fields["CapEff"], 16) == caps.cap_mask(PODMAN_DEFAULT_CAPS)
        time.sleep(0.2)
        assert (tmp_path / "stdout").read_text() == "" and proc.returncode is None  # held at the gate
        proc.release()
        assert proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.signal(signal.SIGKILL)
            proc.wait()
    assert (tmp_path / "stdout").read_text() == "ran\n"


@pytest.mark.parametrize("init", [False, True], ids=["command", "init"])
def test_a_gate_never_opened_ends_the_container_without_running_the_command(alpine: tuple[str, ...], dirs: Dirs,
                                                                            tmp_path: Path, init: bool) -> None:
    with captured(tmp_path) as stdio:
        proc = spawn(make_spec(alpine, dirs, ("echo", "ran"), stdio=stdio, gate=True, init=init))
    assert proc.wait() == 125  # the caller gave up (its network could not be attached)
    assert (tmp_path / "stdout").read_text() == ""
    assert not mounted_in_host(dirs.merged)


def test_a_gated_container_that_cannot_start_reports_its_own_failure(alpine: tuple[str, ...], dirs: Dirs,
                                                                      tmp_path: Path) -> None:
    """A failure before the gate (here: the command does not exist) is waiting when the network
    attach fails too, and is the one reported."""
    with captured(tmp_path) as stdio:
        proc = spawn(make_spec(alpine, dirs, ("nosuchcmd",), stdio=stdio, gate=True))
    assert proc.failed_at_gate(timeout=10)
    with pytest.raises(ContainerStartError) as info:
        proc.release()
    assert info.value.exit_code == 127 and "nosuchcmd" in info.value.message
