"""Healthchecks, as the unprivileged user with the real rootlet command: ``--health-*`` flags and
the image's HEALTHCHECK, ``healthcheck run`` on demand, the periodic checks of a running container,
the state in ``ps`` (``(healthy)``) and ``inspect`` (``.State.Health``), timeouts and bad input.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import RunRootlet

pytestmark = pytest.mark.system


def _status(rootlet: RunRootlet, name: str) -> str:
    return rootlet("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}", check=True).stdout.strip()


def _health(rootlet: RunRootlet, name: str) -> dict:
    return json.loads(rootlet("inspect", name, check=True).stdout)[0]["State"].get("Health", {})


def _wait_for(predicate, timeout: float = 20.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.fixture
def cleanup(rootlet: RunRootlet):  # noqa: ANN201
    yield
    rootlet("rm", "-f", "-a")


def test_healthcheck_run_and_the_states_in_ps_and_inspect(rootlet: RunRootlet, busybox: str, cleanup: None) -> None:
    rootlet("run", "-d", "--name", "hc", "--health-cmd", "test -e /tmp/ok && echo fine", "--health-interval",
            "disable", "--health-retries", "2", busybox, "sleep", "300", check=True)
    assert _health(rootlet, "hc")["Status"] == "starting"
    assert _status(rootlet, "hc").endswith("(starting)")
    first = rootlet("healthcheck", "run", "hc")
    assert first.returncode == 1 and first.stdout.strip() == "starting"  # one failure of two allowed
    second = rootlet("healthcheck", "run", "hc")
    assert second.returncode == 1 and second.stdout.strip() == "unhealthy"
    assert _status(rootlet, "hc").endswith("(unhealthy)")
    rootlet("exec", "hc", "touch", "/tmp/ok", check=True)
    ok = rootlet("healthcheck", "run", "hc")
    assert ok.returncode == 0 and ok.stdout.strip() == "healthy"
    health = _health(rootlet, "hc")
    assert health["Status"] == "healthy" and health["FailingStreak"] == 0
    assert [r["ExitCode"] for r in health["Log"]] == [1, 1, 0] and health["Log"][-1]["Output"] == "fine\n"
    config = json.loads(rootlet("inspect", "hc", check=True).stdout)[0]["Config"]["Healthcheck"]
    assert config["Test"] == ["CMD-SHELL", "test -e /tmp/ok && echo fine"] and config["Retries"] == 2


def test_periodic_checks_follow_the_container(rootlet: RunRootlet, busybox: str, cleanup: None) -> None:
    rootlet("run", "-d", "--name", "tick", "--health-cmd", "test ! -e /tmp/sick", "--health-interval", "1s",
            "--health-retries", "1", busybox, "sleep", "300", check=True)
    assert _wait_for(lambda: _status(rootlet, "tick").endswith("(healthy)"))
    rootlet("exec", "tick", "touch", "/tmp/sick", check=True)
    assert _wait_for(lambda: _status(rootlet, "tick").endswith("(unhealthy)"))
    rootlet("stop", "-t", "0", "tick", check=True)
    assert "healthy" not in _status(rootlet, "tick")


def test_image_healthcheck_is_used_unless_disabled(rootlet: RunRootlet, busybox: str, tmp_path: Path,
                                                  cleanup: None) -> None:
    (tmp_path / "Containerfile").write_text(f"FROM {busybox}\nHEALTHCHECK --interval=1s --retries=1 CMD true\n")
    rootlet("build", "-q", "-t", "localhost/withhc", str(tmp_path), check=True)
    rootlet("run", "-d", "--name", "imagehc", "localhost/withhc", "sleep", "300", check=True)
    assert _wait_for(lambda: _status(rootlet, "imagehc").endswith("(healthy)"))
    rootlet("run", "-d", "--name", "nohc", "--no-healthcheck", "localhost/withhc", "sleep", "300", check=True)
    assert _health(rootlet, "nohc") == {}
    refused = rootlet("healthcheck", "run", "nohc")
    assert refused.returncode == 125 and "no defined healthcheck" in refused.stderr
    rootlet("run", "-d", "--name", "override", "--health-cmd", "false", "--health-interval", "disable",
            "localhost/withhc", "sleep", "300", check=True)
    assert rootlet("healthcheck", "run", "override").returncode == 1


def test_a_check_that_hangs_is_cut_at_its_timeout(rootlet: RunRootlet, busybox: str, cleanup: None) -> None:
    rootlet("run", "-d", "--name", "slow", "--health-cmd", "sleep 30", "--health-timeout", "1s",
            "--health-interval", "disable", busybox, "sleep", "300", check=True)
    began = time.monotonic()
    proc = rootlet("healthcheck", "run", "slow")
    assert proc.returncode == 1 and time.monotonic() - began < 10
    assert "timed out" in _health(rootlet, "slow")["Log"][-1]["Output"]


@pytest.mark.parametrize("flags, words", [
    (("--health-cmd", "true", "--health-interval", "500ms"), "at least 1 second"),
    (("--health-cmd", "true", "--health-retries", "0"), "--health-retries"),
    (("--health-cmd", "true", "--health-timeout", "soon"), "not a duration"),
    (("--no-healthcheck", "--health-cmd", "true"), "cannot be combined"),
    (("--health-interval", "5s",), "needs a healthcheck"),
])
def test_bad_healthcheck_flags_are_refused(rootlet: RunRootlet, busybox: str, flags: tuple[str, ...],
                                           words: str) -> None:
    proc = rootlet("create", *flags, busybox, "true")
    assert proc.returncode == 125 and words in proc.stderr, proc.stderr
    assert rootlet("ps", "-a", "-q", check=True).stdout.strip() == ""
