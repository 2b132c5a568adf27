"""Image references: parsing and normalising names like ``alpine`` or ``host:5000/ns/app:1@sha256:…``.

The grammar is docker's (distribution/reference): a name is an optional registry host followed by
slash-separated lower-case path components, then an optional ``:tag`` and an optional
``@algorithm:hex`` digest. A name given without a registry ("short name") resolves to Docker Hub,
where single-component paths live under ``library/`` — unless registries.conf lists other
``unqualified-search-registries``, which is why the reference remembers that it was short.
"""

from __future__ import annotations

from rootlet.registry.errors import InvalidReference
from rootlet.registry.record import Record

DOCKER_HUB = "docker.io"
#: Where the Docker Hub API really lives; ``docker.io`` is only the name users type.
DOCKER_HUB_API = "registry-1.docker.io"
#: Every name Docker Hub goes by (the user's, the legacy index, the API host). The one table:
#: everything that compares registry names goes through ``canonical_registry``/``api_registry``.
DOCKER_HUB_ALIASES = (DOCKER_HUB, "index.docker.io", DOCKER_HUB_API)
DEFAULT_TAG = "latest"

# The grammar's character classes, matched by hand: ``re`` (and the ``enum`` it imports) costs 3–4 ms
# to import, and `run IMAGE` parses a reference every time. tests/unit/test_reference.py checks these
# matchers against distribution/reference's regular expressions on random input.
_DIGITS = frozenset("0123456789")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz") | _DIGITS
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TAG_CHARS = _ALNUM | frozenset("_.-")
_LABEL_CHARS = _ALNUM | frozenset("-")
_IPV6_CHARS = _DIGITS | frozenset("abcdefABCDEF:.")
_HEX = frozenset("0123456789abcdef")
_SEPARATORS = frozenset("._-")


def _is_component(text: str) -> bool:
    """``[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*``: lower-case runs joined by ``.``, ``_``, ``__`` or dashes."""
    if not text or text[0] not in _LOWER_ALNUM or text[-1] not in _LOWER_ALNUM:
        return False
    separator = ""
    for c in text:
        if c in _LOWER_ALNUM:
            if separator and separator not in (".", "_", "__") and separator.strip("-"):
                return False
            separator = ""
        elif c in _SEPARATORS:
            separator += c
        else:
            return False
    return True


def is_tag(text: str) -> bool:
    """True when *text* is a valid tag: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``."""
    return 0 < len(text) <= 128 and text[0] not in ".-" and _TAG_CHARS.issuperset(text)


def _is_host(text: str) -> bool:
    """A domain (dot-separated labels of letters, digits and inner dashes) or a bracketed IPv6
    address, then an optional ``:port`` of 1 to 5 digits."""
    if text.startswith("["):
        end = text.find("]")
        if end < 2 or not _IPV6_CHARS.issuperset(text[1:end]):
            return False
        port = text[end + 1:]
    else:
        host, colon, port = text.partition(":")
        for label in host.split("."):
            if not label or label[0] == "-" or label[-1] == "-" or not _LABEL_CHARS.issuperset(label):
                return False
        port = colon + port
    return not port or (port[0] == ":" and 1 < len(port) <= 6 and _DIGITS.issuperset(port[1:]))


_MAX_NAME = 255


def canonical_registry(host: str) -> str:
    """The name users know a registry by: Docker Hub's aliases (and docker's legacy
    ``https://index.docker.io/v1/`` login URL) all mean ``docker.io``; other hosts are unchanged."""
    text = host.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.rstrip("/")
    bare = text.split("/", 1)[0]
    if bare in DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    return text


def api_registry(host: str) -> str:
    """The host that serves the registry API for a registry name (Docker Hub's is not docker.io)."""
    return DOCKER_HUB_API if canonical_registry(host) == DOCKER_HUB else host


def is_digest(value: str) -> bool:
    """True when *value* is a well-formed ``sha256:<64 hex>`` digest, safe to use in URLs and paths."""
    return len(value) == 71 and value.startswith("sha256:") and _HEX.issuperset(value[7:])


def check_digest(value: str) -> str:
    """Return *value* if it is a valid sha256 digest, else raise ``InvalidReference``."""
    if not is_digest(value):
        raise InvalidReference(
            f"invalid digest {value!r}",
            "a digest is 'sha256:' followed by 64 lower-case hex characters",
        )
    return value


class Reference(Record):
    """A fully qualified image reference.

    ``registry`` is the host users name (``docker.io``, ``127.0.0.1:5000``); ``repository`` the
    path inside it (``library/alpine``); ``tag`` and ``digest`` may each be absent but not both
    after parsing (a bare name gets ``latest``). ``short`` records that the user gave no registry,
    so search registries may be tried; ``path`` is the repository as typed, before ``library/``.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    short: bool = False
    path: str = ""

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest (what ``RepoTags`` entries start with)."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host that serves the registry API for this reference."""
        return api_registry(self.registry)

    def with_registry(self, registry: str) -> Reference:
        """The same reference on another registry (search registries, mirrors)."""
        path = self.path or self.repository
        repository = _normalise_path(registry, path)
        return self.replace(registry=registry, repository=repository)

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to *digest* (the tag is kept for display)."""
        return self.replace(digest=check_digest(digest))

    def tagged(self) -> str:
        """``name:tag`` (the form stored in ``RepoTags``); ``name:latest`` when only a digest was given."""
        return f"{self.name}:{self.tag or DEFAULT_TAG}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _normalise_path(registry: str, path: str) -> str:
    if registry == DOCKER_HUB and "/" not in path:
        return f"library/{path}"
    return path


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def parse_reference(text: str) -> Reference:
    """Parse *text* as docker does, raising ``InvalidReference`` with a hint when it is malformed."""
    original = text
    if not text or len(text) > 4096 or any(c.isspace() for c in text):
        raise InvalidReference(f"invalid reference format: {original!r}", _HINT)
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not is_digest(digest):
            raise InvalidReference(
                f"invalid reference format: bad digest in {original!r}",
                "a digest is 'sha256:' followed by 64 lower-case hex characters",
            )
    tag: str | None = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not is_tag(tag):
            raise InvalidReference(f"invalid reference format: bad tag {tag!r} in {original!r}", _HINT)
    first, _, rest = text.partition("/")
    if rest and _looks_like_host(first):
        if not _is_host(first):
            raise InvalidReference(f"invalid reference format: bad registry host {first!r}", _HINT)
        registry, path, short = first.lower(), rest, False
        if registry == "index.docker.io":  # the API host stays as typed: it is a real host too
            registry = DOCKER_HUB
    else:
        registry, path, short = DOCKER_HUB, text, True
    components = path.split("/")
    for comp in components:
        if not _is_component(comp):
            upper = comp != comp.lower()
            raise InvalidReference(
                f"invalid reference format: {original!r}",
                "repository names must be lower-case" if upper else _HINT,
            )
    repository = _normalise_path(registry, path)
    if len(registry) + 1 + len(repository) > _MAX_NAME:
        raise InvalidReference(f"invalid reference format: name longer than {_MAX_NAME} characters", _HINT)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest, short, path)


_HINT = "use NAME[:TAG][@sha256:DIGEST], e.g. alpine, alpine:3.20 or 127.0.0.1:5000/team/app:1"
