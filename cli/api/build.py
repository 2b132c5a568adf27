"""``POST /build``: docker's classic builder protocol over ``engine.build``.

The body is the context as a tar (plain or compressed), spooled to the store and unpacked by the
engine; the answer is chunked JSON: ``{"stream": …}`` for the builder's progress lines and the
RUN steps' output (in the order they came), ``{"aux": {"ID": …}}`` with the image, and docker's
error object (its ``code`` the failing step's exit status) when the build fails.

A RUN step's output goes to the building process's stdout and stderr (the engine's contract, as
podman's); here those are a pipe for the build's duration, read by one thread that forwards it.
"""

from __future__ import annotations

import json
import os
import threading

from rootlet.cli.api import query
from rootlet.cli.api.http import ClientGone, HttpError, Request
from rootlet.cli.api.streams import JsonProgress, stream_error
from rootlet.registry.errors import RootletError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootlet.cli.api.routes import Context


def _json_arg(req: Request, name: str) -> dict[str, object]:
    text = req.arg(name)
    if not text or text == "null":
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        raise HttpError(400, f"invalid {name}: not JSON", keep=True) from None
    if not isinstance(doc, dict):
        raise HttpError(400, f"invalid {name}: a JSON object is expected", keep=True)
    return doc


def options(req: Request, context: str):  # -> BuildOptions
    """The engine's build options for docker's query parameters."""
    from rootlet.runtime.engine.options import BuildOptions

    args = [f"{k}={v}" for k, v in _json_arg(req, "buildargs").items() if v is not None]
    labels = [f"{k}={v}" for k, v in _json_arg(req, "labels").items()]
    network = req.arg("networkmode") or "default"
    if network not in ("default", "bridge", "host", "none"):
        raise HttpError(400, f"networkmode {network!r} is not supported (default, host or none)", keep=True)
    dockerfile = req.arg("dockerfile") or None
    if dockerfile is not None:
        norm = os.path.normpath(os.path.join("/", dockerfile)).lstrip("/")
        dockerfile = os.path.join(context, norm)
    pull = req.arg("pull")
    return BuildOptions(context=context, file=dockerfile, tags=tuple(t for t in req.args("t") if t),
                        build_args=tuple(args), target=req.arg("target") or None,
                        no_cache=query.boolean(req, "nocache"),
                        pull="always" if pull is not None and query.boolean(req, "pull") else "missing",
                        platform=req.arg("platform") or None, labels=tuple(labels),
                        quiet=query.boolean(req, "q"), network=None if network in ("default", "bridge") else network,
                        format="docker")


class _Forwarder:
    """fds 1 and 2 of this process on a pipe whose bytes go to the client as ``stream`` lines."""

    def __init__(self, progress: JsonProgress, quiet: bool) -> None:
        self.progress = progress
        self.quiet = quiet
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(self.write_fd, 1)
        os.dup2(self.write_fd, 2)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while True:
            data = os.read(self.read_fd, 1 << 16)
            if not data:
                return
            if not self.quiet and not self.progress.gone:
                try:
                    self.progress.send({"stream": data.decode("utf-8", "replace")})
                except ClientGone:
                    pass

    def say(self, line: str) -> None:
        os.write(1, (line + "\n").encode())

    def close(self) -> None:
        import sys

        sys.stdout.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in (*self.saved, self.write_fd):
            os.close(fd)
        self.thread.join()
        os.close(self.read_fd)


def run_build(req: Request, ctx: Context) -> None:
    engine = ctx.engine
    with engine.spool() as spool:
        for piece in req.body_chunks():  # type: ignore[attr-defined]
            spool.write(piece)
        spool.flush()
        spool.seek(0)
        context = engine.unpack_context(spool.fileno())
    try:
        opts = options(req, context)
        stream = req.start_stream()
        progress = JsonProgress(stream)
        forward = _Forwarder(progress, opts.quiet)
        report = error = None
        try:
            report = engine.build(opts, forward.say)
        except RootletError as exc:
            error = exc
        finally:
            forward.close()
        try:
            if error is not None:
                code = error.exit_code if error.exit_code not in (0, 125) else 1
                progress.send({"errorDetail": {"code": code, "message": error.message}, "error": error.message})
            else:
                assert report is not None
                image_id = "sha256:" + report.image_id.removeprefix("sha256:")
                progress.send({"aux": {"ID": image_id}})
                if opts.quiet:
                    progress.send({"stream": image_id + "\n"})
                else:
                    for warning in report.warnings:
                        progress.send({"stream": f"[Warning] {warning}\n"})
                    # (the builder has said "Successfully tagged …" for each name already)
                    progress.send({"stream": f"Successfully built {image_id[7:19]}\n"})
            stream.close()
        except ClientGone:
            return
    except RootletError as exc:
        if not req.responded:
            raise
        stream_error(stream, exc.message)
    finally:
        engine.remove_context(context)
