"""The registry HTTP client used by pull: manifests, blobs, auth, TLS, retries and resumable downloads.

Policy, and why:

- ``requests.Session(trust_env=False)`` so ``.netrc`` and proxy variables never add credentials
  or hops we did not choose; one session per thread (pull downloads blobs from a few threads).
- Redirects are followed by hand (at most ``MAX_REDIRECTS``) and the ``Authorization`` header is
  sent only to the registry's own scheme+host+port, never to a CDN a blob GET redirects to.
- Auth is docker's: try, and on 401 read ``WWW-Authenticate``; for ``Bearer`` fetch a token for
  ``repository:NAME:pull`` from the realm (with Basic credentials when we have some, anonymously
  otherwise) and cache it; for ``Basic`` send the credentials. The uploader (``upload.py``) asks
  for its own scopes (``pull,push``) and sends to absolute upload URLs, which get the credentials
  only on the registry's own origin; a 401 from another origin is never answered.
- TLS: https first. An insecure endpoint (registries.conf, or loopback as docker does) or
  ``--tls-verify=false`` skips verification and falls back to plain http when TLS fails; the
  scheme that worked is remembered per host. ``--tls-verify=true`` always verifies. CAs and client
  certificates come from certs.d.
- Retries with back-off are for what may heal in a moment: a connection dropped mid-body, a
  timeout, 5xx and 429. A name that did not resolve is not looked up again, and a refused
  connection to a host that has not answered yet fails at once (nothing listens there): waiting
  would only delay the next mirror or the error (podman answers at once too).
- When every source of a reference fails, the error names each one tried, mirrors first, with
  its own answer, so a mirror's ``manifest unknown`` is not hidden behind the registry's failure.
- Everything read into memory is bounded; every digest is checked; credentials never appear in
  messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from rootlet.registry import mediatypes as mt
from rootlet.registry.auth import Challenge, Credentials, TokenCache, lookup, parse_www_authenticate
from rootlet.registry.config import Endpoint, RegistriesConfig, cert_dirs_for, tls_files
from rootlet.registry.errors import (AuthError, DigestMismatch, ManifestError, RateLimited, RegistryError,
                                     TransferError)
from rootlet.registry.reference import DOCKER_HUB, Reference, canonical_registry, check_digest, is_digest, is_tag

MAX_REDIRECTS = 5
MAX_ERROR_BODY = 64 * 1024
MAX_TOKEN_BODY = 64 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_MIN = 0.2
BACKOFF_MAX = 5.0
RETRY_AFTER_MAX = 10.0
CHUNK = 256 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: What the user is told when a host name does not resolve (the resolver's own words vary).
_UNRESOLVED = "cannot resolve host"
_E = TypeVar("_E", bound=RegistryError)
#: Exceptions that mean "the connection broke while reading a body": retry (and resume).
_READ_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.HTTPError,
    OSError,
)


@dataclass(frozen=True)
class ClientSettings:
    """How to talk to registries (the pull/login command-line flags)."""

    tls_verify: bool | None = None   # --tls-verify; None = per config (insecure registries allow http/unverified TLS)
    creds: str | None = None         # --creds user[:pass]
    authfile: str | None = None
    cert_dir: str | None = None
    user_agent: str = "rootlet/0.1"
    retries: int = 5                 # attempts for 5xx/429/connection errors, exponential back-off
    timeout: float = 30.0


@dataclass(frozen=True)
class ManifestHead:
    """What a manifest HEAD tells: its digest, media type and size."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class ManifestResponse:
    """A fetched manifest; ``digest`` is the sha256 of ``data`` (checked against what was asked)."""

    data: bytes
    media_type: str
    digest: str


@dataclass
class _TLS:
    """TLS policy for one registry host."""

    allow_insecure: bool              # unverified TLS and fallback to http allowed
    verify: bool | str                # requests' verify: False, True or a CA bundle path
    cert: tuple[str, str] | None      # client certificate and key


def _display_host(host: str) -> str:
    """The name users know a host by (``docker.io``, not its API host)."""
    return canonical_registry(host)


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, f"{(parts.hostname or '').lower()}:{port}"


def _backoff(attempt: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_MIN * (2 ** max(0, attempt - 1)))


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX)
    return None


def _reason(exc: BaseException) -> str:
    """A short, credential-free description of a connection failure."""
    if _connect_failure(exc) == "unresolved":
        return _UNRESOLVED
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Connection reset",
                   "certificate verify failed", "wrong version number", "No route to host",
                   "Remote end closed connection", "IncompleteRead", "Connection aborted"):
        if marker.lower() in text.lower():
            # Phrases read as part of a sentence ("…: connection refused"); names stay as they are.
            return marker.lower() if " " in marker else marker
    text = re.sub(r"\s+", " ", text)
    return text[:200] or type(exc).__name__


def _connect_failure(exc: BaseException) -> Literal["unresolved", "refused"] | None:
    """Why a connection could not even be opened, when that is certain: the host name did not
    resolve (``socket.gaierror``, wrapped by urllib3 and requests), or the host refused it.

    ``None`` for everything else (resets, timeouts, TLS), which may heal on a retry.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        err = stack.pop()
        if id(err) in seen or len(seen) > 32:
            continue
        seen.add(id(err))
        if isinstance(err, socket.gaierror):
            return "unresolved"
        if isinstance(err, ConnectionRefusedError):
            return "refused"
        # requests wraps urllib3's MaxRetryError (in args), which holds the cause in ``reason``.
        linked = [err.__cause__, err.__context__, getattr(err, "reason", None), *err.args]
        stack.extend(e for e in linked if isinstance(e, BaseException))
    return None


def _read_bounded(resp: requests.Response, limit: int, decode: bool = True) -> bytes:
    """Up to *limit* + 1 bytes of the body (one more than allowed tells the caller it was too big)."""
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.raw.stream(64 * 1024, decode_content=decode):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            break
    return b"".join(chunks)


def _error_text(resp: requests.Response) -> str:
    """The registry's JSON errors (``CODE: message; …``) from a bounded read of the body, or ''."""
    try:
        body = _read_bounded(resp, MAX_ERROR_BODY)[:MAX_ERROR_BODY]
    except _READ_ERRORS:
        return ""
    finally:
        resp.close()
    if not body:
        return ""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        detail = doc.get("message") or doc.get("details") if isinstance(doc, dict) else None
        return str(detail)[:200] if isinstance(detail, str) else ""
    parts = []
    for err in errors[:5]:
        if isinstance(err, dict):
            code, message = str(err.get("code", "")), str(err.get("message", ""))
            parts.append(f"{code}: {message}" if code and message else code or message)
    return "; ".join(p[:200] for p in parts if p)


def error_text(resp: requests.Response) -> str:
    """The registry's JSON error body in one line (``CODE: message; …``), or '' (for the uploader)."""
    return _error_text(resp)


def _status_error(err: _E, status: int | None, answer: str | None = None) -> _E:
    """*err* with the HTTP *status* and the source's short *answer* attached (see ``RegistryError``)."""
    err.status = status
    err.answer = answer
    return err


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _as_typed(ref: Reference) -> str:
    """*ref* as the user named it (a short name stays short: it stands for several registries)."""
    if not ref.short:
        return str(ref)
    return (ref.path or ref.repository) + (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")


class RegistryClient:
    """A registry client for one command: connections, TLS policy, credentials and tokens.

    Thread-safe: blobs are fetched from several threads (a ``requests.Session`` per thread; the
    token cache and per-host state under a lock).
    """

    def __init__(self, settings: ClientSettings, config: RegistriesConfig | None = None) -> None:
        self.settings = settings
        self.config = config if config is not None else RegistriesConfig.load()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._tokens = TokenCache()
        self._schemes: dict[str, str] = {}
        self._challenges: dict[str, Challenge] = {}
        self._answered: set[str] = set()  # origins that have sent at least one response
        self._creds: dict[tuple[str, str], Credentials | None] = {}
        self._tls: dict[str, _TLS] = {}
        self._tls_lock = threading.Lock()
        self._tmpdir: str | None = None
        # Unverified TLS happens only where the user or registries.conf asked for it (as in podman,
        # which does not warn either); urllib3's per-request warning would only be noise on stderr.
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    # --- public ------------------------------------------------------------------------------

    def open(self, ref: Reference) -> tuple[Source, ManifestHead]:
        """Find where *ref* can be pulled from: for a short name each search registry in turn; for
        each, its endpoints (mirrors then primary); the first that answers a HEAD for the manifest
        (by digest if ``ref.digest`` else tag) wins; any error, "manifest unknown" included, moves
        on to the next one, as podman does.

        When all fail, the error's class, status and hint are those of the most informative failure
        (auth > rate limit > other registry errors > not found > connection failures, and a primary
        endpoint's error over a mirror's), so callers keep their meaning. With one source that
        error is raised as it is; with several its message lists every source tried, in order,
        each with its own answer (``cannot pull docker.io/library/alpine:3.20: 127.0.0.1:5000
        (mirror): manifest unknown; registry-1.docker.io: cannot resolve host``).
        """
        if ref.short:
            candidates = [ref.with_registry(r) for r in self.config.search_registries()]
        else:
            candidates = [ref]
        failures: list[tuple[int, int, str, RegistryError]] = []  # (rank, order, source, error)
        for cand in candidates:
            qualified = cand.replace(short=False)
            try:
                endpoints = self.config.endpoints(qualified)
            except RegistryError as exc:
                failures.append((30, len(failures), qualified.registry, exc))
                continue
            for endpoint in endpoints:
                source = Source(self, qualified, endpoint)
                try:
                    head = source.head(qualified.digest or qualified.tag or "latest")
                except RegistryError as exc:
                    label = f"{endpoint.host} (mirror)" if endpoint.mirror else endpoint.host
                    failures.append((self._rank(exc, endpoint), len(failures), label, exc))
                    continue
                return source, head
        if not failures:
            raise RegistryError(f"no registry to pull {ref} from",
                                "set unqualified-search-registries in registries.conf or use a full name")
        best = min(failures, key=lambda f: (-f[0], f[1]))[3]
        if len(failures) == 1:
            raise best  # it already names its one source
        wanted = str(candidates[0].replace(short=False)) if len(candidates) == 1 else _as_typed(ref)
        answers = "; ".join(f"{label}: {_one_line(exc.answer or exc.message)}" for _, _, label, exc in failures)
        raise _status_error(type(best)(f"cannot pull {wanted}: {answers}", best.hint), best.status, best.answer)

    def close(self) -> None:
        """Close every connection and remove the temporary CA bundles."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
            tmpdir, self._tmpdir = self._tmpdir, None
        for session in sessions:
            session.close()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------

    @staticmethod
    def _rank(exc: RegistryError, endpoint: Endpoint) -> int:
        status = exc.status
        if isinstance(exc, (AuthError, RateLimited)):
            rank = 40
        elif status == 404:
            rank = 20
        elif isinstance(exc, TransferError):
            rank = 10
        else:
            rank = 30
        return rank - (100 if endpoint.mirror else 0)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.mount("https://", _Adapter())
            session.trust_env = False
            session.headers["User-Agent"] = self.settings.user_agent
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _tls_for(self, endpoint: Endpoint) -> _TLS:
        host = endpoint.host
        with self._tls_lock:  # serialises building (and writing CA bundles) per client
            cached = self._tls.get(host)
            if cached is None:
                cached = self._tls[host] = self._build_tls(endpoint)
            return cached

    def _build_tls(self, endpoint: Endpoint) -> _TLS:
        host = endpoint.host
        verify_flag = self.settings.tls_verify
        insecure = verify_flag is False or (verify_flag is None and endpoint.insecure)
        files = tls_files(cert_dirs_for(host, self.settings.cert_dir))
        verify: bool | str = True
        if insecure:
            verify = False
        elif files.ca_files:
            verify = self._bundle(host, files.ca_files)
        return _TLS(insecure, verify, files.client_cert)

    def _bundle(self, host: str, ca_files: tuple[str, ...]) -> str:
        """A CA bundle of the system CAs plus *ca_files*, in a private temp dir removed by ``close``."""
        parts: list[bytes] = []
        for path in (requests.certs.where(), *ca_files):
            try:
                with open(path, "rb") as f:
                    parts.append(f.read(16 * 1024 * 1024).rstrip(b"\n") + b"\n")
            except OSError as exc:
                raise RegistryError(f"cannot read CA certificate {path}: {exc.strerror or exc}",
                                    "check the certs.d directory") from None
        with self._lock:
            if self._tmpdir is None:
                self._tmpdir = tempfile.mkdtemp(prefix="rootlet-ca-")
            path = os.path.join(self._tmpdir, re.sub(r"[^A-Za-z0-9.-]", "_", host) + ".pem")
        with open(path, "wb") as f:
            f.write(b"".join(parts))
        return path

    def _credentials(self, host: str, repository: str) -> Credentials | None:
        key = (host, repository)
        with self._lock:
            if key in self._creds:
                return self._creds[key]
        creds = lookup(_display_host(host), repository, creds=self.settings.creds, authfile=self.settings.authfile)
        with self._lock:
            self._creds[key] = creds
        return creds

    def _auth_header(self, endpoint: Endpoint, repository: str, fresh: bool,
                     scopes: tuple[str, ...] | None = None) -> str | None:
        """The Authorization value for the host's known challenge (None before any challenge)."""
        with self._lock:
            challenge = self._challenges.get(endpoint.host)
        if challenge is None:
            return None
        creds = self._credentials(endpoint.host, repository)
        if challenge.scheme == "basic":
            if creds is None:
                raise AuthError(f"{_display_host(endpoint.host)} requires authentication",
                                f"log in with `rootlet login {_display_host(endpoint.host)}` or pass --creds")
            return creds.basic_header()
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, endpoint, repository, creds, fresh, scopes)
        raise AuthError(f"{_display_host(endpoint.host)} asks for unsupported authentication {challenge.scheme!r}",
                        "rootlet supports Basic and Bearer token authentication")

    def _token(self, challenge: Challenge, endpoint: Endpoint, repository: str, creds: Credentials | None,
               fresh: bool, scopes: tuple[str, ...] | None = None) -> str:
        realm = challenge.params.get("realm", "")
        service = challenge.params.get("service", "")
        if scopes is None:
            scopes = (f"repository:{repository}:pull",) if repository else (challenge.params.get("scope", ""),)
        scope = " ".join(s for s in scopes if s)
        display = _display_host(endpoint.host)
        if not realm.startswith(("https://", "http://")):
            raise AuthError(f"{display} sent a token challenge without a usable realm",
                            "the registry's auth configuration is broken")
        key = (realm, service, scope, creds.identity if creds else "")
        if fresh:
            self._tokens.discard(key)
        else:
            cached = self._tokens.get(key)
            if cached:
                return cached
        params = [(k, v) for k, v in (("service", service), *(("scope", s) for s in scopes)) if v]
        if creds:
            params.append(("account", creds.username))
        headers = {"Authorization": creds.basic_header()} if creds else {}
        same = _origin(realm)[1] == _origin(f"https://{endpoint.host}")[1] or \
            _origin(realm)[1] == _origin(f"http://{endpoint.host}")[1]
        tls = self._tls_for(endpoint)
        verify: bool | str = tls.verify if same else self.settings.tls_verify is not False and not tls.allow_insecure
        cert = tls.cert if same else None

        def send() -> requests.Response:
            return self._session().get(realm, params=params, headers=headers, verify=verify, cert=cert,
                                       timeout=self.settings.timeout, stream=True, allow_redirects=False)

        resp = self._with_retries(display, send, _origin(realm)[1])
        if resp.status_code in (401, 403):
            detail = _error_text(resp)
            raise AuthError(f"authentication to {display} failed" + (f": {detail}" if detail else "")
                            + (f" (credentials from {creds.source})" if creds else ""),
                            f"log in with `rootlet login {display}` (or check --creds)")
        if resp.status_code != 200:
            detail = _error_text(resp)
            raise RegistryError(f"token server of {display} answered HTTP {resp.status_code}"
                                + (f": {detail}" if detail else ""), "try again later")
        try:
            body = _read_bounded(resp, MAX_TOKEN_BODY)
        except _READ_ERRORS as exc:
            raise TransferError(f"reading a token from {display} failed: {_reason(exc)}", "try again") from None
        finally:
            resp.close()
        try:
            if len(body) > MAX_TOKEN_BODY:
                raise ValueError("too large")
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            expires_in = doc.get("expires_in")
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise AuthError(f"the token server of {display} sent an unreadable answer",
                            "the registry's auth service is broken; try again later") from None
        if not isinstance(token, str) or not token:
            raise AuthError(f"the token server of {display} sent no token", "try again later")
        self._tokens.put(key, token, expires_in if isinstance(expires_in, (int, float)) else None)
        return token

    def _with_retries(self, display: str, send: Callable[[], requests.Response], origin: str,
                      retry: bool = True) -> requests.Response:
        """Call *send* until it gives a non-retryable answer or attempts run out (exponential back-off).

        *origin* names who *send* talks to (a host or ``host:port``): a refused connection is
        retried only when that origin has answered this client before (it is probably restarting);
        a first refusal means nothing listens there. A name that did not resolve is never retried:
        the resolver has already done its own retries, and ours only delayed the next mirror.
        """
        attempts = max(1, self.settings.retries) if retry else 1
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = send()
            except requests.exceptions.SSLError as exc:
                raise self._tls_error(display, exc) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                failure = _connect_failure(exc)
                with self._lock:
                    answered = origin in self._answered
                if failure == "unresolved" or (failure == "refused" and not answered) or attempt >= attempts:
                    reason = _reason(exc)
                    raise _status_error(TransferError(f"cannot reach {display}: {reason}",
                                                      "check the registry name and your network"),
                                        None, reason) from None
                time.sleep(_backoff(attempt))
                continue
            with self._lock:
                self._answered.add(origin)
            if resp.status_code in RETRY_STATUSES and attempt < attempts:
                delay = _retry_after(resp)
                resp.close()
                time.sleep(delay if delay is not None else _backoff(attempt))
                continue
            return resp

    @staticmethod
    def _tls_error(display: str, exc: BaseException) -> TransferError:
        reason = _reason(exc)
        if "certificate" in str(exc).lower():
            return TransferError(f"TLS certificate of {display} is not trusted: {reason}",
                                 f"put the registry's CA in ~/.config/containers/certs.d/{display}/ca.crt, "
                                 "or use --tls-verify=false for a registry you trust")
        return TransferError(f"TLS connection to {display} failed: {reason}",
                             "check that the registry speaks https, or use --tls-verify=false")

    def _follow(self, scheme: str, endpoint: Endpoint, tls: _TLS, method: str, path: str,
                headers: dict[str, str], auth: str | None, stream: bool,
                body: Callable[[], object] | None = None) -> requests.Response:
        """One request with redirects followed by hand; credentials stay with the registry's origin.

        *path* may also be an absolute URL (an upload's ``Location``): it gets the credentials
        only when it is on the registry's own origin.
        """
        home = _origin(f"{scheme}://{endpoint.host}/")
        url = path if path.startswith(("https://", "http://")) else f"{scheme}://{endpoint.host}{path}"
        session = self._session()
        for _ in range(MAX_REDIRECTS + 1):
            same = _origin(url) == home
            h = dict(headers)
            if same and auth:
                h["Authorization"] = auth
            verify: bool | str = tls.verify if same else self.settings.tls_verify is not False
            resp = session.request(method, url, headers=h, allow_redirects=False, stream=stream, verify=verify,
                                   cert=tls.cert if same else None, timeout=self.settings.timeout,
                                   data=body() if body is not None else None)
            location = resp.headers.get("Location")
            if resp.status_code in _REDIRECTS and location:
                resp.close()
                url = urljoin(url, location)
                if not url.startswith(("https://", "http://")):
                    raise RegistryError(f"{_display_host(endpoint.host)} redirected to an unsupported URL",
                                        "the registry is misconfigured")
                if resp.status_code == 303 and method != "HEAD":
                    method, body = "GET", None
                continue
            return resp
        raise RegistryError(f"{_display_host(endpoint.host)} redirected more than {MAX_REDIRECTS} times",
                            "the registry is misconfigured")

    def _exchange(self, endpoint: Endpoint, method: str, path: str, headers: dict[str, str],
                  auth: str | None, stream: bool, body: Callable[[], object] | None = None) -> requests.Response:
        """One request over the host's scheme: https first, http when allowed and TLS failed."""
        tls = self._tls_for(endpoint)
        with self._lock:
            scheme = self._schemes.get(endpoint.host)
        if scheme is not None:
            return self._follow(scheme, endpoint, tls, method, path, headers, auth, stream, body)
        if not tls.allow_insecure:
            resp = self._follow("https", endpoint, tls, method, path, headers, auth, stream, body)
            chosen = "https"
        else:
            try:
                resp = self._follow("https", endpoint, tls, method, path, headers, auth, stream, body)
                chosen = "https"
            except (requests.exceptions.SSLError, requests.exceptions.ConnectionError) as exc:
                if _connect_failure(exc) == "unresolved":
                    raise  # plain http needs the same name: no second lookup
                resp = self._follow("http", endpoint, tls, method, path, headers, auth, stream, body)
                chosen = "http"
        with self._lock:
            self._schemes.setdefault(endpoint.host, chosen)
        return resp

    def request(self, endpoint: Endpoint, method: str, path: str, *, repository: str,
                headers: dict[str, str] | None = None, stream: bool = True,
                body: Callable[[], object] | None = None, scopes: tuple[str, ...] | None = None,
                retry: bool = True) -> requests.Response:
        """A request to *endpoint* with auth, retries and redirects handled; the caller checks the status.

        A second 401 (after a fresh token or with credentials) raises ``AuthError``. For uploads:
        *path* may be an absolute URL (see ``_follow``), *body* makes a fresh request body for each
        attempt, *scopes* are the token scopes to ask for (default ``repository:REPO:pull``), and
        ``retry=False`` sends once (the uploader resumes by its own rules).
        """
        display = _display_host(endpoint.host)
        hdrs = dict(headers or {})

        def send_with(auth: str | None) -> requests.Response:
            return self._with_retries(display, lambda: self._exchange(endpoint, method, path, hdrs, auth, stream, body),
                                      endpoint.host, retry)

        resp = send_with(self._auth_header(endpoint, repository, fresh=False, scopes=scopes))
        if resp.status_code != 401:
            return resp
        challenges = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
        with self._lock:
            home = _origin(f"{self._schemes.get(endpoint.host, 'https')}://{endpoint.host}/")
        foreign = _origin(resp.url) != home  # a redirect or upload Location on another host
        detail = _error_text(resp)
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or \
            next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None or foreign:
            # Another host's challenge is never answered: it would get the registry's credentials.
            answer = "unauthorized (HTTP 401)" + (f": {detail}" if detail else "")
            raise _status_error(AuthError(f"{display} refused the request (HTTP 401)" + (f": {detail}" if detail else ""),
                                          f"log in with `rootlet login {display}`"), 401, answer)
        with self._lock:
            self._challenges[endpoint.host] = chosen
        resp = send_with(self._auth_header(endpoint, repository, fresh=True, scopes=scopes))
        if resp.status_code == 401:
            detail = _error_text(resp) or detail
            creds = self._credentials(endpoint.host, repository)
            what = f"access to {repository} on {display}" if repository else f"access to {display}"
            how = (f": {detail}" if detail else "") + \
                (f" (credentials from {creds.source})" if creds else " (no credentials)")
            raise _status_error(AuthError(
                f"{what} denied{how}",
                f"log in with `rootlet login {display}`" + (" and check the repository name" if repository else "")),
                401, f"access denied{how}")
        return resp

    def raise_for(self, resp: requests.Response, endpoint: Endpoint, what: str, hint: str,
                  unknown: str = "not found") -> None:
        """Turn a failed response into the right ``RegistryError`` subclass (closing the response).

        *unknown* is the short answer a 404 without an error body stands for (a HEAD has none).
        """
        status = resp.status_code
        display = _display_host(endpoint.host)
        where = f" (mirror {endpoint.host})" if endpoint.mirror else ""
        if status == 429:
            headers = [f"{h}: {resp.headers[h]}" for h in ("ratelimit-limit", "ratelimit-remaining",
                                                           "docker-ratelimit-source") if h in resp.headers]
            resp.close()
            login_hint = (f"log in with `rootlet login {display}` to raise the limit" if display == DOCKER_HUB
                          else f"wait a while and try again, or log in with `rootlet login {display}`")
            raise _status_error(RateLimited(f"{display}{where}: too many requests (HTTP 429)"
                                            + (f"; {', '.join(headers)}" if headers else ""), login_hint), 429,
                                "too many requests (HTTP 429)")
        detail = _error_text(resp)
        suffix = f": {detail}" if detail else ""
        if status in (401, 403):
            raise _status_error(AuthError(f"{what}: access denied by {display}{where}{suffix}",
                                          f"log in with `rootlet login {display}`"), status,
                                f"access denied (HTTP {status}){suffix}")
        if status == 404:
            raise _status_error(RegistryError(f"{what}{where}", hint), 404, detail or unknown)
        raise _status_error(RegistryError(f"{what}: {display}{where} answered HTTP {status}{suffix}",
                                          "try again later"), status, f"HTTP {status}{suffix}")


class Source:
    """One endpoint that answered for a reference; reads manifests and blobs of its repository.

    ``ref`` is the fully qualified reference on the user's registry name (``docker.io/…``, not the
    mirror's), with the digest/tag as asked.
    """

    def __init__(self, client: RegistryClient, ref: Reference, endpoint: Endpoint) -> None:
        self.client = client
        self.ref = ref
        self.endpoint = endpoint

    @property
    def host(self) -> str:
        """The endpoint's host as users know it (for messages)."""
        return _display_host(self.endpoint.host)

    def _label(self, reference: str) -> str:
        return f"{self.ref.name}@{reference}" if is_digest(reference) else f"{self.ref.name}:{reference}"

    @staticmethod
    def _check_reference(reference: str) -> None:
        if not is_digest(reference) and not is_tag(reference):
            check_digest(reference)  # raises InvalidReference with the digest hint

    def _manifest_path(self, reference: str) -> str:
        self._check_reference(reference)
        return f"/v2/{self.endpoint.repository}/manifests/{reference}"

    def head(self, reference: str) -> ManifestHead:
        """HEAD the manifest *reference* (tag or digest); falls back to GET when HEAD is not enough."""
        path = self._manifest_path(reference)
        resp = self.client.request(self.endpoint, "HEAD", path, repository=self.endpoint.repository,
                                   headers={"Accept": ", ".join(mt.MANIFEST_ACCEPT)}, stream=False)
        if resp.status_code in (405, 400, 501):
            resp.close()
            got = self.manifest(reference)
            return ManifestHead(got.digest, got.media_type, len(got.data))
        if resp.status_code != 200:
            self._raise(resp, reference)
        digest = resp.headers.get("Docker-Content-Digest", "")
        media_type = _media_type(resp.headers.get("Content-Type"))
        length = resp.headers.get("Content-Length", "")
        resp.close()
        if not is_digest(digest) or not length.isdigit() or media_type in ("", "application/json", "text/plain"):
            got = self.manifest(reference)
            return ManifestHead(got.digest, got.media_type, len(got.data))
        if is_digest(reference) and digest != reference:
            raise DigestMismatch(f"{self.host} answered {digest} for manifest {self._label(reference)}",
                                 "the registry is broken or tampered with")
        size = int(length)
        if size > mt.MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest {self._label(reference)} is {size} bytes, more than rootlet accepts",
                                "this is not a normal image manifest")
        return ManifestHead(digest, media_type, size)

    def _raise(self, resp: requests.Response, reference: str) -> None:
        self.client.raise_for(resp, self.endpoint, f"manifest unknown: {self._label(reference)}",
                              f"check the image name and tag (does {self._label(reference)} exist on "
                              f"{_display_host(self.endpoint.host)}?)", unknown="manifest unknown")
        raise AssertionError("unreachable")

    def _get_bounded(self, path: str, limit: int, headers: dict[str, str], what: str,
                     on_error: Callable[[requests.Response], None]) -> tuple[requests.structures.CaseInsensitiveDict, bytes]:
        """GET *path* into memory, retrying when the body breaks off.

        Returns more than *limit* bytes (without reading them all) when the body is too big; the
        caller turns that into its own error.
        """
        attempts = max(1, self.client.settings.retries)
        attempt = 0
        while True:
            attempt += 1
            resp = self.client.request(self.endpoint, "GET", path, repository=self.endpoint.repository,
                                       headers=headers)
            if resp.status_code != 200:
                on_error(resp)
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > limit:
                resp.close()
                return resp.headers, b"\0" * (limit + 1)  # too big: the caller reports it, unread
            try:
                data = _read_bounded(resp, limit)
            except _READ_ERRORS as exc:
                resp.close()
                if attempt >= attempts:
                    raise TransferError(f"reading {what} from {self.host} failed: {_reason(exc)}",
                                        "check your network and try again") from None
                time.sleep(_backoff(attempt))
                continue
            finally:
                resp.close()
            return resp.headers, data

    def manifest(self, reference: str) -> ManifestResponse:
        """GET the manifest *reference* (tag or digest), bounded and digest-checked."""
        path = self._manifest_path(reference)
        label = self._label(reference)
        headers, data = self._get_bounded(path, mt.MAX_MANIFEST_BYTES, {"Accept": ", ".join(mt.MANIFEST_ACCEPT)},
                                          f"manifest {label}", lambda r: self._raise(r, reference))
        if len(data) > mt.MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest {label} is more than {mt.MAX_MANIFEST_BYTES} bytes",
                                "this is not a normal image manifest")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if is_digest(reference) and digest != reference:
            raise DigestMismatch(f"manifest {label} from {self.host} has digest {digest}",
                                 "the registry or a proxy served other content; try again or use another mirror")
        sent = headers.get("Docker-Content-Digest", "")
        if not is_digest(reference) and is_digest(sent) and sent != digest:
            raise DigestMismatch(f"manifest {label} from {self.host} has digest {digest} but the registry "
                                 f"said {sent}", "the registry or a proxy served other content; try again")
        media_type = _media_type(headers.get("Content-Type"))
        if media_type in ("", "application/json", "text/plain", "application/octet-stream"):
            try:
                doc = json.loads(data)
                inner = doc.get("mediaType") if isinstance(doc, dict) else None
            except (ValueError, UnicodeDecodeError):
                inner = None
            media_type = inner if isinstance(inner, str) else media_type
        return ManifestResponse(data, media_type, digest)

    def _blob_path(self, digest: str) -> str:
        check_digest(digest)
        return f"/v2/{self.endpoint.repository}/blobs/{digest}"

    def _blob_error(self, digest: str) -> Callable[[requests.Response], None]:
        def fail(resp: requests.Response) -> None:
            self.client.raise_for(resp, self.endpoint, f"blob unknown: {digest} in {self.ref.name}",
                                  "the image is incomplete on the registry; try another tag or mirror",
                                  unknown="blob unknown")
        return fail

    def read_blob(self, digest: str, max_size: int) -> bytes:
        """A small blob (an image config) in memory, at most *max_size* bytes, digest-verified."""
        path = self._blob_path(digest)
        _, data = self._get_bounded(path, max_size, {"Accept-Encoding": "identity"}, f"blob {digest}",
                                    self._blob_error(digest))
        if len(data) > max_size:
            raise DigestMismatch(f"blob {digest} from {self.host} is larger than the expected {max_size} bytes",
                                 "the registry or a proxy served other content")
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DigestMismatch(f"blob {digest} from {self.host} has digest {got} / {len(data)} bytes, "
                                 f"expected {digest}", "the registry or a proxy corrupted it; try again")
        return data

    def fetch_blob(self, digest: str, size: int, partial_path: str,
                   on_progress: Callable[[int], None] | None = None,
                   on_data: Callable[[int, bytes], None] | None = None) -> None:
        """Download blob *digest* of *size* bytes into *partial_path*, resuming what it already holds.

        Existing bytes (an interrupted earlier attempt) are hashed and the download continues with
        ``Range: bytes=N-`` (a 200 answer restarts from zero). Broken connections, timeouts, 5xx and
        429 are retried with back-off, resuming each time. At the end size and sha256 are checked;
        on mismatch the partial is deleted and ``DigestMismatch`` raised. More than *size* bytes are
        never kept. *on_progress* receives byte increments (resumed bytes count once).

        *on_data(offset, chunk)* sees the blob's bytes in order as they become known, resumed ones
        first, so a consumer can unpack while the download runs; after a restart from zero it sees
        offset 0 again. The bytes are unverified until this returns. It must not raise OSError
        (that reads as a broken connection); any other exception it raises ends the download,
        the partial file kept for a later resume.
        """
        path = self._blob_path(digest)
        with _Partial(partial_path, size, on_progress, on_data) as part:
            attempts = max(1, self.client.settings.retries)
            failures = 0
            while part.pos < size:
                headers = {"Accept-Encoding": "identity"}
                if part.pos:
                    headers["Range"] = f"bytes={part.pos}-"
                resp = self.client.request(self.endpoint, "GET", path, repository=self.endpoint.repository,
                                           headers=headers)
                resumed = resp.status_code == 206 and part.pos and \
                    resp.headers.get("Content-Range", "").startswith(f"bytes {part.pos}-")
                if part.pos and not resumed and resp.status_code in (206, 416):
                    # The server cannot continue where we are (or answered another range): restart.
                    resp.close()
                    part.reset()
                    continue
                if resp.status_code == 200:
                    part.reset()
                    length = resp.headers.get("Content-Length", "")
                    if length.isdigit() and int(length) > size:
                        resp.close()
                        raise part.fail(f"blob {digest} from {self.host} is {length} bytes, expected {size}")
                elif not resumed:
                    self._blob_error(digest)(resp)
                started = part.pos
                try:
                    for chunk in resp.raw.stream(CHUNK, decode_content=False):
                        if part.pos + len(chunk) > size:
                            raise part.fail(f"blob {digest} from {self.host} is more than the expected {size} bytes")
                        part.append(chunk)
                except _READ_ERRORS as exc:
                    failures = 0 if part.pos > started else failures + 1
                    if failures >= attempts:
                        raise TransferError(f"downloading blob {digest} from {self.host} failed: {_reason(exc)}",
                                            "check your network and try again; the download resumes") from None
                    time.sleep(_backoff(max(1, failures)))
                    continue
                finally:
                    resp.close()
                if part.pos < size:
                    # The body ended cleanly but short: a proxy or server cut it; resume.
                    failures = 0 if part.pos > started else failures + 1
                    if failures >= attempts:
                        raise part.fail(f"blob {digest} from {self.host} has only {part.pos} of {size} bytes")
                    time.sleep(_backoff(max(1, failures)))
            part.verify(digest, self.host)


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with one SSLContext shared by every unverified TLS connection.

    For ``verify=False`` urllib3 builds a context per connection and loads the system CAs into
    it (~30 ms of CPU each), which a connection that checks no certificate never reads: every
    pull from a loopback or insecure registry paid it, as https is tried first. With a client
    certificate the context is the connection's own again (the certificate is loaded into it).
    requests 2.32 and newer call this hook; older ones never do, and keep building one per
    connection (slower, not wrong).
    """

    _insecure: ssl.SSLContext | None = None

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: bool | str,
                                             cert: str | tuple[str, str] | None = None) -> tuple[dict, dict]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if verify is False and cert is None and host_params.get("scheme") == "https":
            if _Adapter._insecure is None:
                from urllib3.util.ssl_ import create_urllib3_context

                _Adapter._insecure = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
            pool_kwargs["ssl_context"] = _Adapter._insecure
        return host_params, pool_kwargs


class _Partial:
    """An interrupted-or-growing download in ``blobs/partial``: its bytes, their running sha256, and
    the three things a download does to it (append, start over, check at the end)."""

    def __init__(self, path: str, size: int, on_progress: Callable[[int], None] | None,
                 on_data: Callable[[int, bytes], None] | None = None) -> None:
        self.path = path
        self.size = size
        self.on_progress = on_progress
        self.on_data = on_data
        self.reported = 0
        self.hasher = hashlib.sha256()
        self.pos = 0
        self.file = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600), "r+b")

    def __enter__(self) -> _Partial:
        # Resume: hash what an earlier attempt left; more than the blob's size cannot be right.
        if os.fstat(self.file.fileno()).st_size > self.size:
            self.file.truncate(0)
        while True:
            block = self.file.read(CHUNK)
            if not block:
                break
            self.hasher.update(block)
            if self.on_data is not None:
                self.on_data(self.pos, block)
            self.pos += len(block)
        self._progress()
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def _progress(self) -> None:
        if self.on_progress is not None and self.pos > self.reported:
            self.on_progress(self.pos - self.reported)
            self.reported = self.pos

    def reset(self) -> None:
        """Start over from byte 0."""
        if self.pos:
            self.file.seek(0)
            self.file.truncate(0)
            self.hasher, self.pos = hashlib.sha256(), 0

    def append(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.hasher.update(chunk)
        if self.on_data is not None:
            self.on_data(self.pos, chunk)
        self.pos += len(chunk)
        self._progress()

    def fail(self, message: str) -> DigestMismatch:
        """Delete the partial file (it can never become the blob) and return the error to raise."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return DigestMismatch(message, "the registry or a proxy corrupted the download; try again")

    def verify(self, digest: str, host: str) -> None:
        """Make the bytes durable and check size and digest; DigestMismatch (partial deleted) if wrong."""
        self.file.flush()
        os.fsync(self.file.fileno())
        got = self.hasher.hexdigest()
        if self.pos != self.size or got != digest.split(":", 1)[1]:
            raise self.fail(f"blob {digest} from {host} has digest sha256:{got} / {self.pos} bytes, "
                            f"expected {digest} / {self.size} bytes")


def login_check(host: str, username: str, password: str, settings: ClientSettings,
                config: RegistriesConfig | None = None) -> None:
    """Validate credentials against ``HOST/v2/`` (through the Bearer dance if asked) before storing them.

    Raises ``AuthError`` when the registry refuses them.
    """
    checked = replace(settings, creds=f"{username}:{password}", authfile=None)
    client = RegistryClient(checked, config)
    try:
        endpoint = client.config.endpoint_for_host(host)
        resp = client.request(endpoint, "GET", "/v2/", repository="")
        status = resp.status_code
        if status in (200, 204):
            resp.close()
            return
        client.raise_for(resp, endpoint, f"login to {_display_host(endpoint.host)} failed",
                         "check the registry address")
    finally:
        client.close()
