"""The one exception hierarchy of rootlet.

Every failure that rootlet reports to a user is a ``RootletError`` carrying a one-line
``message`` and an optional ``hint`` that says how to fix it. Library code raises these and
never prints or exits; ``rootlet.cli.main`` is the one place that turns them into output and
exit codes. This module sits in the lowest layer (``registry``) so every layer can use it.
"""

from __future__ import annotations


class RootletError(Exception):
    """A failure of rootlet itself (exit status 125, as podman uses)."""

    exit_code: int = 125

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(RootletError):
    """A command line that cannot be carried out as written (bad flag value, conflicting flags)."""


class InvalidReference(RootletError):
    """An image reference that does not parse (`rootlet pull 'Alpine!'`)."""


class ConfigError(RootletError):
    """A broken configuration file (registries.conf, auth.json, certs.d)."""


class RegistryError(RootletError):
    """The registry answered, but not with what we asked for."""


class AuthError(RegistryError):
    """The registry refused our credentials or we have none for a private repository."""


class RateLimited(RegistryError):
    """HTTP 429 from the registry (Docker Hub pull limits)."""


class TransferError(RegistryError):
    """The connection failed and retries did not help."""


class ManifestError(RegistryError):
    """A manifest or index we cannot use (schema1, unknown media type, malformed JSON)."""


class PlatformNotFound(ManifestError):
    """No manifest in an index matches the wanted platform."""


class DigestMismatch(RegistryError):
    """Content whose digest or size differs from what its descriptor promised."""


class LayerError(RootletError):
    """A layer tar that is malformed or tries to act outside its layer directory."""


class StoreError(RootletError):
    """The local store cannot be read or written."""


class ImageNotFound(StoreError):
    """No local image matches a name, id or id prefix."""


class ImageInUse(StoreError):
    """An image a container still uses was asked to be removed without force."""


class UsernsError(RootletError):
    """A user namespace could not be set up (no subuid range, newuidmap missing or refusing)."""
