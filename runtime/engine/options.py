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

#: Re-exported records defined beside their one consumer, imported when first asked for (``ps``
#: need not load the build, kube and image packages for their names).
_ELSEWHERE = {"BuildOptions": "rootlet.runtime.build.options", "KubeGenerateOptions": "rootlet.runtime.kube.options",
              "KubePlayOptions": "rootlet.runtime.kube.options", "PullOptions": "rootlet.runtime.image.options",
              "PushOptions": "rootlet.runtime.image.options"}

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from rootlet.runtime.build.options import BuildOptions
    from rootlet.runtime.image.options import PullOptions, PushOptions
    from rootlet.runtime.kube.options import KubeGenerateOptions, KubePlayOptions


def __getattr__(name: str) -> object:
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value
    return value

__all__ = [
    "BuildOptions",
    "PULL_POLICIES", "CopyOptions", "ExecOptions", "RunOptions", "PullOptions", "ImagesOptions", "RmiOptions",
    "TagOptions", "UntagOptions", "ImagePruneOptions", "StartOptions", "StopOptions", "KillOptions",
    "WAIT_CONDITIONS", "WaitOptions", "RmOptions", "RestartOptions", "RenameOptions", "PS_SORT_KEYS", "PsOptions", "LogsOptions", "TopOptions",
    "PortOptions", "InspectOptions", "LoginOptions", "LogoutOptions",
    "PushOptions",
    "SaveOptions", "LoadOptions", "ExportOptions", "ImportOptions",
]


# --- images ------------------------------------------------------------------------------------

class ImagesOptions(Record):
    """``images``: every image, or those named ``name`` (``REPOSITORY[:TAG]``); ``all`` also lists a
    build's intermediate images."""

    name: str | None = None
    all: bool = False


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


# --- volumes, system df/prune/reset, events, stats, pause ----------------------------------------

class VolumeCreateOptions(Record):
    """``volume create``: ``name`` None makes a random 64-hex name (podman's); ``options`` are
    ``-o type=tmpfs|none|bind``, ``device=``, ``o=``; ``labels`` ``K=V``; ``ignore``: an existing
    name is no error."""

    name: str | None = None
    driver: str = "local"
    labels: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    ignore: bool = False


class VolumeLsOptions(Record):
    """``volume ls --filter name=|label=|driver=|dangling=|anonymous=|until=``."""

    filters: tuple[str, ...] = ()


class VolumeRmOptions(Record):
    """``volume rm``: ``force`` removes the containers using a volume first (podman's); ``all``
    every volume."""

    names: tuple[str, ...] = ()
    force: bool = False
    all: bool = False


class VolumePruneOptions(Record):
    """``volume prune``: every volume no container uses, narrowed by ``label=``/``until=`` filters."""

    filters: tuple[str, ...] = ()


class SystemPruneOptions(Record):
    """``system prune``: stopped containers, dangling images (``all``: every unused image), and
    with ``volumes`` every unused volume."""

    all: bool = False
    volumes: bool = False


class EventsOptions(Record):
    """``events``: ``since``/``until`` (RFC 3339, Unix time or a duration back from now), filters
    ``type=|event=|container=|image=|volume=|label=``; ``stream``: keep printing new events until
    ``until`` (or forever)."""

    since: str | None = None
    until: str | None = None
    filters: tuple[str, ...] = ()
    stream: bool = True


class StatsOptions(Record):
    """``stats``: the named containers, or every running one (``all``: every one)."""

    names: tuple[str, ...] = ()
    all: bool = False


__all__ += ["VolumeCreateOptions", "VolumeLsOptions", "VolumeRmOptions", "VolumePruneOptions", "SystemPruneOptions",
            "EventsOptions", "StatsOptions"]


# --- commit, diff, history -----------------------------------------------------------------------

class CommitOptions(Record):
    """``commit``: the container ``container`` as a new image named ``image`` (none: untagged).

    ``changes`` are ``--change`` instructions (``runtime/image/changes.py``); ``format`` ``oci`` or
    ``docker`` (podman's ``-f``); ``pause`` None unless given: rootlet cannot pause a container
    (no cgroup freezer), so only ``False`` is accepted; ``squash`` makes the image one layer of all
    its files; ``timestamp`` (seconds) sets the layer's
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


# --- the REST API's streams and waits (runtime/engine/api_support.py) ------------------------------

class AttachOptions(Record):
    """``attach`` (the REST API's): which of the container's streams the client takes; ``logs``:
    what its log holds first; ``stream``: its output from now until its run ends (and its input)."""

    container: str
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    logs: bool = False
    stream: bool = True


#: docker's ``wait`` conditions: not running (at once for a created one), the next exit (of a
#: created one: once it has run), removed.
API_WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


class ExecCreateOptions(Record):
    """``exec`` create (the REST API's): the command as ``ExecOptions`` says, which of its streams a
    later start relays (``stdin`` is ``exec.interactive``), and the client's detach keys (kept for
    the front end that starts it)."""

    exec: ExecOptions
    stdout: bool = True
    stderr: bool = True
    detach_keys: str = ""


__all__ += ["AttachOptions", "API_WAIT_CONDITIONS", "ExecCreateOptions"]


# --- user networks, pods, healthchecks (runtime/engine/networks.py, pods.py, health.py) -------------

class NetworkCreateOptions(Record):
    """``network create``: ``subnet``/``gateway`` (default: the first free 10.89.N.0/24 and its .1),
    ``internal`` (no way out), ``labels`` ``K=V``; ``driver`` bridge."""

    name: str
    subnet: str | None = None
    gateway: str | None = None
    internal: bool = False
    labels: tuple[str, ...] = ()
    driver: str = "bridge"


class NetworkRmOptions(Record):
    """``network rm``: ``force`` removes the containers and pods on a network first."""

    names: tuple[str, ...]
    force: bool = False


class NetworkConnectOptions(Record):
    """``network connect``/``disconnect``: ``container`` on ``network`` (``aliases`` and ``ip`` for
    connect; ``force`` for disconnect)."""

    network: str
    container: str
    aliases: tuple[str, ...] = ()
    ip: str | None = None
    force: bool = False


class PodCreateOptions(Record):
    """``pod create``: ``publish`` ``-p`` values, ``network`` a mode or user networks (NAME[,NAME]),
    ``share`` the namespaces its containers join (net, ipc, uts), ``labels`` ``K=V``."""

    name: str | None = None
    publish: tuple[str, ...] = ()
    network: str | None = None
    share: str | None = None
    hostname: str | None = None
    labels: tuple[str, ...] = ()


class PodActionOptions(Record):
    """``pod start|stop|restart|kill|rm``: the pods (``all``: every one); ``force`` for rm,
    ``signal`` for kill, ``timeout`` for stop."""

    names: tuple[str, ...] = ()
    all: bool = False
    force: bool = False
    signal: str = "KILL"
    timeout: int | None = None


__all__ += ["NetworkCreateOptions", "NetworkRmOptions", "NetworkConnectOptions", "PodCreateOptions",
            "PodActionOptions"]

__all__ += ["KubeGenerateOptions", "KubePlayOptions"]
