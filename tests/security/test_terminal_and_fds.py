"""No descriptor of the caller (its terminal, its output file) reaches a container process.

The attack: from an interactive shell, ``rootlet exec CTR EVIL``; EVIL pushes ``echo PWNED`` into
the shell's terminal with TIOCSTI, and the shell runs it once rootlet returns. This machine's
kernel still allows TIOCSTI (``dev.tty.legacy_tiocsti=1``), so only rootlet stands in the way.
"""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet, rootlet_command

pytestmark = pytest.mark.system


def _on_a_terminal(rootlet_env: dict[str, str], args: list[str]) -> tuple[str, bytes]:
    """Run ``rootlet ARGS`` as the foreground job of a new terminal session (stdin, stdout and
    stderr the pty, which is also its controlling terminal); return its output and whatever was
    left queued as input for the terminal's next reader (the shell)."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO  # so pushed input is not also echoed into the output we read
    termios.tcsetattr(slave, termios.TCSANOW, attrs)

    def session() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(rootlet_command() + args, stdin=slave, stdout=slave, stderr=slave, env=rootlet_env,
                            preexec_fn=session)
    out = b""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            os.set_blocking(master, False)
            out += os.read(master, 65536)
        except (BlockingIOError, OSError):
            time.sleep(0.05)
    proc.wait(timeout=10)
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            out += chunk
    except (BlockingIOError, OSError):
        pass
    # What a shell reading the terminal next would get: input queued by TIOCSTI.
    os.set_blocking(slave, False)
    attrs[3] &= ~termios.ICANON
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    queued = b""
    try:
        queued = os.read(slave, 65536)
    except (BlockingIOError, OSError):
        pass
    os.close(master)
    os.close(slave)
    return out.decode(errors="replace"), queued


def _assert_nothing_pushed(output: str, queued: bytes) -> None:
    assert b"PWNED" not in queued, f"the container pushed input into the caller's terminal: {queued!r}"
    lines = [ln for ln in output.splitlines() if ln.startswith("tiocsti")]
    assert len(lines) == 4, output
    assert all("pushed=0" in ln for ln in lines[:3]), output
    assert "open failed" in lines[3], output  # no controlling terminal at all


def test_exec_does_not_hand_over_the_callers_terminal(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                      probe: Path, tiny: str) -> None:
    rootlet("run", "-d", "--name", "victim", "-v", f"{probe}:/probe:ro", tiny, "sleep", "60", check=True)
    try:
        for flags in ([], ["-i"]):
            output, queued = _on_a_terminal(rootlet_env, ["exec", *flags, "victim", "/probe", "tiocsti"])
            _assert_nothing_pushed(output, queued)
    finally:
        rootlet("rm", "-f", "victim")


@pytest.mark.parametrize("flags", [["--rm"], [], ["--rm", "-i"]], ids=["rm", "kept", "rm-interactive"])
def test_run_does_not_hand_over_the_callers_terminal(rootlet_env: dict[str, str], probe: Path, tiny: str,
                                                     flags: list[str]) -> None:
    output, queued = _on_a_terminal(rootlet_env, ["run", *flags, "-v", f"{probe}:/probe:ro", tiny, "/probe",
                                                  "tiocsti"])
    _assert_nothing_pushed(output, queued)


def test_start_attached_does_not_hand_over_the_callers_terminal(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                               probe: Path, tiny: str) -> None:
    rootlet("create", "--name", "later", "-v", f"{probe}:/probe:ro", tiny, "/probe", "tiocsti", check=True)
    output, queued = _on_a_terminal(rootlet_env, ["start", "-a", "later"])
    _assert_nothing_pushed(output, queued)


def _descriptors(text: str) -> dict[int, str]:
    return {int(line.split(":")[0].split()[1]): line.split(": ", 1)[1] for line in text.splitlines()
            if line.startswith("fd ")}


def test_the_containers_descriptors_are_pipes_not_the_callers_files(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                    probe: Path, tiny: str, tmp_path: Path) -> None:
    """A container that reopens /proc/self/fd/1 must not get the file the caller redirected to."""
    rootlet("run", "-d", "--name", "files", "-v", f"{probe}:/probe:ro", tiny, "sleep", "60", check=True)
    try:
        for args in (["exec", "files", "/probe", "fds"], ["exec", "-i", "files", "/probe", "fds"],
                     ["run", "--rm", "-v", f"{probe}:/probe:ro", tiny, "/probe", "fds"],
                     ["run", "-v", f"{probe}:/probe:ro", tiny, "/probe", "fds"]):
            out_file = tmp_path / "out.txt"
            with open(out_file, "wb") as out, open(os.devnull, "rb") as devnull:
                proc = subprocess.run(rootlet_command() + args, stdin=devnull, stdout=out, stderr=subprocess.PIPE,
                                      env=rootlet_env, timeout=60)
            assert proc.returncode == 0, proc.stderr
            fds = _descriptors(out_file.read_text())
            assert set(fds) == {0, 1, 2}, fds
            assert fds[1].startswith("pipe:") and fds[2].startswith("pipe:"), fds
            assert str(out_file) not in " ".join(fds.values()), fds
            if "-i" not in args:
                assert fds[0] == "/dev/null", fds
    finally:
        rootlet("rm", "-f", "files")


def test_a_detached_exec_cannot_keep_writing_to_the_callers_output(rootlet: RunRootlet, rootlet_env: dict[str, str],
                                                                   tiny: str, tmp_path: Path) -> None:
    rootlet("run", "-d", "--name", "writer", tiny, "sleep", "60", check=True)
    try:
        out_file = tmp_path / "out.txt"
        with open(out_file, "wb") as out:
            proc = subprocess.run(rootlet_command() + ["exec", "writer", "sh", "-c",
                                                       "(sleep 1; echo LATE; echo LATE >&2) & echo now"],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=rootlet_env, timeout=60)
        assert proc.returncode == 0
        time.sleep(2)
        assert out_file.read_text() == "now\n"
    finally:
        rootlet("rm", "-f", "writer")
