"""RFC 3339 times read by hand: image configs' ``created``, log records, ``--since``/``--until``,
volumes' ``CreatedAt``.

``datetime`` costs 1.5-2 ms to import (a tenth of ``images``) and ``time.strptime`` more (it
imports ``_strptime``, with ``re``, ``locale`` and ``calendar``). What rootlet and registries write
is one form, read here; callers go to ``datetime`` only for the other ISO 8601 forms they accept,
through ``iso_for_datetime``.
"""

from __future__ import annotations


def parse_rfc3339(text: str) -> tuple[int, int] | None:
    """(Unix seconds, nanoseconds) of ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`` (a space
    may stand for the T), the fraction cut to nanoseconds; None for any other form or an invalid
    date or time."""
    if len(text) < 20 or text[4] != "-" or text[7] != "-" or text[10] not in "T " or text[13] != ":" \
            or text[16] != ":":
        return None
    digits = text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]
    if not (digits.isascii() and digits.isdigit()):
        return None
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    rest = text[19:]
    nanos = 0
    if rest[:1] == ".":
        end = 1
        while end < len(rest) and rest[end].isascii() and rest[end].isdigit():
            end += 1
        if end == 1:
            return None
        nanos = int(rest[1:end][:9].ljust(9, "0"))
        rest = rest[end:]
    if rest == "Z":
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":" and (rest[1:3] + rest[4:6]).isascii() \
            and (rest[1:3] + rest[4:6]).isdigit() and int(rest[1:3]) < 24 and int(rest[4:6]) < 60:
        offset = (int(rest[1:3]) * 60 + int(rest[4:6])) * 60 * (1 if rest[0] == "+" else -1)
    else:
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    month_days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= month_days[month - 1] and hour < 24 and minute < 60
            and second < 60):
        return None
    # Days since 1970-01-01 of the proleptic Gregorian date (the civil-from-days inverse, with
    # March as the year's first month so the leap day comes last).
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second - offset, nanos


def iso_for_datetime(text: str) -> tuple[str, int]:
    """*text* as ``datetime.fromisoformat`` takes it (``Z`` as ``+00:00``, the fraction cut to the
    microseconds datetime holds, the zone after it kept), and the fraction's nanoseconds."""
    text = text.replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if not dot:
        return text, 0
    end = 0
    while end < len(tail) and tail[end].isdigit():
        end += 1
    if not end:
        return text, 0
    return f"{head}.{tail[:end][:6].ljust(6, '0')}{tail[end:]}", int(tail[:end][:9].ljust(9, "0"))
