"""The event log: concurrent writers never interleave, the log is bounded, readers follow rotation,
and the filters mean what podman's do. Real files, real processes."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from rootlet.registry.errors import UsageError
from rootlet.runtime.system import events as ev


def _writer(root: str, n: int, tag: str) -> None:
    for i in range(n):
        ev.record_event(root, "container", "start", id=f"{tag}{i:06d}" + "a" * 50, name=tag,
                        image="docker.io/library/alpine:latest", attributes={"k": "v" * 200})


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 400, f"w{p}")) for p in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    raw = (tmp_path / "events.log").read_bytes().splitlines()
    assert len(raw) == 2400
    got = list(ev.read_events(str(tmp_path)))
    assert len(got) == 2400
    for tag in (f"w{p}" for p in range(6)):
        mine = [e.id[len(tag):len(tag) + 6] for e in got if e.name == tag]
        assert mine == [f"{i:06d}" for i in range(400)]  # each writer's events in its own order


def test_the_log_is_rotated_past_its_bound_and_read_across_the_rotation(tmp_path: Path) -> None:
    root = str(tmp_path)
    line = len(b'{"t":1,"type":"volume","status":"create","name":""}') + 19 + 300
    count = ev.MAX_BYTES // line + 50
    for i in range(count):
        ev.record_event(root, "volume", "create", name=f"v{i:07d}" + "x" * 300)
    assert (tmp_path / "events.log.1").exists()
    assert (tmp_path / "events.log").stat().st_size < ev.MAX_BYTES
    names = [e.name[:8] for e in ev.read_events(root)]
    assert names == [f"v{i:07d}" for i in range(count)]
    for i in range(count):  # a second rotation drops the oldest part: the bound holds
        ev.record_event(root, "volume", "remove", name=f"r{i:07d}" + "x" * 300)
    total = sum(p.stat().st_size for p in tmp_path.glob("events.log*"))
    assert total <= 2 * ev.MAX_BYTES + 4096


def test_a_follower_sees_new_events_and_survives_a_rotation(tmp_path: Path) -> None:
    root = str(tmp_path)
    ev.record_event(root, "volume", "create", name="before")
    stop = threading.Event()
    seen: list[str] = []

    def follow() -> None:
        for e in ev.follow_events(root, lambda: not stop.is_set()):
            seen.append(e.name)

    t = threading.Thread(target=follow)
    t.start()
    try:
        time.sleep(0.3)
        ev.record_event(root, "volume", "create", name="after")
        os.replace(tmp_path / "events.log", tmp_path / "events.log.1")  # as a writer rotates it
        ev.record_event(root, "volume", "create", name="rotated")
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(5)
    assert seen == ["before", "after", "rotated"]


def test_recording_into_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    ev.record_event(str(tmp_path / "nowhere"), "volume", "create", name="x")
    assert not (tmp_path / "nowhere").exists()


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    ev.record_event(str(tmp_path), "volume", "create", name="whole")
    with open(tmp_path / "events.log", "ab") as f:
        f.write(b'{"t": 5, "type": "vol\n')
    ev.record_event(str(tmp_path), "volume", "remove", name="whole")
    assert [e.status for e in ev.read_events(str(tmp_path))] == ["create", "remove"]


def _event(**doc: object) -> ev.Event:
    return ev.Event({"t": 1, **doc})


def test_filters_follow_podmans_rules() -> None:
    c = _event(type="container", status="start", id="abcdef123456" + "0" * 52, name="web",
               image="docker.io/library/alpine:latest", attrs={"tier": "front"})
    i = _event(type="image", status="tag", id="fedcba" + "0" * 58, name="localhost/mine:1")
    v = _event(type="volume", status="create", name="data")

    def hit(event: ev.Event, *filters: str) -> bool:
        return ev.matches(event, ev.parse_filters(filters))

    assert hit(c, "container=web") and hit(c, "container=abcdef") and not hit(c, "container=ab")
    assert hit(c, "event=start", "event=died") and not hit(c, "event=start", "type=image")
    assert hit(c, "image=alpine") and hit(c, "image=docker.io/library/alpine:latest") and not hit(c, "image=busybox")
    assert hit(i, "image=localhost/mine:1") and hit(i, "image=fedcba") and not hit(v, "image=data")
    assert hit(v, "volume=data") and not hit(c, "volume=data")
    assert hit(c, "label=tier") and hit(c, "label=tier=front") and not hit(c, "label=tier=back")
    assert hit(c, "status=start")
    for bad in ("type=flux", "colour=red", "container", "event="):
        with pytest.raises(UsageError):
            ev.parse_filters([bad])
