"""Deferred user-namespace workers (``UsernsWorker(deferred=True)``): forked early and small, set
up only when used (a pull forks its unpackers before it imports its HTTP stack), killed at once
when never used, and importing what their calls will need while they wait (``preload``)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from rootlet.runtime.oci.idmap import plan_userns
from rootlet.runtime.oci.userns import UsernsWorker

pytestmark = pytest.mark.integration

PRELOAD = "rootlet.runtime.image.applier"


def whoami() -> tuple[int, int]:
    """Runs in the worker: its uid and gid there."""
    return os.getuid(), os.getgid()


def loaded(name: str) -> bool:
    """Runs in the worker: whether module *name* is imported there."""
    return name in sys.modules


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_an_unused_deferred_worker_is_closed_at_once() -> None:
    worker = UsernsWorker(plan_userns(), deferred=True)
    worker.preload(PRELOAD)
    started = time.monotonic()
    worker.close()
    assert time.monotonic() - started < 1.0
    assert _gone(worker.pid)


def test_a_deferred_worker_sets_up_its_namespace_on_the_first_call() -> None:
    plan = plan_userns()
    with UsernsWorker(plan, deferred=True) as worker:
        uid, gid = worker.call(whoami)
    if not plan.single_id or plan.rootful:
        assert (uid, gid) == (0, 0)


def test_deferred_workers_kicked_together_all_start() -> None:
    workers = [UsernsWorker(plan_userns(), deferred=True) for _ in range(3)]
    try:
        for worker in workers:
            worker.kick()
        for worker in workers:
            worker.kick()  # twice is once
            worker.start()
        assert len({worker.call(os.getpid) for worker in workers}) == 3
    finally:
        for worker in workers:
            worker.close()


def test_a_deferred_worker_imports_its_preload_while_it_waits() -> None:
    was_loaded = PRELOAD in sys.modules
    with UsernsWorker(plan_userns(), deferred=True) as worker:
        worker.preload(PRELOAD, "no.such.module")
        assert worker.call(loaded, PRELOAD)
    assert (PRELOAD in sys.modules) == was_loaded  # the parent imported nothing of it
