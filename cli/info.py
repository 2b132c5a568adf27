"""``rootlet info``: the rootless set-up as rootlet sees it, with a fix-it hint for each problem."""

from __future__ import annotations

from typing import Any, Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import dump_json, human_size, out
from rootlet.registry.errors import UsageError


def info(
    ctx: typer.Context,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (rootlet's fields), or a Go template "
                                      "over podman's names: '{{.Store.GraphRoot}}', '{{.Host.Security.Rootless}}'."),
) -> None:
    """Show the rootless set-up: id ranges, helpers, overlay support, /dev/fuse, the store."""
    from rootlet.cli.template import format_kind, render_template

    app: AppContext = ctx.obj
    kind = format_kind(fmt)
    if kind == "table":
        raise UsageError("info has no table format", "use --format json, or a template such as '{{.Host.Kernel}}'")
    report = app.engine().info()
    host, store = report.host, report.store
    if kind == "json":
        dump_json({"host": host.to_json(), "store": store.to_json()})
        return
    if kind == "template":
        out(render_template(fmt or "", _podman_info(host, store, app.engine().version().arch)))
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


def _podman_info(host: Any, store: Any, arch: str) -> dict:
    """The fields of ``podman info`` that scripts read, under podman's names, from rootlet's report."""
    import os

    def ids(maps: Any) -> list[dict]:
        return [{"ContainerID": m.inner, "HostID": m.outer, "Size": m.count} for m in maps]

    return {
        "Host": {"Arch": arch.split("/", 1)[0], "Os": "linux", "Kernel": host.kernel,
                 "Hostname": os.uname().nodename, "CgroupVersion": host.cgroup_version,
                 "IDMappings": {"UIDMap": ids(host.plan.uid_map), "GIDMap": ids(host.plan.gid_map)},
                 "Security": {"Rootless": host.uid != 0, "SECCOMPEnabled": True},
                 "OCIRuntime": {"Name": "rootlet"}},
        "Store": {"GraphRoot": store.root, "GraphDriverName": "overlay",
                  "ImageStore": {"Number": store.images}},
    }


def version(
    ctx: typer.Context,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json, or a Go template such as "
                                      "'{{.Client.Version}}'."),
) -> None:
    """Show rootlet's version, the Python it runs on and the platform (as podman version does)."""
    from rootlet.cli.template import format_kind, render_template

    app: AppContext = ctx.obj
    kind = format_kind(fmt)
    if kind == "table":
        raise UsageError("version has no table format", "use --format json, or a template such as "
                                                        "'{{.Client.Version}}'")
    report = app.engine().version()
    doc = {"Client": {"Version": report.version, "PythonVersion": report.python_version,
                      "OsArch": f"{report.os}/{report.arch}", "Os": report.os}}
    if kind == "json":
        dump_json(doc)
    elif kind == "template":
        out(render_template(fmt or "", doc))
    else:
        out(f"Version:        {report.version}")
        out(f"Python Version: {report.python_version}")
        out(f"OS/Arch:        {report.os}/{report.arch}")


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("version")(version)
