"""docker's stream formats: the hijacked connection of attach and exec (stdout and stderr in
8-byte-header frames without a tty, raw with one; detach keys; half-close of stdin), logs in the
same frames, and the chunked JSON progress of pull, push and build.
"""

from __future__ import annotations

import struct
import threading

from rootlet.cli.api.http import ClientGone, Connection, HttpError, Stream

#: docker's multiplexing header: stream (0 stdin, 1 stdout, 2 stderr), three zero bytes, length.
FRAME = struct.Struct(">BxxxL")
STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def frame(stream: str, data: bytes) -> bytes:
    return FRAME.pack(STREAM_IDS[stream], len(data)) + data


def detach_sequence(text: str | None) -> bytes:
    """docker's ``detachKeys`` (``ctrl-p,ctrl-q``, ``a,ctrl-@``) as bytes; 400 when malformed."""
    out = bytearray()
    for key in (text or DEFAULT_DETACH_KEYS).split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
            continue
        name = key.lower()
        if name.startswith("ctrl-") and len(name) == 6:
            c = name[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if c in specials:
                out.append(specials[c])
                continue
        raise HttpError(400, f"invalid detach keys {text!r}: use a comma-separated list of characters and "
                        "ctrl-<value> (a-z, @, [, \\, ], ^, _)", keep=True)
    return bytes(out)


class HijackedClient:
    """The client side that ``rootlet.runtime.lifecycle.streams`` relays to: a hijacked connection.

    Output is framed unless ``tty``; input is taken raw, and with a tty the ``detach`` sequence
    ends the attach (the client detaches) without ending the container's input."""

    def __init__(self, conn: Connection, tty: bool, detach: bytes = b"") -> None:
        self.conn = conn
        self.tty = tty
        self.detach = detach if tty else b""
        self.held = b""  # bytes that may start the detach sequence
        self.gone = False

    def fileno(self) -> int:
        return self.conn.fileno()

    def buffered(self) -> bool:
        return bool(self.conn.buf)

    def read_input(self) -> bytes | None:
        """The next input bytes; b"" once the client half-closed its side; None when all it sent
        may be the start of the detach sequence (held until the next bytes decide)."""
        if self.conn.buf:
            data = bytes(self.conn.buf)
            self.conn.buf.clear()
        elif self.conn.eof:
            data = b""
        else:
            try:
                data = self.conn.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self.conn.eof = True
        if not data:
            held, self.held = self.held, b""
            return held  # what was held is input after all; b"" (the end) on the next call
        if not self.detach:
            return data
        out = bytearray()
        held = self.held
        for byte in data:
            held += bytes([byte])
            if self.detach.startswith(held):
                if held == self.detach:
                    self.gone = True  # the client detaches: its attach ends, the container's input stays open
                    self.held = b""
                    return bytes(out)
                continue
            if self.detach.startswith(bytes([byte])):
                out += held[:-1]
                held = bytes([byte])
            else:
                out += held
                held = b""
        self.held = held
        return bytes(out) if out else None

    def write(self, stream: str, data: bytes) -> None:
        try:
            self.conn.sock.sendall(data if self.tty else frame(stream, data))
        except OSError as exc:
            self.gone = True
            raise ClientGone from exc


class SocketStream:
    """A connection's socket as the binary stream a verb writes a tar to (``save``, ``export``,
    ``cp``): the verb writes to its descriptor directly."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def flush(self) -> None:
        pass


class JsonProgress:
    """Chunked JSON lines on ``stream``, from several threads (pull downloads in parallel); the
    first failure to write marks the client gone and is raised by ``check``."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.gone = False

    def send(self, doc: dict[str, object]) -> None:
        with self.lock:
            if self.gone:
                raise ClientGone
            try:
                self.stream.json(doc)
            except ClientGone:
                self.gone = True
                raise


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _bar(current: int, total: int) -> str:
    """docker's progress text: ``[=====>      ]  1.2MB/3.4MB``."""
    from rootlet.cli.render import human_size

    width = 50
    filled = min(width, int(width * current / total)) if total else 0
    arrow = "=" * max(0, filled - 1) + (">" if filled else "")
    return f"[{arrow.ljust(width)}] {human_size(current)}/{human_size(total)}"


class PullJson(JsonProgress):
    """A pull's progress as docker's ``POST /images/create`` streams it."""

    def __init__(self, stream: Stream, tag: str) -> None:
        super().__init__(stream)
        self.tag = tag
        self.sizes: dict[str, int] = {}
        self.done: dict[str, int] = {}

    def resolved(self, ref: str, digest: str) -> None:
        repo = ref.rsplit("@", 1)[0]
        name = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
        name = name.removeprefix("docker.io/")
        self.send({"status": f"Pulling from {name}", "id": self.tag})

    def layer(self, digest: str, size: int, status: str) -> None:
        words = {"exists": "Already exists", "downloading": "Pulling fs layer", "downloaded": "Download complete",
                 "extracting": "Extracting", "done": "Pull complete"}
        self.sizes[digest] = size
        self.send({"status": words.get(status, status), "progressDetail": {}, "id": short(digest)})

    def advance(self, digest: str, nbytes: int) -> None:
        total = self.sizes.get(digest, 0)
        current = self.done[digest] = self.done.get(digest, 0) + nbytes
        self.send({"status": "Downloading", "progressDetail": {"current": current, "total": total},
                   "progress": _bar(current, total), "id": short(digest)})

    def warn(self, message: str, hint: str | None = None) -> None:
        self.send({"status": f"Warning: {message}" + (f" ({hint})" if hint else "")})

    def finished(self, up_to_date: bool) -> None:
        pass


class PushJson(JsonProgress):
    """A push's progress as docker's ``POST /images/{name}/push`` streams it."""

    def __init__(self, stream: Stream) -> None:
        super().__init__(stream)
        self.sizes: dict[str, int] = {}
        self.done: dict[str, int] = {}

    def step(self, text: str) -> None:
        self.send({"status": text})

    def layer(self, digest: str, size: int, status: str) -> None:
        words = {"compressing": "Preparing", "uploading": "Pushing", "done": "Pushed", "exists": "Layer already exists"}
        self.sizes[digest] = size
        self.send({"status": words.get(status, status), "progressDetail": {}, "id": short(digest)})

    def advance(self, digest: str, nbytes: int) -> None:
        total = self.sizes.get(digest, 0)
        current = self.done[digest] = self.done.get(digest, 0) + nbytes
        self.send({"status": "Pushing", "progressDetail": {"current": current, "total": total},
                   "progress": _bar(current, total), "id": short(digest)})

    def warn(self, message: str, hint: str | None = None) -> None:
        self.send({"status": f"Warning: {message}" + (f" ({hint})" if hint else "")})

    def finished(self, up_to_date: bool) -> None:
        pass


def stream_error(stream: Stream, message: str) -> None:
    """A failure once the 200 and part of the stream are out: docker's error object, last."""
    try:
        stream.json({"errorDetail": {"message": message}, "error": message})
    except ClientGone:
        pass
