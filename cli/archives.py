"""CLI commands: save, load, export, import (images and filesystems as archive files)."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from rootlet.cli.context import AppContext, subgroup
from rootlet.cli.render import err, out
from rootlet.registry.errors import UsageError


def _progress(quiet: bool):  # noqa: ANN202 - a callable or None
    """podman's progress lines on stderr, unless -q."""
    return None if quiet else err


def save(
    ctx: typer.Context,
    images: List[str] = typer.Argument(..., metavar="IMAGE..."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write to this file (default: stdout)."),
    fmt: str = typer.Option("docker-archive", "--format", help="docker-archive, oci-archive or oci-dir "
                            "(a directory, with -o)."),
    multi: bool = typer.Option(False, "--multi-image-archive", "-m", help="Save several images into one "
                               "docker-archive (without it, further names are more tags for the first image)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print no progress."),
) -> None:
    """Save images to an archive (the format docker save and podman save write; layers as stored,
    uncompressed in a docker-archive)."""
    from rootlet.runtime.engine.options import SaveOptions

    app: AppContext = ctx.obj
    if output is None and fmt != "oci-dir" and os.isatty(1):
        raise UsageError("refusing to save to terminal. Use -o flag or redirect")
    app.engine().save(SaveOptions(images=tuple(images), output=output, format=fmt, multi_image=multi),
                      stream=sys.stdout.buffer if output is None else None, progress=_progress(quiet))


def load(
    ctx: typer.Context,
    input_: Optional[str] = typer.Option(None, "--input", "-i", help="Read this archive (default: stdin)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print no progress."),
) -> None:
    """Load images from an archive written by save (rootlet's, podman's or docker's; gzip, zstd,
    xz or bzip2 compressed or not)."""
    from rootlet.runtime.engine.options import LoadOptions

    app: AppContext = ctx.obj
    if input_ is None and os.isatty(0):
        raise UsageError("cannot read from terminal, use command-line redirection or the --input flag")
    loaded = app.engine().load(LoadOptions(input=input_), stream=sys.stdin.buffer if input_ is None else None,
                               progress=_progress(quiet))
    for image in loaded:
        for name in image.names or ["sha256:" + image.id]:
            out(f"Loaded image: {name}")


def export(
    ctx: typer.Context,
    container: str = typer.Argument(..., metavar="CONTAINER"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write to this file (default: stdout)."),
) -> None:
    """Export a container's filesystem (running or not) as a tar archive."""
    from rootlet.runtime.engine.options import ExportOptions

    app: AppContext = ctx.obj
    if output is None and os.isatty(1):
        raise UsageError("refusing to export to terminal. Use -o flag or redirect")
    app.engine().export(ExportOptions(container=container, output=output),
                        stream=sys.stdout.buffer if output is None else None)


def import_cmd(
    ctx: typer.Context,
    source: str = typer.Argument(..., metavar="FILE|-", help="A tar file (gzip, zstd, xz or bzip2 compressed or "
                                 "not), or - for stdin."),
    reference: Optional[str] = typer.Argument(None, metavar="[IMAGE]", help="Name of the new image (none: untagged)."),
    change: List[str] = typer.Option([], "--change", "-c", metavar="INSTRUCTION",
                                     help="Apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                                     "ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="The history comment."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print no progress."),
) -> None:
    """Import a tarball as a one-layer image; prints its id."""
    from rootlet.runtime.engine.options import ImportOptions

    app: AppContext = ctx.obj
    if source == "-" and os.isatty(0):
        raise UsageError("cannot read from terminal, use command-line redirection or give a file")
    image_id = app.engine().import_image(
        ImportOptions(source=source, reference=reference, changes=tuple(change), message=message),
        stream=sys.stdin.buffer if source == "-" else None, progress=_progress(quiet))
    out(f"sha256:{image_id}")


def register(app: typer.Typer) -> None:
    """Add the commands to *app*: top level, and under ``image`` / ``container`` as podman has them."""
    app.command("save")(save)
    app.command("load")(load)
    app.command("export")(export)
    app.command("import")(import_cmd)
    subgroup(app, "image").command("save")(save)
    subgroup(app, "image").command("load")(load)
    subgroup(app, "image").command("import")(import_cmd)
    subgroup(app, "container").command("export")(export)
