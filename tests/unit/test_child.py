"""The child-process toolkit: one error-record format that survives the trip from a child, and
real forked children reporting through it."""

from __future__ import annotations

import os
import signal

import pytest

from rootlet.registry.errors import ChildError, ContainerStartError, CopyError, LayerError
from rootlet.runtime.linux.child import (as_error, decode_error, encode_error, error_pipe, exit_code, fork_child,
                                         read_error, reap, report_ok, wait_for)


def test_rootlet_errors_keep_their_class_message_hint_and_code() -> None:
    exc = decode_error(encode_error(ContainerStartError("not found", "check PATH", 127)))
    assert type(exc) is ContainerStartError
    assert (exc.message, exc.hint, exc.exit_code) == ("not found", "check PATH", 127)


def test_os_errors_keep_errno_and_path() -> None:
    exc = decode_error(encode_error(FileNotFoundError(2, "No such file or directory", "/x")))
    assert isinstance(exc, FileNotFoundError) and exc.filename == "/x" and exc.errno == 2


def test_builtin_and_foreign_exceptions() -> None:
    assert type(decode_error(encode_error(ValueError("bad")))) is ValueError

    class Odd(Exception):
        pass

    exc = decode_error(encode_error(Odd("strange")))
    assert isinstance(exc, ChildError) and exc.message == "Odd: strange"


@pytest.mark.parametrize("data", [b"", b"  \n", b'{"ok": true}\n'])
def test_no_error_is_none(data: bytes) -> None:
    assert decode_error(data) is None


@pytest.mark.parametrize("data", [b"garbage", b"[1, 2]\n", b'{"type": 5}'])
def test_garbage_is_an_error_not_a_crash(data: bytes) -> None:
    assert isinstance(decode_error(data), ChildError)


def test_as_error_converts_to_the_callers_class() -> None:
    assert isinstance(as_error(LayerError("x", "h"), CopyError), CopyError)
    converted = as_error(PermissionError(13, "Permission denied", "/etc/shadow"), CopyError)
    assert converted.message == "Permission denied: /etc/shadow"  # type: ignore[union-attr]
    same = CopyError("y")
    assert as_error(same, CopyError) is same and as_error(None, CopyError) is None


def test_a_forked_child_reports_its_exception_and_exit_code() -> None:
    r, w = error_pipe()

    def body() -> int:
        raise ContainerStartError("cannot execute", None, 126)

    pid = fork_child(body, w, default_code=125)
    os.close(w)
    exc = read_error(r)
    assert isinstance(exc, ContainerStartError) and exc.exit_code == 126
    status = wait_for(pid)
    assert status is not None and os.waitstatus_to_exitcode(status) == 126


def test_a_child_that_lives_on_reports_success() -> None:
    r, w = error_pipe()

    def body() -> int:
        report_ok(w)
        return 0

    pid = fork_child(body, w)
    os.close(w)
    assert read_error(r) is None
    assert wait_for(pid) == 0


def test_exit_codes_follow_docker() -> None:
    pid = fork_child(lambda: os.kill(os.getpid(), signal.SIGKILL) or 0)
    assert exit_code(wait_for(pid) or 0) == 137
    pid = fork_child(lambda: 3)
    assert exit_code(wait_for(pid) or 0) == 3


def test_reap_kills_a_child_that_does_not_exit() -> None:
    pid = fork_child(lambda: signal.pause() or 0)
    status = reap(pid, 0.2)
    assert status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
