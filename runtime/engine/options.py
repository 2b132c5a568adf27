"""What each engine verb can be asked to do: one options record per verb.

Front ends (the CLI, a REST service, build, kube play) fill these in from their own syntax and
call the engine; the engine validates every value and raises ``UsageError`` (exit 125, HTTP 400)
for what cannot be honoured. Values that have a docker/podman textual syntax (``-v``, ``-p``,
``--ulimit``, ``--restart``, ``--log-opt``, signals, labels ``K=V``) are passed in that syntax
and parsed by the engine (``rootlet.runtime.container.flags``), so every front end gets the same
rules and the same messages. Plain data: importing this module costs microseconds. The records the layers below take as
they are (``RunOptions``, ``ExecOptions``, ``CopyOptions``, ``PullOptions``) are defined there,
next to their one consumer, and re-exported here.
"""

from __future__ import annotations

from rootlet.registry.record import Record
from rootlet.runtime.container.options import PULL_POLICIES, CopyOptions, ExecOptions, RunOptions
from rootlet.runtime.image.options import PullOptions
from rootlet.runtime.image.push import PushOptions  # --- push: defined beside its one consumer

__all__ = [
    "PULL_POLICIES", "CopyOptions", "ExecOptions", "RunOptions", "PullOptions", "ImagesOptions", "RmiOptions",
    "TagOptions", "UntagOptions", "ImagePruneOptions", "StartOptions", "StopOptions", "KillOptions",
    "WAIT_CONDITIONS", "WaitOptions", "RmOptions", "RestartOptions", "RenameOptions", "PS_SORT_KEYS", "PsOptions", "LogsOptions", "TopOptions",
    "PortOptions", "InspectOptions", "LoginOptions", "LogoutOptions",
    "PushOptions",
    "SaveOptions", "LoadOptions", "ExportOptions", "ImportOptions",
]


# --- images ------------------------------------------------------------------------------------

class ImagesOptions(Record):
    """``images``: every image, or those named ``name`` (``REPOSITORY[:TAG]``)."""

    name: str | None = None


class RmiOptions(Record):
    """``rmi``: ``force`` also removes the containers that use an image (as podman does)."""

    names: tuple[str, ...] = ()
    force: bool = False
    all: bool = False


class TagOptions(Record):
    source: str
    targets: tuple[str, ...]


class UntagOptions(Record):
    """``untag``: remove ``names`` from the image (every name when empty)."""

    source: str
    names: tuple[str, ...] = ()


class ImagePruneOptions(Record):
    """``image prune``: dangling images, or with ``all`` every image no container uses."""

    all: bool = False


# --- containers --------------------------------------------------------------------------------

class StartOptions(Record):
    """``start``: in the background, or attached (``attach``, one container) with stdin
    (``interactive``); ``all`` every container that is not running, narrowed by ``filters`` (ps's)."""

    names: tuple[str, ...] = ()
    attach: bool = False
    interactive: bool = False
    sig_proxy: bool = True
    all: bool = False
    filters: tuple[str, ...] = ()


class StopOptions(Record):
    """``stop``: the stop signal, then SIGKILL after ``timeout`` seconds (None: the container's);
    ``ignore``: a name that is no container is no error."""

    names: tuple[str, ...] = ()
    timeout: int | None = None
    all: bool = False
    ignore: bool = False


class KillOptions(Record):
    names: tuple[str, ...] = ()
    signal: str = "KILL"
    all: bool = False


#: ``wait --condition`` values: podman's, but ``paused`` (rootlet cannot pause a container).
WAIT_CONDITIONS = ("configured", "created", "exited", "running", "stopped")


class WaitOptions(Record):
    """``wait``: until each container meets one of ``conditions`` (podman's; default ``stopped``:
    not running, which a container that was only created already is); ``interval`` seconds
    between polls of a condition other than the exit; ``ignore``: missing containers print -1."""

    names: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    interval: float = 0.25
    ignore: bool = False


class RmOptions(Record):
    """``rm``: ``force`` stops running containers first, with SIGKILL at once (docker's ``rm -f``)
    or after ``timeout`` seconds of the stop signal, and (as podman's) takes a name that is no
    container for one already removed; ``volumes`` removes anonymous volumes; ``ignore``: a name
    that is no container is no error."""

    names: tuple[str, ...] = ()
    force: bool = False
    volumes: bool = False
    all: bool = False
    timeout: int | None = None
    ignore: bool = False


class RestartOptions(Record):
    names: tuple[str, ...] = ()
    timeout: int | None = None


class RenameOptions(Record):
    container: str
    new_name: str


#: ``ps --sort`` keys (podman's).
PS_SORT_KEYS = ("command", "created", "id", "image", "names", "runningfor", "size", "status")


class PsOptions(Record):
    """``ps``: running containers, or ``all``; ``filters`` are ``key=value`` (docker's keys);
    ``last`` keeps the N newest (and implies ``all``); ``size`` counts each container's own files
    (its upper directory); ``sort`` orders by one of PS_SORT_KEYS (``created``: newest first)."""

    all: bool = False
    filters: tuple[str, ...] = ()
    last: int | None = None
    size: bool = False
    sort: str = "created"


class LogsOptions(Record):
    """``logs`` of one or more ``containers`` (podman's; docker takes one): ``since``/``until`` as
    docker takes them (RFC 3339, Unix time, or ``10m``)."""

    containers: tuple[str, ...]
    follow: bool = False
    tail: int | None = None
    since: str | None = None
    until: str | None = None


class TopOptions(Record):
    """``top``: ps descriptors (``user``, ``pid``, ``args``…); none for podman's default columns."""

    container: str
    descriptors: tuple[str, ...] = ()


class PortOptions(Record):
    """``port``: every published port, or the host address of ``private`` (``80``, ``80/udp``)."""

    container: str
    private: str | None = None


class InspectOptions(Record):
    """``inspect``: ``type`` container, image, or all (containers first, as podman)."""

    names: tuple[str, ...]
    type: str = "all"


# --- system ------------------------------------------------------------------------------------

class LoginOptions(Record):
    server: str
    username: str
    password: str
    authfile: str | None = None
    tls_verify: bool | None = None
    cert_dir: str | None = None


class LogoutOptions(Record):
    server: str | None = None
    all: bool = False
    authfile: str | None = None


# --- commit, diff, history -----------------------------------------------------------------------

class CommitOptions(Record):
    """``commit``: the container ``container`` as a new image named ``image`` (none: untagged).

    ``changes`` are ``--change`` instructions (``runtime/image/changes.py``); ``format`` ``oci`` or
    ``docker`` (podman's ``-f``); ``pause`` None unless given: rootlet cannot pause a container
    (no cgroup freezer), so only ``False`` is accepted; ``timestamp`` (seconds) sets the layer's
    mtimes and the image's created time (``SOURCE_DATE_EPOCH`` does the same)."""

    container: str
    image: str | None = None
    author: str | None = None
    message: str | None = None
    changes: tuple[str, ...] = ()
    format: str = "oci"
    pause: bool | None = None
    squash: bool = False
    include_volumes: bool = False
    iidfile: str | None = None
    timestamp: int | None = None


class DiffOptions(Record):
    """``diff``: a container's changes to its image, or an image's top layer's to the layers below.
    ``kind`` ``container``, ``image`` or ``auto`` (a container first, as podman looks)."""

    name: str
    kind: str = "auto"


class HistoryOptions(Record):
    """``history``: the image's build steps, newest first."""

    image: str


# --- save/load/export/import ---------------------------------------------------------------------

class SaveOptions(Record):
    """``save``: ``images`` into one archive of ``format`` (docker-archive, oci-archive, oci-dir)
    at ``output`` (None: the stream the front end gives). A docker-archive holds one image, the
    other names being more tags for it (podman's rule), unless ``multi_image`` (``-m``)."""

    images: tuple[str, ...]
    output: str | None = None
    format: str = "docker-archive"
    multi_image: bool = False


class LoadOptions(Record):
    """``load``: the archive at ``input`` (None: the stream the front end gives)."""

    input: str | None = None


class ExportOptions(Record):
    """``export``: the container's filesystem as a tar at ``output`` (None: the stream given)."""

    container: str
    output: str | None = None


class ImportOptions(Record):
    """``import``: the tar at ``source`` (``-``: the stream given) as a one-layer image named
    ``reference``, with ``changes`` (``--change``) and ``message`` (its history comment)."""

    source: str
    reference: str | None = None
    changes: tuple[str, ...] = ()
    message: str | None = None
