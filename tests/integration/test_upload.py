"""The upload protocol (registry/upload.py) against the real docker-registry: monolithic and chunked
uploads, blobs skipped and mounted, Basic and token auth, a connection cut mid-blob, refusals, and
credentials kept from an upload Location on another host.

``UploadProxy`` is a real HTTP reverse proxy in front of the real registry that records every
request and, where a test asks, does what a broken network or a front server does: cuts an upload
body off, answers 413/503 as nginx would, or moves the upload Location to another origin.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rootlet.registry import mediatypes as mt
from rootlet.registry.client import ClientSettings, RegistryClient, Source
from rootlet.registry.config import Endpoint, RegistriesConfig
from rootlet.registry.errors import AuthError, RegistryError, TransferError
from rootlet.registry.reference import parse_reference
from rootlet.registry.upload import CHUNK_SIZE, MONOLITHIC_MAX, Destination
from tests.conftest import need
from tests.support.registries import TokenServer, start_registry

pytestmark = pytest.mark.integration

USERS = {"alice": "s3cret-pw"}


class Seen:
    """One request the proxy received."""

    def __init__(self, method: str, path: str, headers: dict[str, str], length: int) -> None:
        self.method, self.path, self.headers, self.length = method, path, headers, length

    def __repr__(self) -> str:
        return f"{self.method} {self.path} ({self.length} bytes)"


class UploadProxy:
    """A reverse proxy on 127.0.0.1 in front of *target* (``host:port``).

    ``cut_after``: the first ``cut_times`` PATCH/PUT upload bodies longer than that are cut off
    after that many bytes (the connection closed, no answer). ``refuse``: method → HTTP status
    answered to upload requests (PATCH/PUT) instead of forwarding them, ``refuse_times`` times.
    ``relocate_to``: ``host:port`` put in place of this proxy's own in every Location header;
    ``relative``: Locations made relative (``/v2/…``), as ``relativeurls: true`` makes them;
    ``min_chunk``: an ``OCI-Chunk-Min-Length`` header added to the answers to POST.
    """

    def __init__(self, target: str, *, cut_after: int | None = None, cut_times: int = 1,
                 refuse: dict[str, int] | None = None, refuse_times: int = 10**9,
                 relocate_to: str | None = None, relative: bool = False, min_chunk: int | None = None) -> None:
        self.target = target
        self.cut_after, self.cut_left = cut_after, cut_times if cut_after is not None else 0
        self.refuse, self.refuse_left = dict(refuse or {}), refuse_times
        self.relocate_to, self.relative, self.min_chunk = relocate_to, relative, min_chunk
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def methods(self) -> list[str]:
        with self.lock:
            return [s.method for s in self.seen]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                upload = self.command in ("PATCH", "PUT") and "/blobs/uploads/" in self.path
                with proxy.lock:
                    proxy.seen.append(Seen(self.command, self.path, dict(self.headers), length))
                    cut = upload and proxy.cut_left > 0 and length > (proxy.cut_after or 0)
                    proxy.cut_left -= cut
                    refused = proxy.refuse.get(self.command) if upload and proxy.refuse_left > 0 else None
                    proxy.refuse_left -= refused is not None
                if cut:
                    self.rfile.read(proxy.cut_after or 0)
                    self.close_connection = True  # closed with the rest unread: the client gets a reset
                    return
                body = self.rfile.read(length) if length else None
                if refused is not None:
                    self.send_response(refused)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    return
                conn = http.client.HTTPConnection(proxy.target, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() in ("transfer-encoding", "connection", "content-length", "date", "server"):
                            continue
                        if k.lower() == "location" and proxy.relocate_to:
                            v = v.replace(proxy.host, proxy.relocate_to)
                        if k.lower() == "location" and proxy.relative:
                            v = v.replace(f"http://{proxy.host}", "")
                        self.send_header(k, v)
                    if self.command == "POST" and proxy.min_chunk:
                        self.send_header("OCI-Chunk-Min-Length", str(proxy.min_chunk))
                    self.send_header("Content-Length", resp.getheader("Content-Length", "0")
                                     if self.command == "HEAD" else str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        return Handler


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


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty registry without auth, for this module's pushes."""
    need("docker-registry")
    handle = start_registry(tmp_path_factory.mktemp("upload-registry"))
    try:
        yield handle.host
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need("docker-registry", "htpasswd")
    handle = start_registry(tmp_path_factory.mktemp("upload-basic"), auth="htpasswd", users=USERS)
    try:
        yield handle.host
    finally:
        handle.stop()


@pytest.fixture
def proxies() -> Iterator[Callable[..., UploadProxy]]:
    made: list[UploadProxy] = []

    def make(target: str, **kwargs: object) -> UploadProxy:
        made.append(UploadProxy(target, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def destination() -> Iterator[Callable[..., Destination]]:
    """``destination(host, repo, **settings)``: a Destination on a fresh client (closed afterwards)."""
    clients: list[RegistryClient] = []

    def make(host: str, repo: str, **settings: object) -> Destination:
        client = RegistryClient(ClientSettings(**settings), RegistriesConfig.load())  # type: ignore[arg-type]
        clients.append(client)
        return Destination.open(client, parse_reference(f"{host}/{repo}:latest"))

    yield make
    for c in clients:
        c.close()


def blob_file(path: Path, size: int) -> tuple[str, str, int]:
    """A file of *size* random bytes: (path, digest, size)."""
    data = os.urandom(size)
    path.write_bytes(data)
    return str(path), "sha256:" + hashlib.sha256(data).hexdigest(), size


def read_back(host: str, repo: str, digest: str, size: int, **settings: object) -> bytes:
    """The blob as the registry serves it (through the pull client)."""
    with RegistryClient(ClientSettings(**settings), RegistriesConfig.load()) as client:  # type: ignore[arg-type]
        source = Source(client, parse_reference(f"{host}/{repo}:latest"), Endpoint(host, repo, True, False))
        return source.read_blob(digest, size)


# --- the protocol ------------------------------------------------------------------------------------

def test_small_blob_is_one_post_and_put_then_skipped_by_head(plain_registry: str, tmp_path: Path,
                                                               proxies: Callable[..., UploadProxy],
                                                               destination: Callable[..., Destination]) -> None:
    proxy = proxies(plain_registry)
    path, digest, size = blob_file(tmp_path / "blob", 300_000)
    assert destination(proxy.host, "up/small").push_blob(path, digest, size) == "uploaded"
    assert proxy.methods() == ["HEAD", "POST", "PUT"]
    put = proxy.seen[-1]
    assert f"digest={digest}" in put.path and put.length == size
    assert hashlib.sha256(read_back(plain_registry, "up/small", digest, size)).hexdigest() == digest[7:]

    proxy.seen.clear()
    assert destination(proxy.host, "up/small").push_blob(path, digest, size) == "exists"
    assert proxy.methods() == ["HEAD"]


def test_large_blob_goes_up_in_patch_chunks_with_content_range(plain_registry: str, tmp_path: Path,
                                                                proxies: Callable[..., UploadProxy],
                                                                destination: Callable[..., Destination]) -> None:
    size = MONOLITHIC_MAX + 5 * 1024 * 1024
    proxy = proxies(plain_registry)
    path, digest, _ = blob_file(tmp_path / "big", size)
    progress: list[int] = []
    assert destination(proxy.host, "up/large").push_blob(path, digest, size, on_progress=progress.append) == "uploaded"
    patches = [s for s in proxy.seen if s.method == "PATCH"]
    assert [p.headers["Content-Range"] for p in patches] == [f"0-{CHUNK_SIZE - 1}", f"{CHUNK_SIZE}-{size - 1}"]
    assert [p.length for p in patches] == [CHUNK_SIZE, size - CHUNK_SIZE]
    final = proxy.seen[-1]
    assert final.method == "PUT" and final.length == 0 and f"digest={digest}" in final.path
    assert sum(progress) == size
    assert hashlib.sha256(read_back(plain_registry, "up/large", digest, size)).hexdigest() == digest[7:]


def test_relative_locations_and_the_registrys_minimum_chunk_are_honoured(
        plain_registry: str, tmp_path: Path, proxies: Callable[..., UploadProxy],
        destination: Callable[..., Destination]) -> None:
    minimum = CHUNK_SIZE + 4 * 1024 * 1024
    size = minimum + 1024 * 1024
    proxy = proxies(plain_registry, relative=True, min_chunk=minimum)
    path, digest, _ = blob_file(tmp_path / "rel", size)
    assert destination(proxy.host, "up/relative").push_blob(path, digest, size) == "uploaded"
    patches = [s for s in proxy.seen if s.method == "PATCH"]
    assert [p.length for p in patches] == [minimum, size - minimum]
    assert all(s.path.startswith("/v2/up/relative/blobs/uploads/") for s in proxy.seen if s.method in ("PATCH", "PUT"))
    assert hashlib.sha256(read_back(plain_registry, "up/relative", digest, size)).hexdigest() == digest[7:]


def test_blob_of_another_repository_is_mounted_not_sent(plain_registry: str, tmp_path: Path,
                                                        proxies: Callable[..., UploadProxy],
                                                        destination: Callable[..., Destination]) -> None:
    path, digest, size = blob_file(tmp_path / "shared", 200_000)
    assert destination(plain_registry, "team/source").push_blob(path, digest, size) == "uploaded"
    proxy = proxies(plain_registry)
    dest = destination(proxy.host, "team/copy")
    assert dest.push_blob(path, digest, size, mount_from=("team/source",)) == "mounted"
    assert proxy.methods() == ["HEAD", "POST"]
    assert f"mount={digest}" in proxy.seen[1].path and "from=team/source" in proxy.seen[1].path
    assert read_back(plain_registry, "team/copy", digest, size) == Path(path).read_bytes()


def test_a_mount_the_registry_cannot_make_becomes_an_upload(plain_registry: str, tmp_path: Path,
                                                            proxies: Callable[..., UploadProxy],
                                                            destination: Callable[..., Destination]) -> None:
    path, digest, size = blob_file(tmp_path / "lonely", 100_000)
    proxy = proxies(plain_registry)
    assert destination(proxy.host, "team/other").push_blob(path, digest, size, mount_from=("team/nothing",)) \
        == "uploaded"
    assert proxy.methods() == ["HEAD", "POST", "PUT"]  # the mount's 202 is the upload used


def test_manifest_goes_up_with_its_media_type_and_digest(plain_registry: str, tmp_path: Path,
                                                         destination: Callable[..., Destination]) -> None:
    import json

    layer_path, layer, layer_size = blob_file(tmp_path / "layer", 1000)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer]}}).encode()
    (tmp_path / "config").write_bytes(config)
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    dest = destination(plain_registry, "up/image")
    dest.push_blob(layer_path, layer, layer_size)
    dest.push_blob(str(tmp_path / "config"), config_digest, len(config))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config)},
                           "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": layer, "size": layer_size}]}).encode()
    digest = dest.put_manifest(manifest, mt.OCI_MANIFEST, "v1")
    assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    with RegistryClient(ClientSettings(), RegistriesConfig.load()) as client:
        source, head = client.open(parse_reference(f"{plain_registry}/up/image:v1"))
        assert head.digest == digest and head.media_type == mt.OCI_MANIFEST
        assert source.manifest("v1").data == manifest


# --- interruptions and refusals ----------------------------------------------------------------------

def test_connection_cut_mid_blob_is_retried_and_the_blob_arrives_whole(plain_registry: str, tmp_path: Path,
                                                                       proxies: Callable[..., UploadProxy],
                                                                       destination: Callable[..., Destination]) -> None:
    proxy = proxies(plain_registry, cut_after=64 * 1024)
    path, digest, size = blob_file(tmp_path / "cut", 2 * 1024 * 1024)
    progress: list[int] = []
    assert destination(proxy.host, "up/cut").push_blob(path, digest, size, on_progress=progress.append) == "uploaded"
    assert proxy.cut_left == 0 and proxy.methods().count("PUT") == 2
    assert sum(progress) == size  # a byte sent twice is counted once
    assert hashlib.sha256(read_back(plain_registry, "up/cut", digest, size)).hexdigest() == digest[7:]


def test_connection_cut_in_a_chunk_is_retried(plain_registry: str, tmp_path: Path,
                                              proxies: Callable[..., UploadProxy],
                                              destination: Callable[..., Destination]) -> None:
    size = MONOLITHIC_MAX + 1024 * 1024
    proxy = proxies(plain_registry, cut_after=1024 * 1024)
    path, digest, _ = blob_file(tmp_path / "cutbig", size)
    assert destination(proxy.host, "up/cutbig").push_blob(path, digest, size) == "uploaded"
    assert proxy.cut_left == 0
    # After the cut the registry is asked where the upload stands before anything is sent again.
    after_cut = proxy.methods()[proxy.methods().index("PATCH") + 1:]
    assert after_cut[0] == "GET"
    assert hashlib.sha256(read_back(plain_registry, "up/cutbig", digest, size)).hexdigest() == digest[7:]


def test_a_connection_cut_every_time_is_one_clear_error(plain_registry: str, tmp_path: Path,
                                                        proxies: Callable[..., UploadProxy],
                                                        destination: Callable[..., Destination]) -> None:
    proxy = proxies(plain_registry, cut_after=1024, cut_times=100)
    path, digest, size = blob_file(tmp_path / "never", 100_000)
    with pytest.raises(TransferError) as err:
        destination(proxy.host, "up/never", retries=2).push_blob(path, digest, size)
    assert f"pushing blob {digest[:19]} to {proxy.host}/up/never failed 2 times" in err.value.message
    assert "\n" not in err.value.message and err.value.hint


def test_a_front_server_that_refuses_the_size_says_413(plain_registry: str, tmp_path: Path,
                                                       proxies: Callable[..., UploadProxy],
                                                       destination: Callable[..., Destination]) -> None:
    proxy = proxies(plain_registry, refuse={"PUT": 413})
    path, digest, size = blob_file(tmp_path / "huge", 50_000)
    with pytest.raises(RegistryError) as err:
        destination(proxy.host, "up/huge").push_blob(path, digest, size)
    assert err.value.status == 413 and "too large (HTTP 413)" in err.value.message
    assert "client_max_body_size" in (err.value.hint or "")
    assert proxy.methods().count("PUT") == 1  # not retried: it would only be refused again


def test_a_5xx_is_retried_then_reported(plain_registry: str, tmp_path: Path, proxies: Callable[..., UploadProxy],
                                        destination: Callable[..., Destination]) -> None:
    once = proxies(plain_registry, refuse={"PUT": 503}, refuse_times=1)
    path, digest, size = blob_file(tmp_path / "flaky", 50_000)
    assert destination(once.host, "up/flaky").push_blob(path, digest, size) == "uploaded"

    always = proxies(plain_registry, refuse={"PUT": 500})
    path, digest, size = blob_file(tmp_path / "broken", 50_000)
    with pytest.raises(TransferError) as err:
        destination(always.host, "up/broken", retries=2).push_blob(path, digest, size)
    assert "HTTP 500" in err.value.message


def test_a_pull_through_cache_refuses_pushes_with_405(plain_registry: str, tmp_path: Path,
                                                      destination: Callable[..., Destination]) -> None:
    cache = start_registry(tmp_path / "cache", proxy_remote=f"http://{plain_registry}")
    try:
        path, digest, size = blob_file(tmp_path / "x", 1000)
        with pytest.raises(RegistryError) as err:
            destination(cache.host, "up/x").push_blob(path, digest, size)
        assert err.value.status == 405 and "does not accept pushes" in err.value.message
    finally:
        cache.stop()


# --- credentials ----------------------------------------------------------------------------------

def test_basic_auth_push_and_bad_credentials(basic_registry: str, tmp_path: Path,
                                             destination: Callable[..., Destination]) -> None:
    path, digest, size = blob_file(tmp_path / "b", 10_000)
    with pytest.raises(AuthError) as err:
        destination(basic_registry, "team/app").push_blob(path, digest, size)
    assert f"rootlet login {basic_registry}" in (err.value.hint or "")
    with pytest.raises(AuthError) as err:
        destination(basic_registry, "team/app", creds="alice:wrong-pw").push_blob(path, digest, size)
    assert "denied" in err.value.message and "wrong-pw" not in err.value.message + (err.value.hint or "")
    assert destination(basic_registry, "team/app", creds="alice:s3cret-pw").push_blob(path, digest, size) == "uploaded"
    assert read_back(basic_registry, "team/app", digest, size, creds="alice:s3cret-pw") == Path(path).read_bytes()


def test_token_auth_asks_for_push_scope_and_source_pull_for_a_mount(tmp_path: Path,
                                                                    destination: Callable[..., Destination]) -> None:
    need("docker-registry", "openssl")
    tokens = TokenServer(tmp_path / "tokens", USERS)
    handle = start_registry(tmp_path / "reg", auth="token", token_realm=tokens.realm, token_issuer_cert=tokens.cert)
    try:
        path, digest, size = blob_file(tmp_path / "t", 10_000)
        assert destination(handle.host, "team/one", creds="alice:s3cret-pw").push_blob(path, digest, size) \
            == "uploaded"
        assert any(r.scopes == ["repository:team/one:pull,push"] for r in tokens.token_requests())
        dest = destination(handle.host, "team/two", creds="alice:s3cret-pw")
        assert dest.push_blob(path, digest, size, mount_from=("team/one",)) == "mounted"
        assert any(sorted(r.scopes) == ["repository:team/one:pull", "repository:team/two:pull,push"]
                   for r in tokens.token_requests())
    finally:
        handle.stop()
        tokens.stop()


def test_an_upload_location_on_another_host_never_gets_the_credentials(basic_registry: str, tmp_path: Path,
                                                                       proxies: Callable[..., UploadProxy],
                                                                       destination: Callable[..., Destination]) -> None:
    elsewhere = proxies(basic_registry)
    front = proxies(basic_registry, relocate_to=elsewhere.host)
    path, digest, size = blob_file(tmp_path / "moved", 10_000)
    with pytest.raises(AuthError):
        destination(front.host, "team/moved", creds="alice:s3cret-pw").push_blob(path, digest, size)
    assert any("Authorization" in s.headers for s in front.seen)
    assert elsewhere.seen and not any("authorization" in (k.lower() for k in s.headers) for s in elsewhere.seen)
    assert [s.method for s in elsewhere.seen] == ["PUT"]  # the bytes went, once; the 401 was not answered
