"""A stopped container's filesystem, mounted where a function can work in it (``build``'s COPY).

The overlays of one or more containers are mounted in a private mount namespace of a worker in
the default user namespace, and the function runs there with their merged directories; nothing
is visible outside the worker, and the mounts end with it. ``Chroot`` makes a merged directory
the process's "/" for a while, so that no path of the container (``..``, absolute symlinks) can
lead out of it; modules a function needs inside must be imported before it enters.
"""

from __future__ import annotations

import contextlib
import os

from rootlet.registry.store import ImageStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def with_views(store: ImageStore, cids: list[str], fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(merged_dirs, *args)`` with the overlays of the stopped containers ``cids`` mounted
    (in that order); returns what it returns (it must pickle), raises what it raises."""
    from rootlet.runtime.container.launchspec import check_layers, runtime_spec
    from rootlet.runtime.container.store import ContainerStore
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    containers = ContainerStore(store)
    specs = []
    for cid in cids:
        cfg = containers.config(cid)
        check_layers(store, cfg)
        spec = runtime_spec(store, cfg)
        specs.append((tuple(spec.lower_dirs), spec.upper_dir, spec.work_dir, spec.merged_dir, spec.overlay,
                      spec.fuse_options))
    plan = plan_userns()
    with contextlib.ExitStack() as stack:
        for cid in cids:  # none of them may start while its overlay is mounted here
            stack.enter_context(containers.starting(cid))
        with UsernsWorker(plan, mount_ns=True) as worker:
            return worker.call(_mounted, specs, plan.rootful, fn, args)


def _mounted(specs: list[tuple[Any, ...]], rootful: bool, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    from rootlet.runtime.oci.overlay import mount_overlay, unmount_overlay

    mounted: list[tuple[str, Any]] = []
    try:
        for lowers, upper, work, merged, overlay, fuse_options in specs:
            mounted.append((merged, mount_overlay(lowers, upper, work, merged, overlay, rootful,
                                                  fuse_options=fuse_options)))
        return fn([m for m, _ in mounted], *args)
    finally:
        for merged, fuse in reversed(mounted):
            unmount_overlay(merged, fuse)


class Chroot:
    """``with Chroot(path):`` — ``path`` (or the open directory ``fd``, reachable from inside
    another chroot too) is "/" (and the working directory) inside the block."""

    def __init__(self, path: str | int) -> None:
        self.path = path
        self.old = -1

    def __enter__(self) -> Chroot:
        self.old = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if isinstance(self.path, int):
            os.fchdir(self.path)
            os.chroot(".")
        else:
            os.chroot(self.path)
        os.chdir("/")
        return self

    def __exit__(self, *exc: object) -> None:
        os.fchdir(self.old)
        os.chroot(".")
        os.close(self.old)
