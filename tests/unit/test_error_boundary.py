"""cli/main.py, the one error boundary: each kind of failure becomes one line, a hint and the
exit status podman gives, and a traceback only with --debug."""

from __future__ import annotations

import io
import sys

import pytest

from rootlet.cli import main as cli_main


def _failing(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """Make the command-line parsing itself raise ``exc`` (the boundary is what is under test)."""
    def fail(_args: list[str]) -> tuple[str | None, bool, int]:
        raise exc
    monkeypatch.setattr(cli_main, "_split_globals", fail)


def test_a_usage_mistake_is_one_line_a_hint_and_125(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["--log-level", "loud", "ps"]) == 125
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "Error: invalid --log-level 'loud'" and "\nHint: use one of " in err
    assert "Traceback" not in err


def test_debug_adds_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["--debug", "--log-level", "loud", "ps"]) == 125
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "UsageError: invalid --log-level" in err
    assert "Error: invalid --log-level 'loud'" in err


def test_a_system_error_names_the_file(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _failing(monkeypatch, PermissionError(13, "Permission denied", "/var/lib/x"))
    assert cli_main.main(["ps"]) == 125
    assert capsys.readouterr().err == "Error: Permission denied: /var/lib/x\nHint: run with --debug for details\n"


def test_a_bug_is_an_internal_error_with_125_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _failing(monkeypatch, ValueError("boom"))
    assert cli_main.main(["ps"]) == 125
    err = capsys.readouterr().err
    assert err.startswith("Error: internal error: ValueError: boom\nHint: ") and "Traceback" not in err


def test_a_closed_pipe_is_141_and_quiet(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # the boundary swaps it for /dev/null; restored after
    _failing(monkeypatch, BrokenPipeError(32, "Broken pipe"))
    assert cli_main.main(["images"]) == 141
    assert capsys.readouterr().err == ""


def test_ctrl_c_is_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _failing(monkeypatch, KeyboardInterrupt())
    assert cli_main.main(["ps"]) == 130
    assert capsys.readouterr().err == ""
