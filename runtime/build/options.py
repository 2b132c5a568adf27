"""What ``build`` can be asked to do (the engine's ``BuildOptions``)."""

from __future__ import annotations

from rootlet.registry.record import Record

#: ``--pull`` policies, podman's words.
BUILD_PULL_POLICIES = ("always", "missing", "never", "newer")


class BuildOptions(Record):
    """``build``: ``context`` a directory (absolute); ``file`` the Dockerfile (relative to the
    context unless absolute; None: Containerfile, then Dockerfile) or ``dockerfile_text`` its text
    (``-f -``); ``build_args`` ``K=V`` or ``K`` (then from the caller's environment); ``pull`` one of
    ``BUILD_PULL_POLICIES``; ``layers`` keep (and use) every step as a cached image; ``network``
    RUN steps' network (None: as ``run``'s default); ``secrets`` ``id=ID,src=FILE|env=VAR``;
    ``annotations`` ``K=V`` in the final image's (OCI) manifest; ``timestamp`` created times and file mtimes (reproducible); ``format`` oci or docker."""

    context: str
    file: str | None = None
    dockerfile_text: str | None = None
    tags: tuple[str, ...] = ()
    build_args: tuple[str, ...] = ()
    target: str | None = None
    no_cache: bool = False
    pull: str = "missing"
    platform: str | None = None
    labels: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    iidfile: str | None = None
    quiet: bool = False
    layers: bool = True
    network: str | None = None
    secrets: tuple[str, ...] = ()
    ignorefile: str | None = None
    timestamp: int | None = None
    format: str = "oci"
    tls_verify: bool | None = None
