"""CLI command: build (and ``image build``)."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from rootlet.cli.context import AppContext, subgroup
from rootlet.cli.render import err, out


def build(
    ctx: typer.Context,
    context: str = typer.Argument(".", metavar="CONTEXT", help="The context directory (- : a tar of it on stdin)."),
    tags: List[str] = typer.Option([], "--tag", "-t", metavar="NAME", help="Name the image (repeatable); "
                                   "a name without a registry is localhost/NAME."),
    file: Optional[str] = typer.Option(None, "--file", "-f", metavar="FILE",
                                       help="The Dockerfile (default: Containerfile, then Dockerfile, in the "
                                       "context; - reads it from stdin)."),
    build_args: List[str] = typer.Option([], "--build-arg", metavar="K[=V]", help="A build arg (K alone: from "
                                         "the environment)."),
    target: Optional[str] = typer.Option(None, "--target", metavar="STAGE", help="Build up to this stage."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step again."),
    pull: Optional[str] = typer.Option(None, "--pull", metavar="POLICY",
                                       help="always, missing (default), never or newer; --pull alone: always."),
    platform: Optional[str] = typer.Option(None, "--platform", metavar="OS/ARCH[/VARIANT]",
                                           help="The platform of the base images."),
    labels: List[str] = typer.Option([], "--label", metavar="K=V", help="A label on the final image."),
    annotations: List[str] = typer.Option([], "--annotation", metavar="K=V",
                                          help="An annotation in the final image's (OCI) manifest."),
    iidfile: Optional[str] = typer.Option(None, "--iidfile", help="Write the image id to this file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image id."),
    layers: Optional[str] = typer.Option(None, "--layers", metavar="BOOL",
                                         help="Keep every step as an image, for the cache (default true)."),
    squash: bool = typer.Option(False, "--squash", help="Not supported yet: refused."),
    network: Optional[str] = typer.Option(None, "--network", help="RUN steps' network: none, host, slirp4netns "
                                          "or pasta (default: as run's)."),
    secrets: List[str] = typer.Option([], "--secret", metavar="id=ID,src=FILE|env=VAR",
                                      help="A secret for RUN --mount=type=secret (never stored)."),
    ignorefile: Optional[str] = typer.Option(None, "--ignorefile", help="The ignore file to use instead of "
                                             ".containerignore/.dockerignore."),
    timestamp: Optional[int] = typer.Option(None, "--timestamp", metavar="SECONDS",
                                            help="Created times and file mtimes set to this (reproducible)."),
    fmt: str = typer.Option("oci", "--format", help="oci or docker."),
    tls_verify: Optional[str] = typer.Option(None, "--tls-verify", metavar="BOOL",
                                             help="Require HTTPS with verified certificates for pulls."),
) -> None:
    """Build an image from a Dockerfile (Containerfile) and a context directory.

    RUN steps run as rootless containers; every step is cached as an image (--layers), so a
    rebuild with nothing changed runs nothing. Progress as podman's: STEP lines, the steps' output,
    --> Using cache, COMMIT; the image id last (-q: only the id)."""
    from rootlet.cli.images import parse_bool
    from rootlet.registry.errors import UsageError
    from rootlet.runtime.engine.options import BuildOptions

    app: AppContext = ctx.obj
    if squash:
        raise UsageError("--squash is not supported by rootlet build yet", "build without it")
    if file == "-" and context == "-":
        raise UsageError("the Dockerfile and the context cannot both come from stdin")
    policy = {"true": "always", "false": "missing"}.get((pull or "missing").lower(), (pull or "missing").lower())
    dockerfile_text = sys.stdin.read() if file == "-" else None
    engine = app.engine()
    tmp_context = None
    if context == "-":
        tmp_context = engine.unpack_context(sys.stdin.buffer.raw.fileno() if hasattr(sys.stdin.buffer, "raw")
                                            else sys.stdin.fileno())
        context = tmp_context
    opts = BuildOptions(
        context=os.path.abspath(context), file=os.path.abspath(file) if file and file != "-" else None,
        dockerfile_text=dockerfile_text,
        tags=tuple(tags), build_args=tuple(build_args), target=target, no_cache=no_cache, pull=policy,
        platform=platform, labels=tuple(labels), annotations=tuple(annotations), iidfile=iidfile, quiet=quiet,
        layers=parse_bool(layers, "--layers") is not False, network=network, secrets=tuple(secrets),
        ignorefile=ignorefile, timestamp=timestamp, format=fmt, tls_verify=parse_bool(tls_verify, "--tls-verify"))

    def notify(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        report = engine.build(opts, notify)
    finally:
        if tmp_context is not None:
            engine.remove_context(tmp_context)
    for warning in report.warnings:
        err(f"[Warning] {warning}")
    out(report.image_id)


def register(app: typer.Typer) -> None:
    """Add ``build`` (top level and ``image build``)."""
    app.command("build")(build)
    subgroup(app, "image").command("build")(build)
