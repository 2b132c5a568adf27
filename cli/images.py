"""Image commands: pull, images, rmi, tag, inspect, image prune (and the ``image`` group aliases)."""

from __future__ import annotations

from typing import List, Optional

import typer

from rootlet.cli.context import AppContext, stderr_is_tty
from rootlet.cli.render import ago, dump_json, err, human_size, out, parse_time, table
from rootlet.registry.errors import UsageError


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


def check_format(fmt: Optional[str]) -> str:
    """The output format: ``table`` (default) or ``json``; anything else is refused, not ignored."""
    if fmt in (None, "", "table"):
        return "table"
    if fmt == "json":
        return "json"
    raise UsageError(f"unsupported --format {fmt!r}", "rootlet supports --format json and --format table")


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
    from rootlet.runtime.pull import PullOptions

    app: AppContext = ctx.obj
    opts = PullOptions(reference=reference, platform=_platform(platform, os_, arch, variant),
                       tls_verify=parse_bool(tls_verify, "--tls-verify"), creds=creds, authfile=authfile,
                       cert_dir=cert_dir)
    report = run_pull(app, opts, quiet)
    out(report.image_id)


def run_pull(app: AppContext, opts: object, quiet: bool):  # -> PullReport
    """Run a pull with the progress display suited to where stderr goes."""
    from rootlet.cli.progress import BarProgress, LineProgress
    from rootlet.runtime.pull import NullProgress, pull_image

    if quiet:
        return pull_image(app.store(), opts, NullProgress())  # type: ignore[arg-type]
    if stderr_is_tty():
        with BarProgress() as bars:
            return pull_image(app.store(), opts, bars)  # type: ignore[arg-type]
    report = pull_image(app.store(), opts, LineProgress())  # type: ignore[arg-type]
    if report.up_to_date:
        err("Image is up to date")
    return report


def _platform(platform: Optional[str], os_: Optional[str], arch: Optional[str], variant: Optional[str]) -> Optional[str]:
    if platform and (os_ or arch or variant):
        raise UsageError("--platform cannot be combined with --os, --arch or --variant")
    if platform:
        return platform
    if os_ or arch or variant:
        from rootlet.registry.manifest import Platform

        host = Platform.host()
        return f"{os_ or host.os}/{arch or host.architecture}" + (f"/{variant}" if variant else "")
    return None


def images(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]", help="Only images with this name."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only image ids."),
    all_: bool = typer.Option(False, "--all", "-a", help="Also intermediate images (rootlet stores none)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Output format: table or json."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not truncate image ids."),
    digests: bool = typer.Option(False, "--digests", help="Show the manifest digest column."),
    noheading: bool = typer.Option(False, "--noheading", "-n", help="Omit the table header."),
) -> None:
    """List local images."""
    from rootlet.runtime.images import image_json, list_images

    app: AppContext = ctx.obj
    kind = check_format(fmt)
    rows = list_images(app.store(), name) if app.store().exists() else []
    if kind == "json":
        seen: dict[str, dict] = {}
        for row in rows:
            seen.setdefault(row.id, image_json(row))
        dump_json(list(seen.values()))
        return
    if quiet:
        ids: list[str] = []
        for row in rows:
            short = row.id if no_trunc else row.id[:12]
            if short not in ids:
                ids.append(short)
        for i in ids:
            out(i)
        return
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    body = []
    for row in rows:
        cells = [row.repository, row.tag] + ([row.digest] if digests else [])
        cells += [row.id if no_trunc else row.id[:12], ago(parse_time(row.created)), human_size(row.size)]
        body.append(cells)
    text = table(headers, body)
    out(text.split("\n", 1)[1] if noheading and "\n" in text else ("" if noheading and not body else text))


def rmi(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="IMAGE...", help="Images by name, id or id prefix."),
    force: bool = typer.Option(False, "--force", "-f", help="Remove even if a container uses it."),
    all_: bool = typer.Option(False, "--all", "-a", help="Remove all images."),
) -> None:
    """Remove images (untagging names that are one of several tags) and free their layers."""
    from rootlet.runtime.images import remove_images

    app: AppContext = ctx.obj
    names = names or []
    if not names and not all_:
        raise UsageError("rmi needs at least one image", "rootlet rmi IMAGE [IMAGE…] or rootlet rmi -a")
    if names and all_:
        raise UsageError("--all and image names cannot be combined")
    if not app.store().exists():
        if all_:
            return
        from rootlet.registry.errors import ImageNotFound

        raise ImageNotFound(f"{names[0]}: image not known", "list local images with `rootlet images`")
    report = remove_images(app.store(), names, force=force, all_images=all_)
    for tag in report.untagged:
        out(f"Untagged: {tag}")
    for image_id in report.deleted:
        out(f"Deleted: {image_id}")
    _raise_first(report.errors)


def _raise_first(errors: list) -> None:
    if not errors:
        return
    for extra in errors[1:]:
        err(f"Error: {extra.message}")
    raise errors[0]


def tag(
    ctx: typer.Context,
    source: str = typer.Argument(..., metavar="IMAGE"),
    targets: List[str] = typer.Argument(..., metavar="TARGET..."),
) -> None:
    """Add one or more names to a local image."""
    from rootlet.runtime.images import tag_image

    app: AppContext = ctx.obj
    tag_image(app.store(), source, targets)


def untag(
    ctx: typer.Context,
    source: str = typer.Argument(..., metavar="IMAGE"),
    names: List[str] = typer.Argument(None, metavar="[NAME...]"),
) -> None:
    """Remove names from a local image (all of them when none are given)."""
    from rootlet.runtime.images import untag_image

    app: AppContext = ctx.obj
    untag_image(app.store(), source, names or [])


def inspect_cmd(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="IMAGE..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (default) or a Go template such as '{{.Id}}'."),
) -> None:
    """Show the configuration of images as JSON (docker's field names)."""
    from rootlet.cli.template import render_template
    from rootlet.runtime.images import inspect_image

    app: AppContext = ctx.obj
    docs, errors = [], []
    for name in names:
        try:
            docs.append(inspect_image(app.store(), name))
        except Exception as exc:  # noqa: BLE001 - reported below, like podman: the rest still print
            from rootlet.registry.errors import RootletError

            if not isinstance(exc, RootletError):
                raise
            errors.append(exc)
    if fmt in (None, "", "json"):
        dump_json(docs)
    else:
        for doc in docs:
            out(render_template(fmt, doc))
    _raise_first(errors)


def prune(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Remove every image no container uses, not only dangling ones."),
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove dangling images (without a tag) and layers no image needs."""
    from rootlet.runtime.images import prune_images

    app: AppContext = ctx.obj
    if not force and stderr_is_tty() and not typer.confirm(
            "This removes all dangling images" + (" and every unused image" if all_ else "") + ". Continue?",
            default=False, err=True):
        return
    if not app.store().exists():
        return
    report = prune_images(app.store(), all_images=all_)
    for image_id in report.deleted:
        out(image_id)


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
    app.add_typer(group, name="image")


