"""Registry credentials: where podman and docker keep them, ``login``/``logout``, and token caching.

Lookup order is podman's (containers/image):

1. ``--creds user:pass`` given on the command line;
2. an explicit auth file — ``--authfile PATH``, else ``$REGISTRY_AUTH_FILE`` — which, like in
   podman, is then the *only* file consulted;
3. otherwise ``$XDG_RUNTIME_DIR/containers/auth.json``, ``$XDG_CONFIG_HOME/containers/auth.json``,
   then docker's ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``.

In each file ``credHelpers`` for the host comes first, then the most specific ``auths`` key
(``host/ns/repo``, ``host/ns``, ``host``; ``https://`` URLs and Docker Hub's legacy
``https://index.docker.io/v1/`` are normalised), then ``credsStore``. Helpers are docker's
``docker-credential-NAME get`` protocol. Passwords never appear in reprs or messages.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rootlet.registry.errors import ConfigError, UsageError
from rootlet.registry.fsutil import atomic_write
from rootlet.registry.reference import DOCKER_HUB, DOCKER_HUB_ALIASES

_MAX_AUTH_FILE = 4 * 1024 * 1024
_HELPER_TIMEOUT = 30.0
DOCKER_HUB_LEGACY_KEY = "https://index.docker.io/v1/"
#: Seconds before a token's stated expiry at which we stop using it.
TOKEN_SLACK = 5.0
#: Docker's rule: a token that claims to live less than this is taken to live this long.
MIN_TOKEN_LIFETIME = 60


@dataclass(frozen=True)
class Credentials:
    """A username and password (or token) and where they came from (for messages, never the secret)."""

    username: str
    password: str = field(repr=False)
    source: str = "--creds"

    @property
    def identity(self) -> str:
        """A stable, non-reversible identity of these credentials (a token-cache key part)."""
        return hashlib.sha256(f"{self.username}\0{self.password}".encode()).hexdigest()

    def basic_header(self) -> str:
        """The ``Authorization: Basic …`` header value."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def parse_creds(text: str) -> tuple[str, str | None]:
    """Split ``--creds USER[:PASSWORD]``; the password is None when absent (the CLI may prompt)."""
    user, sep, password = text.partition(":")
    if not user:
        raise UsageError("--creds needs a user name: USER[:PASSWORD]", "e.g. --creds alice:s3cret")
    return user, (password if sep else None)


def normalize_registry(host: str) -> str:
    """Docker Hub's several host names all mean ``docker.io``."""
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def normalize_auth_key(key: str, legacy: bool = False) -> str:
    """An auth-file key in canonical form: no scheme, and URL keys cut to their host (podman's rule)."""
    stripped = key
    for scheme in ("http://", "https://"):
        if stripped.startswith(scheme):
            stripped = stripped[len(scheme):]
            break
    if legacy or stripped != key:
        stripped = stripped.split("/", 1)[0]
    stripped = stripped.rstrip("/")
    host, sep, rest = stripped.partition("/")
    return normalize_registry(host) + sep + rest


def _xdg_config_home() -> str:
    return os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def default_authfile() -> str:
    """Where ``login`` writes: ``$XDG_RUNTIME_DIR/containers/auth.json``, else under ``$XDG_CONFIG_HOME``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "containers", "auth.json")
    return os.path.join(_xdg_config_home(), "containers", "auth.json")


def auth_file_paths(authfile: str | None = None) -> list[str]:
    """The files consulted for credentials, in order (see the module docs)."""
    explicit = authfile or os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return [explicit]
    paths: list[str] = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths.append(os.path.join(runtime, "containers", "auth.json"))
    paths.append(os.path.join(_xdg_config_home(), "containers", "auth.json"))
    docker_config = os.environ.get("DOCKER_CONFIG")
    if docker_config:
        paths.append(os.path.join(docker_config, "config.json"))
    else:
        paths.append(os.path.join(os.path.expanduser("~"), ".docker", "config.json"))
    return paths


def _read_auth_file(path: str) -> dict[str, Any] | None:
    """The parsed file, None when it does not exist; ``ConfigError`` when it is malformed."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_AUTH_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", "check the file's permissions") from None
    if len(data) > _MAX_AUTH_FILE:
        raise ConfigError(f"{path} is larger than {_MAX_AUTH_FILE} bytes", "is this really an auth file?")
    if not data.strip():
        return {}
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}",
                          "fix or remove the file (rootlet login rewrites it)") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a JSON object", "fix or remove the file (rootlet login rewrites it)")
    return doc


def _decode_entry(path: str, key: str, entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: auths[{key!r}] is not an object", "fix or remove the entry")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ConfigError(f"{path}: auths[{key!r}].auth is not base64 of user:password",
                              f"run `rootlet login {key}` again") from None
        if not sep or not user:
            raise ConfigError(f"{path}: auths[{key!r}].auth is not base64 of user:password",
                              f"run `rootlet login {key}` again")
        return Credentials(user, password, path)
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and user and isinstance(password, str):
        return Credentials(user, password, path)
    return None


def run_credential_helper(name: str, server: str, source: str = "") -> Credentials | None:
    """Ask ``docker-credential-NAME get`` for *server*; None when it has nothing stored."""
    program = f"docker-credential-{name}"
    where = f" (named in {source})" if source else ""
    path = shutil.which(program)
    if path is None:
        raise ConfigError(f"credential helper {program} not found{where}",
                          f"install {program} or remove it from credHelpers/credsStore")
    try:
        out = subprocess.run([path, "get"], input=server.encode(), capture_output=True,
                             timeout=_HELPER_TIMEOUT, check=False)
    except FileNotFoundError:
        raise ConfigError(f"credential helper {program} not found{where}",
                          f"install {program} or remove it from credHelpers/credsStore") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"credential helper {program} did not answer within {_HELPER_TIMEOUT:.0f} s",
                          "check the helper (is a keyring waiting for a password?)") from None
    except OSError as exc:
        raise ConfigError(f"cannot run credential helper {program}: {exc.strerror or exc}",
                          f"check that {program} is executable") from None
    text = (out.stdout or b"").decode(errors="replace").strip()
    if out.returncode != 0:
        err = (out.stderr or b"").decode(errors="replace").strip() or text
        if "not found" in err.lower() or "no credentials" in err.lower():
            return None
        first = err.splitlines()[0][:200] if err else f"exit status {out.returncode}"
        raise ConfigError(f"credential helper {program} failed for {server}: {first}",
                          f"run `echo {server} | {program} get` to see why")
    try:
        doc = json.loads(text)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"credential helper {program} printed something that is not its JSON answer",
                          f"run `echo {server} | {program} get` to see why") from None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    return Credentials(user, secret, f"{program}{where}")


def _candidate_keys(host: str, repository: str) -> list[str]:
    """Auth keys from most to least specific: host/a/b, host/a, host."""
    keys = []
    parts = [p for p in repository.split("/") if p] if repository else []
    for n in range(len(parts), 0, -1):
        keys.append(host + "/" + "/".join(parts[:n]))
    keys.append(host)
    return keys


def _lookup_in_file(path: str, doc: dict[str, Any], host: str, repository: str) -> Credentials | None:
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if isinstance(helper, str) and normalize_auth_key(key, legacy=True) == host:
                return run_credential_helper(helper, key, path)
    auths = doc.get("auths") or {}
    if not isinstance(auths, dict):
        raise ConfigError(f"{path}: auths is not an object", "fix or remove the file")
    normalized: dict[str, tuple[str, Any]] = {}
    for key, entry in auths.items():
        norm = normalize_auth_key(key)
        # An exact normalised key beats a URL form of the same key.
        if norm not in normalized or key == norm:
            normalized[norm] = (key, entry)
    for candidate in _candidate_keys(host, repository):
        if candidate in normalized:
            key, entry = normalized[candidate]
            found = _decode_entry(path, key, entry)
            if found is not None:
                return found
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        server = DOCKER_HUB_LEGACY_KEY if host == DOCKER_HUB else host
        return run_credential_helper(store, server, path)
    return None


def lookup(host: str, repository: str = "", *, creds: str | None = None,
           authfile: str | None = None) -> Credentials | None:
    """Credentials for *repository* on registry *host* (a user-visible name, e.g. ``docker.io``), or None."""
    if creds:
        user, password = parse_creds(creds)
        if password is None:
            raise UsageError("--creds has no password", "use --creds USER:PASSWORD")
        return Credentials(user, password, "--creds")
    host = normalize_registry(host)
    for path in auth_file_paths(authfile):
        doc = _read_auth_file(path)
        if doc is None:
            if authfile and path == authfile:
                raise ConfigError(f"auth file {path} does not exist", "check --authfile or run `rootlet login`")
            continue
        found = _lookup_in_file(path, doc, host, repository)
        if found is not None:
            return found
    return None


@contextlib.contextmanager
def _locked_dir(directory: str) -> Iterator[None]:
    """Hold ``flock`` on *directory* itself, so concurrent logins serialise without a stray lock file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _login_key(host: str) -> str:
    key = normalize_auth_key(host)
    if not key or key.startswith("/"):
        raise UsageError(f"invalid registry {host!r}", "give a registry host, e.g. rootlet login quay.io")
    return key


def _update_auth_file(path: str, change: Any) -> Any:
    """Read-modify-write *path* under its directory lock; *change(doc)* edits and returns a result."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror or exc}", "check its permissions") from None
    with _locked_dir(directory):
        doc = _read_auth_file(path) or {}
        result = change(doc)
        try:
            atomic_write(path, json.dumps(doc, indent="\t").encode() + b"\n", 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}", "check its permissions") from None
    return result


def login(host: str, username: str, password: str, authfile: str | None = None) -> str:
    """Store credentials for *host* (``host`` or ``host/ns/repo``); returns the file written."""
    key = _login_key(host)
    path = authfile or os.environ.get("REGISTRY_AUTH_FILE") or default_authfile()
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()

    def change(doc: dict[str, Any]) -> None:
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            auths = doc["auths"] = {}
        for existing in [k for k in auths if k != key and normalize_auth_key(k) == key]:
            del auths[existing]
        auths[key] = {"auth": encoded}

    _update_auth_file(path, change)
    return path


def logout(host: str, authfile: str | None = None) -> bool:
    """Remove the stored credentials for *host*; False when there were none."""
    key = _login_key(host)
    path = authfile or os.environ.get("REGISTRY_AUTH_FILE") or default_authfile()
    if _read_auth_file(path) is None:
        return False

    def change(doc: dict[str, Any]) -> bool:
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            return False
        matches = [k for k in auths if normalize_auth_key(k) == key]
        for k in matches:
            del auths[k]
        return bool(matches)

    return bool(_update_auth_file(path, change))


def logout_all(authfile: str | None = None) -> None:
    """Forget every stored credential in the auth file (other keys are kept)."""
    path = authfile or os.environ.get("REGISTRY_AUTH_FILE") or default_authfile()
    if _read_auth_file(path) is None:
        return

    def change(doc: dict[str, Any]) -> None:
        doc["auths"] = {}

    _update_auth_file(path, change)


# --- WWW-Authenticate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: ``scheme`` (lower-case) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.scheme, tuple(sorted(self.params.items()))))


_SEPARATORS = " \t,="


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse RFC 7235 challenges, e.g. ``Bearer realm="https://a/token",service="x",scope="a:b,c"``.

    Quoted values may hold commas and backslash escapes; parameter names are case-insensitive.
    """
    challenges: list[Challenge] = []
    current: Challenge | None = None
    i, n = 0, len(header)
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in _SEPARATORS:
            i += 1
        token = header[start:i]
        if not token:
            i += 1
            continue
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if current is not None and j < n and header[j] == "=":
            i = j + 1
            while i < n and header[i] in " \t":
                i += 1
            if i < n and header[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(header[i])
                    i += 1
                i += 1  # closing quote
                value = "".join(chars)
            else:
                start = i
                while i < n and header[i] not in " \t,":
                    i += 1
                value = header[start:i]
            current.params[token.lower()] = value
        else:
            current = Challenge(token.lower(), {})
            challenges.append(current)
            i = j
    return challenges


# --- token cache ------------------------------------------------------------------------------------

TokenKey = tuple[str, str, str, str]  # realm, service, scope, credentials identity


class TokenCache:
    """Bearer tokens by (realm, service, scope, identity), kept until shortly before they expire.

    Thread-safe: the pull downloads blobs from several threads through one client.
    """

    def __init__(self, slack: float = TOKEN_SLACK) -> None:
        self._tokens: dict[TokenKey, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._slack = slack

    def get(self, key: TokenKey) -> str | None:
        """The cached token for *key*, None when absent or about to expire."""
        with self._lock:
            entry = self._tokens.get(key)
            if entry is None:
                return None
            token, expires = entry
            if time.monotonic() >= expires:
                del self._tokens[key]
                return None
            return token

    def put(self, key: TokenKey, token: str, expires_in: float | None) -> None:
        """Remember *token* for *expires_in* seconds (at least ``MIN_TOKEN_LIFETIME``) less the slack."""
        lifetime = max(float(expires_in or 0), MIN_TOKEN_LIFETIME)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + lifetime - self._slack)

    def discard(self, key: TokenKey) -> None:
        """Forget *key* (the registry rejected the token)."""
        with self._lock:
            self._tokens.pop(key, None)
