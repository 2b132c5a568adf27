"""Image commands: rmi, tag, untag, image prune, image exists (and the ``image`` group aliases;
``pull``, ``images`` and ``image inspect`` are in cli/pull.py, cli/image_list.py and cli/inspect.py:
parsed without typer)."""

from __future__ import annotations

from typing import List, Optional

import typer

from rootlet.cli.context import AppContext, stderr_is_tty
from rootlet.cli.render import out, raise_collected
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


def image_exists(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="IMAGE"),
) -> None:
    """Exit 0 when the image is in local storage, 1 when it is not (nothing is printed)."""
    app: AppContext = ctx.obj
    raise typer.Exit(0 if app.engine().image_exists(name) else 1)


def register(app: typer.Typer) -> None:
    """Add the image commands to *app* (top level and under ``image``)."""
    app.command("rmi")(rmi)
    app.command("tag")(tag)
    app.command("untag")(untag)
    group = typer.Typer(help="Manage images.", no_args_is_help=True)
    group.command("rm")(rmi)
    group.command("tag")(tag)
    group.command("untag")(untag)
    group.command("prune")(prune)
    group.command("exists")(image_exists)
    app.add_typer(group, name="image")


