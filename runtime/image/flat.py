"""Flat filesystem tars: ``export`` (a container's whole filesystem) and ``import`` (a tar → an image).

``export`` writes the container's merged view (its image's layers with its own changes on top) as
one plain tar with the layer writer (``rootlet.runtime.image.layerwriter``, ``overlay=False``): a
stopped container's overlay is mounted in a private mount namespace of a user-namespace worker
(as ``cp`` does), a running container's is read where its keeper mounted it, by a child that joins
the keeper's user and mount namespaces (outside the container's own mount namespace, so nothing
the container mounted on top, /proc or volumes, is in the tar). The writer reads the tree through
directory descriptors only, so no symlink in the container leads it outside.

``import`` makes a one-layer image of a tar file or stream (gzip, zstd, xz or bzip2 compressed or
not), as ``podman import`` does: the config has this machine's os and architecture, the
``--change`` instructions applied, a history entry (``ADD file:<diff_id> in /`` with the message,
``imported from tarball`` by default), and is created when the file was last modified (now, for a
stream). The tar is read once: gzip and zstd bytes are kept as the layer's blob while they are
inflated to compute the diff_id; xz and bzip2 are kept inflated (layers are never xz or bzip2).
"""

from __future__ import annotations

import hashlib
import os
import time

from rootlet.registry.errors import ContainerStateError, LayerError, UsageError
from rootlet.registry.store import ImageRecord, ImageStore
from rootlet.runtime.image.inflate import CHUNK, Tee, inflate, sniff
from rootlet.runtime.image.newimage import NewLayer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

IMPORT_COMMENT = "imported from tarball"
#: The OCI image config's ``config`` fields in the order Go marshals them.
CONFIG_ORDER = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal",
                "ArgsEscaped")


# --- export --------------------------------------------------------------------------------------

def export_stopped_job(overlay_fields: tuple, fd: int) -> None:
    """In a UsernsWorker with a mount namespace of its own: mount the container's overlay (the
    fields ``cp`` mounts it with: lower dirs, upper, work, merged, overlay kind, rootful, fuse
    options) and write its merged tree as a plain tar to *fd*."""
    from rootlet.runtime.oci.overlay import mount_overlay, unmount_overlay

    lowers, upper, work, merged, overlay, rootful, fuse_options = overlay_fields
    fuse = mount_overlay(tuple(lowers), upper, work, merged, overlay, rootful, fuse_options=fuse_options)
    try:
        _write_tree(merged, fd)
    finally:
        unmount_overlay(merged, fuse)


def export_running(pid: int, started: int, merged: str, fd: int) -> None:
    """Write the merged tree of the running container whose PID 1 is *pid* (started at
    *started*) to *fd*, from its keeper's namespaces (the keeper is PID 1's parent)."""
    from rootlet.runtime.linux import syscalls as linux
    from rootlet.runtime.linux.child import as_error, error_pipe, fork_child, read_error, wait_for
    from rootlet.runtime.linux.proc import same_process

    stopped = ContainerStateError("the container stopped while it was being exported", "export it again")
    try:
        keeper = _parent_pid(pid)
        fds = linux.open_namespaces(keeper, ("user", "mnt"))
    except (OSError, ValueError):
        raise stopped from None
    if not same_process(pid, started):
        linux.close_namespaces(fds)
        raise stopped
    err_r, err_w = error_pipe()

    def body() -> int:
        os.close(err_r)
        linux.join_namespaces(fds)
        _write_tree(merged, fd)
        return 0

    child = fork_child(body, err_w)
    os.close(err_w)
    linux.close_namespaces(fds)
    error = read_error(err_r)
    status = wait_for(child)
    if error is not None:
        raise as_error(error, ContainerStateError)  # type: ignore[misc]
    if status != 0:
        raise ContainerStateError("the export failed")


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2:].split()[1])


def _write_tree(root: str, fd: int) -> None:
    from rootlet.runtime.image.layerwriter import LayerWriteOptions, write_layer

    write_layer(root, fd, LayerWriteOptions(overlay=False, compression="none"))


# --- import --------------------------------------------------------------------------------------

def import_tarball(store: ImageStore, source: str, stream: BinaryIO | None, name: str | None,
                   changes: tuple[str, ...], message: str | None,
                   progress: Callable[[str], None] | None = None) -> ImageRecord:
    """A one-layer image of the tar at *source* (``-``: *stream*), named *name* (a full reference)."""
    from rootlet.registry.fsutil import make_temp_dir
    from rootlet.runtime.image.archive_read import named_layer_error
    from rootlet.runtime.image.newimage import add_image, add_layers
    from rootlet.runtime.linux.rmtree import remove_tree
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    say = progress or (lambda _line: None)
    if "://" in source:
        raise UsageError(f"rootlet import reads a file or stdin, not a URL: {source}",
                         "download it first (curl -o FILE URL), or pipe it: curl URL | rootlet import -")
    config_base = _changed_config(changes)  # bad --change values fail before any work
    store.ensure()
    work = make_temp_dir(store.tmp, f"layer-{os.getpid()}-import-")
    try:
        if source == "-":
            if stream is None:
                raise UsageError("import - reads the tar from stdin, which was not given")
            created = time.time_ns()
            layer = spool_layer(stream, os.path.join(work, "layer"), None)
        else:
            try:
                src = open(source, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise UsageError(f"cannot open {source}: {exc.strerror}") from None
            with src:
                st = os.fstat(src.fileno())
                created = st.st_mtime_ns
                layer = spool_layer(src, os.path.join(work, "layer"), st.st_size or None)
        say(f"Copying blob {layer.digest}")
        config = import_config(layer.diff_id, config_base, created, message)
        plan = plan_userns()
        with UsernsWorker(plan) as worker:
            try:
                chains = add_layers(store, worker, [], [layer], plan.single_id, plan.rootful)
            except LayerError as exc:
                raise named_layer_error(exc, layer) from None
        say(f"Copying config sha256:{hashlib.sha256(config).hexdigest()}")
        say("Writing manifest to image destination")
        return add_image(store, config, chains, [name] if name else [])
    finally:
        remove_tree(work)


def _changed_config(changes: tuple[str, ...]) -> dict:
    """The ``config`` object the changes make, in the OCI config's field order with its maps'
    keys sorted, as Go writes it (so ``import`` gives podman's image id for the same input)."""
    from rootlet.runtime.image.changes import apply_changes

    inner = apply_changes({}, changes)
    ordered = {k: inner[k] for k in CONFIG_ORDER if k in inner}
    ordered.update((k, v) for k, v in inner.items() if k not in ordered)
    return {k: dict(sorted(v.items())) if isinstance(v, dict) else v for k, v in ordered.items()}


def import_config(diff_id: str, inner: dict, created_ns: int, message: str | None) -> bytes:
    """The config ``podman import`` writes, field for field."""
    from rootlet.registry.manifest import Platform
    from rootlet.runtime.image.archive_tar import go_json

    host = Platform.host()
    when = rfc3339_nano(created_ns)
    doc: dict[str, object] = {"created": when, "architecture": host.architecture}
    if host.variant:
        doc["variant"] = host.variant
    doc["os"] = host.os
    doc["config"] = inner
    doc["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    doc["history"] = [{"created": when, "created_by": f"/bin/sh -c #(nop) ADD file:{diff_id.split(':', 1)[1]} in /",
                       "comment": message if message is not None else IMPORT_COMMENT}]
    return go_json(doc)


def rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped, none when it is zero."""
    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def spool_layer(src: BinaryIO, dest: str, total: int | None) -> NewLayer:
    """Copy the tar *src* (compressed or not) to *dest* as a layer blob, reading it once: the
    digest of what is kept, the diff_id of the tar inside (the bomb guard counting against
    *total* compressed bytes when known)."""
    tee = Tee(src)
    kind = sniff(tee.peek(8))
    keep_raw = kind in ("gzip", "zstd", "none")
    diff = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        if keep_raw:
            tee.out = out
        if kind != "none":
            tee.hash = hashlib.sha256()

        def sink(data: bytes) -> None:
            nonlocal size
            size += len(data)
            diff.update(data)
            if not keep_raw:
                out.write(data)

        inflate(tee, total, "tarball", sink)
        while tee.read(CHUNK):  # bytes after the compressed stream are kept (and refused by unpacking)
            pass
    diff_id = "sha256:" + diff.hexdigest()
    if tee.hash is not None and keep_raw:
        return NewLayer(path=dest, digest="sha256:" + tee.hash.hexdigest(), size=tee.count,
                        compression=kind, diff_id=diff_id)
    return NewLayer(path=dest, digest=diff_id, size=size if not keep_raw else tee.count, compression="none",
                    diff_id=diff_id)
