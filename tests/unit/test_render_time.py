"""cli/render.parse_time: image timestamps read without ``datetime`` give datetime's results."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from rootlet.cli.render import parse_time


def _by_datetime(text: str) -> float | None:
    """What datetime makes of an RFC 3339 time, the fraction cut to microseconds."""
    text = text.replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        if digits:
            text = f"{head}.{tail[:digits][:6].ljust(6, '0')}{tail[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp()  # without a zone, datetime's local-time reading


def test_common_image_timestamps() -> None:
    assert parse_time("1970-01-01T00:00:00Z") == 0.0
    assert parse_time("2024-01-27T00:30:56.15198224Z") == 1706315456.151982
    assert parse_time("2024-01-27T02:30:56+02:00") == 1706315456.0
    assert parse_time("2000-02-29T12:00:00-05:30") == datetime(2000, 2, 29, 17, 30, tzinfo=timezone.utc).timestamp()
    assert parse_time("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()


def test_invalid_times_are_none() -> None:
    for text in ("", None, "yesterday", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z",
                 "2024-01-01T00:00:00+24:00", "0000-01-01T00:00:00Z",
                 "２０２４-01-01T00:00:00Z"):
        assert parse_time(text) is None, text


def test_the_offset_after_a_fraction_counts() -> None:
    """An earlier version read the offset's digits as part of the fraction and dropped the zone."""
    assert parse_time("2024-06-11T11:35:56.8128657+23:59") == 1718019416.812865
    assert parse_time("2024-06-11T11:35:56.5-01:00") == parse_time("2024-06-11T12:35:56.5Z")


def test_random_timestamps_agree_with_datetime() -> None:
    rnd = random.Random(16)
    zones = ["Z", "+00:00", "-05:30", "+14:00", "+23:59", "+24:00", "+01:60", "z", "+0100", "Zx", "+01:00:00"]
    for _ in range(50_000):
        year = rnd.choice([1, 1969, 1970, 2000, 2024, 2100, 9998, rnd.randint(1, 9998)])
        text = (f"{year:04d}-{rnd.randint(0, 13):02d}-{rnd.randint(0, 32):02d}{rnd.choice('TTt ')}"
                f"{rnd.randint(0, 25):02d}:{rnd.randint(0, 61):02d}:{rnd.randint(0, 61):02d}")
        if rnd.random() < 0.6:
            text += "." + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, 10)))
        text += rnd.choice(zones)
        assert parse_time(text) == _by_datetime(text), text
