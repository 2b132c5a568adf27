"""What ``pull`` takes (re-exported by ``rootlet.runtime.engine.options``)."""

from __future__ import annotations

from rootlet.registry.record import Record


class PullOptions(Record):
    """``pull``: a reference, the platform (``os/arch[/variant]``, or parts of it in ``os``,
    ``arch``, ``variant``; default this machine's) and how to reach the registry (``tls_verify``
    None: as registries.conf says)."""

    reference: str
    platform: str | None = None
    os: str | None = None
    arch: str | None = None
    variant: str | None = None
    tls_verify: bool | None = None
    creds: str | None = None
    authfile: str | None = None
    cert_dir: str | None = None
