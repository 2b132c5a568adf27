"""The one place that turns rootlet's errors into the REST API's statuses (docker's codes).

    404  no such container, image, volume, network, path in a container, exec instance
    409  a conflict: name in use, container in the wrong state, image, volume or network in use
    400  a bad parameter (UsageError and its kin: an invalid reference, a bad network option)
    401  credentials refused by a registry
    500  anything else, with its message

The body is docker's ``{"message": …}`` (with rootlet's ``hint`` beside it when there is one).
"""

from __future__ import annotations

from rootlet.registry.errors import (AuthError, ContainerNotFound, ContainerStartError, ContainerStateError,
                                     ImageInUse, ImageNotFound, InvalidReference, NameInUse, NetworkInUse,
                                     NetworkNotFound, PathNotFound, RegistryError, RootletError, UsageError,
                                     VolumeInUse, VolumeNotFound)

#: First match wins: subclasses before their bases.
STATUSES: tuple[tuple[type[RootletError], int], ...] = (
    (ContainerNotFound, 404), (ImageNotFound, 404), (VolumeNotFound, 404), (PathNotFound, 404),
    (NetworkNotFound, 404),
    (NameInUse, 409), (ContainerStateError, 409), (ImageInUse, 409), (VolumeInUse, 409), (NetworkInUse, 409),
    (UsageError, 400), (InvalidReference, 400),
    (AuthError, 401),
)


def status_for(exc: RootletError) -> int:
    """The HTTP status of a rootlet error."""
    for cls, status in STATUSES:
        if isinstance(exc, cls):
            return status
    if isinstance(exc, RegistryError) and exc.status == 404:
        return 404  # the registry has no such image or tag: docker's "manifest unknown" is a 404
    return 500


#: docker's CLI finds a command's 126/127 from words in the start error's text (its runc's); they
#: are added when rootlet's message lacks them, so `docker run` exits as `rootlet run` does.
START_WORDS = {127: "executable file not found", 126: "permission denied"}


def error_doc(exc: RootletError) -> tuple[int, str, str | None]:
    """(status, message, hint) for a rootlet error."""
    message = exc.message
    words = START_WORDS.get(exc.exit_code) if isinstance(exc, ContainerStartError) else None
    if words and words not in message:
        message = f"{message} ({words})"
    return status_for(exc), message, exc.hint
