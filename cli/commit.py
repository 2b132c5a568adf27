"""CLI commands: commit, diff, history (the container's changes as an image, and what an image is made of)."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

import typer

from rootlet.cli.context import AppContext, subgroup
from rootlet.cli.render import dump_json, out

if TYPE_CHECKING:
    from rootlet.runtime.image.history import HistoryRow


def commit(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    image: Optional[str] = typer.Argument(None, metavar="[IMAGE]", help="Name of the new image (none: untagged)."),
    author: Optional[str] = typer.Option(None, "--author", "-a", help="The image's author."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="A commit message (the history comment)."),
    change: List[str] = typer.Option([], "--change", "-c", metavar="INSTRUCTION",
                                     help="Apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                                     "ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR."),
    fmt: str = typer.Option("oci", "--format", "-f", help="Image format: oci or docker (docker keeps -m in the "
                            "config's comment as well)."),
    pause: Optional[str] = typer.Option(None, "--pause", metavar="BOOL",
                                        help="Only --pause=false (podman's default): rootlet cannot pause a "
                                        "container, having no cgroup freezer; a running one is committed as it is."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the id (rootlet prints nothing else anyway)."),
    squash: bool = typer.Option(False, "--squash", "-s", help="One layer: the image's and the container's files "
                                "together, as export writes them."),
    include_volumes: bool = typer.Option(False, "--include-volumes", help="Add the container's volumes to the "
                                         "image's VOLUME list."),
    iidfile: Optional[str] = typer.Option(None, "--iidfile", help="Write the image id to this file."),
) -> None:
    """Create a new image from a container's changes; prints the new image's id.

    The new image is the container's image plus one layer of what the container changed, with the
    container's command, environment, working directory, user, labels and ports (podman's and
    docker's rule). A name without a registry becomes localhost/NAME, as in podman."""
    from rootlet.cli.images import parse_bool
    from rootlet.runtime.engine.options import CommitOptions

    app: AppContext = ctx.obj
    opts = CommitOptions(container=container, image=image, author=author, message=message, changes=tuple(change),
                         format=fmt, pause=parse_bool(pause, "--pause"), squash=squash,
                         include_volumes=include_volumes, iidfile=iidfile)
    report = app.engine().commit(opts)
    out(report.image_id)


def diff(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="CONTAINER|IMAGE"),
    fmt: Optional[str] = typer.Option(None, "--format", help="json: {changed, added, deleted} as podman."),
    kind: str = typer.Option("all", "--type", help="container, image or all (a container first)."),
) -> None:
    """Show what a container changed in its image (or an image's top layer): A added, C changed,
    D deleted, one path per line."""
    from rootlet.registry.errors import UsageError
    from rootlet.runtime.engine.options import DiffOptions

    app: AppContext = ctx.obj
    if fmt not in (None, "json"):
        raise UsageError(f"unknown --format {fmt!r} for diff", "diff --format takes only json")
    changes = app.engine().diff(DiffOptions(name=name, kind="auto" if kind == "all" else kind))
    if fmt == "json":
        words = {"C": "changed", "A": "added", "D": "deleted"}
        doc: dict[str, list[str]] = {}
        for c in changes:
            doc.setdefault(words[c.kind], []).append(c.path)
        dump_json({k: doc[k] for k in ("changed", "added", "deleted") if k in doc})
        return
    for c in changes:
        out(f"{c.kind} {c.path}")


#: podman's default ``history`` table.
HISTORY_TABLE = "table {{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"CreatedBy": "CREATED BY"}


def history(
    ctx: typer.Context,
    image: str = typer.Argument(..., metavar="IMAGE"),
    human: bool = typer.Option(True, "--human", "-H", help="Sizes and dates for humans (--human=false: raw)."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not truncate ids and commands."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the ids."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json, or a Go template over .ID .Created "
                                      ".CreatedAt .CreatedBy .Size .Comment .Tags."),
) -> None:
    """Show an image's build steps, newest first."""
    from rootlet.cli.template import format_kind, render_rows
    from rootlet.runtime.engine.options import HistoryOptions

    app: AppContext = ctx.obj
    kind = format_kind(fmt)
    rows = app.engine().history(HistoryOptions(image=image))
    if kind == "json":
        dump_json([_history_json(r) for r in rows])
        return
    if quiet:
        for r in rows:
            out(r.id if no_trunc or r.id == "<missing>" else r.id[:12])
        return
    docs = [_history_doc(r, human, no_trunc or kind in ("table", "template")) for r in rows]
    text = render_rows(fmt if kind in ("table", "template") else HISTORY_TABLE, docs, HISTORY_HEADERS)
    if text:
        out(text)


def _history_json(row: HistoryRow) -> dict:
    """podman's ``history --format json`` entry."""
    from rootlet.cli.render import parse_time

    doc = {"id": row.id, "created": row.created or "0001-01-01T00:00:00Z", "CreatedBy": row.created_by,
           "size": row.size}
    if row.comment:
        doc["comment"] = row.comment
    if row.tags:
        doc["tags"] = row.tags
    created = parse_time(row.created)
    doc["Created"] = (row.created or "0001-01-01T00:00:00Z")[:19] + "Z" if created else "0001-01-01T00:00:00Z"
    return doc


def _history_doc(row: HistoryRow, human: bool, full: bool) -> dict:
    """The fields a ``history --format`` template sees (podman's names)."""
    from rootlet.cli.render import ago, go_time, human_size, parse_time

    created = parse_time(row.created)
    created_by = " ".join(row.created_by.split()) if not full else row.created_by.replace("\n", " ")
    if not full and len(created_by) > 45:
        created_by = created_by[:42] + "..."
    when = (ago(created) if created else "292 years ago") if human else (row.created or "0001-01-01T00:00:00Z")
    return {"ID": row.id if full or row.id == "<missing>" else row.id[:12], "Created": when,
            "CreatedSince": when, "CreatedAt": go_time(created) if created else "0001-01-01 00:00:00 +0000 UTC",
            "CreatedBy": created_by, "Size": human_size(row.size) if human else str(row.size),
            "Comment": row.comment, "Tags": row.tags}


def register(app: typer.Typer) -> None:
    """Add the commands to *app*: top level, and under ``container`` / ``image`` as podman has them."""
    app.command("commit")(commit)
    app.command("diff")(diff)
    app.command("history")(history)
    subgroup(app, "container").command("commit")(commit)
    subgroup(app, "container").command("diff")(diff)
    subgroup(app, "image").command("history")(history)
    subgroup(app, "image").command("diff")(diff)
