"""registries.conf parsing and endpoint resolution, and certs.d discovery (real files, no mocks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rootlet.registry.config import (Endpoint, RegistriesConfig, cert_dirs_for, is_loopback_host, tls_files)
from rootlet.registry.errors import ConfigError, RegistryError
from rootlet.registry.reference import parse_reference


def conf(text: str) -> RegistriesConfig:
    return RegistriesConfig.from_text(text)


def test_defaults_without_any_file() -> None:
    c = RegistriesConfig()
    assert c.search_registries() == ["docker.io"]
    assert c.endpoints(parse_reference("alpine")) == [
        Endpoint("registry-1.docker.io", "library/alpine", insecure=False, mirror=False)]
    assert c.endpoints(parse_reference("quay.io/a/b:1")) == [Endpoint("quay.io", "a/b", False, False)]


def test_loopback_registries_are_insecure_by_default() -> None:
    c = RegistriesConfig()
    for host in ("127.0.0.1:5000", "localhost:5000", "127.1.2.3", "[::1]:5000", "localhost"):
        assert is_loopback_host(host), host
    assert not is_loopback_host("example.com:5000")
    assert not is_loopback_host("10.0.0.1")
    assert c.endpoints(parse_reference("127.0.0.1:5000/x/y")) == [Endpoint("127.0.0.1:5000", "x/y", True, False)]
    assert c.endpoints(parse_reference("localhost:5000/x"))[0].insecure


def test_search_registries() -> None:
    c = conf('unqualified-search-registries = ["quay.io", "docker.io"]\n')
    assert c.search_registries() == ["quay.io", "docker.io"]
    assert conf("unqualified-search-registries = []").search_registries() == []


def test_mirrors_first_then_primary() -> None:
    c = conf('''
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror.example.com:5000"
[[registry.mirror]]
location = "127.0.0.1:5001/hub"
insecure = true
''')
    eps = c.endpoints(parse_reference("alpine:3.20"))
    assert eps == [
        Endpoint("mirror.example.com:5000", "library/alpine", False, True),
        Endpoint("127.0.0.1:5001", "hub/library/alpine", True, True),
        Endpoint("registry-1.docker.io", "library/alpine", False, False),
    ]


def test_prefix_rewriting_longest_prefix_wins() -> None:
    c = conf('''
[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/bar"
[[registry]]
prefix = "example.com/foo/special"
location = "special.example.net:8443/x/y"
insecure = true
[[registry]]
prefix = "example.com"
location = "other.example.net"
''')
    assert c.endpoints(parse_reference("example.com/foo/app:1")) == [
        Endpoint("internal.example.net", "bar/app", False, False)]
    assert c.endpoints(parse_reference("example.com/foo/special/app")) == [
        Endpoint("special.example.net:8443", "x/y/app", True, False)]
    # "example.com/foobar" must not match the prefix "example.com/foo".
    assert c.endpoints(parse_reference("example.com/foobar/app")) == [
        Endpoint("other.example.net", "foobar/app", False, False)]


def test_blocked_registry() -> None:
    c = conf('[[registry]]\nlocation = "evil.example.com"\nblocked = true\n')
    with pytest.raises(RegistryError) as err:
        c.endpoints(parse_reference("evil.example.com/x/y"))
    assert "registry evil.example.com is blocked in registries.conf" in err.value.message
    assert err.value.hint


def test_insecure_registry_and_digest_only_mirrors() -> None:
    c = conf('''
[[registry]]
location = "reg.example.com"
insecure = true
[[registry.mirror]]
location = "bydigest.example.com"
pull-from-mirror = "digest-only"
''')
    assert c.endpoints(parse_reference("reg.example.com/a:1")) == [Endpoint("reg.example.com", "a", True, False)]
    digest = "sha256:" + "a" * 64
    eps = c.endpoints(parse_reference(f"reg.example.com/a@{digest}"))
    assert [e.host for e in eps] == ["bydigest.example.com", "reg.example.com"]


def test_v1_format() -> None:
    c = conf('''
[registries.search]
registries = ["registry.example.com"]
[registries.insecure]
registries = ["plain.example.com:5000"]
[registries.block]
registries = ["blocked.example.com"]
''')
    assert c.search_registries() == ["registry.example.com"]
    assert c.endpoints(parse_reference("plain.example.com:5000/a"))[0].insecure
    with pytest.raises(RegistryError):
        c.endpoints(parse_reference("blocked.example.com/a"))


def test_malformed_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "registries.conf"
    path.write_text('unqualified-search-registries = ["docker.io"]\n\n[[registry]\nlocation = "x"\n')
    with pytest.raises(ConfigError) as err:
        RegistriesConfig.from_files([str(path)])
    assert str(path) in err.value.message
    assert "line 3" in err.value.message or ":3" in err.value.message
    assert err.value.hint


def test_wrong_types_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "registries.conf"
    path.write_text('[[registry]]\nlocation = "x.example.com"\ninsecure = "yes"\n')
    with pytest.raises(ConfigError, match="insecure must be true or false"):
        RegistriesConfig.from_files([str(path)])
    path.write_text('unqualified-search-registries = "docker.io"\n')
    with pytest.raises(ConfigError, match="array of strings"):
        RegistriesConfig.from_files([str(path)])


def test_load_env_override_and_user_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.delenv("ROOTLET_REGISTRIES_CONF", raising=False)
    (xdg / "containers" / "registries.conf.d").mkdir(parents=True)
    (xdg / "containers" / "registries.conf").write_text('unqualified-search-registries = ["user.example.com"]\n')
    (xdg / "containers" / "registries.conf.d" / "50-extra.conf").write_text(
        '[[registry]]\nlocation = "dropin.example.com"\nblocked = true\n')
    c = RegistriesConfig.load()
    assert c.search_registries() == ["user.example.com"]
    with pytest.raises(RegistryError):
        c.endpoints(parse_reference("dropin.example.com/a"))
    override = tmp_path / "override.conf"
    override.write_text('unqualified-search-registries = ["override.example.com"]\n')
    monkeypatch.setenv("ROOTLET_REGISTRIES_CONF", str(override))
    c = RegistriesConfig.load()
    assert c.search_registries() == ["override.example.com"]
    assert c.files == [str(override)]
    monkeypatch.setenv("ROOTLET_REGISTRIES_CONF", str(tmp_path / "missing.conf"))
    with pytest.raises(ConfigError, match="does not exist"):
        RegistriesConfig.load()


def test_cert_dirs_and_tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    d = xdg / "containers" / "certs.d" / "127.0.0.1:5000"
    d.mkdir(parents=True)
    (d / "ca.crt").write_text("x")
    (d / "client.cert").write_text("x")
    (d / "client.key").write_text("x")
    dirs = cert_dirs_for("127.0.0.1:5000")
    assert dirs[0] == str(d)
    files = tls_files(dirs)
    assert files.ca_files == (str(d / "ca.crt"),)
    assert files.client_cert == (str(d / "client.cert"), str(d / "client.key"))
    assert cert_dirs_for("127.0.0.1:5000", "/explicit") == ["/explicit"]
    assert cert_dirs_for("nowhere.example.com:1") == [] or all(os.path.isdir(p) for p in cert_dirs_for("nowhere.example.com:1"))
    os.unlink(d / "client.key")
    with pytest.raises(ConfigError, match="missing key"):
        tls_files(dirs)
