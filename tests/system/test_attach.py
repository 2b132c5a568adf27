"""``rootlet attach``, as the unprivileged user with the real rootlet command: our input reaches a
detached container's stdin and its output comes back, the detach keys (ctrl-p,ctrl-q, or others)
leave it running, the attach ends with the container's run and exits with its code, on a pipe and
on a terminal (raw, through a pty); attaching to a stopped container is refused.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from tests.conftest import RunRootlet, rootlet_command

pytestmark = pytest.mark.system


def _state(rootlet: RunRootlet, name: str) -> str:
    return rootlet("inspect", "--format", "{{.State.Status}}", name, check=True).stdout.strip()


def _read_until(fd: int, needle: bytes, timeout: float = 15.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.fixture
def cleanup(rootlet: RunRootlet):  # noqa: ANN201
    yield
    rootlet("rm", "-f", "-a")


def test_attach_relays_input_and_output_and_detaches_with_the_keys(rootlet: RunRootlet, busybox: str,
                                                                    rootlet_env: dict, cleanup: None) -> None:
    rootlet("run", "-d", "-i", "--name", "echoer", busybox, "sh", "-c", "while read l; do echo got $l; done",
            check=True)
    proc = subprocess.Popen([*rootlet_command(), "attach", "echoer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=rootlet_env)
    assert proc.stdin is not None and proc.stdout is not None
    time.sleep(1.0)  # attached before we type
    proc.stdin.write(b"hello\n")
    proc.stdin.flush()
    assert b"got hello" in _read_until(proc.stdout.fileno(), b"got hello")
    proc.stdin.write(b"\x10\x11")  # ctrl-p, ctrl-q
    proc.stdin.flush()
    assert proc.wait(timeout=15) == 0
    assert _state(rootlet, "echoer") == "running"
    again = subprocess.Popen([*rootlet_command(), "attach", "--detach-keys", "ctrl-x", "echoer"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=rootlet_env)
    assert again.stdin is not None and again.stdout is not None
    time.sleep(1.0)
    again.stdin.write(b"more\n")
    again.stdin.flush()
    assert b"got more" in _read_until(again.stdout.fileno(), b"got more")
    again.stdin.write(b"\x18")  # ctrl-x
    again.stdin.flush()
    assert again.wait(timeout=15) == 0
    assert _state(rootlet, "echoer") == "running"


def test_attach_ends_with_the_run_and_its_exit_code(rootlet: RunRootlet, busybox: str, cleanup: None) -> None:
    rootlet("run", "-d", "--name", "short", busybox, "sh", "-c", "sleep 2; echo bye; echo oops >&2; exit 3",
            check=True)
    proc = rootlet("attach", "short", timeout=30)
    assert proc.returncode == 3
    assert proc.stdout == "bye\n" and proc.stderr == "oops\n"
    refused = rootlet("attach", "short")
    assert refused.returncode == 125 and "only attach to running containers" in refused.stderr
    bad = rootlet("attach", "--detach-keys", "ctrl-!", "short")
    assert bad.returncode == 125 and "detach-keys" in bad.stderr


def test_attach_on_a_terminal(rootlet: RunRootlet, busybox: str, rootlet_env: dict, cleanup: None) -> None:
    rootlet("run", "-d", "-it", "--name", "term", busybox, "sh", check=True)
    pid, master = pty.fork()
    if pid == 0:
        os.execvpe(rootlet_command()[0], [*rootlet_command(), "attach", "term"], rootlet_env)
    try:
        time.sleep(1.0)
        os.write(master, b"echo $((6*7))\r")
        assert b"42" in _read_until(master, b"42")
        os.write(master, b"\x10\x11")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(master)
    assert _state(rootlet, "term") == "running"
