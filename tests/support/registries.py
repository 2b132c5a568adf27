"""Extra real registries for tests: auth (htpasswd, token), TLS, pull-through proxies.

Everything here drives real programs — Debian's ``docker-registry``, ``skopeo``, ``openssl``,
``htpasswd`` — on 127.0.0.1; nothing is mocked. ``TokenServer`` is a real token issuer in the
docker token-auth protocol: it checks Basic credentials and signs RS256 JWTs whose header carries
the issuer certificate in ``x5c``, which ``docker-registry``'s ``auth: token`` verifies against its
``rootcertbundle``. It records every request so tests can assert scopes and token reuse.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}… failed ({out.returncode}): {out.stderr.strip()}")
    return out


@dataclass
class RegistryHandle:
    """A running ``docker-registry``; ``host`` is ``127.0.0.1:PORT``; ``stop()`` ends it."""

    host: str
    state_dir: Path
    process: subprocess.Popen = field(repr=False)

    def stop(self) -> None:
        """Terminate the registry and wait for it (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        log = getattr(self.process, "_rootlet_log", None)
        if log is not None and not log.closed:
            log.close()

    def log(self) -> str:
        """The registry's own log, for assertion messages."""
        path = self.state_dir / "registry.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_registry(
    state_dir: str | os.PathLike[str],
    *,
    auth: Literal["htpasswd", "token"] | None = None,
    users: dict[str, str] | None = None,
    tls: tuple[str, str] | None = None,
    token_realm: str | None = None,
    token_issuer_cert: str | None = None,
    token_service: str = "rootlet-test-registry",
    token_issuer: str = "rootlet-test-issuer",
    proxy_remote: str | None = None,
) -> RegistryHandle:
    """Start ``docker-registry`` on a free loopback port with the wanted auth/TLS/proxy mode.

    Waits until ``/v2/`` answers (any HTTP status) and returns a handle; the caller stops it.
    """
    state = Path(state_dir)
    (state / "data").mkdir(parents=True, exist_ok=True)
    port = _free_port()
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {state / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        f"  secret: {secrets.token_hex(16)}",
    ]
    if tls:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    if auth == "htpasswd":
        htpasswd = state / "htpasswd"
        entries = []
        for user, password in (users or {}).items():
            entries.append(_run(["htpasswd", "-Bbn", user, password]).stdout.strip())
        htpasswd.write_text("\n".join(entries) + "\n")
        lines += ["auth:", "  htpasswd:", "    realm: rootlet-test", f"    path: {htpasswd}"]
    elif auth == "token":
        if not token_realm or not token_issuer_cert:
            raise ValueError("token auth needs token_realm and token_issuer_cert")
        lines += [
            "auth:",
            "  token:",
            f"    realm: {token_realm}",
            f"    service: {token_service}",
            f"    issuer: {token_issuer}",
            f"    rootcertbundle: {token_issuer_cert}",
        ]
    elif auth is not None:
        raise ValueError(f"unknown auth mode {auth!r}")
    if proxy_remote:
        lines += ["proxy:", f"  remoteurl: {proxy_remote}"]
    config = state / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = open(state / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    proc._rootlet_log = log  # type: ignore[attr-defined]
    handle = RegistryHandle(f"127.0.0.1:{port}", state, proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            handle.stop()
            raise RuntimeError(f"docker-registry exited {proc.returncode}: {handle.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return handle
        except OSError:
            time.sleep(0.05)
    handle.stop()
    raise RuntimeError(f"docker-registry did not listen on port {port}: {handle.log()}")


def push_layout(host: str, layout_dir: str | os.PathLike[str], ref_name: str, dest_repo_tag: str,
                creds: str | None = None, tls_verify: bool = False, cert_dir: str | None = None) -> None:
    """Copy every manifest of the OCI layout ``layout_dir:ref_name`` to ``docker://host/dest_repo_tag``."""
    cmd = ["skopeo", "copy", "--quiet", "--all", f"--dest-tls-verify={'true' if tls_verify else 'false'}"]
    if creds:
        cmd.append(f"--dest-creds={creds}")
    if cert_dir:
        cmd.append(f"--dest-cert-dir={cert_dir}")
    # A private, empty auth file and registries.conf so the developer's own never leak in.
    with tempfile.TemporaryDirectory() as tmp:
        authfile = Path(tmp) / "auth.json"
        authfile.write_text('{"auths":{}}')
        conf = Path(tmp) / "registries.conf"
        conf.write_text("")
        cmd.append(f"--dest-authfile={authfile}")
        cmd += [f"oci:{layout_dir}:{ref_name}", f"docker://{host}/{dest_repo_tag}"]
        env = dict(os.environ, CONTAINERS_REGISTRIES_CONF=str(conf), HOME=tmp)
        _run(cmd, env=env)


def make_ca_and_cert(directory: str | os.PathLike[str], ip: str = "127.0.0.1") -> tuple[str, str, str]:
    """Create a test CA and a server certificate for IP SAN *ip*; returns (ca_crt, server_crt, server_key)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt, ext = d / "server.key", d / "server.csr", d / "server.crt", d / "server.ext"
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
          "-days", "2", "-subj", "/CN=rootlet test CA", "-sha256",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
          "-subj", f"/CN={ip}", "-sha256"])
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName=IP:{ip}\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "subjectKeyIdentifier=hash\n"
    )
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-out", str(crt), "-days", "2", "-sha256", "-extfile", str(ext)])
    return str(ca_crt), str(crt), str(key)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenRequest:
    """One request the token server received."""

    path: str
    service: str | None
    scopes: list[str]
    account: str | None   # the Basic user, None when anonymous
    status: int


class TokenServer:
    """A docker token-auth issuer on 127.0.0.1 (``realm`` = ``http://127.0.0.1:PORT/token``).

    Authenticated users get every action they ask for; anonymous requests get a token with no
    access (so the registry answers 401 insufficient_scope) unless ``anonymous_pull`` is set;
    wrong credentials get 401. ``requests`` records everything received.
    """

    def __init__(self, state_dir: str | os.PathLike[str], users: dict[str, str] | None = None, *,
                 issuer: str = "rootlet-test-issuer", service: str = "rootlet-test-registry",
                 anonymous_pull: bool = False, expires_in: int = 300) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.users = dict(users or {})
        self.issuer, self.service = issuer, service
        self.anonymous_pull = anonymous_pull
        self.expires_in = expires_in
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self.key = str(self.dir / "issuer.key")
        self.cert = str(self.dir / "issuer.crt")
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", self.cert,
              "-days", "2", "-subj", "/CN=rootlet token issuer", "-sha256"])
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"], capture_output=True,
                             check=True, timeout=30).stdout
        self._x5c = base64.b64encode(der).decode()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Shut the HTTP server down and join its thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def token_requests(self) -> list[TokenRequest]:
        """A snapshot of the requests received so far."""
        with self._lock:
            return list(self.requests)

    def sign(self, claims: dict[str, Any]) -> str:
        """An RS256 JWT for *claims*, signed with ``openssl dgst -sha256 -sign``."""
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input.encode(),
                             capture_output=True, check=True, timeout=30).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def _issue(self, account: str | None, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if account is None:
                actions = [a for a in actions if a == "pull"] if self.anonymous_pull else []
            if actions:
                access.append({"type": kind, "name": name, "actions": actions})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": account or "", "aud": self.service, "exp": now + self.expires_in,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        return self.sign(claims)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep tests quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
                account: str | None = None
                status = 200
                header = self.headers.get("Authorization", "")
                if header.lower().startswith("basic "):
                    try:
                        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    except (ValueError, UnicodeDecodeError):
                        user, password = "", None  # type: ignore[assignment]
                    if server.users.get(user) == password and password is not None:
                        account = user
                    else:
                        status = 401
                if url.path != "/token":
                    status = 404
                with server._lock:
                    server.requests.append(TokenRequest(url.path, (query.get("service") or [None])[0], scopes,
                                                        account, status))
                if status != 200:
                    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}).encode()
                    self.send_response(status)
                    if status == 401:
                        self.send_header("WWW-Authenticate", 'Basic realm="rootlet-token"')
                else:
                    token = server._issue(account, scopes)
                    body = json.dumps({"token": token, "access_token": token, "expires_in": server.expires_in,
                                       "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def have(*programs: str) -> bool:
    """True when every program is on PATH."""
    return all(shutil.which(p) for p in programs)


class FaultProxy:
    """A tiny threaded TCP proxy in front of a registry that damages blob responses on purpose.

    ``mode="cut"`` closes the connection after ``after`` body bytes of the first ``times`` blob GET
    responses (then passes everything through); ``mode="flip"`` inverts one body byte at offset
    ``after`` of every blob GET response; ``mode="slow"`` sends blob bodies at ``rate`` bytes/s (to
    catch a pull mid-download); ``mode="pass"`` damages nothing and only records requests.
    ``host`` is ``127.0.0.1:PORT``; ``stop()`` ends it.
    """

    def __init__(self, target: str, mode: Literal["cut", "flip", "slow", "pass"], after: int = 1024, times: int = 1,
                 rate: int = 256 * 1024) -> None:
        self.target_host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.mode, self.after, self.rate = mode, after, rate
        self.remaining = {"cut": times, "pass": 0}.get(mode, 10**9)
        self.damaged = 0
        #: The head (request line and headers) of every HTTP request that passed through.
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close every open connection."""
        self._stopped.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            state = {"armed": False, "header": b"", "in_body": False, "body": 0}
            threading.Thread(target=self._pump_up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client, state), daemon=True).start()

    def _pump_up(self, client: socket.socket, upstream: socket.socket, state: dict[str, Any]) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if data[:8].split(b" ", 1)[0] in (b"GET", b"HEAD"):
                    with self._lock:
                        self.requests.append(data.split(b"\r\n\r\n", 1)[0].decode("latin-1"))
                if data.startswith(b"GET ") and b"/blobs/sha256:" in data.split(b"\r\n", 1)[0]:
                    with self._lock:
                        arm = self.remaining > 0
                        if arm:
                            self.remaining -= 1
                    state.update(armed=arm, header=b"", in_body=False, body=0)
                elif data[:8].split(b" ", 1)[0] in (b"GET", b"HEAD", b"PUT", b"POST", b"PATCH", b"DELETE"):
                    state.update(armed=False)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _pump_down(self, upstream: socket.socket, client: socket.socket, state: dict[str, Any]) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if state["armed"]:
                    if not state["in_body"]:
                        state["header"] += data
                        end = state["header"].find(b"\r\n\r\n")
                        if end < 0:
                            continue
                        head, data = state["header"][: end + 4], state["header"][end + 4:]
                        state["in_body"] = True
                        client.sendall(head)
                    data = bytearray(data)
                    start = state["body"]
                    if self.mode == "slow":
                        for i in range(0, len(data), 16384):
                            client.sendall(bytes(data[i:i + 16384]))
                            time.sleep(min(len(data) - i, 16384) / self.rate)
                        state["body"] = start + len(data)
                        continue
                    if self.mode == "cut":
                        keep = max(0, self.after - start)
                        if len(data) >= keep:
                            client.sendall(bytes(data[:keep]))
                            with self._lock:
                                self.damaged += 1
                            break
                    elif start <= self.after < start + len(data):
                        data[self.after - start] ^= 0xFF
                        with self._lock:
                            self.damaged += 1
                    state["body"] = start + len(data)
                    data = bytes(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass
