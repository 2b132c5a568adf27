"""What engine verbs return: data, never text for humans (front ends render it).

Reports built by the layers below the engine are defined next to the code that builds them and
returned as they are: ``PullReport`` (``rootlet.runtime.image.pull``), ``RemoveReport``
(``rootlet.runtime.image.catalog``), ``LogRecord`` (``rootlet.runtime.lifecycle.logfile``),
``HostInfo`` (``rootlet.runtime.system.hostinfo``). The ones the engine assembles are here.
"""

from __future__ import annotations

from rootlet.registry.record import Record

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    # The reports built below the engine, for front ends' annotations.
    from rootlet.registry.errors import RootletError
    from rootlet.runtime.image.catalog import ImageSummary, RemoveReport  # noqa: F401
    from rootlet.runtime.image.pull import PullProgress, PullReport  # noqa: F401
    from rootlet.runtime.lifecycle.logfile import LogRecord  # noqa: F401
    from rootlet.runtime.system.hostinfo import HostInfo  # noqa: F401
    from rootlet.runtime.system.storeinfo import StoreSummary  # noqa: F401


class ContainerResult(Record):
    """The outcome of a verb for one of the containers it was given (podman's per-id reports).

    ``name`` is what the caller gave (or the id, for ``--all``); ``id`` is empty when the name did
    not resolve; ``error`` is set when the verb failed for this container; ``exit_code`` is the
    container's for ``wait``; ``warnings`` are what the user should be told although it worked.
    """

    name: str
    id: str = ""
    error: RootletError | None = None
    exit_code: int | None = None
    warnings: list[str] = []


class ContainerSummary(Record):
    """One container as ``ps`` lists it. Times are Unix times (None: never), ``created_at`` the
    creation time in RFC 3339; ``status`` is created, running, restarting or exited; ``ports`` are
    PortMapping records."""

    id: str
    name: str
    image: str
    image_id: str
    command: list[str]
    created: float
    created_at: str
    status: str
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    pid: int = 0
    ports: list[object] = []
    labels: dict[str, str] = {}
    auto_remove: bool = False
    restart_count: int = 0
    mounts: list[str] = []
    rw_size: int | None = None      # with ps --size: the container's own files
    root_size: int | None = None    # with ps --size: those and its image's
    health: str = ""                # with a healthcheck: starting, healthy or unhealthy
    pod: str = ""                   # the id of its pod
    networks: list[str] = []        # its user networks


class InspectReport(Record):
    """``inspect``: docker's documents for the names that resolved, errors for the others."""

    docs: list[dict[str, object]] = []
    errors: list[object] = []


class CreateReport(Record):
    """``create`` and ``run -d``: the new container and notes for the user."""

    id: str
    name: str = ""
    warnings: list[str] = []


class TopReport(Record):
    """``top``: the columns asked for and one dict per process (column → text)."""

    columns: list[str]
    rows: list[dict[str, str]] = []


class PortReport(Record):
    """``port``: (``80/tcp``, ``0.0.0.0:8080``) pairs."""

    pairs: list[tuple[str, str]] = []


class InfoReport(Record):
    """``info``: the host's rootless set-up (``HostInfo``) and the store's contents (``StoreSummary``)."""

    host: object
    store: object


class VersionReport(Record):
    """``version``: rootlet's own version and what it runs on (podman's client section)."""

    version: str
    python_version: str
    os: str
    arch: str


# --- volumes and system prune ------------------------------------------------------------------

class VolumeResult(Record):
    """The outcome of ``volume rm`` for one name: ``error`` set when it failed."""

    name: str
    error: RootletError | None = None


class VolumePruneReport(Record):
    """``volume prune``: the names removed and the bytes they held."""

    names: list[str] = []
    reclaimed: int = 0


class SystemPruneReport(Record):
    """``system prune``: what went (container ids, volume names, image ids and the names they
    lost) and the bytes that freed."""

    containers: list[str] = []
    volumes: list[str] = []
    images: list[str] = []
    untagged: list[str] = []
    reclaimed: int = 0


# --- user networks and pods -------------------------------------------------------------------------

class NamedResult(Record):
    """The outcome of a verb for one network or pod name: its id, or the error."""

    name: str
    id: str = ""
    error: RootletError | None = None


class PodSummary(Record):
    """One pod as ``pod ps`` lists it; ``containers`` are (id, name, status) of its containers."""

    id: str
    name: str
    status: str
    created: float
    infra_id: str
    containers: list[tuple[str, str, str]] = []
    networks: list[str] = []
    labels: dict[str, str] = {}


class PlayReport(Record):
    """What ``kube play`` made (or ``--down`` removed): pods, containers, volumes; and warnings."""

    pods: list[str] = []
    containers: list[str] = []
    volumes: list[str] = []
    warnings: list[str] = []
