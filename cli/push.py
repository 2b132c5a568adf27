"""CLI commands: push (an image to a registry or another transport)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from rootlet.cli.context import AppContext, subgroup


class PushLines:
    """Push progress: pull's display (``cli/progress.py``: bars on a terminal, lines elsewhere)
    for the blobs, plus podman's own push lines on stderr."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def step(self, text: str) -> None:
        # On a terminal the bars' display has taken sys.stderr over and prints this above them.
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def layer(self, digest: str, size: int, status: str) -> None:
        self._inner.layer(digest, size, status)  # type: ignore[attr-defined]

    def advance(self, digest: str, nbytes: int) -> None:
        self._inner.advance(digest, nbytes)  # type: ignore[attr-defined]

    def warn(self, message: str, hint: str | None = None) -> None:
        self._inner.warn(message, hint)  # type: ignore[attr-defined]

    def finished(self, up_to_date: bool) -> None:
        self._inner.finished(up_to_date)  # type: ignore[attr-defined]


def push(
    ctx: typer.Context,
    image: str = typer.Argument(..., metavar="IMAGE", help="The local image: name, id or id prefix."),
    destination: Optional[str] = typer.Argument(
        None, metavar="[DESTINATION]",
        help="docker://HOST/REPO[:TAG] or HOST/REPO[:TAG] (default: the image's own name), or an archive "
             "as `save` writes it: oci-archive:FILE[:REF], docker-archive:FILE[:REF], oci:DIR[:REF]."),
    fmt: Optional[str] = typer.Option(
        None, "--format", "-f", metavar="FORMAT",
        help="Manifest format: oci or v2s2 (Docker's). Default: the image's own format, so a pulled image "
             "keeps its manifest digest (podman's default is oci)."),
    compression_format: Optional[str] = typer.Option(
        None, "--compression-format", metavar="gzip|zstd",
        help="Compress layers this way (only those not already so are recompressed). Default: the layers "
             "as stored."),
    digestfile: Optional[str] = typer.Option(None, "--digestfile", metavar="FILE",
                                             help="Write the pushed manifest's digest to FILE."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print no progress."),
    tls_verify: Optional[str] = typer.Option(None, "--tls-verify", metavar="BOOL",
                                             help="Require HTTPS with verified certificates (default: per registries.conf)."),
    creds: Optional[str] = typer.Option(None, "--creds", metavar="USER[:PASS]", help="Credentials for the registry."),
    authfile: Optional[str] = typer.Option(None, "--authfile", help="Path of the auth.json to use."),
    cert_dir: Optional[str] = typer.Option(None, "--cert-dir", help="Directory with CA certificates (*.crt) for the registry."),
) -> None:
    """Push an image to a registry: its layers (those the registry lacks), config and manifest.

    Progress goes to stderr and nothing to stdout, as with podman."""
    from rootlet.cli.images import parse_bool
    from rootlet.cli.progress import pull_progress
    from rootlet.runtime.engine.options import PushOptions

    app: AppContext = ctx.obj
    opts = PushOptions(image=image, destination=destination, format=fmt, compression_format=compression_format,
                       digestfile=digestfile, tls_verify=parse_bool(tls_verify, "--tls-verify"), creds=creds,
                       authfile=authfile, cert_dir=cert_dir)
    with pull_progress(quiet) as progress:
        app.engine().push(opts, PushLines(progress) if progress is not None else None)


def register(app: typer.Typer) -> None:
    """Add the commands to *app*: ``push`` and ``image push``."""
    app.command("push")(push)
    subgroup(app, "image").command("push")(push)
