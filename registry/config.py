"""Registry configuration as podman users already have it: registries.conf (v2) and certs.d.

Which files are read follows containers/image (podman): when the per-user
``$XDG_CONFIG_HOME/containers/registries.conf`` exists it replaces the system file and only the
per-user drop-in directory is read; otherwise ``/etc/containers/registries.conf`` is read, then
the system and per-user ``registries.conf.d/*.conf`` drop-ins in name order. ``ROOTLET_REGISTRIES_CONF``
names one file that replaces all of them (tests use it).

A reference maps to a list of ``Endpoint``s — mirrors first, then the primary location — using
the ``[[registry]]`` whose ``prefix`` matches longest, and rewriting that prefix to the
location, exactly as podman does. Loopback registries count as insecure (plain HTTP allowed), as
docker does, so ``rootlet pull 127.0.0.1:5000/x`` just works.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from rootlet.registry.errors import ConfigError, RegistryError
from rootlet.registry.reference import DOCKER_HUB, Reference, api_registry, canonical_registry

SYSTEM_REGISTRIES_CONF = "/etc/containers/registries.conf"
SYSTEM_REGISTRIES_CONF_D = "/etc/containers/registries.conf.d"
SYSTEM_CERTS_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
ENV_REGISTRIES_CONF = "ROOTLET_REGISTRIES_CONF"
DEFAULT_SEARCH_REGISTRIES = (DOCKER_HUB,)
_MAX_CONF_BYTES = 4 * 1024 * 1024
_PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")


@dataclass
class Endpoint:
    """One place to pull a repository from: ``host`` (API host[:port]) and ``repository`` there."""

    host: str
    repository: str
    insecure: bool
    mirror: bool


@dataclass(frozen=True)
class Mirror:
    """A ``[[registry.mirror]]`` entry."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"


@dataclass(frozen=True)
class RegistryEntry:
    """A ``[[registry]]`` entry; ``prefix`` defaults to ``location``."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: tuple[Mirror, ...] = ()


def xdg_config_home() -> str:
    """``$XDG_CONFIG_HOME`` or ``~/.config``."""
    return os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]`` (with or without a port)."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _strip_scheme(value: str) -> str:
    for scheme in ("https://", "http://"):
        if value.startswith(scheme):
            return value[len(scheme):]
    return value


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> str:
    match = re.search(r"line (\d+)", str(exc))
    return f" line {match.group(1)}" if match else ""


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CONF_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", "check the file's permissions") from None
    if len(data) > _MAX_CONF_BYTES:
        raise ConfigError(f"{path} is larger than {_MAX_CONF_BYTES} bytes", "is this really a registries.conf?")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", "registries.conf is a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}:{_toml_error_line(exc).strip()}: invalid TOML: {exc}",
                          "fix the syntax (see man containers-registries.conf)") from None


def _bool(path: str, where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: {where} must be true or false, not {value!r}",
                          "see man containers-registries.conf")
    return value


def _str(path: str, where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {where} must be a string, not {value!r}", "see man containers-registries.conf")
    return value


def _parse_registry(path: str, index: int, table: Any) -> RegistryEntry:
    where = f"[[registry]] #{index + 1}"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where} is not a table", "see man containers-registries.conf")
    location = _strip_scheme(_str(path, f"{where} location", table.get("location", ""))).rstrip("/")
    prefix = _strip_scheme(_str(path, f"{where} prefix", table.get("prefix", ""))).rstrip("/")
    if not prefix:
        prefix = location
    if not prefix:
        raise ConfigError(f"{path}: {where} has neither location nor prefix",
                          "every [[registry]] needs a location (or a prefix)")
    mirrors: list[Mirror] = []
    raw_mirrors = table.get("mirror", [])
    if not isinstance(raw_mirrors, list):
        raise ConfigError(f"{path}: {where} mirror must be an array of tables ([[registry.mirror]])",
                          "see man containers-registries.conf")
    for j, m in enumerate(raw_mirrors):
        mw = f"{where} mirror #{j + 1}"
        if not isinstance(m, dict):
            raise ConfigError(f"{path}: {mw} is not a table", "see man containers-registries.conf")
        loc = _strip_scheme(_str(path, f"{mw} location", m.get("location", ""))).rstrip("/")
        if not loc:
            raise ConfigError(f"{path}: {mw} has no location", "every mirror needs a location")
        pfm = _str(path, f"{mw} pull-from-mirror", m.get("pull-from-mirror", "all")) or "all"
        if pfm not in _PULL_FROM_MIRROR:
            raise ConfigError(f"{path}: {mw} pull-from-mirror must be one of {', '.join(_PULL_FROM_MIRROR)}",
                              "see man containers-registries.conf")
        mirrors.append(Mirror(loc, _bool(path, f"{mw} insecure", m.get("insecure", False)), pfm))
    return RegistryEntry(
        prefix=prefix,
        location=location,
        insecure=_bool(path, f"{where} insecure", table.get("insecure", False)),
        blocked=_bool(path, f"{where} blocked", table.get("blocked", False)),
        mirror_by_digest_only=_bool(path, f"{where} mirror-by-digest-only", table.get("mirror-by-digest-only", False)),
        mirrors=tuple(mirrors),
    )


def _str_list(path: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be an array of strings", "e.g. unqualified-search-registries = [\"docker.io\"]")
    return [_strip_scheme(v).rstrip("/") for v in value]


def _prefix_matches(prefix: str, name: str) -> bool:
    """podman's rule: *prefix* equals *name* or is followed in it by ``/`` (or is a ``*.domain`` wildcard)."""
    if prefix.startswith("*."):
        host = name.split("/", 1)[0]
        return host.endswith(prefix[1:])
    return name == prefix or name.startswith(prefix + "/")


@dataclass
class RegistriesConfig:
    """The merged registries configuration."""

    search: list[str] | None = None
    registries: dict[str, RegistryEntry] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @classmethod
    def load(cls) -> RegistriesConfig:
        """Read the files podman reads (see the module docs); a missing file is simply skipped."""
        override = os.environ.get(ENV_REGISTRIES_CONF)
        if override:
            if not os.path.exists(override):
                raise ConfigError(f"{ENV_REGISTRIES_CONF} names {override}, which does not exist",
                                  f"create the file or unset {ENV_REGISTRIES_CONF}")
            return cls.from_files([override])
        user_dir = os.path.join(xdg_config_home(), "containers")
        user_conf = os.path.join(user_dir, "registries.conf")
        user_dropins = sorted(glob.glob(os.path.join(user_dir, "registries.conf.d", "*.conf")))
        if os.path.exists(user_conf):
            return cls.from_files([user_conf, *user_dropins])
        files = [SYSTEM_REGISTRIES_CONF] if os.path.exists(SYSTEM_REGISTRIES_CONF) else []
        files += sorted(glob.glob(os.path.join(SYSTEM_REGISTRIES_CONF_D, "*.conf")))
        return cls.from_files(files + user_dropins)

    @classmethod
    def from_files(cls, paths: list[str]) -> RegistriesConfig:
        """Merge *paths* in order: later files replace the search list and same-prefix entries."""
        conf = cls()
        for path in paths:
            conf._merge(path, _read_toml(path))
        return conf

    @classmethod
    def from_text(cls, text: str, name: str = "<registries.conf>") -> RegistriesConfig:
        """Parse one document given as text (for tests and tools)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{name}:{_toml_error_line(exc).strip()}: invalid TOML: {exc}",
                              "fix the syntax (see man containers-registries.conf)") from None
        conf = cls()
        conf._merge(name, data)
        return conf

    def _merge(self, path: str, data: dict[str, Any]) -> None:
        self.files.append(path)
        if "unqualified-search-registries" in data:
            self.search = _str_list(path, "unqualified-search-registries", data["unqualified-search-registries"])
        raw = data.get("registry", [])
        if not isinstance(raw, list):
            raise ConfigError(f"{path}: registry must be an array of tables ([[registry]])",
                              "see man containers-registries.conf")
        for i, table in enumerate(raw):
            entry = _parse_registry(path, i, table)
            self.registries[entry.prefix] = entry
        # The v1 format ([registries.search] registries = [...], .insecure, .block) is still common.
        v1 = data.get("registries")
        if isinstance(v1, dict):
            for key, insecure, blocked in (("insecure", True, False), ("block", False, True)):
                section = v1.get(key, {})
                hosts = _str_list(path, f"registries.{key}.registries", section.get("registries", [])) \
                    if isinstance(section, dict) else []
                for host in hosts:
                    old = self.registries.get(host, RegistryEntry(host, host))
                    self.registries[host] = RegistryEntry(host, old.location, old.insecure or insecure,
                                                          old.blocked or blocked, old.mirror_by_digest_only, old.mirrors)
            search = v1.get("search", {})
            if isinstance(search, dict) and "registries" in search:
                self.search = _str_list(path, "registries.search.registries", search["registries"])

    def search_registries(self) -> list[str]:
        """Where short names are looked up, in order (``unqualified-search-registries``)."""
        return list(self.search) if self.search is not None else list(DEFAULT_SEARCH_REGISTRIES)

    def find(self, name: str) -> RegistryEntry | None:
        """The ``[[registry]]`` whose prefix matches ``registry/repository`` *name* longest."""
        best: RegistryEntry | None = None
        best_len = -1
        for prefix, entry in self.registries.items():
            if _prefix_matches(prefix, name):
                length = len(prefix) if not prefix.startswith("*.") else len(prefix) - 2
                if length > best_len:
                    best, best_len = entry, length
        return best

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        """Where *ref* can be pulled from: mirrors in order, then the primary location.

        Raises ``RegistryError`` when the matching entry is ``blocked``.
        """
        name = ref.name
        entry = self.find(name)
        if entry is None:
            return [Endpoint(api_registry(ref.registry), ref.repository, is_loopback_host(ref.registry), False)]
        if entry.blocked:
            raise RegistryError(f"registry {ref.registry} is blocked in registries.conf",
                                f"remove blocked = true for {entry.prefix} from {', '.join(self.files) or 'registries.conf'}")
        by_digest = ref.digest is not None
        result: list[Endpoint] = []
        for mirror in entry.mirrors:
            if mirror.pull_from_mirror == "digest-only" and not by_digest:
                continue
            if mirror.pull_from_mirror == "tag-only" and by_digest:
                continue
            if entry.mirror_by_digest_only and not by_digest and mirror.pull_from_mirror == "all":
                continue
            host, repo = _rewrite(entry.prefix, mirror.location, ref)
            result.append(Endpoint(api_registry(host), repo, mirror.insecure or is_loopback_host(host), True))
        host, repo = _rewrite(entry.prefix, entry.location or entry.prefix, ref)
        result.append(Endpoint(api_registry(host), repo, entry.insecure or is_loopback_host(host), False))
        return result

    def endpoint_for_host(self, host: str) -> Endpoint:
        """The primary endpoint of a bare registry *host* (for ``login``: no repository, no mirrors)."""
        host = canonical_registry(_strip_scheme(host).rstrip("/").split("/", 1)[0])
        entry = self.find(host)
        if entry is not None and entry.blocked:
            raise RegistryError(f"registry {host} is blocked in registries.conf",
                                f"remove blocked = true for {entry.prefix} from {', '.join(self.files) or 'registries.conf'}")
        insecure = is_loopback_host(host) or bool(entry and entry.insecure)
        return Endpoint(api_registry(host), "", insecure, False)

    def is_insecure(self, host: str) -> bool:
        """Whether *host* may be reached over plain HTTP / unverified TLS (config or loopback)."""
        entry = self.find(host)
        return is_loopback_host(host) or bool(entry and entry.insecure)


def _rewrite(prefix: str, location: str, ref: Reference) -> tuple[str, str]:
    """Replace *prefix* by *location* in ``ref.name``; returns (host, repository)."""
    name = ref.name
    if prefix.startswith("*."):
        rewritten = name  # wildcard entries cannot relocate (podman rejects a location for them)
    else:
        rewritten = location + name[len(prefix):]
    host, _, repo = rewritten.partition("/")
    if not repo:
        raise RegistryError(f"registries.conf maps {name} to {rewritten}, which names no repository",
                            "a location must be host[/path] and the prefix must not swallow the image name")
    if host == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    return host, repo


def cert_dirs_for(host: str, cert_dir_override: str | None = None) -> list[str]:
    """The existing certs.d directories for *host*, most specific first (``--cert-dir`` replaces them).

    Docker Hub's API host is configured under its user-visible name ``docker.io``, as podman does.
    """
    if cert_dir_override:
        return [cert_dir_override]
    host = canonical_registry(host)
    candidates = [os.path.join(xdg_config_home(), "containers", "certs.d", host)]
    candidates += [os.path.join(d, host) for d in SYSTEM_CERTS_DIRS]
    return [d for d in candidates if os.path.isdir(d)]


@dataclass(frozen=True)
class TLSFiles:
    """What certs.d directories hold: CA certificates and an optional client certificate pair."""

    ca_files: tuple[str, ...] = ()
    client_cert: tuple[str, str] | None = None


def tls_files(dirs: list[str]) -> TLSFiles:
    """Collect ``*.crt`` CAs and ``client.cert``/``client.key`` from *dirs* (docker's certs.d layout).

    A ``client.cert`` without its ``client.key`` is a ``ConfigError`` (docker refuses it too).
    """
    cas: list[str] = []
    client: tuple[str, str] | None = None
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError as exc:
            raise ConfigError(f"cannot read certificate directory {d}: {exc.strerror or exc}",
                              "check its permissions") from None
        for name in names:
            full = os.path.join(d, name)
            if name.endswith(".crt"):
                cas.append(full)
            elif name.endswith(".cert") and client is None:
                key = full[: -len(".cert")] + ".key"
                if not os.path.exists(key):
                    raise ConfigError(f"missing key {os.path.basename(key)} for client certificate {full}",
                                      "put the client key next to the certificate in certs.d")
                client = (full, key)
            elif name.endswith(".key"):
                if not os.path.exists(full[: -len(".key")] + ".cert"):
                    raise ConfigError(f"missing client certificate for key {full}",
                                      "put client.cert next to client.key in certs.d")
    return TLSFiles(tuple(cas), client)
