"""``rootlet logs``: the records of a container's log, filtered, and followed while it runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.containers import ContainerNotFound, ContainerStore
from rootlet.runtime.logfile import Follower, LogRecord, select_records

#: How often ``-f`` looks for new output and for the container's exit.
POLL_INTERVAL = 0.1


class LogsOptions(Record):
    follow: bool = False
    tail: int | None = None
    since: int | None = None        # ns since the epoch
    until: int | None = None


def stream_logs(store: ImageStore, cid: str, opts: LogsOptions) -> Iterator[LogRecord]:
    """The container's stored output, then (with ``follow``) new output until it stops running."""
    containers = ContainerStore(store)
    cfg = containers.config(cid)
    if (cfg.spec.get("log") or {}).get("driver") == "none":
        from rootlet.runtime.containers import ContainerStateError

        raise ContainerStateError(f"container {cfg.name} was created with --log-driver none: it keeps no log")
    path = containers.path(cid, "ctr.log")
    follower = Follower(path) if opts.follow else None
    # Read through the follower, so following picks up exactly where the stored part ends.
    yield from select_records(path, opts.since, opts.until, opts.tail, follower)
    if follower is None:
        return
    try:
        while True:
            try:
                state = containers.refresh(cid)
            except ContainerNotFound:
                state = None
            for rec in follower.poll():
                if opts.until is not None and rec.ns > opts.until:
                    return
                if opts.since is None or rec.ns >= opts.since:
                    yield rec
            if state is None or state.status not in ("running", "restarting", "created"):
                # The monitor flushes the log before it records the exit: one last read is complete.
                for rec in follower.poll():
                    yield rec
                return
            if opts.until is not None and time.time_ns() > opts.until:
                return
            time.sleep(POLL_INTERVAL)
    finally:
        follower.close()
