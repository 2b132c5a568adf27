"""``rootlet info``: the rootless set-up as rootlet sees it, with a fix-it hint for each problem."""

from __future__ import annotations

from typing import Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.images import check_format
from rootlet.cli.render import dump_json, human_size, out


def info(
    ctx: typer.Context,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="table (default) or json."),
) -> None:
    """Show the rootless set-up: id ranges, helpers, overlay support, /dev/fuse, the store."""
    from dataclasses import asdict

    from rootlet.runtime.images import store_summary
    from rootlet.runtime.sysinfo import host_info

    app: AppContext = ctx.obj
    kind = check_format(fmt)
    store_obj = app.store()
    # Probe the kernel overlay on the store's own filesystem: that is where layers are mounted from.
    store_obj.ensure()
    host = host_info(tmpdir=store_obj.tmp)
    store = store_summary(store_obj)
    if kind == "json":
        dump_json({"host": _plain(asdict(host)), "store": _plain(asdict(store))})
        return
    plan = host.plan
    out("host:")
    out(f"  user: {host.user} (uid {host.uid})")
    out(f"  kernel: {host.kernel}")
    out(f"  cgroups: {host.cgroup_version}")
    mode = "rootful (real root)" if plan.rootful else ("single id" if plan.single_id else "subordinate ids")
    out(f"  idMappings ({mode}):")
    for label, maps in (("uidmap", plan.uid_map), ("gidmap", plan.gid_map)):
        out(f"    {label}: " + ", ".join(f"{m.inner}->{m.outer} x{m.count}" for m in maps))
    out(f"  overlay: kernel overlay in a user namespace {'works' if host.kernel_overlay else 'does not work'}; "
        f"fuse-overlayfs {host.fuse_overlayfs_version or 'not installed'}")
    out("store:")
    out(f"  root: {store.root}")
    out(f"  images: {store.images}")
    out(f"  layers: {store.layers} ({human_size(store.layer_bytes)} unpacked)")
    out(f"  blobs: {human_size(store.blob_bytes)}")
    out("checks:")
    problems = 0
    for check in host.checks:
        out(f"  [{'ok' if check.ok else '!!'}] {check.name}: {check.detail}")
        if not check.ok:
            problems += 1
            if check.hint:
                out(f"       fix: {check.hint}")
    if problems:
        out(f"{problems} problem(s) found; see the fixes above.")


def register(app: typer.Typer) -> None:
    app.command("info")(info)


def _plain(value: object) -> object:
    """JSON-ready: records (registry/record.py) inside dataclasses become dicts too."""
    from rootlet.registry.record import Record

    if isinstance(value, Record):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

