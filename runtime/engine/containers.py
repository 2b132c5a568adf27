"""The engine's container verbs: create, run, start, stop, kill, wait, rm, restart, rename, ps,
logs, exec, cp, top, port, inspect, container prune.

Verbs that act on several containers return one ``ContainerResult`` per name given, in order, with
the error of each that failed; the others still proceed (podman's behaviour).
"""

from __future__ import annotations

from rootlet.registry.errors import ContainerNotFound, ImageNotFound, RootletError, TransferError, UsageError
from rootlet.runtime.engine.options import (
    PS_SORT_KEYS, PULL_POLICIES, CopyOptions, ExecOptions, InspectOptions, KillOptions, LogsOptions, PortOptions, PsOptions,
    WAIT_CONDITIONS, RenameOptions, RestartOptions, RmOptions, RunOptions, StartOptions, StopOptions, TopOptions,
    WaitOptions)
from rootlet.runtime.engine.reports import (ContainerResult, ContainerSummary, CreateReport, InspectReport,
                                            PortReport, TopReport)

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import BinaryIO

    from rootlet.registry.store import ImageRecord, ImageStore
    from rootlet.runtime.container.store import ContainerStore
    from rootlet.runtime.image.pull import PullProgress
    from rootlet.runtime.lifecycle.logfile import LogRecord


class ContainerVerbs:
    """Mixed into ``Engine`` (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore
    env: Mapping[str, str]
    overlay: str

    @property
    def containers(self) -> ContainerStore:
        from rootlet.runtime.container.store import ContainerStore

        return ContainerStore(self.images_store)

    # --- create and run ----------------------------------------------------------------------------

    def create(self, opts: RunOptions, progress: PullProgress | None = None) -> CreateReport:
        """Create a container (pulling its image as ``opts.pull`` says); nothing runs yet."""
        from rootlet.runtime.container.create import create_container, prepare, write_cidfile
        from rootlet.runtime.system.events import container_event

        prepared = prepare(opts, self.env)
        image = self._find_or_pull(opts, progress)
        if opts.replace and opts.name and self.container_exists(opts.name):
            from rootlet.runtime.lifecycle.stop import remove_container

            remove_container(self.images_store, self.containers.resolve(opts.name), force=True)
        cfg, warnings = create_container(self.images_store, opts, prepared, image, opts.overlay or self.overlay)
        container_event(self.images_store.root, cfg, "create")
        if opts.cidfile:
            try:
                write_cidfile(opts.cidfile, cfg.id)
            except BaseException:
                self._remove_quietly(cfg.id)
                raise
        return CreateReport(cfg.id, cfg.name, warnings)

    def run(self, opts: RunOptions, progress: PullProgress | None = None,
            notify: Callable[[str], None] | None = None) -> CreateReport | int:
        """Create a container and run it: with ``detach`` under a monitor (returns its
        ``CreateReport`` once it runs), else in the foreground attached to this process's stdio
        (returns its exit code, docker's rules: 125 rootlet, 126/127 the command, 128+N a signal).
        ``rm`` removes it at the end, also when it fails to start. ``notify`` receives one-line notices
        for the user while a foreground container runs (a second Ctrl-C stops it)."""
        monitor = None
        keep_fds = tuple(range(3, 3 + opts.preserve_fds))
        if opts.detach:
            from rootlet.runtime.lifecycle.detach import MonitorFork

            # Forked first: it imports what a monitor needs while the container is created.
            monitor = MonitorFork(self.images_store.root, keep_fds)
        try:
            created = self.create(opts, progress)
        except BaseException:
            if monitor is not None:
                monitor.cancel()
            raise
        cid = created.id
        try:
            if monitor is not None:
                from rootlet.runtime.lifecycle.detach import start_detached

                start_detached(self.images_store, cid, keep_fds, monitor)
                return created
            from rootlet.runtime.lifecycle.foreground import run_foreground

            for warning in (created.warnings if notify is not None else ()):
                notify(f"Warning: {warning}")
            streams = opts.attach or (("stdin",) if opts.interactive else ()) + ("stdout", "stderr")
            return run_foreground(self.images_store, cid, interactive="stdin" in streams, sig_proxy=opts.sig_proxy,
                                  keep_log=not opts.rm, notify=notify, streams=streams,
                                  keep_fds=keep_fds)
        except BaseException:
            if opts.rm and opts.detach:  # it never ran: nothing is left to remove it
                self._remove_quietly(cid)
            raise
        finally:
            if opts.rm and not opts.detach:
                self._remove_quietly(cid)

    def _remove_quietly(self, cid: str) -> None:
        from rootlet.runtime.lifecycle.stop import remove_container

        try:
            remove_container(self.images_store, cid, force=True, volumes=True)
        except (RootletError, OSError):
            pass

    def _find_or_pull(self, opts: RunOptions, progress: PullProgress | None) -> ImageRecord:
        """The image to run, pulled according to ``--pull`` (podman's policies)."""
        store = self.images_store
        if opts.pull not in PULL_POLICIES:
            raise UsageError(f"invalid --pull policy {opts.pull!r}", "use always, missing, never or newer")
        local: ImageRecord | None = None
        if store.exists():
            try:
                local = store.resolve(opts.image)
            except ImageNotFound:
                pass
        if opts.platform and local is not None:
            from rootlet.registry.manifest import Platform

            if not Platform.parse(opts.platform).matches(Platform.parse(local.platform)):
                local = None
        if opts.pull == "never":
            if local is None:
                raise ImageNotFound(f"{opts.image}: image not known", "pull it first, or drop --pull=never")
            return local
        if opts.pull == "missing" and local is not None:
            return local
        try:
            return self.pull_record(opts.pull_options(), progress)  # type: ignore[attr-defined]
        except TransferError:
            if opts.pull == "newer" and local is not None:
                return local
            raise

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, opts: StartOptions, notify: Callable[[str], None] | None = None) -> list[ContainerResult]:
        """Start containers in the background (a running one is left as it is), or with ``attach``
        one container in the foreground: its result then carries the exit code (``notify`` as for
        ``run``)."""
        if opts.attach or opts.interactive:
            if len(opts.names) != 1:
                raise UsageError("start -a/-i takes exactly one container")
            from rootlet.runtime.lifecycle.foreground import run_foreground

            cid = self.containers.resolve(opts.names[0])
            code = run_foreground(self.images_store, cid, interactive=opts.interactive, sig_proxy=opts.sig_proxy,
                                  notify=notify)
            return [ContainerResult(opts.names[0], cid, exit_code=code)]
        names = opts.names
        if opts.all:
            if names:
                raise UsageError("--all and container names cannot be combined")
            names = tuple(s.id for s in self.ps(PsOptions(all=True, filters=opts.filters)) if s.status != "running")
        elif opts.filters:
            raise UsageError("start --filter needs --all", "rootlet start --all --filter status=exited")
        return self._each(names, self._start_one, empty_ok=opts.all)

    def _start_one(self, cid: str) -> None:
        """Start one container in the background; one created with ``--rm`` that cannot start is
        removed, as ``run --rm`` removes it (docker's rule: nothing is left of an auto-remove container)."""
        from rootlet.registry.errors import ContainerStartError
        from rootlet.runtime.lifecycle.detach import start_detached

        try:
            start_detached(self.images_store, cid)
        except ContainerStartError:
            if self.containers.config(cid).auto_remove:
                self._remove_quietly(cid)
            raise

    def stop(self, opts: StopOptions) -> list[ContainerResult]:
        """Stop containers: their stop signal, then SIGKILL after the timeout."""
        from rootlet.runtime.lifecycle.stop import stop_container

        if opts.timeout is not None and opts.timeout < 0:
            raise UsageError("--time must not be negative")
        names = self._all_or(opts.names, opts.all, running_only=True)
        return self._each(names, lambda cid, notes: stop_container(self.images_store, cid, timeout=opts.timeout,
                                                                   notes=notes), empty_ok=opts.all, notes=True,
                          ignore_missing=opts.ignore)

    def kill(self, opts: KillOptions) -> list[ContainerResult]:
        """Send a signal (name or number) to running containers."""
        from rootlet.runtime.container.flags import parse_signal
        from rootlet.runtime.lifecycle.stop import kill_container

        num = parse_signal(opts.signal, "--signal")
        names = self._all_or(opts.names, opts.all, running_only=True)
        return self._each(names, lambda cid: kill_container(self.images_store, cid, num), empty_ok=opts.all)

    def wait(self, opts: WaitOptions) -> list[ContainerResult]:
        """Wait until containers meet a condition (podman's; by default: not running); each result
        carries the exit code (-1 for a missing container with ``ignore``, as podman prints)."""
        from rootlet.runtime.lifecycle.stop import wait_container

        conditions = opts.conditions or ("stopped",)
        for condition in conditions:
            if condition not in WAIT_CONDITIONS:
                hint = "rootlet cannot pause containers" if condition == "paused" else None
                raise UsageError(f"invalid --condition {condition!r}: use one of {', '.join(WAIT_CONDITIONS)}", hint)
        if not opts.interval > 0:
            raise UsageError(f"invalid --interval {opts.interval!r}: must be a positive number of seconds")
        results = self._each(opts.names, lambda cid: wait_container(self.images_store, cid, conditions, opts.interval),
                             code=True, ignore_missing=opts.ignore)
        return [r.replace(exit_code=-1) if r.id == "" and r.error is None else r for r in results]

    def rm(self, opts: RmOptions) -> list[ContainerResult]:
        """Remove containers (``force`` stops running ones first; ``volumes`` removes anonymous volumes)."""
        from rootlet.runtime.lifecycle.stop import remove_container

        if opts.timeout is not None and (not opts.force or opts.timeout < 0):
            raise UsageError("--time needs --force and a number of seconds ≥ 0",
                             "rootlet rm -f -t 5 CTR: the stop signal, then SIGKILL after 5 seconds")
        names = self._all_or(opts.names, opts.all, running_only=False)
        return self._each(names, lambda cid: remove_container(self.images_store, cid, force=opts.force,
                                                              volumes=opts.volumes, timeout=opts.timeout),
                          empty_ok=opts.all, ignore_missing=opts.ignore or opts.force)  # podman: -f ignores missing

    def restart(self, opts: RestartOptions) -> list[ContainerResult]:
        """Stop (if running) and start containers again, in the background."""
        from rootlet.runtime.lifecycle.detach import start_detached
        from rootlet.runtime.lifecycle.stop import stop_container

        def one(cid: str, notes: list[str]) -> None:
            stop_container(self.images_store, cid, timeout=opts.timeout, notes=notes)
            start_detached(self.images_store, cid)

        return self._each(opts.names, one, notes=True)

    def container_exists(self, name: str) -> bool:
        """Whether ``name`` (a name, id or unique id prefix) is a container (``container exists``)."""
        try:
            self.containers.resolve(name)
        except ContainerNotFound:
            return False
        return True

    def rename(self, opts: RenameOptions) -> None:
        from rootlet.runtime.system.events import container_event

        containers = self.containers
        cid = containers.resolve(opts.container)
        containers.rename(cid, opts.new_name)
        container_event(self.images_store.root, containers.config(cid), "rename")

    def container_prune(self) -> list[str]:
        """Remove every container that is not running; their ids."""
        from rootlet.runtime.lifecycle.stop import prune_containers

        return prune_containers(self.images_store)

    # --- looking at containers -------------------------------------------------------------------

    def ps(self, opts: PsOptions = PsOptions()) -> list[ContainerSummary]:
        """Containers, newest first: running ones, or ``all``; ``filters`` and ``last`` as docker's."""
        from rootlet.runtime.container.inspect import list_containers, ports_of, rfc3339

        if not self.images_store.exists():
            return []
        if opts.sort not in PS_SORT_KEYS:
            raise UsageError(f"invalid --sort {opts.sort!r}", f"use one of {', '.join(PS_SORT_KEYS)}")
        if opts.sort == "size" and not opts.size:
            raise UsageError("--sort size needs --size")
        rows = list_containers(self.images_store, all_=opts.all or opts.last is not None, filters=opts.filters)
        if opts.last is not None:
            rows = rows[:max(0, opts.last)]
        summaries = [ContainerSummary(
            id=cfg.id, name=cfg.name, image=cfg.image_name, image_id=cfg.image_id, command=list(cfg.argv),
            created=cfg.created, created_at=rfc3339(cfg.created), status=state.shown_status,
            started_at=state.started_at, finished_at=state.finished_at, exit_code=state.exit_code,
            pid=state.pid if state.status == "running" else 0, ports=ports_of(cfg, state), labels=dict(cfg.labels),
            auto_remove=cfg.auto_remove, restart_count=state.restart_count,
            mounts=[m.destination for m in cfg.mounts], health=self._health_word(cfg), pod=cfg.pod,
            networks=[r.network for r in cfg.networks]) for cfg, state in rows]
        if opts.size:
            summaries = self._with_sizes(summaries)
        key = {"command": lambda s: " ".join(s.command), "id": lambda s: s.id, "image": lambda s: s.image,
               "names": lambda s: s.name, "status": lambda s: s.status, "size": lambda s: s.rw_size or 0}.get(opts.sort)
        return summaries if key is None else sorted(summaries, key=key)  # created/runningfor: newest first

    def _health_word(self, cfg: object) -> str:
        if getattr(cfg, "healthcheck", None) is None:
            return ""
        from rootlet.runtime.container.health import read_health

        health = read_health(self.images_store, cfg.id)  # type: ignore[attr-defined]
        return health.status if health is not None else ""

    def _with_sizes(self, rows: list[ContainerSummary]) -> list[ContainerSummary]:
        """``rows`` with their sizes: the upper directory's bytes (counted as root of a user namespace,
        which may enter every directory of it), plus the image's for ``root_size``."""
        from rootlet.runtime.linux.trees import tree_size
        from rootlet.runtime.oci.idmap import plan_userns
        from rootlet.runtime.oci.userns import UsernsWorker

        images = self.images_store.load()
        with UsernsWorker(plan_userns()) as worker:
            out = []
            for r in rows:
                rw = worker.call(tree_size, self.containers.path(r.id, "upper"))
                image = images.get(r.image_id)
                out.append(r.replace(rw_size=rw, root_size=rw + (image.size if image else 0)))
        return out

    def logs(self, opts: LogsOptions) -> Iterator[tuple[str, str, LogRecord]]:
        """The containers' output records as (container id, name, record), then, with ``follow``,
        new ones until they stop: several containers one after the other, or as their records
        come with ``follow``. Every name is resolved before anything is read."""
        from rootlet.runtime.lifecycle.logfile import parse_since
        from rootlet.runtime.lifecycle.logs import stream_many

        if opts.tail is not None and opts.tail < 0:
            raise UsageError(f"invalid --tail {opts.tail}", "give a number of lines, or 'all'")
        since = parse_since(opts.since, "--since") if opts.since else None
        until = parse_since(opts.until, "--until") if opts.until else None
        if not opts.containers:
            raise UsageError("give at least one container name or id")
        containers = self.containers
        names = {cid: containers.config(cid).name for cid in (containers.resolve(n) for n in opts.containers)}
        records = stream_many(self.images_store, list(names), follow=opts.follow, tail=opts.tail, since=since,
                              until=until)
        return ((cid, names[cid], rec) for cid, rec in records)

    def exec(self, opts: ExecOptions) -> int:
        """Run a command in a running container, attached to this process's stdio; its exit code
        (0 at once with ``detach``)."""
        from rootlet.runtime.container.exec import exec_in_container

        return exec_in_container(self.images_store, opts, self.env)

    def cp(self, opts: CopyOptions, stream: BinaryIO | None = None) -> list[str]:
        """Copy files between a container (running or not) and the host, or a tar stream between
        it and ``stream`` (the front end's stdin or stdout, for ``-``); returns warnings to show."""
        from rootlet.runtime.container.cp import copy, request_for

        if stream is not None:
            stream.flush()
        return copy(self.images_store, request_for(opts, stream.fileno() if stream is not None else -1))

    def top(self, opts: TopOptions) -> TopReport:
        """The processes of a running container, in the columns asked for."""
        from rootlet.runtime.container.top import DEFAULT_COLUMNS, container_processes, columns_for

        columns = columns_for(opts.descriptors) if opts.descriptors else list(DEFAULT_COLUMNS)
        rows = container_processes(self.images_store, self.containers.resolve(opts.container))
        return TopReport(columns, [{c: r[c] for c in columns} for r in rows])

    def port(self, opts: PortOptions) -> PortReport:
        """A running container's published ports, or the host addresses of one of them."""
        from rootlet.runtime.container.inspect import container_ports

        pairs = container_ports(self.images_store, self.containers.resolve(opts.container))
        if opts.private is None:
            return PortReport(pairs)
        key = opts.private if "/" in opts.private else f"{opts.private}/tcp"
        hits = [(inner, outer) for inner, outer in pairs if inner == key]
        if not hits:
            raise UsageError(f"no public port {key!r} published for {opts.container}")
        return PortReport(hits)

    def inspect(self, opts: InspectOptions) -> InspectReport:
        """docker's inspect documents: containers first, then images (``type`` narrows it)."""
        if opts.type not in ("all", "container", "image"):
            raise UsageError(f"invalid --type {opts.type!r}", "use container, image or all")
        report = InspectReport()
        containers = self.containers
        for name in opts.names:
            try:
                if opts.type != "image":
                    try:
                        cid = containers.resolve(name)
                    except ContainerNotFound:
                        if opts.type == "container":
                            raise
                    else:
                        from rootlet.runtime.container.inspect import inspect_container  # not for images

                        report.docs.append(inspect_container(self.images_store, cid))
                        continue
                from rootlet.runtime.image.catalog import inspect_image  # not loaded for containers

                report.docs.append(inspect_image(self.images_store, name))
            except RootletError as exc:
                report.errors.append(exc)
        return report

    # --- helpers ---------------------------------------------------------------------------------

    def _all_or(self, names: tuple[str, ...], all_: bool, running_only: bool) -> tuple[str, ...]:
        if not all_:
            return names
        if names:
            raise UsageError("--all and container names cannot be combined")
        return tuple(s.id for s in self.ps(PsOptions(all=not running_only)))

    def _each(self, names: tuple[str, ...], action: Callable[..., object], code: bool = False,
              empty_ok: bool = False, notes: bool = False, ignore_missing: bool = False) -> list[ContainerResult]:
        """Apply ``action`` to each named container; one result per name, failures included. With
        ``notes`` the action also gets a list to put warnings in. With ``ignore_missing`` a name
        that is no container, or a container removed meanwhile, gives a result without id or
        error (podman's ``--ignore``)."""
        if not names and not empty_ok:
            raise UsageError("give at least one container name or id")
        containers = self.containers
        results = []
        for name in names:
            cid = ""
            warnings: list[str] = []
            try:
                cid = containers.resolve(name)
                value = action(cid, warnings) if notes else action(cid)
                results.append(ContainerResult(name, cid, exit_code=value if code else None,  # type: ignore[arg-type]
                                               warnings=warnings))
            except ContainerNotFound as exc:
                # With ignore_missing a container that another command removed while this one
                # acted on it is missing too (two `rm -f` racing: both exit 0, as podman's).
                if ignore_missing:
                    results.append(ContainerResult(name, "", warnings=warnings))
                else:
                    results.append(ContainerResult(name, cid, error=exc, warnings=warnings))
            except RootletError as exc:
                results.append(ContainerResult(name, cid, error=exc, warnings=warnings))
        return results
