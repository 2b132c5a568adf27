"""Credentials lookup, login/logout files, WWW-Authenticate parsing and the token cache."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from rootlet.registry import auth
from rootlet.registry.auth import Challenge, Credentials, TokenCache, parse_www_authenticate
from rootlet.registry.errors import ConfigError, UsageError


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME / XDG environment with no auth files."""
    home = tmp_path / "home"
    run = tmp_path / "run"
    home.mkdir()
    run.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    for var in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


# --- WWW-Authenticate ------------------------------------------------------------------------------

def test_parse_bearer_with_commas_in_quoted_scope() -> None:
    got = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull,push"')
    assert got == [Challenge("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                        "scope": "repository:library/alpine:pull,push"})]


def test_parse_basic_multiple_challenges_and_escapes() -> None:
    got = parse_www_authenticate('Basic realm="Registry \\"x\\"", Bearer realm=https://t/token, service=svc')
    assert got == [Challenge("basic", {"realm": 'Registry "x"'}),
                   Challenge("bearer", {"realm": "https://t/token", "service": "svc"})]
    assert parse_www_authenticate("") == []
    assert parse_www_authenticate("BASIC  REALM = \"r\"") == [Challenge("basic", {"realm": "r"})]


# --- lookup ---------------------------------------------------------------------------------------

def test_explicit_creds_win(env: Path) -> None:
    write(env / "run" / "containers" / "auth.json", {"auths": {"quay.io": {"auth": b64("file:pw")}}})
    got = auth.lookup("quay.io", "a/b", creds="alice:p:w")
    assert (got.username, got.password, got.source) == ("alice", "p:w", "--creds")
    assert auth.parse_creds("bob") == ("bob", None)
    with pytest.raises(UsageError):
        auth.lookup("quay.io", creds="bob")
    with pytest.raises(UsageError):
        auth.parse_creds(":pw")


def test_lookup_order_runtime_then_config_then_docker(env: Path) -> None:
    home = env / "home"
    write(home / ".docker" / "config.json", {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:dockerpw")},
                                                       "quay.io": {"auth": b64("dq:1")},
                                                       "ghcr.io": {"auth": b64("dg:1")}}})
    write(home / ".config" / "containers" / "auth.json", {"auths": {"quay.io": {"auth": b64("cq:2")},
                                                                     "ghcr.io": {"auth": b64("cg:2")}}})
    write(env / "run" / "containers" / "auth.json", {"auths": {"ghcr.io": {"username": "rg", "password": "3"}}})
    assert auth.lookup("docker.io", "library/alpine").username == "hub"
    assert auth.lookup("registry-1.docker.io", "library/alpine").password == "dockerpw"
    assert auth.lookup("quay.io").username == "cq"
    assert auth.lookup("ghcr.io").username == "rg"
    assert auth.lookup("example.com") is None


def test_explicit_authfile_is_the_only_file(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(env / "run" / "containers" / "auth.json", {"auths": {"quay.io": {"auth": b64("run:1")}}})
    other = env / "other.json"
    write(other, {"auths": {"example.com": {"auth": b64("o:1")}}})
    assert auth.lookup("quay.io", authfile=str(other)) is None
    assert auth.lookup("example.com", authfile=str(other)).username == "o"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(other))
    assert auth.lookup("quay.io") is None
    assert auth.lookup("example.com").source == str(other)
    with pytest.raises(ConfigError, match="does not exist"):
        auth.lookup("example.com", authfile=str(env / "missing.json"))


def test_most_specific_key_wins(env: Path) -> None:
    write(env / "run" / "containers" / "auth.json", {"auths": {
        "quay.io": {"auth": b64("host:1")},
        "quay.io/team": {"auth": b64("team:2")},
        "quay.io/team/app": {"auth": b64("app:3")},
        "https://example.com/v2/": {"auth": b64("url:4")},
    }})
    assert auth.lookup("quay.io", "team/app").username == "app"
    assert auth.lookup("quay.io", "team/other").username == "team"
    assert auth.lookup("quay.io", "else/x").username == "host"
    assert auth.lookup("example.com", "a").username == "url"


def test_malformed_auth_file(env: Path) -> None:
    path = env / "run" / "containers" / "auth.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ConfigError) as err:
        auth.lookup("quay.io")
    assert str(path) in err.value.message
    write(path, {"auths": {"quay.io": {"auth": "%%%"}}})
    with pytest.raises(ConfigError, match="base64"):
        auth.lookup("quay.io")


def _helper(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)


def test_credential_helpers(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = env / "bin"
    log = env / "helper.log"
    _helper(bin_dir, "test", f'''[ "$1" = get ] || exit 2
read server
echo "$server" >> {log}
case "$server" in
  quay.io) printf '{{"ServerURL":"quay.io","Username":"helper-user","Secret":"helper-secret"}}' ;;
  https://index.docker.io/v1/) printf '{{"ServerURL":"x","Username":"store-user","Secret":"s"}}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
''')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    write(env / "home" / ".docker" / "config.json", {
        "auths": {"docker.io": {}, "ghcr.io": {"auth": b64("plain:1")}},
        "credHelpers": {"quay.io": "test", "broken.example.com": "missing"},
        "credsStore": "test",
    })
    got = auth.lookup("quay.io", "a/b")
    assert (got.username, got.password) == ("helper-user", "helper-secret")
    assert "docker-credential-test" in got.source
    assert "helper-secret" not in repr(got)
    assert auth.lookup("docker.io", "library/alpine").username == "store-user"
    assert auth.lookup("ghcr.io").username == "plain"          # auths before credsStore
    assert auth.lookup("unknown.example.com") is None          # helper says not found
    with pytest.raises(ConfigError) as err:
        auth.lookup("broken.example.com")
    assert "docker-credential-missing" in err.value.message and "install" in err.value.hint
    assert log.read_text().splitlines()[:2] == ["quay.io", "https://index.docker.io/v1/"]


# --- login / logout -------------------------------------------------------------------------------

def test_login_logout_round_trip(env: Path) -> None:
    path = auth.login("127.0.0.1:5000", "alice", "s3cret")
    assert path == str(env / "run" / "containers" / "auth.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    doc = json.loads(Path(path).read_text())
    assert doc == {"auths": {"127.0.0.1:5000": {"auth": b64("alice:s3cret")}}}
    got = auth.lookup("127.0.0.1:5000")
    assert (got.username, got.password) == ("alice", "s3cret")
    auth.login("https://index.docker.io/v1/", "hub", "pw")
    assert auth.lookup("docker.io").username == "hub"
    assert "docker.io" in json.loads(Path(path).read_text())["auths"]
    assert auth.logout("127.0.0.1:5000") is True
    assert auth.logout("127.0.0.1:5000") is False
    assert auth.lookup("127.0.0.1:5000") is None
    assert auth.lookup("docker.io") is not None
    auth.logout_all()
    assert json.loads(Path(path).read_text()) == {"auths": {}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_login_without_runtime_dir_and_explicit_authfile(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    path = auth.login("quay.io", "u", "p")
    assert path == str(env / "home" / ".config" / "containers" / "auth.json")
    explicit = env / "elsewhere" / "a.json"
    write(explicit, {"auths": {}, "credHelpers": {"x.example.com": "h"}})
    assert auth.login("quay.io", "v", "q", authfile=str(explicit)) == str(explicit)
    doc = json.loads(explicit.read_text())
    assert doc["credHelpers"] == {"x.example.com": "h"}     # other keys survive
    assert auth.lookup("quay.io", authfile=str(explicit)).username == "v"


# --- token cache ----------------------------------------------------------------------------------

def test_token_cache_expiry_and_identity() -> None:
    cache = TokenCache(slack=5)
    a = Credentials("alice", "pw")
    b = Credentials("alice", "other")
    assert a.identity != b.identity and "pw" not in a.identity
    key = ("https://t/token", "svc", "repository:x:pull", a.identity)
    assert cache.get(key) is None
    cache.put(key, "tok", 300)
    assert cache.get(key) == "tok"
    assert cache.get(key[:3] + (b.identity,)) is None
    cache.put(key, "short", 1)              # under 60 s counts as 60 s (docker's rule)
    assert cache.get(key) == "short"
    cache.discard(key)
    assert cache.get(key) is None
    expired = TokenCache(slack=100)
    expired.put(key, "tok", 60)
    assert expired.get(key) is None
