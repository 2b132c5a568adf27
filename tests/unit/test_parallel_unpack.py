"""Unpacking a layer before the layers below it are in place (a pull unpacks layers in parallel)
gives the same directory as unpacking on top of them: implied parents are finished afterwards by
``fix_implied``, which touches nothing outside the layer. And the stream a download feeds into
an unpacking worker stops, without raising, when it can no longer be the blob."""

from __future__ import annotations

import os
import stat
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from rootlet.runtime.image.applier import ApplyOptions, fix_implied
from rootlet.runtime.image.fetchlayers import _FifoSink
from tests.unit.test_applier import MTIME, Members, apply, member


def _tree(root: Path) -> dict[str, tuple[int, int, int, int | None, int]]:
    """Every entry of *root*: (type and mode, uid, gid, mtime, size), keyed by path; the mtime of a
    directory made now (no entry and no lower layer gave it one) is None."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
            mtime = st.st_mtime_ns if st.st_mtime_ns <= MTIME * 10**9 else None
            out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, mtime, size)
    return out


def _both_ways(tmp_path: Path, lowers: list[Members], upper: Members) -> tuple[Path, Path, tuple[str, ...]]:
    """*upper* applied on top of *lowers* (bottom first) directly, and applied with the lowers
    pending and finished by fix_implied; returns both results and the implied paths."""
    below: tuple[str, ...] = ()
    for n, members in enumerate(lowers):
        low, _ = apply(tmp_path, members, ApplyOptions(lower_dirs=below, single_id=True), dest=f"low{n}")
        below = (str(low), *below)
    direct, _ = apply(tmp_path, upper, ApplyOptions(lower_dirs=below, single_id=True), dest="direct")
    later, result = apply(tmp_path, upper, ApplyOptions(lowers_pending=bool(lowers), single_id=True), dest="later")
    fix_implied(str(later), result.implied, ApplyOptions(lower_dirs=below, single_id=True))
    return direct, later, result.implied


CASES: dict[str, tuple[list[Members], Members]] = {
    "sticky-tmp": ([[member("tmp/", "dir", mode=0o1777)]], [member("tmp/x", data=b"x")]),
    "deep": ([[member("a/", "dir", mode=0o711), member("a/b/", "dir", mode=0o750, mtime=MTIME - 5)]],
             [member("a/b/c/d", data=b"")]),
    "topmost-lower-wins": ([[member("a/", "dir"), member("a/b/", "dir", mode=0o700)],
                            [member("a/", "dir"), member("a/b/", "dir", mode=0o770)]], [member("a/b/f", data=b"")]),
    "whited-out-above": ([[member("c/", "dir"), member("c/d/", "dir", mode=0o700)], [member("c/.wh.d")]],
                         [member("c/d/f", data=b"")]),
    "opaque-above": ([[member("e/", "dir", mode=0o700), member("e/f/", "dir", mode=0o701)],
                      [member("e/", "dir", mode=0o711), member("e/.wh..wh..opq")]], [member("e/f/g", data=b"")]),
    "hidden-by-this-layer": ([[member("home/", "dir"), member("home/a/", "dir", mode=0o700)]],
                             [member(".wh.home"), member("home/a/f", data=b"x")]),
    "listed-later": ([[member("srv/", "dir", mode=0o700)]],
                     [member("srv/x", data=b"x"), member("srv/", "dir", mode=0o750, mtime=MTIME - 9)]),
    "replaced-later": ([[member("opt/", "dir", mode=0o700)]], [member("opt/x", data=b"x"), member("opt", data=b"f")]),
    "no-lower": ([], [member("usr/local/bin/tool", data=b"#!")]),
}


@pytest.mark.parametrize("case", CASES)
def test_pending_lowers_then_fix_equals_applying_on_top(tmp_path: Path, case: str) -> None:
    lowers, upper = CASES[case]
    direct, later, _ = _both_ways(tmp_path, lowers, upper)
    assert _tree(later) == _tree(direct)


@pytest.mark.parametrize(("case", "expected"), [("deep", {"a", "a/b", "a/b/c"}), ("listed-later", set()),
                                                 ("hidden-by-this-layer", set()), ("replaced-later", set())])
def test_only_implied_parents_that_may_show_a_lower_are_listed(tmp_path: Path, case: str, expected: set[str]) -> None:
    """An implied parent the layer lists later, hides the lower of, or replaces takes nothing
    from below, so nothing is left to fix."""
    _, _, implied = _both_ways(tmp_path, *CASES[case])
    assert set(implied) == expected


def test_fix_implied_never_follows_a_symlink_out_of_the_layer(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o700)
    lower = tmp_path / "lower"
    (lower / "x").mkdir(parents=True)
    os.chmod(lower / "x", 0o1777)
    layer = tmp_path / "layer"
    layer.mkdir()
    os.symlink(str(outside), layer / "x")  # what a hostile layer could leave at an implied path
    (layer / "d").mkdir()
    os.symlink(str(outside), layer / "d" / "x")
    fix_implied(str(layer), ("x", "d/x"), ApplyOptions(lower_dirs=(str(lower),), single_id=True))
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o700
    assert os.path.islink(layer / "x") and os.path.islink(layer / "d" / "x")


# -- the stream into an unpacking worker --------------------------------------------------------


def _feed(tmp_path: Path, chunks: list[tuple[int, bytes]], size: int = 1 << 30) -> tuple[_FifoSink, bytes]:
    """Feed *chunks* (offset, bytes) into a sink whose FIFO a thread reads to its end, as an
    unpacking worker does; returns the sink and what the reader got."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    thread = threading.Thread(target=read)
    thread.start()
    sink = _FifoSink(str(fifo), Future(), size)
    for offset, chunk in chunks:
        sink(offset, chunk)
    sink.finish()
    thread.join(10)
    return sink, b"".join(got)


def test_sink_streams_the_bytes_in_order_and_ends_with_eof(tmp_path: Path) -> None:
    sink, got = _feed(tmp_path, [(0, b"abc"), (3, b"def")])
    assert got == b"abcdef" and not sink.cut and not sink.gone


def test_sink_ends_the_stream_with_the_last_byte_of_the_blob(tmp_path: Path) -> None:
    """The worker reads EOF at once, not after the download is made durable; a restart after
    that cannot reach it."""
    sink, got = _feed(tmp_path, [(0, b"abc"), (3, b"def"), (0, b"abcdef")], size=6)
    assert got == b"abcdef" and sink.ended and sink.cut


def test_sink_cuts_the_stream_when_the_download_restarts(tmp_path: Path) -> None:
    # The server sent the blob again from its start: the bytes the worker has are stale.
    sink, got = _feed(tmp_path, [(0, b"abc"), (0, b"xyz"), (3, b"def")])
    assert sink.cut and got == b"abc"


def test_sink_opens_and_ends_the_stream_of_an_empty_download(tmp_path: Path) -> None:
    sink, got = _feed(tmp_path, [])  # a worker waiting in open() is released, and reads EOF
    assert got == b"" and not sink.gone


def test_sink_gives_up_quietly_when_the_worker_stops_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    sink = _FifoSink(str(fifo), Future(), 1 << 30)
    sink(0, b"abc")
    os.close(reader)  # the worker's unpack failed
    sink(3, b"def" * 100_000)
    sink(300_003, b"ghi")
    sink.finish()
    assert sink.gone and not sink.cut


def test_sink_does_not_wait_for_a_worker_whose_job_ended(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    job: Future[object] = Future()
    job.set_exception(OSError("no space left"))  # failed before it opened the FIFO
    sink = _FifoSink(str(fifo), job, 3)
    sink(0, b"abc")
    sink.finish()
    assert sink.gone
