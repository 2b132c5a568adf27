"""Container endpoints: create, list, inspect, the lifecycle verbs, logs, attach, wait, archive,
top, changes, export, stats, resize, prune. Each is a thin call into the engine."""

from __future__ import annotations

import base64
import json
import time

from rootlet.cli.api import docs, query
from rootlet.cli.api.streams import SocketStream
from rootlet.cli.api.http import ClientGone, HttpError, Request, exit_on_hangup
from rootlet.registry.errors import ContainerNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootlet.cli.api.routes import Context

#: ``GET /containers/json`` filters rootlet evaluates (the engine's ``ps --filter`` keys).
PS_FILTERS = ("name", "status", "label", "ancestor", "id", "exited")


def _raise_first(results: list[object]) -> None:
    for r in results:
        if r.error is not None:  # type: ignore[attr-defined]
            raise r.error  # type: ignore[attr-defined]


def _no_body(req: Request) -> None:
    """Endpoints that take no body: an empty one or ``{}`` is fine, anything else a 400."""
    doc = req.json()
    if doc not in (None, {}):
        raise HttpError(400, "this endpoint takes no body (HostConfig at start was removed from docker's API: "
                        "give it at create)", keep=True)


def _running(ctx: Context, name: str) -> bool:
    from rootlet.runtime.engine.options import InspectOptions

    report = ctx.engine.inspect(InspectOptions(names=(name,), type="container"))
    if report.errors:
        raise report.errors[0]  # type: ignore[misc]
    return bool(report.docs[0]["State"]["Running"])  # type: ignore[index]


def _exists(ctx: Context, name: str) -> None:
    if not ctx.engine.container_exists(name):
        raise ContainerNotFound(f"No such container: {name}")


def create(req: Request, ctx: Context) -> None:
    from rootlet.cli.api.createbody import run_options

    body = query.object_body(req, required=True)
    report = ctx.engine.create(run_options(body, req.arg("name"), req.arg("platform")))
    req.send_json({"Id": report.id, "Warnings": list(report.warnings)}, 201)


def list_(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import PsOptions

    filters = []
    for key, value in query.filters(req):
        if key not in PS_FILTERS:
            raise HttpError(400, f"invalid filter {key!r}: rootlet filters containers by "
                            f"{', '.join(PS_FILTERS)}", keep=True)
        filters.append(f"{key}={value}")
    limit = query.integer(req, "limit")
    rows = ctx.engine.ps(PsOptions(all=query.boolean(req, "all"), filters=tuple(filters),
                                   last=limit if limit and limit > 0 else None, size=query.boolean(req, "size")))
    req.send_json([docs.summary(r) for r in rows])


def inspect(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import InspectOptions

    report = ctx.engine.inspect(InspectOptions(names=(req.params["id"],), type="container"))
    if report.errors:
        raise report.errors[0]  # type: ignore[misc]
    doc = docs.container(report.docs[0])
    if query.boolean(req, "size"):
        from rootlet.runtime.engine.options import PsOptions

        for r in ctx.engine.ps(PsOptions(all=True, filters=(f"id={doc['Id']}",), size=True)):
            doc.update(SizeRw=r.rw_size, SizeRootFs=r.root_size)
    req.send_json(doc)


def top(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import TopOptions

    args = (req.arg("ps_args") or "").strip()
    descriptors = () if args in ("", "-ef", "-e -f", "aux", "-aux", "-eF") else \
        tuple(a for a in args.replace(",", " ").split() if a)
    report = ctx.engine.top(TopOptions(container=req.params["id"], descriptors=descriptors))
    req.send_json({"Titles": report.columns, "Processes": [[row[c] for c in report.columns] for row in report.rows]})


def logs(req: Request, ctx: Context) -> None:
    from rootlet.cli.api.streams import frame
    from rootlet.runtime.engine.options import LogsOptions

    name = req.params["id"]
    want = {"stdout": query.boolean(req, "stdout"), "stderr": query.boolean(req, "stderr")}
    if not any(want.values()):
        raise HttpError(400, "Bad parameters: you must choose at least one stream", keep=True)
    tail_text = (req.arg("tail") or "all").strip()
    if tail_text != "all" and not tail_text.lstrip("-").isdigit():
        raise HttpError(400, f"invalid tail {tail_text!r}: a number of lines or 'all'", keep=True)
    tail = None if tail_text == "all" or int(tail_text) < 0 else int(tail_text)
    since, until = req.arg("since") or "", req.arg("until") or ""
    follow = query.boolean(req, "follow")
    timestamps = query.boolean(req, "timestamps")
    tty = _tty(ctx, name)
    records = ctx.engine.logs(LogsOptions(containers=(name,), follow=follow, tail=tail,
                                          since=since if since not in ("", "0") else None,
                                          until=until if until not in ("", "0") else None))
    stream = req.start_stream(content_type="application/vnd.docker.raw-stream" if tty
                              else "application/vnd.docker.multiplexed-stream")
    if follow:
        req.streaming()
        exit_on_hangup(req.conn)
    try:
        for _cid, _name, rec in records:
            if not want.get(rec.stream):
                continue
            data = rec.data + (b"" if rec.partial else b"\n")
            if timestamps:
                data = rec.ts.encode() + b" " + data
            stream.write(data if tty else frame(rec.stream, data))
        stream.close()
    except ClientGone:
        return


def _tty(ctx: Context, name: str) -> bool:
    from rootlet.runtime.engine.options import InspectOptions

    report = ctx.engine.inspect(InspectOptions(names=(name,), type="container"))
    if report.errors:
        raise report.errors[0]  # type: ignore[misc]
    return bool(report.docs[0]["Config"]["Tty"])  # type: ignore[index]


def changes(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import DiffOptions

    kinds = {"C": 0, "A": 1, "D": 2}
    changed = ctx.engine.diff(DiffOptions(name=req.params["id"], kind="container"))
    req.send_json([{"Path": c.path, "Kind": kinds[c.kind]} for c in changed] or None)


def export(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import ExportOptions

    name = req.params["id"]
    _exists(ctx, name)
    conn = req.start_raw(content_type="application/x-tar")
    ctx.engine.export(ExportOptions(container=name), stream=SocketStream(conn.fileno()))


def stats(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import StatsOptions

    name = req.params["id"]
    engine = ctx.engine
    one = not query.boolean(req, "stream", True) or query.boolean(req, "one-shot")
    previous = None
    first = engine.stats(StatsOptions(names=(name,)))[0]
    if one:
        req.send_json(_stats_doc(first, None))
        return
    stream = req.start_stream()
    req.streaming()
    exit_on_hangup(req.conn)
    try:
        current = first
        while True:
            stream.json(_stats_doc(current, previous))
            time.sleep(1.0)
            previous, current = current, engine.stats(StatsOptions(names=(name,)))[0]
            if not current.running:
                stream.json(_stats_doc(current, previous))
                break
        stream.close()
    except ClientGone:
        return


def _stats_doc(s: object, prev: object | None) -> dict[str, object]:
    """docker's stats document from a ``ContainerStats`` (and the sample before it)."""
    import os

    def cpu(x: object | None) -> dict[str, object]:
        if x is None:
            return {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": os.cpu_count() or 1}
        total = int(x.cpu_seconds * 1e9)  # type: ignore[attr-defined]
        return {"cpu_usage": {"total_usage": total, "usage_in_kernelmode": 0, "usage_in_usermode": total},
                "system_cpu_usage": int(x.sampled * 1e9 * (os.cpu_count() or 1)),  # type: ignore[attr-defined]
                "online_cpus": os.cpu_count() or 1}

    networks = {}
    if s.net_in is not None:  # type: ignore[attr-defined]
        networks["eth0"] = {"rx_bytes": s.net_in, "tx_bytes": s.net_out or 0, "rx_packets": 0,  # type: ignore
                            "tx_packets": 0, "rx_errors": 0, "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0}
    blkio = [] if s.block_in is None else [  # type: ignore[attr-defined]
        {"major": 0, "minor": 0, "op": "read", "value": s.block_in},  # type: ignore[attr-defined]
        {"major": 0, "minor": 0, "op": "write", "value": s.block_out or 0}]  # type: ignore[attr-defined]
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 1_000_000_000:09d}Z"
    return {"read": now, "preread": "0001-01-01T00:00:00Z", "id": s.id, "name": f"/{s.name}",  # type: ignore
            "pids_stats": {"current": s.pids}, "cpu_stats": cpu(s), "precpu_stats": cpu(prev),  # type: ignore
            "memory_stats": {"usage": s.mem_usage, "limit": s.mem_limit, "stats": {}},  # type: ignore
            "blkio_stats": {"io_service_bytes_recursive": blkio}, "networks": networks,
            "num_procs": 0, "storage_stats": {}}


def resize(req: Request, ctx: Context) -> None:
    ctx.engine.resize(req.params["id"], query.integer(req, "h", 0) or 0, query.integer(req, "w", 0) or 0)
    req.send(200, b"", "text/plain; charset=utf-8")


def start(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import StartOptions

    _no_body(req)
    name = req.params["id"]
    if _running(ctx, name):
        req.send(304, b"", None)
        return
    _raise_first(ctx.engine.start(StartOptions(names=(name,))))
    req.send(204, b"", None)


def stop(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import StopOptions

    name = req.params["id"]
    if req.arg("signal"):
        raise HttpError(400, "stop's signal parameter is for API 1.42 and later; rootlet serves 1.41", keep=True)
    if not _running(ctx, name):
        req.send(304, b"", None)
        return
    _raise_first(ctx.engine.stop(StopOptions(names=(name,), timeout=query.integer(req, "t"))))
    req.send(204, b"", None)


def restart(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import RestartOptions

    _raise_first(ctx.engine.restart(RestartOptions(names=(req.params["id"],), timeout=query.integer(req, "t"))))
    req.send(204, b"", None)


def kill(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import KillOptions

    _raise_first(ctx.engine.kill(KillOptions(names=(req.params["id"],), signal=req.arg("signal") or "KILL")))
    req.send(204, b"", None)


def rename(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import RenameOptions

    new = req.arg("name") or ""
    if not new:
        raise HttpError(400, "rename needs the new name (name=…)", keep=True)
    ctx.engine.rename(RenameOptions(container=req.params["id"], new_name=new))
    req.send(204, b"", None)


def update(req: Request, ctx: Context) -> None:
    _exists(ctx, req.params["id"])
    raise HttpError(400, "rootlet cannot change a created container: its resources need cgroups (rootlet has "
                    "none) and its restart policy is fixed at create", keep=True)


def pause(req: Request, ctx: Context, unpause: bool = False) -> None:
    _raise_first(ctx.engine.pause((req.params["id"],), unpause=unpause))
    req.send(204, b"", None)


def unpause(req: Request, ctx: Context) -> None:
    pause(req, ctx, unpause=True)


def attach(req: Request, ctx: Context) -> None:
    from rootlet.cli.api.streams import HijackedClient, detach_sequence
    from rootlet.runtime.engine.options import AttachOptions

    keys = detach_sequence(req.arg("detachKeys"))
    opts = AttachOptions(container=req.params["id"], stdin=query.boolean(req, "stdin"),
                         stdout=query.boolean(req, "stdout"), stderr=query.boolean(req, "stderr"),
                         logs=query.boolean(req, "logs"), stream=query.boolean(req, "stream"))
    session = ctx.engine.attach(opts)
    try:
        conn = req.hijack()
        req.streaming()
        session.relay(HijackedClient(conn, session.tty, keys))
    finally:
        session.close()


def wait(req: Request, ctx: Context) -> None:
    session = ctx.engine.wait_condition(req.params["id"], req.arg("condition") or "not-running")
    stream = req.start_stream()  # the headers at once: the client knows the wait is in place
    req.streaming()
    conn = req.conn
    try:
        code = session.wait(keep_going=lambda: not conn.hung_up())
        if code is None:
            return
        stream.json({"StatusCode": code, "Error": None})
        stream.close()
    except ClientGone:
        return


def remove(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import RmOptions

    name = req.params["id"]
    if query.boolean(req, "link"):
        raise HttpError(400, "links are not supported: rootlet has no user-defined networks yet", keep=True)
    _exists(ctx, name)
    _raise_first(ctx.engine.rm(RmOptions(names=(name,), force=query.boolean(req, "force"),
                                         volumes=query.boolean(req, "v"))))
    req.send(204, b"", None)


def prune(req: Request, ctx: Context) -> None:
    if query.filters(req):
        raise HttpError(400, "container prune filters are not supported: rootlet prunes every stopped container",
                        keep=True)
    removed = ctx.engine.container_prune()
    req.send_json({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


# --- archive ---------------------------------------------------------------------------------------

def _path(req: Request) -> str:
    path = req.arg("path")
    if not path:
        raise HttpError(400, "path is required (path=/PATH/IN/CONTAINER)", keep=True)
    return path


def _stat_header(ctx: Context, name: str, path: str) -> tuple[str, str]:
    """docker's ``X-Docker-Container-Path-Stat``: base64 of {name, size, mode (Go's FileMode), mtime, linkTarget}."""
    import stat as st

    s = ctx.engine.path_stat(name, path)
    mode = s.mode & 0o777
    kind = st.S_IFMT(s.mode)
    mode |= {st.S_IFDIR: 1 << 31, st.S_IFLNK: 1 << 27, st.S_IFIFO: 1 << 25, st.S_IFSOCK: 1 << 24,
             st.S_IFBLK: 1 << 26, st.S_IFCHR: (1 << 26) | (1 << 21)}.get(kind, 0)
    mode |= (1 << 23 if s.mode & st.S_ISUID else 0) | (1 << 22 if s.mode & st.S_ISGID else 0) | \
        (1 << 20 if s.mode & st.S_ISVTX else 0)
    mtime = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s.mtime)) + f".{int((s.mtime % 1) * 1e9):09d}Z"
    doc = {"name": s.name, "size": s.size, "mode": mode, "mtime": mtime, "linkTarget": s.link_target}
    return "X-Docker-Container-Path-Stat", base64.b64encode(json.dumps(doc).encode()).decode()


def archive_head(req: Request, ctx: Context) -> None:
    req.send(200, b"", None, headers=[_stat_header(ctx, req.params["id"], _path(req))])


def archive_get(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import CopyOptions

    name, path = req.params["id"], _path(req)
    header = _stat_header(ctx, name, path)
    conn = req.start_raw(content_type="application/x-tar", headers=[header])
    ctx.engine.cp(CopyOptions(source=f"{name}:{path}", destination="-"), stream=SocketStream(conn.fileno()))


def archive_put(req: Request, ctx: Context) -> None:
    import stat as st

    from rootlet.runtime.engine.options import CopyOptions

    name, path = req.params["id"], _path(req)
    target = ctx.engine.path_stat(name, path)
    if target.link_target:
        target = ctx.engine.path_stat(name, target.link_target)
    if not st.S_ISDIR(target.mode):
        raise HttpError(400, f"extraction point is not a directory: {path}", keep=False)
    with ctx.engine.spool() as spool:
        for piece in req.body_chunks():  # type: ignore[attr-defined]
            spool.write(piece)
        spool.flush()
        spool.seek(0)
        ctx.engine.cp(CopyOptions(source="-", destination=f"{name}:{path}",
                                  archive=not query.boolean(req, "copyUIDGID"),
                                  overwrite=not query.boolean(req, "noOverwriteDirNonDir")), stream=spool)
    req.send(200, b"", None)
