"""``rootlet logs``: the records of a container's log, filtered, and followed while it runs."""

from __future__ import annotations

import time

from rootlet.registry.errors import ContainerNotFound, ContainerStateError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.lifecycle.logfile import Follower, LogRecord, select_records

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Iterator

#: How often ``-f`` looks for new output and for the container's exit.
POLL_INTERVAL = 0.1


def stream_logs(store: ImageStore, cid: str, *, follow: bool = False, tail: int | None = None,
                since: int | None = None, until: int | None = None) -> Iterator[LogRecord]:
    """The container's stored output, then (with ``follow``) new output until it stops running.

    ``since``/``until`` are nanoseconds since the epoch; ``tail`` keeps the last N lines.
    """
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    if cfg.log.driver == "none":
        raise ContainerStateError(f"container {cfg.name} was created with --log-driver none: it keeps no log")
    path = containers.path(cid, "ctr.log")
    follower = Follower(path) if follow else None
    # Read through the follower, so following picks up exactly where the stored part ends.
    yield from select_records(path, since, until, tail, follower)
    if follower is None:
        return
    try:
        while True:
            try:
                state = containers.refresh(cid)
            except ContainerNotFound:
                state = None
            for rec in follower.poll():
                if until is not None and rec.ns > until:
                    return
                if since is None or rec.ns >= since:
                    yield rec
            if state is None or state.status not in ("running", "restarting", "created"):
                # The monitor flushes the log before it records the exit: one last read is complete.
                for rec in follower.poll():
                    yield rec
                return
            if until is not None and time.time_ns() > until:
                return
            time.sleep(POLL_INTERVAL)
    finally:
        follower.close()


def stream_many(store: ImageStore, cids: list[str], *, follow: bool = False, tail: int | None = None,
                since: int | None = None, until: int | None = None) -> Iterator[tuple[str, LogRecord]]:
    """``stream_logs`` of several containers as (container id, record): one after the other, or
    with ``follow`` as their records come (a reader thread per container; the records of one
    container stay in order). An error of one container (no log kept) ends the stream with it."""
    if not follow or len(cids) == 1:
        for cid in cids:
            for rec in stream_logs(store, cid, follow=follow, tail=tail, since=since, until=until):
                yield cid, rec
        return
    import queue
    import threading

    records: queue.Queue[tuple[str, LogRecord | BaseException | None]] = queue.Queue(maxsize=1024)
    stop = threading.Event()

    def read(cid: str) -> None:
        try:
            for rec in stream_logs(store, cid, follow=True, tail=tail, since=since, until=until):
                if stop.is_set():
                    return
                records.put((cid, rec))
            records.put((cid, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            records.put((cid, exc))

    readers = [threading.Thread(target=read, args=(cid,), daemon=True) for cid in cids]
    for t in readers:
        t.start()
    running = len(readers)
    try:
        while running:
            cid, item = records.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield cid, item
    finally:
        stop.set()
