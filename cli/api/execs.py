"""Exec endpoints: ``POST /containers/{id}/exec`` (create), ``/exec/{id}/start`` (the hijacked
stream, or detached), ``/exec/{id}/resize``, ``GET /exec/{id}/json``."""

from __future__ import annotations

from rootlet.cli.api import query
from rootlet.cli.api.http import ClientGone, HttpError, Request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootlet.cli.api.routes import Context

CREATE_FIELDS = {"AttachStdin", "AttachStdout", "AttachStderr", "DetachKeys", "Detach", "Container", "Tty", "Env", "Cmd", "Privileged",
                 "User", "WorkingDir", "ConsoleSize"}
START_FIELDS = {"Detach", "Tty", "ConsoleSize"}


def create(req: Request, ctx: Context) -> None:
    from rootlet.cli.api.streams import detach_sequence
    from rootlet.runtime.engine.options import ExecCreateOptions, ExecOptions

    body = query.object_body(req, required=True)
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r} in the exec configuration", keep=True)
    command = query.strings(body, "Cmd", one_or_list=True)
    if not command:
        raise HttpError(400, "Cmd: the command to run is required", keep=True)
    keys = query.string(body, "DetachKeys") or ""
    detach_sequence(keys or None)  # 400 now rather than at start
    env = [e for e in query.strings(body, "Env") or [] if "=" in e]
    ex = ExecOptions(container=req.params["id"], command=tuple(command),
                     interactive=bool(query.field(body, "AttachStdin", bool)), tty=bool(query.field(body, "Tty", bool)),
                     user=query.string(body, "User") or None, env=tuple(env),
                     workdir=query.string(body, "WorkingDir") or None,
                     privileged=bool(query.field(body, "Privileged", bool)))
    stdout, stderr = query.field(body, "AttachStdout", bool), query.field(body, "AttachStderr", bool)
    exec_id = ctx.engine.exec_create(ExecCreateOptions(exec=ex, stdout=stdout is not False, stderr=stderr is not False,
                                                       detach_keys=keys))
    req.send_json({"Id": exec_id}, 201)


def start(req: Request, ctx: Context) -> None:
    from rootlet.cli.api.streams import HijackedClient, detach_sequence

    body = query.object_body(req)
    unknown = sorted(set(body) - START_FIELDS)
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r} in the exec start configuration", keep=True)
    detach = bool(query.field(body, "Detach", bool))
    session = ctx.engine.exec_start(req.params["id"], detach=detach)
    if detach:
        session.run_detached()
        req.send(200, b"", None)
        return
    keys = detach_sequence(session.record.detach_keys or None)
    conn = req.hijack()
    req.streaming()
    client = HijackedClient(conn, session.tty, keys)
    try:
        session.relay(client)
    except ClientGone:
        return
    except Exception as exc:  # noqa: BLE001 - past the 101 the client can only be told on the stream
        message = getattr(exc, "message", None) or str(exc)
        try:
            client.write("stderr", f"rootlet: exec failed: {message}\n".encode())
        except ClientGone:
            pass


def resize(req: Request, ctx: Context) -> None:
    ctx.engine.exec_resize(req.params["id"], query.integer(req, "h", 0) or 0, query.integer(req, "w", 0) or 0)
    req.send(201, b"", "text/plain; charset=utf-8")


def inspect(req: Request, ctx: Context) -> None:
    rec = ctx.engine.exec_inspect(req.params["id"])
    ex = rec.options
    req.send_json({
        "ID": rec.id, "ContainerID": rec.container, "Running": rec.running,
        "ExitCode": rec.exit_code if rec.started and not rec.running else None,
        "ProcessConfig": {"tty": ex.tty, "entrypoint": ex.command[0], "arguments": list(ex.command[1:]),
                          "privileged": ex.privileged, "user": ex.user or ""},
        "OpenStdin": ex.interactive, "OpenStderr": rec.stderr, "OpenStdout": rec.stdout, "CanRemove": False,
        "DetachKeys": rec.detach_keys, "Pid": rec.pid,
    })
