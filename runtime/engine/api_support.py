"""The engine's verbs for front ends that serve clients over a connection (the REST API): attach to
a detached container's streams, resize its pty, exec in two steps (create, then start relayed to
the client), docker's wait conditions, a path's description inside a container, and spool files.

Several of these work in two steps, so that a front end can answer its client in between: the
first step (``attach``, ``exec_start``, ``wait_condition``) checks everything and takes its place
(a rendezvous for the container's next start, the baseline of a wait), raising what the client
must be told; the session it returns then does the long part (``relay(client)``, ``wait()``).
``client`` is the front end's side of the connection (``rootlet.runtime.lifecycle.streams``).

Exec instances are records in their container's directory (``execs/<id>.json``), so any process
of the front end can start, inspect or resize one, and they go with their container.
"""

from __future__ import annotations

from rootlet.registry.errors import ContainerNotFound, ContainerStateError, UsageError
from rootlet.registry.record import Record
from rootlet.runtime.engine.options import API_WAIT_CONDITIONS, AttachOptions, ExecCreateOptions, ExecOptions

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, BinaryIO

    from rootlet.registry.store import ImageStore
    from rootlet.runtime.container.cp import PathStat
    from rootlet.runtime.container.store import ContainerStore

#: How often a wait looks whether its client is still there.
WAIT_SLICE = 1.0


class ExecRecord(Record):
    """One exec instance: what to run and where (``options``), which streams a start relays, and
    what became of it (``started``, ``running``, the helper's ``pid``, ``exit_code``)."""

    _nested = {"options": ExecOptions}

    id: str
    container: str
    options: ExecOptions
    stdout: bool = True
    stderr: bool = True
    detach_keys: str = ""
    started: bool = False
    running: bool = False
    pid: int = 0
    exit_code: int | None = None


class ApiVerbs:
    """Mixed into ``Engine`` (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore
    env: Mapping[str, str]
    containers: ContainerStore

    # --- attach and resize -------------------------------------------------------------------------

    def attach(self, opts: AttachOptions) -> AttachSession:
        """Take a place at a detached container's streams: now if it runs, else at its next start
        (docker's attach-then-start). ``ContainerStateError`` for a container a foreground
        ``rootlet run`` owns."""
        from rootlet.runtime.lifecycle.streams import Attachment

        containers = self.containers
        cid = containers.resolve(opts.container)
        cfg = containers.config(cid)
        if not (opts.stream or opts.logs):
            raise UsageError("attach needs stream or logs")
        return AttachSession(self, cid, opts, cfg.stdin_once, cfg.tty,
                             Attachment(containers, cid) if opts.stream else None)

    def resize(self, container: str, rows: int, cols: int) -> None:
        """Set a running detached container's pty size (nothing for one without a tty)."""
        from rootlet.runtime.lifecycle.streams import resize

        _check_size(rows, cols)
        containers = self.containers
        resize(containers, containers.resolve(container), rows, cols)

    # --- exec in two steps -------------------------------------------------------------------------

    def exec_create(self, opts: ExecCreateOptions) -> str:
        """Record an exec instance in a running container; its id (docker's ``POST /exec``)."""
        import os

        from rootlet.registry.fsutil import atomic_write_json
        from rootlet.runtime.container import flags

        ex = opts.exec
        if not ex.command:
            raise UsageError("exec needs a command", "give Cmd")
        if ex.workdir is not None and not ex.workdir.startswith("/"):
            raise UsageError(f"invalid working directory {ex.workdir!r}: must be an absolute path")
        if ex.user is not None:
            flags.check_user(ex.user, "User")
        containers = self.containers
        cid = containers.resolve(ex.container)
        if containers.refresh(cid).status != "running":
            raise ContainerStateError(f"container {containers.config(cid).name} is not running",
                                      "start it first")
        record = ExecRecord(id=os.urandom(32).hex(), container=cid, options=ex.replace(container=cid),
                            stdout=opts.stdout, stderr=opts.stderr, detach_keys=opts.detach_keys)
        directory = containers.path(cid, "execs")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        atomic_write_json(os.path.join(directory, record.id + ".json"), record.to_json(), durable=False)
        return record.id

    def exec_inspect(self, exec_id: str) -> ExecRecord:
        """The exec instance's record (``ContainerNotFound`` for an unknown id)."""
        from rootlet.registry.fsutil import read_json

        path = self._exec_path(exec_id)
        doc = read_json(path, default=None)
        if not isinstance(doc, dict):
            raise ContainerNotFound(f"no such exec instance: {exec_id}")
        return ExecRecord.from_json(doc)

    def exec_start(self, exec_id: str, detach: bool = False) -> ExecSession:
        """Claim the exec instance for one start (a second start is refused) and make its resize
        socket; the session's ``relay(client)`` (or ``run_detached()``) runs it."""
        from rootlet.registry.fsutil import flocked

        path = self._exec_path(exec_id)
        with flocked(path + ".lock"):
            record = self.exec_inspect(exec_id)
            if record.started:
                raise ContainerStateError(f"exec instance {exec_id[:12]} has already been started")
            record = record.replace(started=True)
            self._save_exec(record)
        return ExecSession(self, record, detach)

    def exec_resize(self, exec_id: str, rows: int, cols: int) -> None:
        """Set the pty size of a started exec instance (nothing for one without a tty)."""
        import os

        from rootlet.runtime.lifecycle.streams import send_resize

        _check_size(rows, cols)
        record = self.exec_inspect(exec_id)
        if not record.options.tty:
            return
        if not record.running:
            raise ContainerStateError(f"exec instance {exec_id[:12]} is not running")
        dir_fd = os.open(self.containers.path(record.container, "execs"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if not send_resize(dir_fd, record.id + ".sock", rows, cols):
                raise ContainerStateError(f"exec instance {exec_id[:12]} is not running")
        finally:
            os.close(dir_fd)

    def _exec_path(self, exec_id: str) -> str:
        import glob
        import os

        if len(exec_id) != 64 or any(c not in "0123456789abcdef" for c in exec_id):
            raise ContainerNotFound(f"no such exec instance: {exec_id}")
        hits = glob.glob(os.path.join(self.containers.root, "*", "execs", exec_id + ".json"))
        if not hits:
            raise ContainerNotFound(f"no such exec instance: {exec_id}")
        return hits[0]

    def _save_exec(self, record: ExecRecord) -> None:
        import os

        from rootlet.registry.fsutil import atomic_write_json

        path = os.path.join(self.containers.path(record.container, "execs"), record.id + ".json")
        if os.path.isdir(os.path.dirname(path)):  # not when the container went meanwhile
            atomic_write_json(path, record.to_json(), durable=False)

    # --- docker's wait conditions ------------------------------------------------------------------

    def wait_condition(self, container: str, condition: str = "not-running") -> WaitSession:
        """A wait for one of docker's conditions, its baseline taken now (``next-exit`` of a
        container that runs or ran before is its next exit, not the last one)."""
        if condition not in API_WAIT_CONDITIONS:
            raise UsageError(f"invalid wait condition {condition!r}", f"use one of {', '.join(API_WAIT_CONDITIONS)}")
        containers = self.containers
        cid = containers.resolve(container)
        return WaitSession(self.images_store, containers, cid, condition, containers.refresh(cid))

    # --- files ---------------------------------------------------------------------------------------

    def path_stat(self, container: str, path: str) -> PathStat:
        """What ``path`` is inside the container, running or not (``PathNotFound`` when nothing)."""
        from rootlet.runtime.container.cp import stat_path

        return stat_path(self.images_store, container, path)

    def spool(self) -> BinaryIO:
        """An anonymous temporary file in the store's tmp/ (on disk, gone when closed), for a
        request body the front end must hold before a verb reads it."""
        import tempfile

        self.images_store.ensure()
        return tempfile.TemporaryFile(dir=self.images_store.tmp)  # noqa: SIM115 - the caller closes it


def _check_size(rows: int, cols: int) -> None:
    if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
        raise UsageError(f"invalid terminal size {rows}x{cols}", "give rows and columns from 0 to 65535")


class AttachSession:
    """An attach in progress (made by ``ApiVerbs.attach``)."""

    def __init__(self, engine: Any, cid: str, opts: AttachOptions, stdin_once: bool, tty: bool,
                 attachment: Any) -> None:
        self.engine = engine
        self.id = cid
        self.opts = opts
        self.stdin_once = stdin_once
        self.tty = tty
        self.attachment = attachment

    def relay(self, client: Any) -> None:
        """The log first with ``logs``, then the container's streams until its run ends or the
        client leaves."""
        opts = self.opts
        try:
            if opts.logs:
                from rootlet.runtime.engine.options import LogsOptions

                wanted = {"stdout": opts.stdout, "stderr": opts.stderr}
                for _cid, _name, rec in self.engine.logs(LogsOptions(containers=(self.id,))):
                    if wanted.get(rec.stream):
                        client.write(rec.stream, rec.data + (b"" if rec.partial else b"\n"))
            if self.attachment is not None:
                self.attachment.relay(client, opts.stdin, opts.stdout, opts.stderr, self.stdin_once)
        finally:
            self.close()

    def close(self) -> None:
        if self.attachment is not None:
            self.attachment.close()


class ExecSession:
    """A claimed exec instance (made by ``ApiVerbs.exec_start``): its resize socket listens."""

    def __init__(self, engine: Any, record: ExecRecord, detach: bool) -> None:
        self.engine = engine
        self.record = record
        self.detach = detach
        self.control = None
        if record.options.tty and not detach:
            import os
            import socket

            from rootlet.runtime.lifecycle.attach import socket_path

            dir_fd = os.open(engine.containers.path(record.container, "execs"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                self.control.bind(socket_path(dir_fd, record.id + ".sock"))
                self.control.listen(8)
            finally:
                os.close(dir_fd)

    @property
    def tty(self) -> bool:
        return self.record.options.tty

    def run_detached(self) -> None:
        """Start it without a client (docker's ``Detach``); returns once it runs."""
        from rootlet.runtime.container.exec import exec_in_container

        try:
            exec_in_container(self.engine.images_store, self.record.options.replace(detach=True, interactive=False),
                              self.engine.env)
        finally:
            self.close()

    def relay(self, client: Any) -> int:
        """Run it, relaying its stdio to and from ``client``; its exit code, also recorded."""
        from rootlet.runtime.container.exec import ExecStreams, exec_in_container
        from rootlet.runtime.lifecycle.streams import relay_process

        engine = self.engine
        record = self.record
        wanted = {"stdout": record.stdout, "stderr": record.stderr}

        class Filtered:
            """The client, given only the streams the exec instance asked for."""

            def __getattr__(self, name: str) -> Any:
                return getattr(client, name)

            def write(self, stream: str, data: bytes) -> None:
                if wanted.get(stream):
                    client.write(stream, data)

        def copy(streams: ExecStreams) -> None:
            engine._save_exec(record.replace(running=True, pid=streams.pid))
            relay_process(Filtered(), streams.outputs, streams.exited_fd, stdin=streams.stdin, master=streams.master,
                          control=self.control)

        code = 126
        try:
            code = exec_in_container(engine.images_store, record.options.replace(detach=False), engine.env,
                                     relay_to=copy)
            return code
        except BaseException as exc:
            code = getattr(exc, "exit_code", 126)
            raise
        finally:
            engine._save_exec(record.replace(running=False, exit_code=code))
            self.close()

    def close(self) -> None:
        if self.control is not None:
            import os

            self.control.close()
            self.control = None
            try:
                os.unlink(os.path.join(self.engine.containers.path(self.record.container, "execs"),
                                       self.record.id + ".sock"))
            except OSError:
                pass


class WaitSession:
    """A wait for one of docker's conditions (made by ``ApiVerbs.wait_condition``)."""

    def __init__(self, store: ImageStore, containers: ContainerStore, cid: str, condition: str, baseline: Any) -> None:
        self.store = store
        self.containers = containers
        self.id = cid
        self.condition = condition
        self.baseline = baseline

    def wait(self, keep_going: Callable[[], bool] = lambda: True) -> int | None:
        """Block until the condition holds; the container's exit code (0 when it never ran), or None
        as soon as ``keep_going()`` says the client left (it is asked about once a second)."""
        base = self.baseline
        if self.condition == "not-running" and base.status not in ("running", "restarting"):
            return base.exit_code or 0
        if self.condition == "removed" and base.status == "exited":
            code = base.exit_code or 0
        else:
            if base.status not in ("running", "restarting") and not self._started_since(keep_going):
                return None
            code = self._exit(keep_going)
            if code is None or self.condition != "removed":
                return code
        return code if self._removed(keep_going) else None

    def _started_since(self, keep_going: Callable[[], bool]) -> bool:
        """Wait until the container started after the baseline (or went away); False when the
        client left first."""
        import time

        delay = 0.002
        slice_end = time.monotonic() + WAIT_SLICE
        while True:
            state = self.containers.refresh(self.id)
            if state.status in ("running", "restarting", "unknown") or state.started_at != self.baseline.started_at:
                return True
            if time.monotonic() > slice_end:
                if not keep_going():
                    return False
                slice_end = time.monotonic() + WAIT_SLICE
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _exit(self, keep_going: Callable[[], bool]) -> int | None:
        """The exit code of the run under way (or just over), or None when the client left."""
        from rootlet.runtime.lifecycle.stop import wait_container

        while True:
            try:
                return wait_container(self.store, self.id, ("exited",), timeout=WAIT_SLICE)
            except ContainerStateError:  # the slice is over: is anyone still waiting?
                if not keep_going():
                    return None
            except ContainerNotFound:
                return 0  # removed without a recorded exit (rm -f of a container that never ran)

    def _removed(self, keep_going: Callable[[], bool]) -> bool:
        import os
        import time

        delay = 0.002
        slice_end = time.monotonic() + WAIT_SLICE
        while os.path.exists(self.containers.path(self.id, "config.json")):
            if time.monotonic() > slice_end:
                if not keep_going():
                    return False
                slice_end = time.monotonic() + WAIT_SLICE
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return True
