"""Every ``rootlet run`` flag and rule not covered by test_run.py, end to end as the real command.

Rootless, against images in the local registry, each test on a fresh store: a pty for ``-t``,
``--userns keep-id``, whiteouts and opaque directories of a multi-layer image under both overlays,
no leftovers after a normal exit, Ctrl-C, SIGKILL of the container's PID 1 and SIGKILL of
``rootlet run`` itself, and one observable effect for every other flag. Network traffic only ever
goes to loopback.

Nothing is mocked. Every process a test starts is killed in its teardown (the ``procs`` fixture),
so a failing test leaves nothing running.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import pwd
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunRootlet, free_port, need, rootlet_command
from tests.support import layouts
from tests.support.registries import push_layout

pytestmark = pytest.mark.system

OVERLAYS = ("kernel", "fuse")


# --- images -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def whiteout_image(registry: str, test_images: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 3-layer image: Alpine's rootfs; /a/file, /a/other, /b/dir/x, /b/old, /c/sub/y, /keep; then a
    layer that whites out /a/file and the directory /c and makes /b opaque, adding /b/new."""
    need("skopeo")
    base = [
        layouts.directory("a/"), layouts.file("a/file", b"gone\n"), layouts.file("a/other", b"other\n"),
        layouts.directory("b/"), layouts.directory("b/dir/"), layouts.file("b/dir/x", b"x\n"),
        layouts.file("b/old", b"old\n"),
        layouts.directory("c/"), layouts.directory("c/sub/"), layouts.file("c/sub/y", b"y\n"),
        layouts.file("keep", b"kept\n"),
    ]
    top = [
        layouts.file("a/.wh.file"),
        layouts.directory("b/"), layouts.file("b/.wh..wh..opq"), layouts.file("b/new", b"new\n"),
        layouts.file(".wh.c"),
    ]
    out = layouts.layout_dir(tmp_path_factory.mktemp("whiteouts"), "layout")
    layouts.write_layout(out, [(layouts.alpine_rootfs_tar(test_images), "gzip"),
                               (layouts.tar_bytes(base), "gzip"), (layouts.tar_bytes(top), "gzip")], ref="latest")
    repo = f"flags/whiteouts-{uuid.uuid4().hex[:8]}:latest"
    push_layout(registry, out, "latest", repo)
    return f"{registry}/{repo}"


_KERNEL_OVERLAY: dict[str, str | None] = {}


def _kernel_overlay_problem(rootlet: RunRootlet) -> str | None:
    """Why the kernel overlay cannot be used here (from ``rootlet info``), or None when it works."""
    if "why" not in _KERNEL_OVERLAY:
        info = rootlet("info")
        if "kernel overlay in a user namespace works" in info.stdout:
            _KERNEL_OVERLAY["why"] = None
        else:
            line = next((ln.strip() for ln in info.stdout.splitlines() if "kernel overlay" in ln), info.stderr.strip())
            _KERNEL_OVERLAY["why"] = f"the kernel overlay cannot mount here ({line})"
    return _KERNEL_OVERLAY["why"]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rootlet: RunRootlet) -> str:
    """ROOTLET_OVERLAY for the test: "kernel" (skipped with the reason when it cannot mount) or "fuse"."""
    if request.param == "kernel":
        why = _kernel_overlay_problem(rootlet)
        if why:
            pytest.skip(why)
    else:
        need("fuse-overlayfs")
    return request.param


# --- processes --------------------------------------------------------------------------------------

class Procs:
    """Processes a test started (and pids it saw): all killed at teardown if still there."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.popens: list[subprocess.Popen] = []
        self.pids: dict[int, int] = {}   # pid -> start time

    def rootlet(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        # Ctrl-C as a terminal delivers it: to a process that has the default disposition (a test
        # run started in the background by a shell would otherwise pass SIGINT down ignored).
        kwargs.setdefault("preexec_fn", lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        proc = subprocess.Popen(rootlet_command() + list(args), env=full_env, **kwargs)
        self.popens.append(proc)
        return proc

    def track(self, snapshot: dict[int, ProcInfo]) -> None:
        self.pids.update({pid: p.start for pid, p in snapshot.items()})

    def cleanup(self) -> None:
        for proc in self.popens:
            if proc.poll() is None:
                self.track(descendants(proc.pid))
                proc.kill()
        for pid, start in self.pids.items():
            if alive(pid, start):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for proc in self.popens:
            try:
                proc.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass


@pytest.fixture
def procs(rootlet_env: dict[str, str]) -> Iterator[Procs]:
    p = Procs(rootlet_env)
    try:
        yield p
    finally:
        p.cleanup()


class ProcInfo:
    """One /proc entry."""

    def __init__(self, pid: int, ppid: int, state: str, start: int, uid: int, cmdline: str) -> None:
        self.pid, self.ppid, self.state, self.start, self.uid, self.cmdline = pid, ppid, state, start, uid, cmdline

    def __repr__(self) -> str:
        return f"{self.pid}[{self.state}] {self.cmdline!r}"


def _read_proc(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return ProcInfo(pid, int(fields[1]), fields[0], int(fields[19]), uid, cmdline)


def process_table() -> dict[int, ProcInfo]:
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _read_proc(int(name))
            if info is not None:
                table[info.pid] = info
    return table


def descendants(root: int, table: dict[int, ProcInfo] | None = None) -> dict[int, ProcInfo]:
    """Every live process whose parent chain leads to ``root`` (not ``root`` itself)."""
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    out: dict[int, ProcInfo] = {}
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        if pid in table and pid not in out:
            out[pid] = table[pid]
            todo += children.get(pid, ())
    return out


def alive(pid: int, start: int) -> bool:
    """The process with this pid and start time still exists and is not a zombie."""
    info = _read_proc(pid)
    return info is not None and info.start == start and info.state not in ("Z", "X")


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def caught_signals(pid: int) -> int:
    """The SigCgt mask of ``pid`` (bit N-1 set: a handler for signal N is installed)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def wait_for_handlers(proc: subprocess.Popen, *sigs: int) -> None:
    """Wait until ``rootlet run`` has installed its signal proxy (a handler for every one of ``sigs``)."""
    mask = sum(1 << (s - 1) for s in sigs)

    def installed() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"rootlet exited {proc.returncode} early: {_stderr(proc)}")
        return caught_signals(proc.pid) & mask == mask

    wait_for("rootlet's signal handlers", installed)


def _stderr(proc: subprocess.Popen) -> str:
    try:
        _, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        return "(still running)"
    return err.decode(errors="replace") if isinstance(err, bytes) else str(err)


def container_pid1(proc: subprocess.Popen, cmdline: str) -> ProcInfo:
    """The container process of our uid running ``cmdline`` whose parent chain leads to ``proc``."""

    def find() -> ProcInfo | None:
        if proc.poll() is not None:
            raise AssertionError(f"rootlet exited {proc.returncode}: {_stderr(proc)}")
        for info in descendants(proc.pid).values():
            if info.cmdline == cmdline and info.uid == os.getuid() and info.state != "Z":
                return info
        return None

    return wait_for(f"the container's `{cmdline}` process", find)


def _running(store_root: Path) -> bool:
    for state in (store_root / "containers").glob("*/state.json"):
        try:
            return json.loads(state.read_text()).get("status") == "running"
        except ValueError:
            return False
    return False


def one_container(store_root: Path) -> str:
    entries = list((store_root / "containers").iterdir())
    assert len(entries) == 1, entries
    return entries[0].name


def leftovers(store_root: Path, cid: str, snapshot: dict[int, ProcInfo]) -> list[str]:
    """What is left of a container: live processes of the snapshot, processes whose command line
    names the container or the store, and a mount of its merged dir."""
    found = [f"still running: {info!r}" for pid, info in snapshot.items() if alive(pid, info.start)]
    for info in process_table().values():
        if info.uid == os.getuid() and info.state != "Z" and info.pid != os.getpid() and \
                (cid in info.cmdline or str(store_root) in info.cmdline) and info.pid not in snapshot:
            found.append(f"mentions the container: {info!r}")
    merged = str(store_root / "containers" / cid / "merged")
    with open("/proc/self/mountinfo") as f:
        found += [f"mounted: {line.strip()}" for line in f if merged in line]
    return found


def assert_nothing_left(store_root: Path, cid: str, snapshot: dict[int, ProcInfo], removed: bool = True) -> None:
    deadline = time.monotonic() + 10
    while leftovers(store_root, cid, snapshot) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(store_root, cid, snapshot) == []
    if removed:
        assert list((store_root / "containers").iterdir()) == []


def start_sleeper(procs: Procs, store_root: Path, image: str, *flags: str, overlay: str = "fuse",
                  network: str = "slirp4netns", argv: tuple[str, ...] = ("sleep", "1000"),
                  **popen: Any) -> tuple[subprocess.Popen, ProcInfo, str, dict[int, ProcInfo]]:
    """``rootlet run --rm FLAGS IMAGE ARGV`` in the background; returns (rootlet, the container's
    process, the container id, a snapshot of every process under rootlet) once all are up."""
    proc = procs.rootlet("run", "--rm", "--network", network, *flags, image, *argv,
                         env={"ROOTLET_OVERLAY": overlay}, **popen)
    pid1 = container_pid1(proc, " ".join(argv))
    wait_for("rootlet to record the container running", lambda: _running(store_root))
    if "--sig-proxy=false" in flags:
        time.sleep(0.2)   # no handler to wait for: let rootlet settle into waiting
    else:
        wait_for_handlers(proc, signal.SIGUSR2)   # the last handler rootlet installs once it is attached
    snapshot = descendants(proc.pid)
    procs.track(snapshot)
    names = " ".join(i.cmdline for i in snapshot.values())
    if overlay == "fuse":
        assert "fuse-overlayfs" in names, snapshot
    if network in ("slirp4netns", "pasta"):
        assert network in names, snapshot
    return proc, pid1, one_container(store_root), snapshot


# --- a pty for -t -------------------------------------------------------------------------------------

def _make_controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_pty(procs: Procs, args: list[str], *, rows: int = 33, cols: int = 77,
               script: tuple[tuple[str | Callable[[int], bool], bytes], ...] = (),
               timeout: float = 20.0) -> tuple[int, str]:
    """Run ``rootlet ARGS`` with its stdin/stdout/stderr on a new pty of ``rows``×``cols`` (its
    controlling terminal); ``script`` is (expected, bytes) steps: when the output so far contains the
    expected text (or the callable, given the master, says so) the bytes are typed. Returns
    (exit code, everything written to the terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        proc = procs.rootlet(*args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                             preexec_fn=_make_controlling_tty)
    finally:
        os.close(slave)
    out = b""
    steps = list(script)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if steps:
                expected, data = steps[0]
                ready = expected(master) if callable(expected) else expected.encode() in out
                if ready:
                    os.write(master, data)
                    steps.pop(0)
                    continue
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:     # EIO: every slave descriptor is closed
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None and not steps:
                # Drain what is left, then stop.
                while select.select([master], [], [], 0.1)[0]:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    out += chunk
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"rootlet did not finish; terminal so far: {out!r}") from None
    finally:
        os.close(master)
    return code, out.decode(errors="replace")


def _raw(master: int) -> bool:
    """The terminal is in raw mode (rootlet has taken it over for -it)."""
    lflag = termios.tcgetattr(master)[3]
    return not lflag & (termios.ICANON | termios.ECHO)


def test_tty_gives_the_container_a_pty_with_the_outer_window_size(procs: Procs, alpine: str) -> None:
    code, out = run_in_pty(procs, ["run", "--rm", "-t", alpine, "sh", "-c", 'tty; stty size; echo "TERM=$TERM"'],
                           rows=33, cols=77)
    lines = out.replace("\r", "").splitlines()   # the inner and the outer pty both turn \n into \r\n
    assert code == 0, out
    assert lines and re.fullmatch(r"/dev/pts/\d+", lines[0]), out
    assert lines[1:] == ["33 77", "TERM=xterm"], out


def test_interactive_tty_passes_typed_input_and_the_exit_code(procs: Procs, alpine: str) -> None:
    typed = "typed into the pty"
    code, out = run_in_pty(procs, ["run", "--rm", "-it", alpine, "sh", "-c", "cat; exit 3"], script=(
        (_raw, typed.encode() + b"\r"),
        # the pty echoes the line and cat writes it back: two copies, then end of input
        (f"{typed}\r\n{typed}", b"\x04"),
    ))
    assert out.count(typed) >= 2, out
    assert code == 3, out


def test_interactive_without_tty_reads_piped_input(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "-i", alpine, "sh", "-c", "cat; tty; exit 4", input="line one\nline two\n")
    assert (proc.returncode, proc.stdout) == (4, "line one\nline two\nnot a tty\n"), proc.stderr


# --- --userns keep-id -----------------------------------------------------------------------------------

def test_keep_id_runs_as_the_host_user(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--userns", "keep-id", alpine, "sh", "-c", "id -u; id -g; whoami")
    assert proc.stdout.split() == [str(os.getuid()), str(os.getgid()), pwd.getpwuid(os.getuid()).pw_name], \
        proc.stderr


def test_keep_id_files_in_a_bind_mount_belong_to_the_host_user(rootlet: RunRootlet, alpine: str,
                                                                tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    proc = rootlet("run", "--rm", "--userns", "keep-id", "-v", f"{data}:/data", alpine,
                   "sh", "-c", "echo mine > /data/f && mkdir /data/d")
    assert proc.returncode == 0, proc.stderr
    for path in (data / "f", data / "d"):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), path


def test_keep_id_keeps_the_image_root_owned_files_root(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--userns", "keep-id", alpine, "stat", "-c", "%u:%g %n", "/bin/busybox", "/root",
                   "/etc/shadow")
    assert proc.stdout.splitlines() == ["0:0 /bin/busybox", "0:0 /root", "0:42 /etc/shadow"], proc.stderr


def test_keep_id_user_cannot_rewrite_the_etc_files_rootlet_provides(rootlet: RunRootlet, alpine: str) -> None:
    """/etc/passwd, group, hosts, resolv.conf and hostname are root's in the container (as the
    image's own are, and as podman makes them): the unprivileged keep-id user may not rewrite them."""
    files = ["/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]
    proc = rootlet("run", "--rm", "--userns", "keep-id", alpine, "sh", "-c",
                   f'stat -c "%u:%g %n" {" ".join(files)}; '
                   'echo "evil::0:0::/:/bin/sh" >> /etc/passwd 2>/dev/null && echo passwd-writable; true')
    assert proc.stdout.splitlines() == [f"0:0 {f}" for f in files], proc.stdout + proc.stderr


def test_keep_id_entries_are_the_containers_own_so_adduser_works(rootlet: RunRootlet, alpine: str) -> None:
    """keep-id's passwd/group entries go into the container's own files, as podman writes them (a
    bind-mounted /etc/passwd makes adduser fail with EBUSY/EXDEV); a second start adds nothing.
    adduser's way of writing: a new file renamed over the old one."""
    add_bob = ("grep -q ^bob: /etc/passwd || { cat /etc/passwd > /etc/passwd+ && "
               "echo 'bob:x:1234:1234::/:/bin/sh' >> /etc/passwd+ && mv /etc/passwd+ /etc/passwd; }")
    script = (f"{add_bob}; grep -c ^bob: /etc/passwd; grep -c ':{os.getuid()}:{os.getgid()}:' /etc/passwd; "
              "grep -c ' /etc/passwd ' /proc/self/mountinfo")
    assert rootlet("create", "--name", "kid", "--userns", "keep-id", "-u", "0", alpine, "sh", "-c", script,
                   check=True)
    for _ in range(2):
        proc = rootlet("start", "-a", "kid")
        assert proc.stdout.split() == ["1", "1", "0"], proc.stdout + proc.stderr


def test_keep_id_with_user_0_is_root(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--userns", "keep-id", "-u", "0", alpine, "sh", "-c", "id -u; id -g; whoami")
    assert proc.stdout.split() == ["0", "0", "root"], proc.stderr


def test_exec_into_a_keep_id_container_runs_as_the_host_uid(rootlet: RunRootlet, alpine: str) -> None:
    started = rootlet("run", "-d", "--userns", "keep-id", alpine, "sleep", "1000")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        proc = rootlet("exec", cid, "sh", "-c", "id -u; id -g")
        assert proc.stdout.split() == [str(os.getuid()), str(os.getgid())], proc.stderr
    finally:
        rootlet("rm", "-f", cid)


@pytest.mark.parametrize("userns, overlay_env, why", [
    ("keep-id", "kernel", "fuse-overlayfs"),
    ("host", None, "not possible rootless"),
    ("auto", None, "unsupported --userns"),
])
def test_userns_modes_that_cannot_work_are_refused(rootlet: RunRootlet, alpine: str, userns: str,
                                                    overlay_env: str | None, why: str) -> None:
    if userns == "host" and os.getuid() == 0:
        pytest.skip("--userns host is refused only rootless")
    proc = rootlet("run", "--rm", "--userns", userns, alpine, "echo", "ran",
                   env={"ROOTLET_OVERLAY": overlay_env} if overlay_env else None)
    assert (proc.returncode, proc.stdout) == (125, ""), proc.stderr
    assert proc.stderr.startswith("Error: ") and why in proc.stderr and "Hint: " in proc.stderr


# --- whiteouts and opaque directories ------------------------------------------------------------------

def test_whiteouts_and_opaque_directories_in_a_running_container(rootlet: RunRootlet, whiteout_image: str,
                                                                 overlay: str) -> None:
    script = ('for d in /a /b /b/dir /c /keep; do if [ -e "$d" ]; then echo "$d: $(ls -A "$d" | tr "\\n" " ")"; '
              'else echo "$d: absent"; fi; done; cat /keep; grep " / " /proc/self/mounts | cut -d" " -f3; '
              'echo again > /a/file && cat /a/file')
    proc = rootlet("run", "--rm", whiteout_image, "sh", "-c", script, env={"ROOTLET_OVERLAY": overlay})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [ln.rstrip() for ln in lines[:5]] == [
        "/a: other", "/b: new", "/b/dir: absent", "/c: absent", "/keep: /keep"], proc.stdout
    assert lines[5] == "kept"
    assert lines[6] == ("overlay" if overlay == "kernel" else "fuse.fuse-overlayfs")
    assert lines[7] == "again"


# --- nothing leaks ------------------------------------------------------------------------------------

def test_nothing_left_after_a_normal_exit(procs: Procs, alpine: str, store_root: Path, tmp_path: Path,
                                         overlay: str) -> None:
    marks = tmp_path / "m"
    marks.mkdir()
    proc, _, cid, snapshot = start_sleeper(procs, store_root, alpine, "-v", f"{marks}:/m", overlay=overlay,
                                           argv=("sh", "-c", "while [ ! -e /m/stop ]; do sleep 0.05; done"))
    (marks / "stop").touch()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert_nothing_left(store_root, cid, snapshot)


@pytest.mark.parametrize("flags", [("--init",), ("--sig-proxy=false",)], ids=["proxied", "not-proxied"])
def test_nothing_left_after_ctrl_c(procs: Procs, alpine: str, store_root: Path, overlay: str,
                                   flags: tuple[str, ...]) -> None:
    """Ctrl-C is SIGINT to the terminal's foreground process group: rootlet and its own children.
    Proxied, it must reach the command: that runs under --init, because a PID 1 without a handler
    ignores SIGINT (docker's rule). Not proxied, it interrupts rootlet, which ends the container."""
    proc, _, cid, snapshot = start_sleeper(procs, store_root, alpine, *flags, overlay=overlay,
                                           start_new_session=True)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert_nothing_left(store_root, cid, snapshot)


def test_a_second_ctrl_c_stops_the_container_and_a_third_kills_it(procs: Procs, alpine: str,
                                                                    store_root: Path) -> None:
    """The first Ctrl-C goes to the container, which decides what it means; a second one stops it
    (its stop signal, SIGKILL after a grace) and says so; a third kills it at once."""
    trap = ("sh", "-c", "trap 'echo INT' INT; trap 'exit 3' TERM; while :; do sleep 0.1; done")
    proc, pid1, cid, snapshot = start_sleeper(procs, store_root, alpine, argv=trap, start_new_session=True)
    # The shell exists before it has run its `trap`s: a SIGINT before that is ignored (PID 1).
    wait_for("the container's INT and TERM traps",
             lambda: caught_signals(pid1.pid) & (1 << (signal.SIGINT - 1)) and
             caught_signals(pid1.pid) & (1 << (signal.SIGTERM - 1)))
    os.killpg(proc.pid, signal.SIGINT)
    assert select.select([proc.stdout], [], [], 10)[0], "the container's INT trap did not run"
    assert proc.stdout.readline() == b"INT\n"             # proxied: its INT trap ran, and it goes on
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err                      # its TERM trap ran: stopped gracefully
    assert out == b"", out
    assert "press Ctrl-C again" in err.decode() and len(err.decode().splitlines()) == 1, err
    assert_nothing_left(store_root, cid, snapshot)

    proc, _, cid, snapshot = start_sleeper(procs, store_root, alpine, start_new_session=True)  # ignores TERM
    started = time.monotonic()
    for _ in range(3):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.2)
    proc.communicate(timeout=30)
    assert proc.returncode == 137 and time.monotonic() - started < 4  # killed at once, not after the grace
    assert_nothing_left(store_root, cid, snapshot)


def test_nothing_left_after_the_container_pid1_is_killed(procs: Procs, alpine: str, store_root: Path,
                                                         overlay: str) -> None:
    proc, pid1, cid, snapshot = start_sleeper(procs, store_root, alpine, overlay=overlay)
    os.kill(pid1.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 137, err
    assert_nothing_left(store_root, cid, snapshot)


@pytest.mark.parametrize("network", ["slirp4netns", "pasta"])
def test_nothing_left_after_rootlet_itself_is_killed(procs: Procs, rootlet: RunRootlet, alpine: str,
                                                     store_root: Path, overlay: str, network: str) -> None:
    need(network)
    proc, _, cid, snapshot = start_sleeper(procs, store_root, alpine, overlay=overlay, network=network)
    proc.kill()
    proc.communicate(timeout=30)
    assert_nothing_left(store_root, cid, snapshot, removed=False)
    ps = rootlet("ps", "-a")
    line = next((ln for ln in ps.stdout.splitlines() if ln.startswith(cid[:12])), None)
    assert line is not None and "Exited (137)" in line, ps.stdout + ps.stderr
    rm = rootlet("rm", "-f", cid)
    assert rm.returncode == 0, rm.stderr
    assert list((store_root / "containers").iterdir()) == []


# --- environment, user, names ----------------------------------------------------------------------------

def _env_of(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def test_env_passes_host_values_through_and_sets_values(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "-e", "PASSED", "-e", "NOT_ON_HOST", "-e", "SET=v=1", "-e", "EMPTY=", alpine, "env",
                   env={"PASSED": "from the host"})
    env = _env_of(proc.stdout)
    assert env["PASSED"] == "from the host", proc.stderr
    assert env["SET"] == "v=1" and env["EMPTY"] == ""
    assert "NOT_ON_HOST" not in env


def test_env_file_skips_comments_and_takes_bare_names_from_the_host(rootlet: RunRootlet, alpine: str,
                                                                    tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=1\n\n   # an indented comment\nBARE_SET\nBARE_UNSET\n"
                        "SPACED=a b c\nOVERRIDDEN=file\n")
    proc = rootlet("run", "--rm", "--env-file", str(env_file), "-e", "OVERRIDDEN=flag", alpine, "env",
                   env={"BARE_SET": "host value"})
    env = _env_of(proc.stdout)
    assert env["FROM_FILE"] == "1", proc.stderr
    assert env["BARE_SET"] == "host value"
    assert env["SPACED"] == "a b c"
    assert env["OVERRIDDEN"] == "flag"
    assert "BARE_UNSET" not in env
    assert not any(k.lstrip().startswith("#") for k in env)


def test_workdir_is_created_for_the_user(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "-w", "/made/on/demand", "-u", "nobody", alpine,
                   "sh", "-c", "pwd; stat -c %U /made/on/demand; touch here")
    assert proc.stdout.split() == ["/made/on/demand", "nobody"], proc.stderr
    assert proc.returncode == 0


def test_user_by_name(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "-u", "nobody", alpine, "sh", "-c", "id -u; id -g; id -un")
    assert proc.stdout.split() == ["65534", "65534", "nobody"], proc.stderr


def test_user_uid_and_gid(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "-u", "1234:5678", alpine, "sh", "-c", "id -u; id -g")
    assert proc.stdout.split() == ["1234", "5678"], proc.stderr


@pytest.mark.parametrize(("user", "expected"), [
    ("nobody", "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)"),
    ("nobody:nogroup", "uid=65534(nobody) gid=65533(nogroup) groups=65533(nogroup)"),
    ("daemon", "uid=2(daemon) gid=2(daemon) groups=1(bin),2(daemon),4(adm)"),
    ("1000", "uid=1000(1000) gid=0(root) groups=0(root)"),
    ("1000:1000", "uid=1000(1000) gid=1000(1000) groups=1000(1000)"),
])
def test_id_shows_the_primary_group_and_unknown_ids_get_entries_as_in_podman(rootlet: RunRootlet, alpine: str,
                                                                            user: str, expected: str) -> None:
    """The primary group is a supplementary group too, and a numeric user the image does not list
    gets a passwd entry (and its numeric group a group entry), so ``id`` and ``whoami`` work: the
    lines are podman 4.3's for the same image."""
    proc = rootlet("run", "--rm", "-u", user, alpine, "sh", "-c", "id; whoami")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [expected, user.split(":")[0]], proc.stdout + proc.stderr


def test_an_unknown_uid_gets_podmans_passwd_entry_and_the_image_file_is_untouched(rootlet: RunRootlet,
                                                                                   alpine: str) -> None:
    proc = rootlet("run", "--rm", "-u", "1000:1000", alpine, "sh", "-c",
                   "grep ^1000: /etc/passwd /etc/group; grep -c . /etc/passwd; echo $HOME")
    assert proc.stdout.splitlines()[:2] == ["/etc/passwd:1000:*:1000:1000:container user:/:/bin/sh",
                                            "/etc/group:1000:x:1000:1000"], proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[3] == "/", proc.stdout
    image_lines = int(proc.stdout.splitlines()[2]) - 1
    plain = rootlet("run", "--rm", alpine, "sh", "-c", "grep -c . /etc/passwd; grep -c ^1000: /etc/passwd")
    assert plain.stdout.split() == [str(image_lines), "0"], plain.stdout + plain.stderr


def test_group_add_adds_supplementary_groups(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "-u", "nobody", "--group-add", "4242", "--group-add", "99", alpine, "id", "-G")
    groups = proc.stdout.split()
    assert groups[0] == "65534", proc.stderr
    assert {"4242", "99"} <= set(groups)


def test_group_add_resolves_names_in_the_image_group_file(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "-u", "nobody", "--group-add", "wheel", "--group-add", "audio", alpine, "id", "-Gn")
    assert proc.returncode == 0, proc.stderr
    assert {"wheel", "audio"} <= set(proc.stdout.split())
    missing = rootlet("run", "--rm", "--group-add", "no-such-group", alpine, "true")
    assert missing.returncode == 126 and "unable to find group no-such-group" in missing.stderr


def test_name_and_hostname(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--name", "web1", "--hostname", "box", alpine, "sh", "-c", "hostname; cat /etc/hostname")
    assert proc.stdout.split() == ["box", "box"], proc.stderr
    assert rootlet("ps", "-a", "--filter", "name=web1", "-q").stdout.strip() != ""


def test_etc_hosts_names_the_container_and_the_host_and_etc_mtab_exists(rootlet: RunRootlet, alpine: str) -> None:
    """As podman writes them: the container's address carries its hostname and its name;
    host.containers.internal is the host's own address (slirp4netns reaches the host there, not
    at its loopback); /etc/mtab, missing from the image, is a link to /proc/mounts."""
    from rootlet.runtime.net.addresses import host_address

    proc = rootlet("run", "--rm", "--network", "slirp4netns", "--name", "web2", "--hostname", "box", alpine,
                   "sh", "-c", "cat /etc/hosts; readlink /etc/mtab; grep -c ' / ' /etc/mtab")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "10.0.2.100\tbox web2" in lines, proc.stdout
    host = host_address()
    if host is not None:  # a host with an address beyond loopback
        assert f"{host}\thost.containers.internal host.docker.internal" in lines, proc.stdout
    assert lines[-2:] == ["/proc/mounts", "1"], proc.stdout
    none = rootlet("run", "--rm", "--network", "none", alpine, "grep", "-c", "host.containers.internal", "/etc/hosts")
    assert none.stdout.strip() == "0", none.stdout + none.stderr


def test_duplicate_name_is_refused_with_a_hint(rootlet: RunRootlet, alpine: str) -> None:
    assert rootlet("run", "--name", "twice", alpine, "true").returncode == 0
    proc = rootlet("run", "--rm", "--name", "twice", alpine, "echo", "ran")
    assert proc.returncode == 125
    assert proc.stdout == ""
    assert proc.stderr.startswith("Error: ") and "twice" in proc.stderr
    assert "Hint: " in proc.stderr


# --- mounts ---------------------------------------------------------------------------------------------

def test_mount_type_bind_read_write_and_readonly(rootlet: RunRootlet, alpine: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    proc = rootlet("run", "--rm", "--mount", f"type=bind,source={data},destination=/data", alpine,
                   "sh", "-c", "echo bound > /data/f")
    assert proc.returncode == 0, proc.stderr
    assert (data / "f").read_text() == "bound\n"
    proc = rootlet("run", "--rm", "--mount", f"type=bind,src={data},dst=/data,readonly", alpine,
                   "sh", "-c", "cat /data/f; echo x > /data/g")
    assert proc.stdout == "bound\n" and proc.returncode != 0
    assert not (data / "g").exists()


def test_mount_type_volume_persists(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "--rm", "--mount", "type=volume,source=vol1,target=/v", alpine,
            "sh", "-c", "echo kept > /v/f", check=True)
    proc = rootlet("run", "--rm", "--mount", "type=volume,source=vol1,destination=/elsewhere", alpine,
                   "cat", "/elsewhere/f")
    assert proc.stdout == "kept\n", proc.stderr


def test_mount_type_tmpfs(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--mount", "type=tmpfs,destination=/t,tmpfs-size=2m", alpine,
                   "sh", "-c", "grep ' /t ' /proc/self/mounts; touch /t/x")
    fields = proc.stdout.split()
    assert fields[:3] == ["tmpfs", "/t", "tmpfs"], proc.stderr
    assert "size=2048k" in fields[3].split(",")
    assert proc.returncode == 0


def test_tmpfs_size(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--tmpfs", "/x:size=1m", alpine, "sh", "-c", "df -k /x | tail -1; "
                   "grep ' /x ' /proc/self/mounts")
    df, mount = proc.stdout.splitlines()
    assert df.split()[1] == "1024", proc.stdout + proc.stderr
    assert mount.split()[2] == "tmpfs" and "size=1024k" in mount.split()[3].split(",")


# --- process, capabilities, limits ----------------------------------------------------------------------

def _zombies(rootlet: RunRootlet, cid: str) -> list[str]:
    ps = rootlet("exec", cid, "ps", "-o", "stat,comm").stdout
    return [ln for ln in ps.splitlines()[1:] if ln.lstrip().startswith("Z")]


def _orphan_gone(rootlet: RunRootlet, cid: str) -> bool:
    """Neither the orphan (``sleep 1``) nor a zombie is left in the container."""
    ps = rootlet("exec", cid, "ps", "-o", "stat,args").stdout
    rows = ps.splitlines()[1:]
    return bool(ps) and not any(r.lstrip().startswith("Z") or r.split(None, 1)[-1] == "sleep 1" for r in rows)


def test_init_is_pid1_and_reaps_orphaned_zombies(rootlet: RunRootlet, alpine: str) -> None:
    """An orphan that exits is reparented to PID 1. Without --init PID 1 is `sleep`, which never
    reaps it (the control: a zombie stays); with --init the init is PID 1 and reaps it.

    The orphan ends a second later, when PID 1 is surely `sleep` already: ending while PID 1 was
    still the shell, it could be reaped by the shell's wait for its subshell, and the control
    would see no zombie."""
    for init in (False, True):
        started = rootlet("run", "-d", *(["--init"] if init else []), alpine, "sh", "-c",
                          "(sleep 1 &); exec sleep 1000")
        assert started.returncode == 0, started.stderr
        cid = started.stdout.strip()
        try:
            pid1 = rootlet("exec", cid, "cat", "/proc/1/comm").stdout.strip()
            if init:
                assert pid1 == "rootlet-init", pid1
                wait_for("the orphan to end and be reaped", lambda: _orphan_gone(rootlet, cid), timeout=10,
                         interval=0.1)
            else:
                assert pid1 == "sleep"
                wait_for("the orphan zombie (control)", lambda: _zombies(rootlet, cid), timeout=10, interval=0.1)
        finally:
            rootlet("rm", "-f", cid)


def test_init_passes_the_exit_code_and_exits_with_its_command(rootlet: RunRootlet, alpine: str) -> None:
    # the exec'ed sleep leaves an unreaped child behind; the container still ends with the command
    proc = rootlet("run", "--rm", "--init", alpine, "sh", "-c", "sleep 0 & exec sleep 0.5", timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert rootlet("run", "--rm", "--init", alpine, "sh", "-c", "exit 9").returncode == 9


def _capeff(status: str) -> int:
    return int(next(ln for ln in status.splitlines() if ln.startswith("CapEff:")).split()[1], 16)


def test_cap_add_and_cap_drop(rootlet: RunRootlet, alpine: str) -> None:
    status = rootlet("run", "--rm", "--cap-add", "SYS_ADMIN", "--cap-add", "cap_net_raw", "--cap-drop", "chown",
                     alpine, "cat", "/proc/self/status")
    eff = _capeff(status.stdout)
    assert eff & (1 << 21), status.stderr      # CAP_SYS_ADMIN added
    assert eff & (1 << 13)                     # CAP_NET_RAW added
    assert not eff & (1 << 0)                  # CAP_CHOWN dropped
    assert eff & (1 << 5)                      # CAP_KILL kept
    none = rootlet("run", "--rm", "--cap-drop", "ALL", alpine, "cat", "/proc/self/status")
    assert _capeff(none.stdout) == 0


def test_security_opt_no_new_privileges_false(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--security-opt", "no-new-privileges=false", alpine, "grep", "NoNewPrivs",
                   "/proc/self/status")
    assert proc.stdout.split() == ["NoNewPrivs:", "0"], proc.stderr


def test_ulimit_nofile(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--ulimit", "nofile=100:200", alpine, "sh", "-c", "ulimit -n; ulimit -Hn")
    assert (proc.returncode, proc.stdout.split()) == (0, ["100", "200"]), proc.stderr


def test_exec_keeps_the_containers_ulimits(rootlet: RunRootlet, alpine: str) -> None:
    """The exec'd process gets the container's limits (podman's too); exec loads what sets them
    before it enters the container, and only for a container that has some."""
    started = rootlet("run", "-d", "--ulimit", "nofile=100:200", alpine, "sleep", "1000")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        proc = rootlet("exec", cid, "sh", "-c", "ulimit -n; ulimit -Hn")
        assert (proc.returncode, proc.stdout.split()) == (0, ["100", "200"]), proc.stderr
    finally:
        rootlet("rm", "-f", cid)


@pytest.mark.parametrize("flag, value", [("--memory", "64m"), ("--cpus", "1"), ("--pids-limit", "10")])
def test_resource_limits_are_refused_on_every_host(rootlet: RunRootlet, alpine: str, flag: str, value: str) -> None:
    """rootlet has no cgroup code: a limit it cannot set is refused, never silently dropped."""
    proc = rootlet("run", "--rm", flag, value, alpine, "echo", "ran")
    assert proc.returncode == 125 and proc.stdout == ""
    assert proc.stderr.startswith(f"Error: {flag}") and "cgroup" in proc.stderr
    assert "Hint: " in proc.stderr


# --- /etc files, labels ---------------------------------------------------------------------------------

def test_dns_search_and_options_in_resolv_conf(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--dns", "192.0.2.53", "--dns", "192.0.2.54", "--dns-search", "example.test",
                   "--dns-option", "ndots:3", alpine, "cat", "/etc/resolv.conf")
    lines = [ln.split() for ln in proc.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    assert ["nameserver", "192.0.2.53"] in lines and ["nameserver", "192.0.2.54"] in lines, proc.stdout
    assert [ln for ln in lines if ln[0] == "nameserver"] == [["nameserver", "192.0.2.53"], ["nameserver", "192.0.2.54"]]
    assert ["search", "example.test"] in lines
    assert ["options", "ndots:3"] in lines


def test_add_host_in_etc_hosts(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--add-host", "db.internal:1.2.3.4", alpine, "cat", "/etc/hosts")
    assert any(ln.split()[:2] == ["1.2.3.4", "db.internal"] for ln in proc.stdout.splitlines() if ln.strip()), \
        proc.stdout + proc.stderr


def test_labels_in_inspect(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "--name", "labelled", "--label", "team=infra", "-l", "tier=", alpine, "true", check=True)
    proc = rootlet("inspect", "-f", "{{json .Config.Labels}}", "labelled")
    assert json.loads(proc.stdout) == {"team": "infra", "tier": ""}, proc.stderr


# --- pulling --------------------------------------------------------------------------------------------

def _release(rootlet: RunRootlet, ref: str, policy: str) -> str:
    proc = rootlet("run", "--rm", "-q", "--pull", policy, ref, "cat", "/etc/alpine-release")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().rsplit(".", 1)[0]


def test_pull_policies(rootlet: RunRootlet, registry: str, test_images: Path) -> None:
    repo = f"flags/policy-{uuid.uuid4().hex[:8]}:moving"
    ref = f"{registry}/{repo}"
    push_layout(registry, test_images / "alpine-3.19", "3.19", repo)
    assert _release(rootlet, ref, "missing") == "3.19"             # pulled: it was missing
    push_layout(registry, test_images / "alpine-3.20", "3.20", repo)
    assert _release(rootlet, ref, "missing") == "3.19"             # present: not pulled again
    assert _release(rootlet, ref, "never") == "3.19"
    assert _release(rootlet, ref, "newer") == "3.20"               # the registry has a newer one
    push_layout(registry, test_images / "alpine-3.19", "3.19", repo)
    assert _release(rootlet, ref, "always") == "3.19"


def test_pull_newer_falls_back_to_the_local_image_and_always_does_not(rootlet: RunRootlet, alpine: str) -> None:
    dead = f"127.0.0.1:{free_port()}/gone/alpine:local"
    rootlet("tag", alpine, dead, check=True)
    proc = rootlet("run", "--rm", "--pull", "newer", dead, "echo", "local")
    assert proc.stdout == "local\n", proc.stderr
    proc = rootlet("run", "--rm", "--pull", "always", dead, "echo", "local")
    assert proc.returncode == 125 and proc.stdout == ""


def test_pull_policy_is_checked(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--pull", "sometimes", alpine, "true")
    assert proc.returncode == 125 and "--pull" in proc.stderr


def test_platform_pulls_the_other_architecture(rootlet: RunRootlet, registry: str) -> None:
    ref = f"{registry}/library/busybox:latest"
    created = rootlet("create", "-q", "--platform", "linux/arm64/v8", ref, "true")
    assert created.returncode == 0, created.stderr
    inspect = rootlet("image", "inspect", "-f", "{{.Architecture}}", ref)
    assert inspect.stdout.strip() == "arm64", inspect.stderr
    rootlet("rm", "-f", created.stdout.strip())
    # the local arm64 image does not match the native platform: run pulls the native one
    native = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)
    if native and native != "arm64":
        proc = rootlet("run", "--rm", "-q", "--platform", f"linux/{native}", ref, "echo", "native")
        assert proc.stdout == "native\n", proc.stderr
        inspect = rootlet("image", "inspect", "-f", "{{.Architecture}}", ref)
        assert inspect.stdout.strip() == native


# --- network --------------------------------------------------------------------------------------------

USER_NETWORKS = ("slirp4netns", "pasta")


def _ipv4_addresses(ip_o_addr: str) -> list[tuple[str, str]]:
    """(interface, address/prefix) pairs from `ip -o -4 addr show`."""
    return re.findall(r"^\d+:\s+(\S+)\s+inet\s+(\S+)", ip_o_addr, re.M)


@pytest.mark.parametrize("network", USER_NETWORKS)
def test_user_mode_network_is_up_when_the_command_starts(rootlet: RunRootlet, alpine: str, network: str) -> None:
    need(network)
    # The command's first instruction: the interface must already be configured.
    proc = rootlet("run", "--rm", "--network", network, alpine, "sh", "-c",
                   "ip -o -4 addr show; echo routes; cat /proc/net/route")
    assert proc.returncode == 0, proc.stderr
    addrs, _, routes = proc.stdout.partition("routes\n")
    others = [(name, addr) for name, addr in _ipv4_addresses(addrs) if name != "lo"]
    assert others, f"only loopback: {proc.stdout}"
    assert any(ln.split()[1:2] == ["00000000"] for ln in routes.splitlines()[1:]), f"no default route: {routes}"


@pytest.mark.parametrize("network", USER_NETWORKS)
def test_user_mode_network_publishes_ports(procs: Procs, alpine: str, network: str) -> None:
    need(network)
    port = free_port()
    server = procs.rootlet("run", "--rm", "--network", network, "-p", f"127.0.0.1:{port}:80", alpine, "sh", "-c",
                           f'printf "HTTP/1.0 200 OK\\r\\n\\r\\nover-{network}" | nc -l -p 80; ip -o -4 addr show')
    body = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and f"over-{network}".encode() not in body:
        if server.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                body = c.recv(4096)
        except OSError:
            time.sleep(0.1)
    assert f"over-{network}".encode() in body, _stderr(server)
    out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert [name for name, _ in _ipv4_addresses(out.decode()) if name != "lo"], out


def test_network_host_sees_the_host_interfaces(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--network", "host", alpine, "ls", "/sys/class/net")
    assert sorted(proc.stdout.split()) == sorted(os.listdir("/sys/class/net")), proc.stderr


# --- signals and output ---------------------------------------------------------------------------------

WAIT_FOR_STOP = "touch /m/ready; while [ ! -e /m/stop ]; do sleep 0.05; done"


def test_signals_reach_the_container(procs: Procs, alpine: str, tmp_path: Path) -> None:
    marks = tmp_path / "m"
    marks.mkdir()
    traps = "; ".join(f'trap "echo {s} >> /m/got" {s}' for s in ("HUP", "USR1", "USR2", "QUIT"))
    proc = procs.rootlet("run", "--rm", "-v", f"{marks}:/m", alpine, "sh", "-c", f"{traps}; {WAIT_FOR_STOP}")
    wait_for("the container", lambda: (marks / "ready").exists())
    wait_for_handlers(proc, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT)
    got: list[str] = []
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
        proc.send_signal(sig)
        name = sig.name[3:]
        wait_for(f"{name} in the container", lambda: (marks / "got").exists()
                 and name in (marks / "got").read_text().split(), timeout=5)
        got = (marks / "got").read_text().split()
    (marks / "stop").touch()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert got == ["HUP", "USR1", "USR2", "QUIT"]


def _start_trapping_usr1(procs: Procs, alpine: str, marks: Path, store_root: Path) -> subprocess.Popen:
    proc = procs.rootlet("run", "--rm", "--sig-proxy=false", "-v", f"{marks}:/m", alpine, "sh", "-c",
                         f'trap "echo USR1 >> /m/got" USR1; {WAIT_FOR_STOP}')
    wait_for("the container", lambda: (marks / "ready").exists())
    wait_for("rootlet to record the container running", lambda: _running(store_root))
    time.sleep(0.2)   # rootlet installs no handler to wait for: let it settle into waiting
    return proc


def test_sig_proxy_false_keeps_signals_from_the_container(procs: Procs, alpine: str, tmp_path: Path,
                                                          store_root: Path) -> None:
    marks = tmp_path / "m"
    marks.mkdir()
    proc = _start_trapping_usr1(procs, alpine, marks, store_root)
    proc.send_signal(signal.SIGUSR1)
    time.sleep(1.0)   # a negative: give a proxied signal ample time to arrive
    assert not (marks / "got").exists()


def test_sig_proxy_false_leaves_the_container_running_to_its_own_exit(procs: Procs, alpine: str, tmp_path: Path,
                                                                       store_root: Path) -> None:
    """The signal is not the container's: it must neither see it nor be taken down because of it."""
    marks = tmp_path / "m"
    marks.mkdir()
    proc = _start_trapping_usr1(procs, alpine, marks, store_root)
    proc.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    (marks / "stop").touch()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert not (marks / "got").exists()


def test_output_is_not_buffered(procs: Procs, alpine: str) -> None:
    proc = procs.rootlet("run", "--rm", alpine, "sh", "-c", "echo first; sleep 2; echo second", bufsize=0)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    t_first = time.monotonic()
    second = proc.stdout.readline()
    t_second = time.monotonic()
    assert (first, second) == (b"first\n", b"second\n"), _stderr(proc)
    assert t_second - t_first > 1.2, "the first line only arrived with the second"
    proc.wait(timeout=10)
