"""Image commands: pull, images, rmi, tag, inspect, image prune (and the ``image`` group aliases)."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

import typer

from rootlet.cli.context import AppContext, stderr_is_tty
from rootlet.cli.render import ago, dump_json, go_time, human_size, out, parse_time, raise_collected
from rootlet.registry.errors import UsageError

if TYPE_CHECKING:
    from rootlet.runtime.engine.reports import ImageSummary


def parse_bool(value: Optional[str], flag: str) -> Optional[bool]:
    """``--flag=true|false`` values as podman takes them."""
    if value is None:
        return None
    low = value.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise UsageError(f"invalid value {value!r} for {flag}", f"use {flag}=true or {flag}=false")


def pull(
    ctx: typer.Context,
    reference: str = typer.Argument(..., metavar="IMAGE", help="Image reference, e.g. alpine or host:5000/ns/app:tag."),
    platform: Optional[str] = typer.Option(None, "--platform", help="OS/ARCH[/VARIANT] to pull (default: this machine's)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Architecture to pull (with --os, --variant)."),
    os_: Optional[str] = typer.Option(None, "--os", help="Operating system to pull."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Architecture variant to pull."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image id."),
    tls_verify: Optional[str] = typer.Option(None, "--tls-verify", metavar="BOOL",
                                             help="Require HTTPS with verified certificates (default: per registries.conf)."),
    creds: Optional[str] = typer.Option(None, "--creds", metavar="USER[:PASS]", help="Credentials for the registry."),
    authfile: Optional[str] = typer.Option(None, "--authfile", help="Path of the auth.json to use."),
    cert_dir: Optional[str] = typer.Option(None, "--cert-dir", help="Directory with CA certificates (*.crt) for the registry."),
) -> None:
    """Pull an image from a registry into the local store; prints the image id."""
    from rootlet.cli.progress import pull_progress
    from rootlet.runtime.engine.options import PullOptions

    app: AppContext = ctx.obj
    opts = PullOptions(reference=reference, platform=platform, os=os_, arch=arch, variant=variant,
                       tls_verify=parse_bool(tls_verify, "--tls-verify"), creds=creds, authfile=authfile,
                       cert_dir=cert_dir)
    with pull_progress(quiet) as progress:
        report = app.engine().pull(opts, progress)
    out(report.image_id)


#: podman's default ``images`` table, and the header words that differ from the field names.
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADERS = {"ID": "IMAGE ID", "CreatedSince": "CREATED"}


def images(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]", help="Only images with this name."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only image ids."),
    all_: bool = typer.Option(False, "--all", "-a", help="Also the intermediate images of builds."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json, or a Go template: '{{.Repository}}:{{.Tag}} "
                                      "{{.ID}}', 'table {{.ID}}\\t{{.Size}}' (with headers)."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not truncate image ids."),
    digests: bool = typer.Option(False, "--digests", help="Show the manifest digest column."),
    noheading: bool = typer.Option(False, "--noheading", "-n", help="Omit the table header."),
) -> None:
    """List local images."""
    from rootlet.cli.template import format_kind, render_rows
    from rootlet.runtime.engine.options import ImagesOptions

    app: AppContext = ctx.obj
    kind = format_kind(fmt)
    rows = app.engine().images(ImagesOptions(name=name, all=all_))
    if kind == "json":
        seen: dict[str, dict] = {}
        for row in rows:
            seen.setdefault(row.id, image_json(row))
        dump_json(list(seen.values()))
        return
    if quiet:
        for i in dict.fromkeys(row.id if no_trunc else row.id[:12] for row in rows):
            out(i)
        return
    template = fmt if kind in ("table", "template") else \
        IMAGES_TABLE.replace("{{.Tag}}", "{{.Tag}}\t{{.Digest}}" if digests else "{{.Tag}}")
    text = render_rows(template or "", [_image_doc(row, no_trunc) for row in rows], IMAGES_HEADERS,
                       heading=not noheading)
    if text:
        out(text)


def _image_doc(row: ImageSummary, no_trunc: bool) -> dict:
    """The fields an ``images --format`` template sees: podman's names and texts (``.Created`` is
    the age there, as in podman; ``.CreatedAt`` the time)."""
    created = parse_time(row.created) or row.pulled or None
    return dict(image_json(row), ID=row.id if no_trunc else row.id[:12], Repository=row.repository, Tag=row.tag,
                CreatedSince=ago(created), Created=ago(created), CreatedAt=go_time(created),
                Size=human_size(row.size), ReadOnly=False, Dangling=row.repository == "<none>")


def rmi(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="IMAGE...", help="Images by name, id or id prefix."),
    force: bool = typer.Option(False, "--force", "-f", help="Remove even if a container uses it."),
    all_: bool = typer.Option(False, "--all", "-a", help="Remove all images."),
) -> None:
    """Remove images (untagging names that are one of several tags) and free their layers.

    An image a container uses is refused; -f removes those containers first (podman's rule).
    Exit status as podman's: 1 when an image did not exist (not with -f), 2 when one is in use."""
    from rootlet.registry.errors import ImageInUse, ImageNotFound
    from rootlet.runtime.engine.options import RmiOptions

    app: AppContext = ctx.obj
    report = app.engine().rmi(RmiOptions(names=tuple(names or ()), force=force, all=all_))
    for tag in report.untagged:
        out(f"Untagged: {tag}")
    for image_id in report.deleted:
        out(f"Deleted: {image_id}")
    raise_collected(report.errors, codes=((ImageInUse, 2), (ImageNotFound, 1)))


def tag(
    ctx: typer.Context,
    source: str = typer.Argument(..., metavar="IMAGE"),
    targets: List[str] = typer.Argument(..., metavar="TARGET..."),
) -> None:
    """Add one or more names to a local image."""
    from rootlet.runtime.engine.options import TagOptions

    app: AppContext = ctx.obj
    app.engine().tag(TagOptions(source, tuple(targets)))


def untag(
    ctx: typer.Context,
    source: str = typer.Argument(..., metavar="IMAGE"),
    names: List[str] = typer.Argument(None, metavar="[NAME...]"),
) -> None:
    """Remove names from a local image (all of them when none are given)."""
    from rootlet.runtime.engine.options import UntagOptions

    app: AppContext = ctx.obj
    app.engine().untag(UntagOptions(source, tuple(names or ())))


def inspect_cmd(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="IMAGE..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (default) or a Go template such as '{{.Id}}'."),
) -> None:
    """Show the configuration of images as JSON (docker's field names)."""
    from rootlet.cli.render import print_docs

    app: AppContext = ctx.obj
    report = app.engine().image_inspect(tuple(names))
    print_docs(report.docs, fmt)
    raise_collected(report.errors)


def prune(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Remove every image no container uses, not only dangling ones."),
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove dangling images (without a tag) that no container uses, and layers nothing needs."""
    from rootlet.runtime.engine.options import ImagePruneOptions

    app: AppContext = ctx.obj
    if not force and stderr_is_tty() and not typer.confirm(
            "This removes all dangling images" + (" and every unused image" if all_ else "") + ". Continue?",
            default=False, err=True):
        return
    report = app.engine().image_prune(ImagePruneOptions(all=all_))
    for image_id in report.deleted:
        out(image_id)


def image_json(row: ImageSummary) -> dict:
    """``images --format json`` entry, with the keys podman prints."""
    return {
        "Id": row.id, "ParentId": "", "RepoTags": list(row.repo_tags), "RepoDigests": list(row.repo_digests),
        "Size": row.size, "SharedSize": 0, "VirtualSize": row.size, "Labels": None, "Containers": 0,
        "Names": list(row.repo_tags), "Digest": row.digest, "Created": row.created, "Arch": row.architecture,
        "Os": row.os,
    }


def image_exists(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="IMAGE"),
) -> None:
    """Exit 0 when the image is in local storage, 1 when it is not (nothing is printed)."""
    app: AppContext = ctx.obj
    raise typer.Exit(0 if app.engine().image_exists(name) else 1)


def register(app: typer.Typer) -> None:
    """Add the image commands to *app* (top level and under ``image``)."""
    app.command("pull")(pull)
    app.command("images")(images)
    app.command("rmi")(rmi)
    app.command("tag")(tag)
    app.command("untag")(untag)
    group = typer.Typer(help="Manage images.", no_args_is_help=True)
    group.command("pull")(pull)
    group.command("ls")(images)
    group.command("list")(images)
    group.command("rm")(rmi)
    group.command("tag")(tag)
    group.command("untag")(untag)
    group.command("inspect")(inspect_cmd)
    group.command("prune")(prune)
    group.command("exists")(image_exists)
    app.add_typer(group, name="image")


