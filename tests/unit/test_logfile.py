"""runtime/logfile.py: the container log format, rotation, and time selection."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rootlet.registry.errors import UsageError
from rootlet.runtime.lifecycle.logfile import Follower, LogWriter, format_ts, parse_since, parse_ts, read_records, select_records


def _texts(path: Path) -> list[tuple[str, bool, bytes]]:
    return [(r.stream, r.partial, r.data) for r in read_records(str(path))]


def test_lines_of_each_stream_are_kept_apart(tmp_path: Path) -> None:
    log = LogWriter(str(tmp_path / "ctr.log"))
    log.write("stdout", b"one\ntw")
    log.write("stderr", b"err\n")
    log.write("stdout", b"o\n")
    log.close()
    assert _texts(tmp_path / "ctr.log") == [("stdout", False, b"one"), ("stderr", False, b"err"),
                                            ("stdout", False, b"two")]


def test_output_without_final_newline_is_a_partial_record(tmp_path: Path) -> None:
    log = LogWriter(str(tmp_path / "ctr.log"))
    log.write("stdout", b"no newline")
    log.close()
    assert _texts(tmp_path / "ctr.log") == [("stdout", True, b"no newline")]


def test_a_huge_line_is_split_into_bounded_partial_records(tmp_path: Path) -> None:
    log = LogWriter(str(tmp_path / "ctr.log"))
    log.write("stdout", b"x" * 40000 + b"\n")
    log.close()
    recs = _texts(tmp_path / "ctr.log")
    assert [p for _, p, _ in recs] == [True, True, False]
    assert b"".join(d for _, _, d in recs) == b"x" * 40000
    assert all(len(d) <= 16384 for _, _, d in recs)


def test_max_size_rotates_once_and_bounds_the_total(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    log = LogWriter(str(path), max_size=4096)
    for i in range(2000):
        log.write("stdout", b"line %d\n" % i)
    log.close()
    assert path.stat().st_size <= 4096 and (tmp_path / "ctr.log.1").stat().st_size <= 4096
    data = [d for _, _, d in _texts(path)]
    assert data[-1] == b"line 1999" and len(data) > 10


def test_tail_counts_whole_lines_and_since_filters_by_time(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    log = LogWriter(str(path))
    log.write("stdout", b"old\n")
    time.sleep(0.01)
    cut = time.time_ns()
    log.write("stdout", b"a\nb")
    log.write("stdout", b"c\nd\n")
    log.close()
    # "b" waits for its newline, so it is written with "c" as one line.
    assert [r.data for r in select_records(str(path), tail=2)] == [b"bc", b"d"]
    assert [r.data for r in select_records(str(path), since=cut)] == [b"a", b"bc", b"d"]
    assert [r.data for r in select_records(str(path), until=cut)] == [b"old"]


def test_follower_continues_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    log = LogWriter(str(path), max_size=200)
    follower = Follower(str(path))
    seen = []
    for i in range(30):
        log.write("stdout", b"record %02d\n" % i)
        seen += [r.data for r in follower.poll()]
    log.close()
    seen += [r.data for r in follower.poll()]
    assert seen == [b"record %02d" % i for i in range(30)]


def test_timestamps_round_trip_with_nanoseconds() -> None:
    ns = 1795814708_123456789
    assert parse_ts(format_ts(ns)) == ns
    assert parse_ts(format_ts(ns).rstrip("Z")) == ns
    with pytest.raises(ValueError):
        parse_ts("2026-01-01 garbage")


@pytest.mark.parametrize("text, expected", [
    ("1700000000", 1700000000 * 10**9),
    ("2023-11-14T22:13:20Z", 1700000000 * 10**9),
    ("2023-11-14T22:13:20.5+00:00", 1700000000 * 10**9 + 5 * 10**8),
    ("2023-11-14T23:13:20.25+01:00", 1700000000 * 10**9 + 25 * 10**7),  # the zone after a fraction counts
    ("2023-11-14T22:13:20.123456789Z", 1700000000 * 10**9 + 123456789),
    ("2023-11-14T22:13:20", 1700000000 * 10**9),  # no zone: UTC
    ("10m", (1_800_000_000 - 600) * 10**9),
    ("1h30m", (1_800_000_000 - 5400) * 10**9),
])
def test_since_accepts_docker_forms(text: str, expected: int) -> None:
    assert parse_since(text, "--since", now=1_800_000_000) == expected


def test_since_rejects_nonsense() -> None:
    with pytest.raises(UsageError, match="--since"):
        parse_since("yesterday", "--since")


def test_torn_last_line_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_bytes(b"2026-01-01T00:00:00.000000000Z stdout F whole\n2026-01-01T00:00:00.000000000Z std")
    assert [r.data for r in read_records(str(path))] == [b"whole"]
    os.unlink(path)
