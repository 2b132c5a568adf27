"""``exec_command`` (the last steps of ``run`` and ``exec`` before execve) keeps the caller's
parent-death signal across its credential change, and sets none the caller did not.

``exec -d`` has none: its parent exits at once. When ``exec_command`` set SIGKILL regardless, a
parent slower to exit than its child to reach that point took the detached command with it (its
file never appeared, a CI failure 1 run in hundreds). The executed program reports the signal it
was left with (PR_GET_PDEATHSIG survives execve), inside a real user namespace.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest

from rootlet.runtime.oci.idmap import plan_userns
from rootlet.runtime.oci.userns import UsernsWorker

pytestmark = pytest.mark.integration

REPORT = "from rootlet.runtime.linux.syscalls import get_pdeathsig; print(get_pdeathsig())"


def signal_after_exec(caller_sets: int) -> str:
    """Runs in the worker (root of a user namespace): fork a child that sets *caller_sets* (0:
    none) and calls ``exec_command`` on a Python that prints its parent-death signal."""
    from rootlet.runtime.linux import syscalls as linux
    from rootlet.runtime.linux.child import error_pipe, fork_child, read_error
    from rootlet.runtime.oci.process import exec_command
    from rootlet.runtime.oci.spec import RuntimeSpec

    spec = RuntimeSpec(lower_dirs=(), upper_dir="", work_dir="", merged_dir="", argv=(sys.executable, "-c", REPORT),
                       env=(f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}",), cwd=os.getcwd())
    out_r, out_w = os.pipe()
    err_r, err_w = error_pipe()

    def child() -> int:
        os.dup2(out_w, 1)
        if caller_sets:
            linux.set_pdeathsig(caller_sets)
        exec_command(spec, single_id, (0, 0, []), err_w)
        return 126

    single_id = plan_userns().single_id
    pid = fork_child(child, err_w, 126)
    os.close(out_w)
    os.close(err_w)
    error = read_error(err_r)
    with os.fdopen(out_r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    if error is not None:
        raise RuntimeError(f"exec_command failed: {error}")
    return text.strip()


@pytest.mark.parametrize("caller_sets", [0, signal.SIGKILL], ids=["none", "SIGKILL"])
def test_exec_command_keeps_the_callers_parent_death_signal(caller_sets: int) -> None:
    with UsernsWorker(plan_userns()) as worker:
        assert worker.call(signal_after_exec, caller_sets) == str(int(caller_sets))
