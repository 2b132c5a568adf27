"""The installed command's exit after a flag-table command: no interpreter finalisation, but
everything an exit owes still happens (atexit handlers, flushed output, running threads joined)."""

import subprocess
import sys
from pathlib import Path

from rootlet.runtime.version import VERSION

PRELUDE = """
import atexit, sys, threading, time
marker = sys.argv[1]
atexit.register(lambda: open(marker, "a").write("atexit\\n"))
sys.stdout.write("buffered before the command;")  # not flushed yet
"""


def _run(code: str, marker: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + code, str(marker)], capture_output=True, text=True,
                          timeout=60)


def test_a_flag_table_command_ends_the_process_after_atexit_handlers_with_its_output(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = _run("from rootlet.cli.main import main\nmain(['--version'], exit_fast=True)\nprint('returned')\n", marker)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"buffered before the command;rootlet version {VERSION}\n"  # and nothing after
    assert marker.read_text() == "atexit\n"


def test_the_exit_status_is_the_commands(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = _run("from rootlet.cli.main import main\n"
                f"main(['--root', {str(tmp_path / 'store')!r}, 'inspect', 'nothing-here'], exit_fast=True)\n", marker)
    assert proc.returncode == 125 and proc.stderr.startswith("Error: nothing-here"), (proc.returncode, proc.stderr)
    assert marker.read_text() == "atexit\n"


def test_a_thread_still_running_is_waited_for_as_a_normal_exit_does(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = _run("def late():\n    time.sleep(0.3)\n    open(marker, 'a').write('thread\\n')\n"
                "threading.Thread(target=late).start()\n"
                "from rootlet.cli.main import main\nmain(['--version'], exit_fast=True)\n", marker)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "thread\natexit\n"


def test_without_exit_fast_main_returns_the_status(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = _run("from rootlet.cli.main import main\nprint(main(['--version']))\n", marker)
    assert proc.stdout.endswith(f"rootlet version {VERSION}\n0\n") and proc.returncode == 0
