"""``system df|prune|reset``, ``events``, ``stats``, ``pause``/``unpause``: podman's flags and output."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, List, Optional

import typer

from rootlet.cli.context import AppContext, subgroup
from rootlet.cli.render import dump_json, human_duration, out, parse_time, raise_collected
from rootlet.cli.volumes import confirm_or_refuse

if TYPE_CHECKING:
    from rootlet.runtime.engine.reports import ContainerResult


def go_size(n: float) -> str:
    """podman's ``units.HumanSize``: 4 significant digits, 1000-based, no space (``1.998MB``)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.4g}{unit}"
        size /= 1000
    return f"{n}B"


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` (``1.5s``, ``12.34ms``, ``2m3.5s``)."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1000:.3f}".rstrip("0").rstrip(".") + "µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.6f}".rstrip("0").rstrip(".") + "ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".") + "s"
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + secs


# --- system df --------------------------------------------------------------------------------------

DF_TABLE = "table {{.Type}}\t{{.Total}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_IMAGES = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Created}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}"
             "\t{{.Containers}}")
DF_CONTAINERS = ("table {{.ContainerID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.Created}}"
                 "\t{{.Status}}\t{{.Names}}")
DF_VOLUMES = "table {{.VolumeName}}\t{{.Links}}\t{{.Size}}"
DF_HEADERS = {"ID": "IMAGE ID", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "ContainerID": "CONTAINER ID",
              "LocalVolumes": "LOCAL VOLUMES", "VolumeName": "VOLUME NAME"}


def df(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="One row per image, container and volume."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json, or a Go template over .Type .Total .Active .Size "
                                      ".Reclaimable."),
) -> None:
    """Show what images, containers and volumes take on disk, and what a prune would free."""
    from rootlet.cli.template import format_kind, render_rows

    app: AppContext = ctx.obj
    report = app.engine().system_df()
    kind = format_kind(fmt)
    raw = [{"Type": s.type, "Total": s.total, "Active": s.active, "Size": s.size, "Reclaimable": s.reclaimable}
           for s in report.summary]
    if kind == "json":
        dump_json(raw)
        return
    if not verbose or kind != "default":
        docs = [dict(r, Size=go_size(s.size), Reclaimable=f"{go_size(s.reclaimable)} ({_percent(s.reclaimable, s.size)}%)")
                for r, s in zip(raw, report.summary)]
        out(render_rows(fmt if kind != "default" else DF_TABLE, docs))
        return
    now = time.time()
    images = [{"Repository": i.repository, "Tag": i.tag, "ID": i.id[:12], "Size": go_size(i.size),
               "Created": _since(parse_time(i.created), now), "SharedSize": go_size(i.shared),
               "UniqueSize": go_size(i.unique), "Containers": i.containers} for i in report.images]
    containers = [{"ContainerID": c.id[:12], "Image": c.image_id[:12], "Command": " ".join(c.command),
                   "LocalVolumes": c.volumes, "Size": go_size(c.size), "Created": _since(c.created, now),
                   "Status": c.status, "Names": c.name} for c in report.containers]
    volumes = [{"VolumeName": v.name, "Links": v.links, "Size": go_size(v.size)} for v in report.volumes]
    for title, template, rows in (("Images", DF_IMAGES, images), ("Containers", DF_CONTAINERS, containers),
                                  ("Local Volumes", DF_VOLUMES, volumes)):
        out(f"{title} space usage:\n")
        out(render_rows(template, rows, DF_HEADERS) + ("\n" if title != "Local Volumes" else ""))


def _percent(part: int, whole: int) -> int:
    return int(part * 100 / whole + 0.5) if whole > 0 else 0


def _since(ts: float | None, now: float) -> str:
    return human_duration(now - ts) if ts is not None else "N/A"


# --- system prune and reset ----------------------------------------------------------------------------

def prune(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Remove every image no container uses, not only dangling ones."),
    volumes: bool = typer.Option(False, "--volumes", help="Also remove every volume no container uses."),
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove stopped containers, dangling (with -a: unused) images, and with --volumes unused volumes."""
    from rootlet.runtime.engine.options import SystemPruneOptions

    app: AppContext = ctx.obj
    lines = ["all stopped containers"] + (["all volumes not used by at least one container"] if volumes else []) + \
        ["all images without at least one container associated with them" if all_ else "all dangling images"]
    if not confirm_or_refuse(force, "system prune", "WARNING! This command removes:\n" +
                             "".join(f"\t- {line}\n" for line in lines).rstrip("\n")):
        return
    report = app.engine().system_prune(SystemPruneOptions(all=all_, volumes=volumes))
    for title, items in (("Deleted Containers", report.containers), ("Deleted Volumes", report.volumes),
                         ("Deleted Images", report.images)):
        if items:
            out(title)
            for item in items:
                out(item)
    out(f"Total reclaimed space: {go_size(report.reclaimed)}")


def reset(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove every container (stopping running ones), image, volume and event of the store."""
    app: AppContext = ctx.obj
    if not confirm_or_refuse(force, "system reset", "WARNING! This will remove:\n\t- all containers\n\t- all images\n"
                             "\t- all volumes\n\t- the event log"):
        return
    app.engine().system_reset()


# --- events ---------------------------------------------------------------------------------------------

def _event_time(ns: int) -> str:
    """Go's ``time.Time.String`` of a time in nanoseconds (local, trailing zeros trimmed)."""
    local = time.localtime(ns // 1_000_000_000)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + (f".{frac}" if frac else "") + time.strftime(" %z %Z", local)


def _event_rfc3339(ns: int) -> str:
    local = time.localtime(ns // 1_000_000_000)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    off = local.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + (f".{frac}" if frac else "") + zone


def event_json(e: object) -> dict:
    """podman's ``events --format json`` object (empty fields left out, as its omitempty)."""
    doc: dict = {}
    if getattr(e, "exit_code", None):
        doc["ContainerExitCode"] = e.exit_code  # type: ignore[attr-defined]
    for key, attr in (("ID", "id"), ("Image", "image"), ("Name", "name")):
        if getattr(e, attr):
            doc[key] = getattr(e, attr)
    doc.update({"Status": e.status, "Time": _event_rfc3339(e.time), "Type": e.type,  # type: ignore[attr-defined]
                "Attributes": dict(e.attributes) if e.type == "container" else None})  # type: ignore[attr-defined]
    return doc


def event_text(e: object) -> str:
    """podman's default line for an event."""
    head = f"{_event_time(e.time)} {e.type} {e.status}"  # type: ignore[attr-defined]
    if e.type == "container":  # type: ignore[attr-defined]
        extra = "".join(f", {k}={v}" for k, v in e.attributes.items())  # type: ignore[attr-defined]
        return f"{head} {e.id} (image={e.image}, name={e.name}{extra})"  # type: ignore[attr-defined]
    if e.type == "image":  # type: ignore[attr-defined]
        return f"{head} {e.id} {e.name}"  # type: ignore[attr-defined]
    return f"{head} {e.name}".rstrip()  # type: ignore[attr-defined]


def events(
    ctx: typer.Context,
    since: Optional[str] = typer.Option(None, "--since", help="Only events since this time (RFC 3339, Unix time, or 10m)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only events until this time; streaming stops then."),
    filters: List[str] = typer.Option(None, "--filter", "-f", help="type=, event=, container=, image=, volume=, "
                                      "label=K[=V] (one key's values are alternatives; keys must all match)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json (one object a line), or a Go template: "
                                      "'{{.Type}} {{.Status}} {{.Name}}'."),
    stream: Optional[str] = typer.Option(None, "--stream", metavar="BOOL", help="--stream=false: print the events "
                                         "recorded so far and exit (default: keep printing new ones)."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Same as --stream=false."),
) -> None:
    """Print the event log: container, image and volume events, then new ones as they happen."""
    from rootlet.cli.images import parse_bool
    from rootlet.cli.template import format_kind, render_template
    from rootlet.runtime.engine.options import EventsOptions

    app: AppContext = ctx.obj
    kind = format_kind(fmt)
    if kind == "table":
        from rootlet.registry.errors import UsageError

        raise UsageError("events has no table format", "use --format json, or a template such as '{{.Status}}'")
    keep = parse_bool(stream, "--stream") is not False and not no_stream
    for e in app.engine().events(EventsOptions(since=since, until=until, filters=tuple(filters or ()), stream=keep)):
        if kind == "json":
            import json

            out(json.dumps(event_json(e), separators=(",", ":")))
        elif kind == "template":
            doc = dict(event_json(e), Time=_event_time(e.time), Attributes=dict(e.attributes),
                       ContainerExitCode=e.exit_code or 0, ID=e.id, Image=e.image, Name=e.name)
            out(render_template(fmt or "", doc))
        else:
            out(event_text(e))
        sys.stdout.flush()


# --- stats, pause, unpause --------------------------------------------------------------------------

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDS}}"
               "\t{{.UpTime}}\t{{.AVGCPU}}")
STATS_HEADERS = {"ID": "ID", "UpTime": "CPU TIME", "AVGCPU": "Avg CPU %", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET IO", "BlockIO": "BLOCK IO",
                 "PIDS": "PIDS"}


def _pair(a: int | None, b: int | None) -> str:
    return "-- / --" if a is None or b is None else f"{go_size(a)} / {go_size(b)}"


def stats_doc(s: object, previous: object, no_trunc: bool) -> dict:
    """podman's ``stats`` fields of one sample (strings, as its table and JSON show them)."""
    return {"ID": s.id if no_trunc else s.id[:12], "Name": s.name,  # type: ignore[attr-defined]
            "CPUPerc": f"{s.cpu_percent(previous):.2f}%", "AVGCPU": f"{s.cpu_percent():.2f}%",  # type: ignore[attr-defined]
            "MemUsage": _pair(s.mem_usage, s.mem_limit), "MemPerc": f"{s.mem_percent:.2f}%",  # type: ignore[attr-defined]
            "NetIO": _pair(s.net_in, s.net_out), "BlockIO": _pair(s.block_in, s.block_out),  # type: ignore[attr-defined]
            "PIDS": str(s.pids), "UpTime": go_duration(s.cpu_seconds)}  # type: ignore[attr-defined]


def stats(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="[CONTAINER...]"),
    all_: bool = typer.Option(False, "--all", "-a", help="Every container, not only running ones."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print one sample and exit."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json, or a Go template: 'table {{.Name}} {{.MemUsage}}'."),
    interval: int = typer.Option(5, "--interval", "-i", help="Seconds between samples when streaming."),
    no_reset: bool = typer.Option(False, "--no-reset", help="Do not clear the screen between samples."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Full container ids."),
) -> None:
    """Show what containers use, from /proc of their processes: CPU %, memory (RSS), processes, I/O."""
    from rootlet.cli.template import format_kind, render_rows
    from rootlet.registry.errors import UsageError
    from rootlet.runtime.engine.options import StatsOptions

    if interval < 1:
        raise UsageError(f"invalid --interval {interval}", "give whole seconds, 1 or more")
    app: AppContext = ctx.obj
    engine = app.engine()
    kind = format_kind(fmt)
    previous: dict = {}
    while True:
        samples = engine.stats(StatsOptions(tuple(names or ()), all=all_))
        docs = [stats_doc(s, previous.get(s.id), no_trunc) for s in samples]
        previous = {s.id: s for s in samples}
        if not no_stream and not no_reset and sys.stdout.isatty():
            sys.stdout.write("\033[2J\033[H")
        if kind == "json":
            dump_json([{"id": d["ID"], "name": d["Name"], "cpu_time": d["UpTime"], "cpu_percent": d["CPUPerc"],
                        "avg_cpu": d["AVGCPU"], "mem_usage": d["MemUsage"], "mem_percent": d["MemPerc"],
                        "net_io": d["NetIO"], "block_io": d["BlockIO"], "pids": d["PIDS"]} for d in docs])
        else:
            text = render_rows(fmt if kind in ("table", "template") else STATS_TABLE, docs, STATS_HEADERS)
            if text:
                out(text)
        sys.stdout.flush()
        if no_stream:
            return
        time.sleep(interval)


def _paused(ctx: typer.Context, names: Optional[List[str]], all_: bool, unpause: bool) -> None:
    app: AppContext = ctx.obj
    results: list[ContainerResult] = app.engine().pause(tuple(names or ()), unpause=unpause, all_=all_)
    for r in results:
        if r.error is None:
            out(r.name)
    raise_collected([r.error for r in results if r.error is not None])


def pause(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    all_: bool = typer.Option(False, "--all", "-a", help="Every running container."),
) -> None:
    """Pause containers: refused, rootlet has no cgroup freezer (podman needs a delegated cgroup v2)."""
    _paused(ctx, names, all_, unpause=False)


def unpause(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="CONTAINER..."),
    all_: bool = typer.Option(False, "--all", "-a", help="Every paused container."),
) -> None:
    """Unpause containers: refused, as pause is (no container can be paused)."""
    _paused(ctx, names, all_, unpause=True)


def register(app: typer.Typer) -> None:
    """``system`` group (df, prune, reset, events), ``events``, and ``stats``/``pause``/``unpause``
    at the top level and in the ``container`` group (register after containers)."""
    group = typer.Typer(help="Manage the store: disk use, pruning, reset, events.", no_args_is_help=True)
    group.command("df")(df)
    group.command("prune")(prune)
    group.command("reset")(reset)
    group.command("events")(events)
    app.add_typer(group, name="system")
    app.command("events")(events)
    container = subgroup(app, "container")
    for name, func in (("stats", stats), ("pause", pause), ("unpause", unpause)):
        app.command(name)(func)
        container.command(name)(func)
