"""The registry client against real docker-registry instances: anonymous, htpasswd, token, TLS,
mirrors, and resumable, verified blob downloads through a fault-injecting TCP proxy."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rootlet.registry import mediatypes as mt
from rootlet.registry.client import ClientSettings, RegistryClient, Source, login_check
from rootlet.registry.config import RegistriesConfig
from rootlet.registry.errors import AuthError, DigestMismatch, RegistryError, TransferError
from rootlet.registry.reference import parse_reference
from tests.conftest import free_port, need
from tests.support.registries import (FaultProxy, TokenServer, make_ca_and_cert, push_layout, start_registry)

pytestmark = pytest.mark.integration

USERS = {"alice": "s3cret-pw"}


class Alpine:
    """The digests of the test registry's library/alpine:3.20 (read from its layout once)."""

    layout: Path
    manifest: str
    manifest_size: int
    layer: str
    config: str
    config_size: int


@pytest.fixture(scope="module", autouse=True)
def alpine(test_images: Path) -> type[Alpine]:
    layout = test_images / "alpine-3.20"
    Alpine.layout = layout
    entry = json.loads((layout / "index.json").read_text())["manifests"][0]
    Alpine.manifest, Alpine.manifest_size = entry["digest"], entry["size"]
    manifest = json.loads(blob_bytes(Alpine.manifest))
    Alpine.layer = manifest["layers"][0]["digest"]
    Alpine.config = manifest["config"]["digest"]
    Alpine.config_size = manifest["config"]["size"]
    return Alpine


def blob_bytes(digest: str) -> bytes:
    return (Alpine.layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private HOME/XDG dirs and an empty registries.conf, so no developer config leaks in."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    conf = tmp_path / "registries.conf"
    conf.write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("ROOTLET_REGISTRIES_CONF", str(conf))
    for var in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def make_client() -> Iterator[Callable[..., RegistryClient]]:
    clients: list[RegistryClient] = []

    def make(**kwargs: object) -> RegistryClient:
        client = RegistryClient(ClientSettings(**kwargs), RegistriesConfig.load())  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


# --- anonymous -------------------------------------------------------------------------------------

def test_anonymous_head_and_get_by_tag_and_digest(registry: str, make_client: Callable[..., RegistryClient]) -> None:
    client = make_client()
    source, head = client.open(parse_reference(f"{registry}/library/alpine:3.20"))
    assert head.digest == Alpine.manifest
    assert head.media_type == mt.OCI_MANIFEST
    assert head.size == Alpine.manifest_size
    assert str(source.ref) == f"{registry}/library/alpine:3.20"
    got = source.manifest("3.20")
    assert got.digest == Alpine.manifest and got.media_type == mt.OCI_MANIFEST
    assert hashlib.sha256(got.data).hexdigest() == Alpine.manifest.split(":")[1]
    by_digest = source.manifest(Alpine.manifest)
    assert by_digest.data == got.data
    source2, head2 = client.open(parse_reference(f"{registry}/library/alpine@{Alpine.manifest}"))
    assert head2.digest == Alpine.manifest and source2.ref.digest == Alpine.manifest
    config = source.read_blob(Alpine.config, 10_000)
    assert json.loads(config)["rootfs"]["diff_ids"]
    # the multi-arch busybox index
    _, head3 = client.open(parse_reference(f"{registry}/library/busybox:latest"))
    assert head3.media_type in mt.INDEX_TYPES


def test_missing_tag_is_registry_error_with_hint(registry: str, make_client: Callable[..., RegistryClient]) -> None:
    with pytest.raises(RegistryError) as err:
        make_client().open(parse_reference(f"{registry}/library/alpine:no-such-tag"))
    assert not isinstance(err.value, (AuthError, TransferError))
    assert err.value.message == f"manifest unknown: {registry}/library/alpine:no-such-tag"
    assert "tag" in err.value.hint


def test_connection_refused_is_transfer_error(make_client: Callable[..., RegistryClient]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransferError) as err:
        make_client(retries=2).open(parse_reference(f"127.0.0.1:{port}/library/alpine:3.20"))
    assert f"127.0.0.1:{port}" in err.value.message
    assert "refused" in err.value.message.lower()


def test_digest_mismatch_on_manifest_by_digest(registry: str, make_client: Callable[..., RegistryClient]) -> None:
    source, _ = make_client().open(parse_reference(f"{registry}/library/alpine:3.20"))
    with pytest.raises(RegistryError):
        source.manifest("sha256:" + "0" * 64)    # unknown digest: 404
    with pytest.raises(DigestMismatch):
        source.read_blob(Alpine.config, 10)      # larger than allowed


def test_mirror_for_docker_io(registry: str, isolated_env: Path, make_client: Callable[..., RegistryClient]) -> None:
    conf = isolated_env / "registries.conf"
    conf.write_text(f'''unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "{registry}"
''')
    source, head = make_client().open(parse_reference("alpine:3.20"))
    assert head.digest == Alpine.manifest
    assert source.endpoint.mirror and source.endpoint.host == registry
    assert source.endpoint.repository == "library/alpine"
    assert str(source.ref) == "docker.io/library/alpine:3.20"
    assert not source.ref.short


# --- several sources: mirrors, then the registry (issue 10) ----------------------------------------

#: A host name that never resolves, and whose lookup never leaves this machine: glibc refuses a name
#: that starts with "-" before asking any DNS server. (docker.io itself would resolve wherever there
#: is internet, and tests send traffic to loopback only.)
UNRESOLVABLE = "-unresolvable.invalid"


@pytest.fixture
def unresolvable() -> str:
    """``UNRESOLVABLE``, after checking that this machine's resolver refuses it."""
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(UNRESOLVABLE, 443)
    return UNRESOLVABLE


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name the client looks up, in order: one per connection attempt (urllib3 resolves
    each time it connects, IP literals included). A spy: the real resolver still answers."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def spy(host: object, *args: object, **kwargs: object) -> object:
        seen.append(host.decode() if isinstance(host, bytes) else str(host))
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    return seen


def _hub_conf(conf: Path, location: str, *mirrors: str) -> None:
    """Make docker.io (the short names' registry) live at *location*, behind *mirrors*."""
    conf.write_text('unqualified-search-registries = ["docker.io"]\n'
                    f'[[registry]]\nprefix = "docker.io"\nlocation = "{location}"\n'
                    + "".join(f'[[registry.mirror]]\nlocation = "{m}"\n' for m in mirrors))


def test_mirror_without_the_tag_falls_through_to_the_registry(registry: str, isolated_env: Path,
                                                              make_client: Callable[..., RegistryClient]) -> None:
    # The mirror path holds no repositories: it answers 404 for the manifest, as podman's would.
    _hub_conf(isolated_env / "registries.conf", registry, f"{registry}/empty")
    source, head = make_client().open(parse_reference("alpine:3.20"))
    assert not source.endpoint.mirror and source.endpoint.host == registry
    assert head.digest == Alpine.manifest
    assert str(source.ref) == "docker.io/library/alpine:3.20"


def test_every_failed_source_is_named_with_its_answer(registry: str, isolated_env: Path, unresolvable: str,
                                                      lookups: list[str],
                                                      make_client: Callable[..., RegistryClient]) -> None:
    _hub_conf(isolated_env / "registries.conf", unresolvable, registry)
    with pytest.raises(TransferError) as err:
        make_client().open(parse_reference("alpine:3.21"))
    assert err.value.message == (f"cannot pull docker.io/library/alpine:3.21: {registry} (mirror): manifest unknown; "
                                 f"{unresolvable}: cannot resolve host")
    assert err.value.hint == "check the registry name and your network"
    assert lookups.count(unresolvable) == 1, "a name that did not resolve is not looked up again"


def test_mirror_down_and_registry_unresolvable_fail_without_retries(isolated_env: Path, unresolvable: str,
                                                                    lookups: list[str],
                                                                    make_client: Callable[..., RegistryClient]) -> None:
    down = f"127.0.0.1:{free_port()}"
    _hub_conf(isolated_env / "registries.conf", unresolvable, down)
    with pytest.raises(TransferError) as err:
        make_client().open(parse_reference("alpine:3.20"))
    assert err.value.message == (f"cannot pull docker.io/library/alpine:3.20: {down} (mirror): connection refused; "
                                 f"{unresolvable}: cannot resolve host")
    # A loopback mirror may speak https or http: one attempt each, and no retry of a first refusal.
    assert lookups == ["127.0.0.1", "127.0.0.1", unresolvable]


def test_not_found_at_the_registry_stays_not_found_after_a_mirror_failed(
        registry: str, isolated_env: Path, make_client: Callable[..., RegistryClient]) -> None:
    down = f"127.0.0.1:{free_port()}"
    _hub_conf(isolated_env / "registries.conf", registry, down)
    with pytest.raises(RegistryError) as err:
        make_client().open(parse_reference("alpine:no-such-tag"))
    assert type(err.value) is RegistryError and err.value.status == 404
    assert err.value.message == (f"cannot pull docker.io/library/alpine:no-such-tag: {down} (mirror): "
                                 f"connection refused; {registry}: manifest unknown")
    assert err.value.hint is not None and err.value.hint.startswith("check the image name and tag")


def test_refusal_from_a_host_that_answered_before_is_retried(registry: str, lookups: list[str],
                                                             make_client: Callable[..., RegistryClient]) -> None:
    """A registry that answered and then refuses is probably restarting: that is worth retrying."""
    proxy = FaultProxy(registry, "pass")
    try:
        source = _source(make_client(retries=3), proxy.host)
    finally:
        proxy.stop()
    before = len(lookups)
    with pytest.raises(TransferError) as err:
        source.manifest("3.20")
    assert err.value.message == f"cannot reach {proxy.host}: connection refused"
    # Three attempts; the first may go out on the pooled connection the proxy closed (no lookup).
    assert len(lookups[before:]) >= 2, "the refused connection was not retried"


# --- htpasswd (Basic) --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory, test_images: Path) -> Iterator[str]:
    need("docker-registry", "skopeo", "htpasswd")
    handle = start_registry(tmp_path_factory.mktemp("basic-registry"), auth="htpasswd", users=USERS)
    try:
        push_layout(handle.host, Alpine.layout, "3.20", "library/alpine:3.20", creds="alice:s3cret-pw")
        yield handle.host
    finally:
        handle.stop()


def test_basic_auth(basic_registry: str, make_client: Callable[..., RegistryClient]) -> None:
    ref = parse_reference(f"{basic_registry}/library/alpine:3.20")
    with pytest.raises(AuthError) as err:
        make_client().open(ref)
    assert f"rootlet login {basic_registry}" in err.value.hint
    with pytest.raises(AuthError) as err:
        make_client(creds="alice:wrong").open(ref)
    assert "wrong" not in err.value.message and "wrong" not in (err.value.hint or "")
    source, head = make_client(creds="alice:s3cret-pw").open(ref)
    assert head.digest == Alpine.manifest
    assert source.manifest(Alpine.manifest).digest == Alpine.manifest
    assert len(source.read_blob(Alpine.config, 10_000)) == Alpine.config_size


def test_basic_auth_from_auth_file_and_login_check(basic_registry: str, isolated_env: Path,
                                                   make_client: Callable[..., RegistryClient]) -> None:
    from rootlet.registry import auth
    login_check(basic_registry, "alice", "s3cret-pw", ClientSettings())
    with pytest.raises(AuthError):
        login_check(basic_registry, "alice", "nope", ClientSettings())
    auth.login(basic_registry, "alice", "s3cret-pw")
    _, head = make_client().open(parse_reference(f"{basic_registry}/library/alpine:3.20"))
    assert head.digest == Alpine.manifest


# --- token auth ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, test_images: Path) -> Iterator[tuple[str, TokenServer]]:
    need("docker-registry", "skopeo", "openssl")
    tokens = TokenServer(tmp_path_factory.mktemp("token-server"), USERS)
    handle = start_registry(tmp_path_factory.mktemp("token-registry"), auth="token", token_realm=tokens.realm,
                            token_issuer_cert=tokens.cert)
    try:
        push_layout(handle.host, Alpine.layout, "3.20", "library/alpine:3.20", creds="alice:s3cret-pw")
        yield handle.host, tokens
    finally:
        handle.stop()
        tokens.stop()


def test_token_auth(token_registry: tuple[str, TokenServer], make_client: Callable[..., RegistryClient]) -> None:
    host, tokens = token_registry
    ref = parse_reference(f"{host}/library/alpine:3.20")
    with pytest.raises(AuthError) as err:
        make_client().open(ref)
    assert "rootlet login" in err.value.hint
    with pytest.raises(AuthError):
        make_client(creds="alice:bad").open(ref)

    before = len(tokens.token_requests())
    client = make_client(creds="alice:s3cret-pw")
    source, head = client.open(ref)
    assert head.digest == Alpine.manifest
    new = tokens.token_requests()[before:]
    assert len(new) == 1
    assert new[0].scopes == ["repository:library/alpine:pull"]
    assert new[0].account == "alice" and new[0].service == "rootlet-test-registry"
    source.manifest("3.20")
    source.manifest(Alpine.manifest)
    assert source.read_blob(Alpine.config, 10_000)
    assert len(tokens.token_requests()) == before + 1, "the cached token must be reused"


def test_parallel_blob_fetches_share_one_client(token_registry: tuple[str, TokenServer], tmp_path: Path,
                                                make_client: Callable[..., RegistryClient]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    host, tokens = token_registry
    source, _ = make_client(creds="alice:s3cret-pw").open(parse_reference(f"{host}/library/alpine:3.20"))
    before = len(tokens.token_requests())
    jobs = [(d, tmp_path / f"{i}.partial") for i, d in enumerate([Alpine.layer, Alpine.config] * 3)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda j: source.fetch_blob(j[0], len(blob_bytes(j[0])), str(j[1])), jobs))
    for digest, partial in jobs:
        assert partial.read_bytes() == blob_bytes(digest)
    assert len(tokens.token_requests()) == before, "threads reuse the token the HEAD obtained"


def test_token_login_check(token_registry: tuple[str, TokenServer]) -> None:
    host, tokens = token_registry
    login_check(host, "alice", "s3cret-pw", ClientSettings())
    with pytest.raises(AuthError):
        login_check(host, "alice", "bad", ClientSettings())
    assert tokens.token_requests()[-1].status == 401


# --- TLS -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, test_images: Path) -> Iterator[tuple[str, str]]:
    need("docker-registry", "skopeo", "openssl")
    ca, crt, key = make_ca_and_cert(tmp_path_factory.mktemp("tls"))
    handle = start_registry(tmp_path_factory.mktemp("tls-registry"), tls=(crt, key))
    try:
        push_layout(handle.host, Alpine.layout, "3.20", "library/alpine:3.20")
        yield handle.host, ca
    finally:
        handle.stop()


def test_tls_with_certs_d_ca(tls_registry: tuple[str, str], isolated_env: Path,
                             make_client: Callable[..., RegistryClient]) -> None:
    host, ca = tls_registry
    ref = parse_reference(f"{host}/library/alpine:3.20")
    with pytest.raises(TransferError) as err:
        make_client(tls_verify=True).open(ref)
    assert "certificate" in err.value.message
    certs = isolated_env / "home" / ".config" / "containers" / "certs.d" / host
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(Path(ca).read_bytes())
    source, head = make_client(tls_verify=True).open(ref)
    assert head.digest == Alpine.manifest
    assert source.read_blob(Alpine.config, 10_000)
    # a loopback registry is insecure by default: unverified TLS works without the CA too
    os.unlink(certs / "ca.crt")
    _, head = make_client().open(ref)
    assert head.digest == Alpine.manifest


# --- blob downloads --------------------------------------------------------------------------------

def _source(client: RegistryClient, host: str) -> Source:
    source, _ = client.open(parse_reference(f"{host}/library/alpine:3.20"))
    return source


def test_fetch_blob_resumes_partial(registry: str, tmp_path: Path, make_client: Callable[..., RegistryClient]) -> None:
    data = blob_bytes(Alpine.layer)
    partial = tmp_path / "layer.partial"
    partial.write_bytes(data[: len(data) // 2])
    seen: list[int] = []
    _source(make_client(), registry).fetch_blob(Alpine.layer, len(data), str(partial), seen.append)
    assert partial.read_bytes() == data
    assert sum(seen) == len(data)
    # a complete, correct partial needs no request at all
    _source(make_client(), registry).fetch_blob(Alpine.layer, len(data), str(partial))
    assert partial.read_bytes() == data


def test_fetch_blob_corrupt_partial(registry: str, tmp_path: Path, make_client: Callable[..., RegistryClient]) -> None:
    data = blob_bytes(Alpine.layer)
    partial = tmp_path / "layer.partial"
    partial.write_bytes(b"\0" * 100 + data[100: len(data) // 2])
    with pytest.raises(DigestMismatch) as err:
        _source(make_client(), registry).fetch_blob(Alpine.layer, len(data), str(partial))
    assert Alpine.layer in err.value.message and registry in err.value.message
    assert not partial.exists()


def test_fetch_blob_survives_dropped_connection(registry: str, tmp_path: Path,
                                                make_client: Callable[..., RegistryClient]) -> None:
    data = blob_bytes(Alpine.layer)
    proxy = FaultProxy(registry, "cut", after=300_000, times=1)
    try:
        partial = tmp_path / "layer.partial"
        seen: list[int] = []
        _source(make_client(), proxy.host).fetch_blob(Alpine.layer, len(data), str(partial), seen.append)
        assert partial.read_bytes() == data
        assert proxy.damaged == 1
        assert sum(seen) == len(data)
        blob_gets = [r for r in proxy.requests if r.startswith("GET ") and Alpine.layer in r.split("\r\n")[0]]
        assert len(blob_gets) == 2
        assert "range: bytes=" in blob_gets[1].lower() and "range:" not in blob_gets[0].lower()
    finally:
        proxy.stop()


def test_fetch_blob_detects_flipped_byte(registry: str, tmp_path: Path,
                                         make_client: Callable[..., RegistryClient]) -> None:
    data = blob_bytes(Alpine.layer)
    proxy = FaultProxy(registry, "flip", after=1000)
    try:
        partial = tmp_path / "layer.partial"
        with pytest.raises(DigestMismatch) as err:
            _source(make_client(), proxy.host).fetch_blob(Alpine.layer, len(data), str(partial))
        assert f"expected {Alpine.layer}" in err.value.message
        assert not partial.exists()
        assert proxy.damaged >= 1
    finally:
        proxy.stop()


def test_fetch_blob_never_keeps_more_than_size(registry: str, tmp_path: Path,
                                               make_client: Callable[..., RegistryClient]) -> None:
    partial = tmp_path / "layer.partial"
    with pytest.raises(DigestMismatch):
        _source(make_client(), registry).fetch_blob(Alpine.layer, 1000, str(partial))
    assert not partial.exists()


# --- redirects -------------------------------------------------------------------------------------

def test_credentials_never_follow_a_redirect_elsewhere(registry: str, make_client: Callable[..., RegistryClient]) -> None:
    """A front server that wants Basic auth and redirects blob GETs to another origin (like Docker
    Hub's CDN): the Authorization header must reach the front server only."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rootlet.registry.config import Endpoint

    cdn = FaultProxy(registry, "flip", after=10**12)   # never flips: only records what it is sent
    seen_auth: list[str | None] = []
    good = "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()

    class Front(BaseHTTPRequestHandler):
        timeout = 1  # the client's first TLS hello may hold readline() until this runs out

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen_auth.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != good:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="front"')
            elif "/blobs/" in self.path:
                self.send_response(307)
                self.send_header("Location", f"http://{cdn.host}{self.path}")
            else:
                self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        front = f"127.0.0.1:{server.server_address[1]}"
        client = make_client(creds="alice:s3cret-pw")
        source = Source(client, parse_reference(f"{front}/library/alpine:3.20"),
                        Endpoint(front, "library/alpine", insecure=True, mirror=False))
        assert len(source.read_blob(Alpine.config, 10_000)) == Alpine.config_size
        assert good in seen_auth
        assert cdn.requests and not any("authorization:" in r.lower() for r in cdn.requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        cdn.stop()


def test_rate_limit_reports_docker_hub_headers(make_client: Callable[..., RegistryClient]) -> None:
    """HTTP 429 is retried (honouring Retry-After), then reported with the rate-limit headers."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rootlet.registry.config import Endpoint
    from rootlet.registry.errors import RateLimited

    hits: list[str] = []

    class Limited(BaseHTTPRequestHandler):
        timeout = 1

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("ratelimit-limit", "100;w=21600")
            self.send_header("ratelimit-remaining", "0;w=21600")
            self.send_header("docker-ratelimit-source", "192.0.2.1")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Limited)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        source = Source(make_client(retries=3), parse_reference(f"{host}/library/alpine:3.20"),
                        Endpoint(host, "library/alpine", insecure=True, mirror=False))
        with pytest.raises(RateLimited) as err:
            source.head("3.20")
        assert "ratelimit-remaining: 0;w=21600" in err.value.message
        assert "docker-ratelimit-source: 192.0.2.1" in err.value.message
        assert "rootlet login" in err.value.hint
        assert len(hits) == 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
