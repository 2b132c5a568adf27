"""Parsing of the lifecycle flags (--restart, --log-opt, --stop-signal) and the restart rule."""

from __future__ import annotations

import signal

import pytest

from rootlet.registry.errors import UsageError
from rootlet.cli.render import describe_status, human_duration
from rootlet.runtime.container.cp import parse_cp_args
from rootlet.runtime.container.flags import parse_log_options, parse_restart, parse_signal, parse_size
from rootlet.runtime.container.record import LogConfig, RestartPolicy
from rootlet.runtime.lifecycle.monitor import should_restart


@pytest.mark.parametrize("text, expected", [
    (None, RestartPolicy("no", 0)), ("always", RestartPolicy("always", 0)),
    ("on-failure", RestartPolicy("on-failure", 0)), ("on-failure:3", RestartPolicy("on-failure", 3)),
    ("unless-stopped", RestartPolicy("unless-stopped", 0)),
])
def test_restart_policies(text: str | None, expected: RestartPolicy) -> None:
    assert parse_restart(text) == expected


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x"])
def test_bad_restart_policies_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_restart(text)


def test_should_restart_follows_docker() -> None:
    on_failure_2 = RestartPolicy("on-failure", 2)
    assert should_restart(on_failure_2, 1, 0, False) and should_restart(on_failure_2, 1, 1, False)
    assert not should_restart(on_failure_2, 1, 2, False)
    assert not should_restart(on_failure_2, 0, 0, False)
    assert should_restart(RestartPolicy("always"), 0, 99, False)
    assert not should_restart(RestartPolicy("always"), 1, 0, True)  # after `stop`
    assert not should_restart(RestartPolicy("no"), 1, 0, False)


def test_signals_by_name_or_number() -> None:
    assert parse_signal("TERM", "x") == signal.SIGTERM
    assert parse_signal("sigkill", "x") == signal.SIGKILL
    assert parse_signal("1", "x") == 1
    assert parse_signal("SIGRTMIN+2", "x") == signal.SIGRTMIN + 2
    with pytest.raises(UsageError):
        parse_signal("NOPE", "x")


def test_sizes_and_log_options() -> None:
    assert parse_size("10m", "x") == 10 << 20 and parse_size("512k", "x") == 512 << 10 and parse_size("7", "x") == 7
    assert parse_log_options(None, ("max-size=1k",)) == LogConfig("k8s-file", 1000)   # decimal, as docker's
    assert parse_log_options("none", ()) == LogConfig("none", 0)
    for bad in (("max-size=lots",), ("max-file=3",), ("nokey",)):
        with pytest.raises(UsageError):
            parse_log_options(None, bad)
    with pytest.raises(UsageError, match="syslog"):
        parse_log_options("syslog", ())


def test_status_column_reads_like_docker() -> None:
    now = 1000.0
    assert describe_status("running", now - 3, None, None, now) == "Up 3 seconds"
    assert describe_status("exited", None, now - 120, 0, now) == "Exited (0) 2 minutes ago"
    assert describe_status("created", None, None, None, now) == "Created"
    assert human_duration(0.5) == "Less than a second" and human_duration(90) == "About a minute"


@pytest.mark.parametrize("src, dst, expected", [
    ("web:/etc/hosts", "/tmp/x", ("web", "/etc/hosts", "/tmp/x", False)),
    ("./file", "web:/tmp/", ("web", "/tmp/", "./file", True)),
    ("/abs/with:colon", "web:/d", ("web", "/d", "/abs/with:colon", True)),
    ("-", "web:/d", ("web", "/d", "-", True)),  # a tar stream on stdin
    ("web:/etc", "-", ("web", "/etc", "-", False)),  # a tar stream on stdout
])
def test_cp_arguments(src: str, dst: str, expected: tuple) -> None:
    assert parse_cp_args(src, dst) == expected


@pytest.mark.parametrize("src, dst", [("a:/x", "b:/y"), ("/x", "/y"), ("-", "-"), ("-", "/y")])
def test_cp_refuses_what_it_cannot_do(src: str, dst: str) -> None:
    with pytest.raises(UsageError):
        parse_cp_args(src, dst)
