"""Nothing of the caller's session reaches a container: not its keyring, not its environment."""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command

pytestmark = pytest.mark.system

SECRET = "s3cr3t-of-the-caller-8cf2e1"


def _add_session_key(payload: bytes) -> int:
    """A 'user' key in this process's session keyring (what a login session keeps: tokens, …)."""
    libc = ctypes.CDLL(None, use_errno=True)
    add_key = libc.syscall
    add_key.restype = ctypes.c_long
    nr = {"x86_64": 248, "aarch64": 217}.get(os.uname().machine)
    if nr is None:
        pytest.skip(f"add_key syscall number unknown on {os.uname().machine}")
    key = add_key(nr, b"user", b"rootlet-test", payload, ctypes.c_size_t(len(payload)), ctypes.c_int(-3))
    if key < 0:
        pytest.skip(f"this session cannot hold keys (errno {ctypes.get_errno()})")
    return key


def test_the_callers_session_keyring_is_out_of_reach(rootlet: RunRootlet, probe: Path, tiny: str) -> None:
    key = _add_session_key(SECRET.encode())
    runs = [rootlet("run", "--rm", "-v", f"{probe}:/probe:ro", tiny, "/probe", "keyring", str(key))]
    rootlet("run", "-d", "--name", "k", "-v", f"{probe}:/probe:ro", tiny, "sleep", "60", check=True)
    try:
        runs.append(rootlet("exec", "k", "/probe", "keyring", str(key)))
    finally:
        rootlet("rm", "-f", "k")
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
        assert SECRET not in proc.stdout, proc.stdout
        read = next(ln for ln in proc.stdout.splitlines() if ln.startswith("keyring read"))
        assert "errno=0" not in read, proc.stdout


def test_the_init_shows_the_containers_environment_not_the_callers(rootlet: RunRootlet, tiny: str) -> None:
    started = rootlet("run", "-d", "--init", "-e", "MINE=1", tiny, "sleep", "60", env={"CALLER_SECRET": SECRET},
                      check=True)
    cid = started.stdout.strip()
    try:
        inside = rootlet("exec", cid, "cat", "/proc/1/environ")
        assert SECRET not in inside.stdout
        pid = int(rootlet("inspect", "--format", "{{.State.Pid}}", cid, check=True).stdout)
        with open(f"/proc/{pid}/environ", "rb") as f:  # we, the host user, may read it
            seen = f.read().split(b"\0")
        assert SECRET.encode() not in b"\0".join(seen)
        assert b"MINE=1" in seen
        status = Path(f"/proc/{pid}/status").read_text()
        capeff = int(next(ln for ln in status.splitlines() if ln.startswith("CapEff")).split()[1], 16)
        assert capeff & (1 << 21) == 0  # no CAP_SYS_ADMIN for the init either
    finally:
        rootlet("rm", "-f", cid)


def test_an_exec_never_shows_the_callers_environment_to_a_spy(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                               probe: Path, tiny: str) -> None:
    """A process of the container reads /proc/N/environ of every process, in a loop, while execs
    come and go: the exec helper and the new process are visible in the container's pid
    namespace before their execve, with a copy of the caller's memory."""
    rootlet("run", "-d", "--name", "spied", "-v", f"{probe}:/probe:ro", tiny, "sleep", "60", check=True)
    try:
        rootlet("exec", "-d", "spied", "sh", "-c", f"/probe spy {SECRET} 8 > /tmp/spy", check=True)
        env = dict(rootlet_env, CALLER_SECRET=SECRET)
        deadline = time.monotonic() + 6
        execs = 0
        while time.monotonic() < deadline:
            subprocess.run(rootlet_command() + ["exec", "spied", "true"], env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30, check=True)
            execs += 1
        report = ""
        for _ in range(100):
            report = rootlet("exec", "spied", "cat", "/tmp/spy").stdout
            if report:
                break
            time.sleep(0.1)
        assert execs >= 5 and report.startswith("spy reads="), report
        reads = int(report.split()[1].split("=")[1])
        hits = int(report.split()[2].split("=")[1])
        assert reads > 0 and hits == 0, report
    finally:
        rootlet("rm", "-f", "spied")


def test_seccomp_filters_what_podman_filters(rootlet: RunRootlet, probe: Path, tiny: str) -> None:
    status = rootlet("run", "--rm", tiny, "grep", "Seccomp:", "/proc/self/status", check=True).stdout
    assert status.split() == ["Seccomp:", "2"], status
    out = rootlet("run", "--rm", "-v", f"{probe}:/probe:ro", tiny, "/probe", "syscalls", check=True).stdout
    results = {ln.split(":")[0].split()[1]: ln for ln in out.splitlines() if ln.startswith("syscall")}
    assert set(results) == {"bpf", "add_key", "perf_event_open", "io_uring_setup", "kcmp", "socket_audit"}, out
    for name, line in results.items():
        assert "errno=0" not in line, f"{name} reached the kernel: {line}"
    unconfined = rootlet("run", "--rm", "--security-opt", "seccomp=unconfined", tiny, "grep", "Seccomp:",
                         "/proc/self/status", check=True).stdout
    assert unconfined.split() == ["Seccomp:", "0"]
    rootlet("run", "-d", "--name", "sc", tiny, "sleep", "60", check=True)
    try:
        assert rootlet("exec", "sc", "grep", "Seccomp:", "/proc/self/status").stdout.split() == ["Seccomp:", "2"]
    finally:
        rootlet("rm", "-f", "sc")


def test_a_seccomp_profile_file_is_used_and_a_bad_one_refused(rootlet: RunRootlet, tiny: str,
                                                              tmp_path: Path) -> None:
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], '
                       '"action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}')
    proc = rootlet("run", "--rm", "--security-opt", f"seccomp={profile}", tiny, "sh", "-c",
                   "mkdir /tmp/x || echo refused")
    assert proc.stdout.strip().endswith("refused"), proc.stdout + proc.stderr
    profile.write_text("not json")
    bad = rootlet("run", "--rm", "--security-opt", f"seccomp={profile}", tiny, "true")
    assert bad.returncode == 125 and "not valid JSON" in bad.stderr
