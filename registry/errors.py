"""The one exception hierarchy of rootlet.

Every failure that rootlet reports to a user is a ``RootletError`` carrying a one-line
``message``, an optional ``hint`` that says how to fix it, and the exit code it means
(``exit_code``: 125 for rootlet's own failures, as podman; 126/127 when a container's command
cannot be run or found). Library code raises these and never prints or exits; ``rootlet.cli.main``
is the one place that turns them into output and exit codes (a REST front end maps the same
classes to HTTP statuses).

All of rootlet's error classes live here, in the lowest layer (``registry``), so every layer can
raise and catch them, and a child process's error record (``runtime/linux/child.py``) can name
its class and be rebuilt as the same class in the parent.
"""

from __future__ import annotations


class RootletError(Exception):
    """A failure of rootlet itself (exit status 125, as podman uses)."""

    exit_code: int = 125

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.hint, self.exit_code))


class UsageError(RootletError):
    """A command line that cannot be carried out as written (bad flag value, conflicting flags)."""


class InvalidReference(RootletError):
    """An image reference that does not parse (`rootlet pull 'Alpine!'`)."""


class ConfigError(RootletError):
    """A broken configuration file (registries.conf, auth.json, certs.d)."""


class RegistryError(RootletError):
    """The registry answered, but not with what we asked for.

    Two optional details help callers that try several sources (mirrors, then the registry):
    ``status`` is the HTTP status behind the error when there was one (404 means "not there"),
    and ``answer`` is what the source said in a few words without naming it (``manifest
    unknown``, ``cannot resolve host``), so a pull that tried several sources can list each one's
    answer in one line. Both stay in the process that raised them (they are not pickled).
    """

    status: int | None = None
    answer: str | None = None


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


class ChildError(RootletError):
    """A child process failed with an error that is not one of rootlet's own classes."""


# --- containers ----------------------------------------------------------------------------------

class ContainerError(RootletError):
    """A container could not be run or managed."""


class ContainerStartError(ContainerError):
    """The container's command could not be started.

    ``exit_code`` follows podman: 125 when rootlet itself failed (namespaces, maps, mounts), 126
    when the command cannot be invoked (permission denied, unknown user, bad working directory),
    127 when it does not exist.
    """


class ContainerNotFound(ContainerError):
    """No container matches a name, id or id prefix."""


class NameInUse(ContainerError):
    """``--name`` names an existing container."""


class ContainerStateError(ContainerError):
    """The container is in the wrong state for the request (running when it must be stopped…)."""


class ContainerRunning(ContainerStateError):
    """The verb needs a container that is not running (``rm`` without ``-f``: podman's exit 2)."""


class CopyError(ContainerError):
    """A copy into or out of a container could not be completed."""


class PathNotFound(CopyError):
    """The path asked for does not exist in the container (``cp``, the REST API's archive: 404)."""


# --- volumes -------------------------------------------------------------------------------------

class VolumeNotFound(StoreError):
    """No volume has that name (``volume rm``: podman's exit 1)."""


class VolumeInUse(StoreError):
    """A volume a container refers to was asked to be removed without ``-f`` (podman's exit 2)."""


class NetworkError(RootletError):
    """The container's network could not be set up (helper missing or failing, port taken)."""


class NetworkUsageError(NetworkError, UsageError):
    """A network option as written cannot be used (bad ``-p``, ``--add-host`` or ``--network``)."""


# --- user networks and pods ------------------------------------------------------------------------

class NetworkNotFound(NetworkError):
    """No user network has that name (podman's exit 1 for ``network rm``)."""


class NetworkInUse(NetworkError):
    """A network containers or pods refer to was asked to be removed without ``-f`` (exit 2)."""


class PodNotFound(ContainerError):
    """No pod has that name or id (podman's exit 1 for ``pod rm``)."""


class PodStateError(ContainerError):
    """A pod cannot do that now: running containers for ``pod rm`` without ``-f`` (exit 2)."""


class BuildError(RootletError):
    """A build that cannot go on: a Dockerfile error (naming file, line and instruction), a COPY
    source outside the context, a missing stage, or a RUN step that failed (``exit_code`` is then
    the step's, as podman exits with it)."""


class KubeError(RootletError):
    """A Kubernetes manifest that cannot be played (naming the document, the field and the
    problem), or containers that cannot be described as one."""
