"""The route table of the Docker Engine API and the dispatch of one request.

Paths come versioned (``/v1.41/containers/json``) or not (``/containers/json``: the newest version
served). Versions from ``MIN_API_VERSION`` to ``API_VERSION`` are answered; a newer one is refused
with docker's own message, so a client negotiates down (docker's CLI and docker-py read
``API-Version`` from ``/_ping`` or ``/version`` and use it). Container ids and names are one path
segment; image names may hold slashes (``/images/docker.io/library/alpine:3.20/json``), as in
docker's router.

Every handler is ``handler(req, ctx)``: ``req`` the request (``http.Request``, its ``params``
filled from the path), ``ctx`` the connection's ``Context`` (the engine on the service's store).
What a handler raises is answered here: ``RootletError`` through ``errors.status_for``,
``HttpError`` as given, anything else 500 with its type and message.
"""

from __future__ import annotations

import re
import sys
import time

from rootlet.cli.api import containers, execs, images, netvol, system
from rootlet.cli.api.errors import error_doc
from rootlet.cli.api.http import ClientGone, HttpError, Request
from rootlet.registry.errors import RootletError

#: The API version served (docker 20.10's; docker's CLI 28 and docker-py negotiate down to it).
API_VERSION = (1, 41)
#: The oldest version whose paths are answered (docker's own minimum).
MIN_API_VERSION = (1, 24)

_ID = r"(?P<id>[^/]+)"
_NAME = r"(?P<name>.+)"

ROUTES_TEXT: list[tuple[str, str, object]] = [
    ("GET", "/_ping", system.ping), ("HEAD", "/_ping", system.ping),
    ("GET", "/version", system.version), ("GET", "/info", system.info),
    ("GET", "/events", system.events), ("GET", "/system/df", system.df), ("POST", "/auth", system.auth),
    ("POST", "/containers/create", containers.create), ("GET", "/containers/json", containers.list_),
    ("POST", "/containers/prune", containers.prune),
    ("GET", f"/containers/{_ID}/json", containers.inspect), ("GET", f"/containers/{_ID}/top", containers.top),
    ("GET", f"/containers/{_ID}/logs", containers.logs), ("GET", f"/containers/{_ID}/changes", containers.changes),
    ("GET", f"/containers/{_ID}/export", containers.export), ("GET", f"/containers/{_ID}/stats", containers.stats),
    ("POST", f"/containers/{_ID}/resize", containers.resize), ("POST", f"/containers/{_ID}/start", containers.start),
    ("POST", f"/containers/{_ID}/stop", containers.stop), ("POST", f"/containers/{_ID}/restart", containers.restart),
    ("POST", f"/containers/{_ID}/kill", containers.kill), ("POST", f"/containers/{_ID}/rename", containers.rename),
    ("POST", f"/containers/{_ID}/update", containers.update),
    ("POST", f"/containers/{_ID}/pause", containers.pause), ("POST", f"/containers/{_ID}/unpause", containers.unpause),
    ("POST", f"/containers/{_ID}/attach", containers.attach), ("POST", f"/containers/{_ID}/wait", containers.wait),
    ("DELETE", f"/containers/{_ID}", containers.remove),
    ("HEAD", f"/containers/{_ID}/archive", containers.archive_head),
    ("GET", f"/containers/{_ID}/archive", containers.archive_get),
    ("PUT", f"/containers/{_ID}/archive", containers.archive_put),
    ("POST", f"/containers/{_ID}/exec", execs.create), ("POST", f"/exec/{_ID}/start", execs.start),
    ("POST", f"/exec/{_ID}/resize", execs.resize), ("GET", f"/exec/{_ID}/json", execs.inspect),
    ("GET", "/images/json", images.list_), ("POST", "/images/create", images.create),
    ("POST", "/images/load", images.load), ("GET", "/images/get", images.get_many),
    ("POST", "/images/prune", images.prune), ("GET", "/images/search", images.search),
    ("POST", "/build", images.build), ("POST", "/build/prune", images.build_prune), ("POST", "/commit", images.commit),
    ("GET", f"/images/{_NAME}/json", images.inspect), ("GET", f"/images/{_NAME}/history", images.history),
    ("POST", f"/images/{_NAME}/push", images.push), ("POST", f"/images/{_NAME}/tag", images.tag),
    ("GET", f"/images/{_NAME}/get", images.get_one), ("DELETE", f"/images/{_NAME}", images.remove),
    ("GET", f"/distribution/{_NAME}/json", images.distribution),
    ("GET", "/volumes", netvol.volume_list), ("POST", "/volumes/create", netvol.volume_create),
    ("POST", "/volumes/prune", netvol.volume_prune),
    ("GET", f"/volumes/{_NAME}", netvol.volume_inspect), ("DELETE", f"/volumes/{_NAME}", netvol.volume_remove),
    ("GET", "/networks", netvol.network_list), ("POST", "/networks/create", netvol.network_create),
    ("POST", "/networks/prune", netvol.network_prune),
    ("GET", f"/networks/{_ID}", netvol.network_inspect), ("DELETE", f"/networks/{_ID}", netvol.network_remove),
    ("POST", f"/networks/{_ID}/connect", netvol.network_connect),
    ("POST", f"/networks/{_ID}/disconnect", netvol.network_connect),
]

ROUTES = [(method, re.compile(pattern + "/?$"), handler) for method, pattern, handler in ROUTES_TEXT]
#: Parts of docker's API that belong to features rootlet does not have (swarm, plugins).
UNSUPPORTED = re.compile(r"^/(swarm|nodes|services|tasks|secrets|configs|plugins|session|grpc)(/|$)")
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


class Context:
    """What the requests of one connection share: the store root and, once asked for, the engine."""

    def __init__(self, root: str, env: dict[str, str], trace: bool = False) -> None:
        self.root = root
        self.env = env
        self.trace = trace
        self._engine = None

    @property
    def engine(self):  # -> Engine
        if self._engine is None:
            from rootlet.runtime.engine import Engine

            self._engine = Engine(self.root, self.env)
        return self._engine


def dispatch(req: Request, ctx: Context) -> None:
    """Answer one request (errors included); raises only ClientGone."""
    started = time.monotonic() if ctx.trace else 0.0
    try:
        _route(req, ctx)
    except ClientGone:
        raise
    except HttpError as exc:
        if not exc.keep:
            req.keep_alive = False
        _fail(req, exc.status, exc.message, None)
    except RootletError as exc:
        status, message, hint = error_doc(exc)
        _fail(req, status, message, hint)
    except OSError as exc:
        _fail(req, 500, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), None)
    except Exception as exc:  # noqa: BLE001 - the one boundary: a bug is a 500, never a dead connection
        if ctx.trace:
            import traceback

            traceback.print_exc()
        _fail(req, 500, f"internal error: {type(exc).__name__}: {exc}", "report it, with the request that caused it")
    finally:
        if ctx.trace:  # --log-level debug: one line per request on the service's stderr
            sys.stderr.write(f"{req.method} {req.target} {req.status or '-'} "
                             f"{(time.monotonic() - started) * 1000:.1f} ms\n")


def _fail(req: Request, status: int, message: str, hint: str | None) -> None:
    if req.responded:
        return  # a stream already under way: it carries its own error, or is cut short
    if not req.drain():
        req.keep_alive = False
    req.send_error(status, message, hint)


def _route(req: Request, ctx: Context) -> None:
    path = req.path
    match = _VERSIONED.match(path)
    if match:
        version = (int(match.group(1)), int(match.group(2)))
        path = match.group(3)
        if version > API_VERSION:
            raise HttpError(400, f"client version {version[0]}.{version[1]} is too new. Maximum supported API "
                            f"version is {API_VERSION[0]}.{API_VERSION[1]}", keep=True)
        if version < MIN_API_VERSION:
            raise HttpError(400, f"client version {version[0]}.{version[1]} is too old. Minimum supported API "
                            f"version is {MIN_API_VERSION[0]}.{MIN_API_VERSION[1]}, please upgrade your client "
                            "to a newer version", keep=True)
        req.api_version = version
    if UNSUPPORTED.match(path):
        raise HttpError(503, "rootlet is not a swarm manager and has no plugins: this part of docker's API is not "
                        "served", keep=True)
    allowed = False
    for method, pattern, handler in ROUTES:
        found = pattern.match(path)
        if not found:
            continue
        if method != req.method:
            allowed = True
            continue
        req.params = found.groupdict()
        handler(req, ctx)  # type: ignore[operator]
        return
    if allowed:
        raise HttpError(405, f"method {req.method} not allowed for {path}", keep=True)
    raise HttpError(404, "page not found", keep=True)
