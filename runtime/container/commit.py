"""``commit``: a container's changes as a new image, and ``diff``: what those changes are.

The container's upper directory becomes one new layer (``runtime/image/layerwriter.py``, inside
the user namespace), which is unpacked into the layer store like a pulled one, blob kept; the new
config is the image's, with the container's runtime settings (its command, environment, working
directory, user, labels, exposed ports, stop signal — docker's and podman's rule), the
``--change`` instructions, the author, and a history entry appended. A running container is
committed as it is at that moment: rootlet cannot freeze it (no cgroup freezer without delegated
cgroups), which is podman's own default (``--pause=false``).
"""

from __future__ import annotations

import copy
import json
import os
import time

from rootlet.registry.errors import UsageError
from rootlet.registry.record import Record
from rootlet.registry.store import ImageRecord, ImageStore
from rootlet.runtime.container.record import SIGTERM, ContainerConfig
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.image.changes import apply_changes
from rootlet.runtime.linux import signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from rootlet.runtime.engine.options import CommitOptions


#: Mount points rootlet creates in a container's upper directory for its own bind mounts, when the
#: image lacks them: empty files, not the container's work, so neither committed nor listed by
#: ``diff`` (podman filters the same paths from its diff).
MOUNT_PLACEHOLDERS = ("etc/resolv.conf", "etc/hosts", "etc/hostname", "run/.containerenv")


class CommitReport(Record):
    """The new image: its id, and its name when it was given one."""

    image_id: str
    name: str | None = None


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def runtime_config(base: dict[str, Any], cfg: ContainerConfig) -> dict[str, Any]:
    """The image's ``config`` object updated with what the container ran with."""
    out = copy.deepcopy(base)
    image_keys = {e.split("=", 1)[0] for e in base.get("Env") or []}
    # HOSTNAME names this container, HOME rootlet derives from the user when the image has none,
    # and TERM=xterm is set in every container (podman's default): none describes the image.
    out["Env"] = [e for e in cfg.env if e.split("=", 1)[0] not in ("HOSTNAME", "HOME", "TERM")
                  or e.split("=", 1)[0] in image_keys]
    out["Entrypoint"] = list(cfg.entrypoint) or None
    out["Cmd"] = list(cfg.cmd) or None
    if cfg.cwd and cfg.cwd != "/" or base.get("WorkingDir"):
        out["WorkingDir"] = cfg.cwd
    if cfg.user:
        out["User"] = cfg.user
    labels = dict(base.get("Labels") or {})
    labels.update(cfg.labels)
    out["Labels"] = labels or None
    ports = dict(base.get("ExposedPorts") or {})
    for p in cfg.ports:
        ports[f"{p.container_port}/{p.protocol}"] = {}
    if ports:
        out["ExposedPorts"] = ports
    if cfg.stop_signal != SIGTERM or base.get("StopSignal"):
        out["StopSignal"] = signals.signal_name(cfg.stop_signal)
    return {k: v for k, v in out.items() if v is not None}


def new_config(base_doc: dict[str, Any], cfg: ContainerConfig, opts: CommitOptions, diff_id: str,
               image_name: str, created: float) -> bytes:
    """The committed image's config document."""
    doc = copy.deepcopy(base_doc)
    for stale in ("container", "container_config", "docker_version"):
        doc.pop(stale, None)  # they describe how the *base* was built
    inner = runtime_config(doc.get("config") or {}, cfg)
    if opts.include_volumes:
        volumes = dict(inner.get("Volumes") or {})
        volumes.update({m.destination: {} for m in cfg.mounts if m.type == "volume"})
        inner["Volumes"] = volumes or None
    apply_changes(inner, opts.changes)
    doc["config"] = {k: v for k, v in inner.items() if v is not None}
    when = _rfc3339(created)
    doc["created"] = when
    if opts.author:
        doc["author"] = opts.author
    else:
        doc.pop("author", None)
    if opts.format == "docker" and opts.message:
        doc["comment"] = opts.message
    rootfs = doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["type"] = "layers"
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), diff_id]
    entry: dict[str, Any] = {"created": when, "created_by": " ".join(cfg.argv) or "/bin/sh"}
    if opts.author:
        entry["author"] = opts.author
    entry["comment"] = opts.message if opts.message else f"FROM {image_name}"
    doc["history"] = [*(doc.get("history") or []), entry]
    return json.dumps(doc, separators=(",", ":")).encode()


def check_options(opts: CommitOptions) -> None:
    if opts.pause:
        raise UsageError("rootlet cannot pause a container while it commits it: there is no cgroup freezer "
                         "without delegated cgroups", "drop --pause (podman's default is --pause=false too), "
                         "or stop the container first for a consistent image")
    if opts.format not in ("oci", "docker"):
        raise UsageError(f"unknown image format {opts.format!r}", "use -f oci or -f docker")


def commit_container(store: ImageStore, opts: CommitOptions, env: Mapping[str, str],
                     squashed: str | None = None) -> CommitReport:
    """Commit the container *opts.container*; returns the new image's id (and name). *squashed* is
    a flat tar of its whole filesystem (``--squash``): the new image's only layer."""
    from rootlet.runtime.image.newimage import add_image, local_name

    check_options(opts)
    name = local_name(opts.image).tagged() if opts.image else None
    timestamp = opts.timestamp
    if timestamp is None and env.get("SOURCE_DATE_EPOCH", "").strip().isdigit():
        timestamp = int(env["SOURCE_DATE_EPOCH"].strip())
    containers = ContainerStore(store)
    cid = containers.resolve(opts.container)
    cfg = containers.config(cid)
    image: ImageRecord | None = store.load().get(cfg.image_id)
    if image is None:
        from rootlet.registry.errors import ImageNotFound

        raise ImageNotFound(f"the image of container {cfg.name} ({cfg.image_id[:12]}) is no longer in the store")
    base_doc = json.loads(store.read_blob(image.config_digest))
    if squashed is not None:
        return _commit_squashed(store, opts, cfg, image, base_doc, squashed, name, timestamp)
    made = container_layer(store, cid, image.layers, timestamp)
    created = float(timestamp) if timestamp is not None else time.time()
    config = new_config(base_doc, cfg, opts, str(made["diff_id"]), cfg.image_name, created)
    rec = add_image(store, config, [*image.layers, str(made["chain"])], [name] if name else [])
    _write_iidfile(opts, rec.id)
    return CommitReport(image_id=rec.id, name=name)


def container_layer(store: ImageStore, cid: str, image_layers: list[str], timestamp: int | None = None,
                    placeholders: tuple[str, ...] = MOUNT_PLACEHOLDERS) -> dict[str, object]:
    """Write the changes of container *cid* (on the layers *image_layers*) as a new layer, kept in
    the store with its blob; returns its chain (hex), diff_id and status (``write_and_unpack_job``)."""
    from rootlet.runtime.container.imagefiles import lower_dirs
    from rootlet.runtime.image.layers import LayerStore, write_and_unpack_job
    from rootlet.runtime.image.layerwriter import LayerWriteOptions
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    store.ensure()
    containers = ContainerStore(store)
    # Named like a layer's staging dir, so that the next pull removes it if this process dies.
    blob = os.path.join(store.tmp, f"layer-{os.getpid()}-commit-{cid[:12]}.blob")
    plan = plan_userns()
    layers = LayerStore(store)
    try:
        with UsernsWorker(plan) as worker:
            return worker.call(  # type: ignore[no-any-return]
                write_and_unpack_job, store.tmp, layers.root, os.getpid(), containers.path(cid, "upper"), blob,
                LayerWriteOptions(compression="gzip", timestamp=timestamp, placeholders=placeholders),
                image_layers[-1] if image_layers else None, lower_dirs(store, image_layers), plan.single_id,
                plan.rootful)
    finally:
        try:
            os.unlink(blob)
        except FileNotFoundError:
            pass


def _commit_squashed(store: ImageStore, opts: CommitOptions, cfg: ContainerConfig, image: ImageRecord,
                     base_doc: dict[str, Any], tar: str, name: str | None, timestamp: int | None) -> CommitReport:
    """``--squash``: the flat tar *tar* as the image's one layer; the config as commit makes it,
    with one diff_id and one history entry."""
    import hashlib

    from rootlet.runtime.image.newimage import NewLayer, add_image, add_layers
    from rootlet.runtime.oci.idmap import plan_userns
    from rootlet.runtime.oci.userns import UsernsWorker

    h = hashlib.sha256()
    with open(tar, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    layer = NewLayer(path=tar, digest=digest, size=os.path.getsize(tar), compression="none", diff_id=digest)
    plan = plan_userns()
    with UsernsWorker(plan) as worker:
        chains = add_layers(store, worker, [], [layer], plan.single_id, plan.rootful)
    created = float(timestamp) if timestamp is not None else time.time()
    doc = json.loads(new_config(base_doc, cfg, opts, digest, cfg.image_name, created))
    doc["rootfs"] = {"type": "layers", "diff_ids": [digest]}
    doc["history"] = doc["history"][-1:]
    rec = add_image(store, json.dumps(doc, separators=(",", ":")).encode(), chains, [name] if name else [])
    _write_iidfile(opts, rec.id)
    return CommitReport(image_id=rec.id, name=name)


def _write_iidfile(opts: CommitOptions, image_id: str) -> None:
    if opts.iidfile:
        from rootlet.registry.fsutil import atomic_write

        atomic_write(opts.iidfile, ("sha256:" + image_id).encode(), 0o644, durable=False)
