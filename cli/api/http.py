"""HTTP/1.1 on one client connection: requests in (bounded, with deadlines), responses out (whole,
chunked streams, or the connection hijacked for attach and exec).

Only what docker's clients use is spoken, and every limit is explicit: a request line and headers
of at most ``MAX_HEADER_BYTES`` that must arrive within ``HEADER_TIMEOUT`` (a client that never
finishes its headers is answered 408 and dropped), JSON bodies of at most ``MAX_JSON_BODY`` (413
beyond), ``Content-Length`` or ``chunked`` request bodies, keep-alive between requests, and
``Expect: 100-continue``. Nothing here knows docker's routes: ``routes.py`` does.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from urllib.parse import parse_qs, unquote

#: Longest request line plus headers.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
#: Time a client has to send a request's line and headers once it started (slow clients).
HEADER_TIMEOUT = 10.0
#: Time a kept-alive connection may sit idle between two requests.
IDLE_TIMEOUT = 300.0
#: Time between two pieces of a request body before the client is taken as gone.
BODY_TIMEOUT = 60.0
#: Largest JSON request body (container create, exec create …).
MAX_JSON_BODY = 4 * 1024 * 1024
CHUNK = 1 << 16

REASONS = {100: "Continue", 101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 409: "Conflict", 411: "Length Required", 413: "Payload Too Large",
           414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable"}


class HttpError(Exception):
    """A request the protocol layer refuses: answered with ``status`` and ``{"message": …}``, and
    the connection closed unless ``keep`` (its body was read whole)."""

    def __init__(self, status: int, message: str, keep: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.keep = keep


class ClientGone(Exception):
    """The client closed the connection (or stopped reading) mid-request or mid-response."""


class Connection:
    """One accepted client socket with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        sock.setblocking(True)

    def fileno(self) -> int:
        return self.sock.fileno()

    def _fill(self, deadline: float | None) -> bool:
        """Read more into the buffer; False at EOF. Raises TimeoutError past ``deadline``."""
        if self.eof:
            return False
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise TimeoutError
        try:
            data = self.sock.recv(CHUNK)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_head(self, idle: float) -> bytes | None:
        """The next request's line and headers (up to the blank line); None when the client closed
        the connection between requests."""
        first = time.monotonic() + idle
        deadline: float | None = None
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[:end])
                del self.buf[:end + 4]
                return head
            if len(self.buf) > MAX_HEADER_BYTES:
                raise HttpError(431, "request headers too large")
            if self.buf.lstrip(b"\r\n"):
                deadline = deadline or time.monotonic() + HEADER_TIMEOUT
            try:
                more = self._fill(deadline or first)
            except TimeoutError:
                if deadline is None:
                    return None  # idle too long between requests: just close
                raise HttpError(408, f"request headers not received within {HEADER_TIMEOUT:g} seconds") from None
            if not more:
                if self.buf.strip():
                    raise ClientGone
                return None

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            try:
                more = self._fill(time.monotonic() + BODY_TIMEOUT)
            except TimeoutError:
                raise ClientGone from None
            if not more:
                raise ClientGone
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_some(self, limit: int) -> bytes:
        """What is buffered, or one read's worth (b"" at EOF)."""
        if not self.buf:
            try:
                self._fill(time.monotonic() + BODY_TIMEOUT)
            except TimeoutError:
                raise ClientGone from None
        data = bytes(self.buf[:limit])
        del self.buf[:len(data)]
        return data

    def read_line(self, limit: int = 4096) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            if len(self.buf) > limit:
                raise HttpError(400, "malformed chunked body")
            try:
                more = self._fill(time.monotonic() + BODY_TIMEOUT)
            except TimeoutError:
                raise ClientGone from None
            if not more:
                raise ClientGone

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            raise ClientGone from exc

    def hung_up(self) -> bool:
        """Whether the client has closed its side (checked without blocking)."""
        if self.eof:
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLRDHUP)
        for _, event in poller.poll(0):
            if event & (select.POLLHUP | select.POLLERR | select.POLLRDHUP):
                return True
        return False


def exit_on_hangup(conn: Connection) -> None:
    """End this process as soon as the client hangs up: for a read-only stream (events, logs -f,
    stats) whose source may stay silent for hours, so no child outlives its client. A thread
    that only polls; the streams that use it fork nothing."""
    import threading

    def watch() -> None:
        poller = select.poll()
        poller.register(conn.sock, select.POLLRDHUP)
        while True:
            for _, event in poller.poll():
                if event & (select.POLLHUP | select.POLLERR | select.POLLRDHUP | select.POLLNVAL):
                    os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


class Request:
    """One parsed request and the means to answer it."""

    def __init__(self, conn: Connection, method: str, target: str, version: str, headers: dict[str, str]) -> None:
        self.conn = conn
        self.method = method
        self.target = target
        self.http_version = version
        self.headers = headers
        raw_path, _, raw_query = target.partition("?")
        self.path = unquote(raw_path)
        self.query = parse_qs(raw_query, keep_blank_values=True)
        self.params: dict[str, str] = {}
        self.api_version = (1, 41)
        self.keep_alive = (version == "HTTP/1.1" and headers.get("connection", "").lower() != "close") or \
            (version == "HTTP/1.0" and headers.get("connection", "").lower() == "keep-alive")
        self.responded = False
        self.status = 0
        self.body_done = False
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if self.chunked and length is not None:
            raise HttpError(400, "both Content-Length and Transfer-Encoding given")
        if length is not None and (not length.isdigit() or len(length) > 18):
            raise HttpError(400, f"invalid Content-Length {length!r}")
        self.length = int(length) if length is not None else (None if self.chunked else 0)
        self._left = self.length
        self._continue_sent = False
        self.on_stream = None  # set by the connection: told when a long-lived stream begins

    def streaming(self) -> None:
        """Say that this request now carries a long-lived stream (events, logs -f, attach): a
        stopping service may end it at once."""
        if self.on_stream is not None:
            self.on_stream()

    # --- the request -------------------------------------------------------------------------------

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def _expect_continue(self) -> None:
        if not self._continue_sent and self.headers.get("expect", "").lower() == "100-continue":
            self._continue_sent = True
            self.conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def body_chunks(self) -> object:
        """The body, piece by piece (de-chunked), each piece at most ``CHUNK`` bytes."""
        self._expect_continue()
        if not self.chunked:
            while self._left:
                data = self.conn.read_some(min(self._left, CHUNK))
                if not data:
                    raise ClientGone
                self._left -= len(data)
                yield data
            self.body_done = True
            return
        while True:
            line = self.conn.read_line().split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise HttpError(400, "malformed chunked body") from None
            if size < 0:
                raise HttpError(400, "malformed chunked body")
            if size == 0:
                while self.conn.read_line():  # trailers
                    pass
                self.body_done = True
                return
            while size:
                data = self.conn.read_some(min(size, CHUNK))
                if not data:
                    raise ClientGone
                size -= len(data)
                yield data
            if self.conn.read_exact(2) != b"\r\n":
                raise HttpError(400, "malformed chunked body")

    def body(self, limit: int = MAX_JSON_BODY) -> bytes:
        """The whole body, refused with 413 past ``limit`` bytes (the connection is then closed)."""
        if self.length is not None and self.length > limit:
            raise HttpError(413, f"request body of {self.length} bytes is larger than the {limit} allowed here")
        out = bytearray()
        for piece in self.body_chunks():  # type: ignore[attr-defined]
            out += piece
            if len(out) > limit:
                raise HttpError(413, f"request body is larger than the {limit} bytes allowed here")
        return bytes(out)

    def json(self, required: bool = False) -> object:
        """The body as JSON (None when empty and not ``required``); 400 when it is not JSON."""
        data = self.body()
        if not data.strip():
            if required:
                raise HttpError(400, "a JSON body is required", keep=True)
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"malformed JSON body: {exc}", keep=True) from None

    def drain(self) -> bool:
        """Read what is left of the body so the connection can carry the next request; False when
        that is not worth it (the connection is then closed)."""
        if self.body_done or self.length == 0:
            return True
        if self.length is not None and self.length > MAX_JSON_BODY:
            return False
        try:
            for _ in self.body_chunks():  # type: ignore[attr-defined]
                pass
        except (HttpError, ClientGone):
            return False
        return True

    # --- answering ---------------------------------------------------------------------------------

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        self.status = status
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", *(f"{k}: {v}" for k, v in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

    def _common(self) -> list[tuple[str, str]]:
        return [("Api-Version", "1.41"), ("Docker-Experimental", "false"), ("Ostype", "linux"),
                ("Server", "rootlet (Docker API)"), ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))]

    def send(self, status: int, body: bytes = b"", content_type: str | None = "application/json",
             headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        """A whole response (headers only for HEAD)."""
        self.responded = True
        hs = self._common() + list(headers)
        if content_type and status != 204:
            hs.append(("Content-Type", content_type))
        if status not in (204, 304):
            hs.append(("Content-Length", str(len(body))))
        if not self.keep_alive:
            hs.append(("Connection", "close"))
        self.conn.send(self._head(status, hs) + (body if self.method != "HEAD" else b""))

    def send_json(self, obj: object, status: int = 200) -> None:
        self.send(status, json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")

    def send_error(self, status: int, message: str, hint: str | None = None) -> None:
        doc: dict[str, object] = {"message": message}
        if hint:
            doc["hint"] = hint
        self.send_json(doc, status)

    def start_stream(self, status: int = 200, content_type: str = "application/json",
                     headers: list[tuple[str, str]] = ()) -> Stream:  # type: ignore[assignment]
        """Headers now (flushed), then the body in chunks as ``Stream.write`` gives them."""
        self.responded = True
        hs = self._common() + list(headers) + [("Content-Type", content_type), ("Transfer-Encoding", "chunked")]
        if not self.keep_alive:
            hs.append(("Connection", "close"))
        self.conn.send(self._head(status, hs))
        return Stream(self.conn)

    def start_raw(self, status: int = 200, content_type: str = "application/octet-stream",
                  headers: list[tuple[str, str]] = ()) -> Connection:  # type: ignore[assignment]
        """Headers now, then a body of unknown length that ends when the connection closes (for
        tar streams written straight to the socket by a verb)."""
        self.responded = True
        self.keep_alive = False
        hs = self._common() + list(headers) + [("Content-Type", content_type), ("Connection", "close")]
        self.conn.send(self._head(status, hs))
        return self.conn

    def hijack(self) -> Connection:
        """docker's hijacked connection: 101 UPGRADED (``Upgrade: tcp``) when the client asked for
        the upgrade, else a 200 whose body is the raw stream; the connection is not reused."""
        self.responded = True
        self.keep_alive = False
        upgrade = "upgrade" in self.headers.get("connection", "").lower() and "upgrade" in self.headers
        if upgrade:
            head = self._head(101, [("Content-Type", "application/vnd.docker.raw-stream"), ("Connection", "Upgrade"),
                                    ("Upgrade", "tcp")])
        else:
            head = self._head(200, self._common() + [("Content-Type", "application/vnd.docker.raw-stream")])
        self.conn.send(head)
        return self.conn


class Stream:
    """A chunked response body."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.closed = False

    def write(self, data: bytes) -> None:
        if data:
            self.conn.send(b"%x\r\n%s\r\n" % (len(data), data))

    def json(self, obj: object) -> None:
        self.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.send(b"0\r\n\r\n")


def parse_head(conn: Connection, head: bytes) -> Request:
    """The request of a header block (400 for anything malformed)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise HttpError(400, "malformed request") from None
    lines = text.lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith("/") or \
            parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, f"malformed request line {lines[0][:100]!r}")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "too many request headers")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or any(c in name for c in " \t"):
            raise HttpError(400, f"malformed header line {line[:100]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers and key != "content-length" else value
    return Request(conn, parts[0].upper(), parts[1], parts[2], headers)


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a UNIX socket (None for TCP)."""
    import struct

    if sock.family != socket.AF_UNIX:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def own_uid() -> int:
    return os.getuid()
