"""`rootlet run` end to end as the real command: exit codes, stdin, env, mounts, network, --rm."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command

pytestmark = pytest.mark.system


def test_run_prints_output_and_exits_zero(rootlet: RunRootlet, alpine: str, store_root: Path) -> None:
    proc = rootlet("run", "--rm", alpine, "echo", "hello")
    assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr
    assert list((store_root / "containers").iterdir()) == []


@pytest.mark.parametrize("argv, code", [
    (["sh", "-c", "exit 3"], 3),
    (["no-such-command"], 127),
    (["/etc/passwd"], 126),
])
def test_exit_codes_follow_docker(rootlet: RunRootlet, alpine: str, argv: list[str], code: int) -> None:
    proc = rootlet("run", "--rm", alpine, *argv)
    assert proc.returncode == code, proc.stderr
    if code >= 126:
        assert proc.stderr.startswith("Error: ")


def test_killed_by_signal_is_128_plus_n(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--init", alpine, "sh", "-c", "kill -TERM $$")
    assert proc.returncode == 143


def test_image_pulled_on_demand(rootlet: RunRootlet, registry: str) -> None:
    proc = rootlet("run", "--rm", "-q", f"{registry}/library/busybox:musl", "echo", "pulled")
    assert proc.stdout == "pulled\n", proc.stderr


def test_pull_never_refuses_a_missing_image(rootlet: RunRootlet, registry: str) -> None:
    proc = rootlet("run", "--rm", "--pull", "never", f"{registry}/library/alpine:3.19", "true")
    assert proc.returncode == 125 and "not known" in proc.stderr


def test_stdin_is_attached_only_with_i(rootlet: RunRootlet, alpine: str) -> None:
    assert rootlet("run", "--rm", "-i", alpine, "cat", input="piped\n").stdout == "piped\n"
    assert rootlet("run", "--rm", alpine, "cat", input="piped\n").stdout == ""


def test_env_workdir_user_and_hostname(rootlet: RunRootlet, alpine: str, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\n")
    proc = rootlet("run", "--rm", "-e", "A=b", "--env-file", str(env_file), "-w", "/new/dir", "-u", "nobody",
                   "--hostname", "box", alpine, "sh", "-c", 'echo "$A $FROM_FILE $(pwd) $(id -un) $(hostname)"')
    assert proc.stdout == "b 1 /new/dir nobody box\n", proc.stderr


def test_entrypoint_override_and_clear(rootlet: RunRootlet, alpine: str) -> None:
    assert rootlet("run", "--rm", "--entrypoint", "echo", alpine, "x").stdout == "x\n"
    assert rootlet("run", "--rm", "--entrypoint", "", alpine, "echo", "y").stdout == "y\n"


def test_bind_mount_read_write_and_read_only(rootlet: RunRootlet, alpine: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rootlet("run", "--rm", "-v", f"{data}:/data", alpine, "sh", "-c", "echo w > /data/f", check=True)
    assert (data / "f").read_text() == "w\n"
    assert os.stat(data / "f").st_uid == os.getuid()
    proc = rootlet("run", "--rm", "-v", f"{data}:/data:ro", alpine, "sh", "-c", "echo x > /data/g")
    assert proc.returncode != 0 and not (data / "g").exists()


def test_named_volume_persists_between_runs(rootlet: RunRootlet, alpine: str) -> None:
    rootlet("run", "--rm", "-v", "cache:/cache", alpine, "sh", "-c", "echo kept > /cache/f", check=True)
    assert rootlet("run", "--rm", "-v", "cache:/cache", alpine, "cat", "/cache/f").stdout == "kept\n"


def test_read_only_rootfs_and_tmpfs(rootlet: RunRootlet, alpine: str) -> None:
    assert rootlet("run", "--rm", "--read-only", alpine, "touch", "/x").returncode != 0
    proc = rootlet("run", "--rm", "--read-only", "--tmpfs", "/scratch", alpine, "touch", "/scratch/x", "/tmp/y")
    assert proc.returncode == 0, proc.stderr


def test_network_none_has_only_loopback(rootlet: RunRootlet, alpine: str) -> None:
    proc = rootlet("run", "--rm", "--network", "none", alpine, "ls", "/sys/class/net")
    assert proc.stdout.split() == ["lo"]


def test_published_port_reachable_from_host_loopback(rootlet_env: dict[str, str], alpine: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        rootlet_command() + ["run", "--rm", "-p", f"127.0.0.1:{port}:80", alpine, "sh", "-c",
                             'printf "HTTP/1.0 200 OK\\r\\n\\r\\nfrom-container" | nc -l -p 80'],
        env=rootlet_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        body = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"from-container" not in body:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    body = c.recv(4096)
            except OSError:
                time.sleep(0.2)
        assert b"from-container" in body
    finally:
        server.kill()
        server.wait()


def test_capabilities_and_no_new_privs(rootlet: RunRootlet, alpine: str) -> None:
    status = rootlet("run", "--rm", alpine, "cat", "/proc/self/status").stdout
    assert "NoNewPrivs:\t0" in status      # docker's and podman's default: setuid programs work
    assert "NoNewPrivs:\t1" in rootlet("run", "--rm", "--security-opt", "no-new-privileges", alpine,
                                       "cat", "/proc/self/status").stdout
    capeff = int(next(line for line in status.splitlines() if line.startswith("CapEff")).split()[1], 16)
    assert capeff & (1 << 21) == 0          # no CAP_SYS_ADMIN
    assert capeff & (1 << 0)                # CAP_CHOWN, podman's default set
    dropped = rootlet("run", "--rm", "--cap-drop", "chown", alpine, "cat", "/proc/self/status").stdout
    assert not int(next(ln for ln in dropped.splitlines() if ln.startswith("CapEff")).split()[1], 16) & 1


def test_uid_map_shows_the_subuid_map(rootlet: RunRootlet, alpine: str) -> None:
    if os.getuid() == 0:
        pytest.skip("rootless maps are checked as an unprivileged user")
    lines = rootlet("run", "--rm", alpine, "cat", "/proc/self/uid_map").stdout.split("\n")
    assert lines[0].split() == ["0", str(os.getuid()), "1"]


@pytest.mark.parametrize("argv", [["--memory", "64m"], ["--bogus-flag"], ["--security-opt", "label=disable"],
                                  ["--log-driver", "syslog"], ["--ulimit", "nofile=x"]])
def test_unsupported_or_unknown_flags_exit_125(rootlet: RunRootlet, alpine: str, argv: list[str]) -> None:
    proc = rootlet("run", "--rm", *argv, alpine, "true")
    assert proc.returncode == 125 and proc.stderr.startswith("Error: ")


def test_sigterm_to_rootlet_reaches_the_container_and_rm_cleans_up(rootlet_env: dict[str, str], alpine: str,
                                                                    store_root: Path) -> None:
    proc = subprocess.Popen(rootlet_command() + ["run", "--rm", alpine, "sh", "-c",
                                                 "trap 'echo got-term; exit 7' TERM; while true; do sleep 0.1; done"],
                            env=rootlet_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any((store_root / "containers").glob("*/state.json")):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.terminate()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 7, err
    assert "got-term" in out
    assert list((store_root / "containers").iterdir()) == []


def test_many_runs_at_once_all_get_their_network(rootlet_env: dict[str, str], alpine: str, store_root: Path) -> None:
    """24 `run --rm` started together on 2 cores, each with its user-mode network: every one
    succeeds and leaves nothing. (The network helper starts as soon as the keeper reports its net
    namespace; started on the user namespace's report alone, a loaded machine let it join the
    host's net namespace and fail with EPERM now and then.)"""
    procs = [subprocess.Popen([*rootlet_command(), "run", "--rm", "--network", "slirp4netns", alpine, "sh", "-c",
                               "ip -o -4 addr show tap0"],
                              env=rootlet_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(24)]
    results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    failed = [r for r in results if r[0] != 0 or "10.0.2.100" not in r[1]]
    assert not failed, failed[:3]
    assert os.listdir(store_root / "containers") == []
