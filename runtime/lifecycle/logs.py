"""``rootlet logs``: the records of a container's log, filtered, and followed while it runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

from rootlet.registry.errors import ContainerNotFound, ContainerStateError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.lifecycle.logfile import Follower, LogRecord, select_records

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
