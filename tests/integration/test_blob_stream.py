"""A blob download seen as a stream (``fetch_blob``'s *on_data*, what a pull unpacks from while it
downloads): every byte once, in order, resumed bytes first, across a dropped connection; and an
unverified TLS connection that loads no CA bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rootlet.registry.client import RegistryClient, Source
from rootlet.registry.errors import DigestMismatch
from rootlet.registry.reference import parse_reference
from tests.integration import test_registry_client as base
from tests.integration.test_registry_client import Alpine, blob_bytes
from tests.support.registries import FaultProxy

pytestmark = pytest.mark.integration

# The registry client tests' fixtures: the alpine layout's digests, a private environment, clients.
alpine, isolated_env, make_client = base.alpine, base.isolated_env, base.make_client


def _source(client: RegistryClient, host: str) -> Source:
    source, _ = client.open(parse_reference(f"{host}/library/alpine:3.20"))
    return source


def _stream(source: Source, partial: Path, size: int | None = None) -> bytes:
    """Fetch the alpine layer into *partial*; what on_data saw, checked to be in order."""
    seen: list[bytes] = []
    offsets: list[int] = []

    def on_data(offset: int, chunk: bytes) -> None:
        assert offset == sum(len(c) for c in seen), "bytes out of order"
        offsets.append(offset)
        seen.append(chunk)

    data = blob_bytes(Alpine.layer)
    source.fetch_blob(Alpine.layer, len(data) if size is None else size, str(partial), None, on_data)
    return b"".join(seen)


def test_on_data_sees_the_blob_in_order(registry: str, tmp_path: Path,
                                        make_client: Callable[..., RegistryClient]) -> None:
    assert _stream(_source(make_client(), registry), tmp_path / "p") == blob_bytes(Alpine.layer)


def test_on_data_sees_resumed_bytes_first(registry: str, tmp_path: Path,
                                          make_client: Callable[..., RegistryClient]) -> None:
    data = blob_bytes(Alpine.layer)
    partial = tmp_path / "p"
    partial.write_bytes(data[: len(data) // 3])
    assert _stream(_source(make_client(), registry), partial) == data


def test_on_data_continues_across_a_dropped_connection(registry: str, tmp_path: Path,
                                                      make_client: Callable[..., RegistryClient]) -> None:
    proxy = FaultProxy(registry, "cut", after=300_000, times=1)
    try:
        assert _stream(_source(make_client(), proxy.host), tmp_path / "p") == blob_bytes(Alpine.layer)
        assert proxy.damaged == 1
    finally:
        proxy.stop()


def test_a_partial_longer_than_the_blob_is_started_over(registry: str, tmp_path: Path,
                                                        make_client: Callable[..., RegistryClient]) -> None:
    data = blob_bytes(Alpine.layer)
    partial = tmp_path / "p"
    partial.write_bytes(data + b"junk")
    assert _stream(_source(make_client(), registry), partial) == data
    assert partial.read_bytes() == data


def test_an_error_raised_by_on_data_ends_the_download_and_keeps_the_partial(
        registry: str, tmp_path: Path, make_client: Callable[..., RegistryClient]) -> None:
    class Stop(Exception):
        pass

    def on_data(offset: int, chunk: bytes) -> None:
        if offset:
            raise Stop

    data = blob_bytes(Alpine.layer)
    partial = tmp_path / "p"
    with pytest.raises(Stop):
        _source(make_client(), registry).fetch_blob(Alpine.layer, len(data), str(partial), None, on_data)
    assert data.startswith(partial.read_bytes()) and partial.stat().st_size > 0  # kept, to resume


def test_bytes_seen_before_a_digest_mismatch_are_reported_unverified(registry: str, tmp_path: Path,
                                                                    make_client: Callable[..., RegistryClient]) -> None:
    proxy = FaultProxy(registry, "flip", after=1000)
    try:
        with pytest.raises(DigestMismatch):
            _stream(_source(make_client(), proxy.host), tmp_path / "p")
        assert not (tmp_path / "p").exists()
    finally:
        proxy.stop()


def test_unverified_tls_loads_no_ca_bundle(registry: str, make_client: Callable[..., RegistryClient],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An insecure (loopback) registry is tried over https first: that attempt must not load the
    system CAs (~30 ms) into a context that checks no certificate."""
    import ssl

    loads: list[str] = []
    real = ssl.SSLContext.load_default_certs

    def counting(self: ssl.SSLContext, *args: object) -> None:
        loads.append("default")
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", counting)
    _source(make_client(), registry).read_blob(Alpine.config, 10_000)
    assert loads == []
