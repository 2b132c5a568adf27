"""What ``pull`` and ``push`` take (re-exported by ``rootlet.runtime.engine.options``)."""

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


class PushOptions(Record):
    """``push``: the local ``image`` to ``destination`` (``docker://HOST/REPO:TAG``, a plain
    reference, ``oci-archive:FILE[:REF]``, ``docker-archive:FILE[:REF]``, ``oci:DIR[:REF]``; None:
    the image's own name). ``format`` oci|v2s2 (None: the image's own manifest type), ``compression_format``
    gzip|zstd (None: the layers as stored), ``digestfile`` receives the manifest digest."""

    image: str
    destination: str | None = None
    format: str | None = None
    compression_format: str | None = None
    digestfile: str | None = None
    tls_verify: bool | None = None
    creds: str | None = None
    authfile: str | None = None
    cert_dir: str | None = None
