"""One client connection, in the child forked for it: requests read, dispatched and answered one
after the other until the client closes it, a response ends it, or the service stops.

SIGTERM (the service stopping) ends a connection that waits for its next request or carries a
stream at once; one in the middle of a request finishes that request first.
"""

from __future__ import annotations

import os
import signal
import socket

from rootlet.cli.api.http import IDLE_TIMEOUT, REASONS, ClientGone, Connection, HttpError, parse_head, peer_uid


def serve_connection(sock: socket.socket, root: str, env: dict[str, str], trace: bool = False) -> None:
    from rootlet.cli.api.routes import Context, dispatch

    state = {"busy": False, "stopping": False}

    def on_term(_sig: int, _frame: object) -> None:
        if state["busy"]:
            state["stopping"] = True
        else:
            os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    uid = peer_uid(sock)
    if uid is not None and uid not in (0, os.getuid()):
        # The socket is 0600 in a 0700 directory; this holds for sockets handed over by systemd too.
        sock.close()
        return
    conn = Connection(sock)
    ctx = Context(root, env, trace)
    try:
        while not state["stopping"]:
            try:
                head = conn.read_head(IDLE_TIMEOUT)
            except HttpError as exc:
                _refuse(conn, exc)
                return
            if head is None:
                return
            state["busy"] = True
            try:
                req = parse_head(conn, head)
            except HttpError as exc:
                _refuse(conn, exc)
                return
            req.on_stream = lambda: state.update(busy=False)
            dispatch(req, ctx)
            state["busy"] = False
            if not req.keep_alive or not req.drain():
                return
    except ClientGone:
        return
    finally:
        _linger_close(sock)


def _linger_close(sock: socket.socket) -> None:
    """Close after telling the client we are done writing, reading (and dropping) what it still
    sends for a moment: a TCP peer whose unread bytes meet a close gets a reset, which may destroy
    the answer (a 413) before it reads it."""
    import select
    import time

    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 1.0
        dropped = 0
        while dropped < (1 << 22):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
            data = sock.recv(1 << 16)
            if not data:
                break
            dropped += len(data)
    except OSError:
        pass
    sock.close()


def _refuse(conn: Connection, exc: HttpError) -> None:
    """Answer a request the protocol layer could not even read, then close."""
    import json

    body = json.dumps({"message": exc.message}).encode() + b"\n"
    head = (f"HTTP/1.1 {exc.status} {REASONS.get(exc.status, 'Bad Request')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    try:
        conn.send(head.encode() + body)
    except ClientGone:
        pass
