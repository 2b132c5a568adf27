"""The event log: what happened to containers, images and volumes, in the order it happened.

There is no daemon to ask, so every ``rootlet`` process that changes something appends one JSON
line to ``events.log`` in the store (podman's file events backend does the same)::

    {"t": 1735729200123456789, "type": "container", "status": "start", "id": "…", "name": "web",
     "image": "docker.io/library/alpine:latest", "attrs": {"label": "value"}}

Each event is one ``write`` on a descriptor opened with ``O_APPEND``: the kernel places every
write at the end of the file under the inode lock, so lines of concurrent writers never
interleave, and no lock is taken to record an event. Recording never fails the verb that records
(an event lost on a full disk is better than a container that will not start). The log is
bounded: past ``MAX_BYTES`` the writer that notices renames it to ``events.log.1`` (the previous
one is dropped), under a lock on the log itself so two writers never rotate twice.

This module is imported on the ``run`` path: it needs nothing but ``os``, ``json`` and ``time``.
"""

from __future__ import annotations

import os
import time

from rootlet.registry import jsoncodec

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

EVENTS_FILE = "events.log"
#: Size past which the log is rotated (the one before is kept as ``events.log.1``).
MAX_BYTES = 4 * 1024 * 1024
#: Longest line written; attributes are dropped from an event that would be longer.
MAX_LINE = 3500
#: How often a following reader looks for new lines.
POLL_SECONDS = 0.1

#: What podman records, by type (``events --filter event=`` takes these words).
TYPES = ("container", "image", "volume", "system", "network", "pod")


def record_event(root: str, type_: str, status: str, *, id: str = "", name: str = "", image: str = "",
                 attributes: Mapping[str, str] | None = None, exit_code: int | None = None) -> None:
    """Append one event to the log of the store at ``root`` (nothing when the store does not exist)."""
    doc: dict[str, object] = {"t": time.time_ns(), "type": type_, "status": status}
    if id:
        doc["id"] = id
    if name:
        doc["name"] = name
    if image:
        doc["image"] = image
    if attributes:
        doc["attrs"] = dict(attributes)
    if exit_code is not None:
        doc["exit"] = exit_code
    line = jsoncodec.dumps(doc, ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"
    if len(line) > MAX_LINE:  # a single write of a short line is what keeps writers from interleaving
        doc.pop("attrs", None)
        line = jsoncodec.dumps(doc).encode("utf-8", "backslashreplace")[:MAX_LINE - 1] + b"\n"
    path = os.path.join(root, EVENTS_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError:
        return  # no store (yet, or any more: `system reset`), or it is read-only
    try:
        os.write(fd, line)
        size = os.fstat(fd).st_size
    except OSError:
        return
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        _rotate(path)


def _rotate(path: str) -> None:
    """Move a full log aside (``events.log.1``), once even when several writers notice: each takes
    a lock on the log it saw, and only the one that still finds that very file full renames it."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        st = os.fstat(fd)
        if st.st_size > MAX_BYTES and os.stat(path).st_ino == st.st_ino:
            os.replace(path, path + ".1")
    except OSError:
        pass
    finally:
        os.close(fd)


class Event:
    """One recorded event. ``time`` is in nanoseconds since the epoch; ``exit_code`` is set for
    ``died``; ``attributes`` are a container's labels."""

    __slots__ = ("time", "type", "status", "id", "name", "image", "attributes", "exit_code")

    def __init__(self, doc: dict[str, object]) -> None:
        self.time = int(doc.get("t") or 0)  # type: ignore[call-overload]
        self.type = str(doc.get("type") or "")
        self.status = str(doc.get("status") or "")
        self.id = str(doc.get("id") or "")
        self.name = str(doc.get("name") or "")
        self.image = str(doc.get("image") or "")
        attrs = doc.get("attrs")
        self.attributes: dict[str, str] = {str(k): str(v) for k, v in attrs.items()} if isinstance(attrs, dict) else {}
        code = doc.get("exit")
        self.exit_code = code if isinstance(code, int) else None

    def __repr__(self) -> str:
        return f"Event({self.type} {self.status} {self.name or self.id})"


def parse_line(line: bytes) -> Event | None:
    """An event from one line of the log; None for a line that is not one (torn by a crash)."""
    try:
        doc = jsoncodec.loads(line)
    except ValueError:
        return None
    return Event(doc) if isinstance(doc, dict) and "t" in doc and "type" in doc else None


def read_events(root: str) -> Iterator[Event]:
    """Every event still in the log, oldest first (the rotated part, then the current one)."""
    path = os.path.join(root, EVENTS_FILE)
    for p in (path + ".1", path):
        try:
            with open(p, "rb") as f:
                for line in f:
                    if line.endswith(b"\n"):
                        event = parse_line(line)
                        if event is not None:
                            yield event
        except FileNotFoundError:
            continue


def follow_events(root: str, keep_going: Callable[[], bool]) -> Iterator[Event]:
    """Every event in the log, then each new one as it is written, while ``keep_going()``.

    Polls the file (no daemon to push events); follows a rotation by finishing the old file
    through its open descriptor before starting on the new one.
    """
    path = os.path.join(root, EVENTS_FILE)
    for p in (path + ".1",):
        try:
            with open(p, "rb") as f:
                for line in f:
                    event = parse_line(line)
                    if event is not None:
                        yield event
        except FileNotFoundError:
            pass
    f = None
    pending = b""
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: SIM115 - kept open across polls
                except FileNotFoundError:
                    f = None
            got = False
            if f is not None:
                chunk = f.read()
                if chunk:
                    got = True
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        event = parse_line(line)
                        if event is not None:
                            yield event
                elif _replaced(f, path):
                    f.close()  # rotated (or removed): what the old file held has been read
                    f, pending = None, b""
                    continue
            if not got:
                if not keep_going():
                    return
                time.sleep(POLL_SECONDS)
    finally:
        if f is not None:
            f.close()


def _replaced(f: object, path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino  # type: ignore[attr-defined]
    except FileNotFoundError:
        return True


#: ``--filter`` keys and what each compares.
FILTER_KEYS = ("type", "event", "container", "image", "volume", "label")


def parse_filters(filters: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """``KEY=VALUE`` filters by key (values of one key are alternatives, keys must all match)."""
    from rootlet.registry.errors import UsageError

    out: dict[str, list[str]] = {}
    for item in filters:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key == "status":
            key = "event"
        if not eq or key not in FILTER_KEYS or not value:
            raise UsageError(f"invalid --filter {item!r}", f"use KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)}")
        if key == "type" and value not in TYPES:
            raise UsageError(f"invalid --filter {item!r}: unknown event type", f"use one of {', '.join(TYPES)}")
        out.setdefault(key, []).append(value)
    return out


def matches(event: Event, filters: dict[str, list[str]]) -> bool:
    """Whether ``event`` passes every filter key (podman's rules: ``container=`` is a name or an id
    prefix, ``image=`` an image's name or id, or the image of a container event)."""
    for key, values in filters.items():
        if not any(_match_one(event, key, v) for v in values):
            return False
    return True


def _match_one(event: Event, key: str, value: str) -> bool:
    if key == "type":
        return event.type == value
    if key == "event":
        return event.status == value
    if key == "container":
        return event.type == "container" and (event.name == value or (len(value) >= 3 and event.id.startswith(value)))
    if key == "image":
        if event.type == "container":
            return _same_image(event.image, value)
        return event.type == "image" and (_same_image(event.name, value) or
                                          (len(value) >= 3 and event.id.startswith(value.removeprefix("sha256:"))))
    if key == "volume":
        return event.type == "volume" and event.name == value
    name, _, wanted = value.partition("=")
    return name in event.attributes and (not wanted or event.attributes[name] == wanted)


def _same_image(recorded: str, given: str) -> bool:
    """``alpine`` names ``docker.io/library/alpine:latest`` as recorded; a full name names itself."""
    if not recorded:
        return False
    if recorded == given:
        return True
    short = recorded.rsplit("/", 1)[-1]
    return short == given or short.split(":", 1)[0] == given or recorded.split(":", 1)[0].endswith("/" + given)


def container_event(root: str, cfg: object, status: str, exit_code: int | None = None) -> None:
    """Record an event of container ``cfg`` (a ``ContainerConfig``: its id, name, image and labels,
    as podman records them)."""
    record_event(root, "container", status, id=getattr(cfg, "id", ""), name=getattr(cfg, "name", ""),
                 image=getattr(cfg, "image_name", ""), attributes=getattr(cfg, "labels", None), exit_code=exit_code)
