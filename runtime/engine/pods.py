"""The engine's pod verbs: pod create, ps, inspect, start, stop, restart, kill, rm, prune, top, exists."""

from __future__ import annotations

import contextlib

from rootlet.registry.errors import PodNotFound, PodStateError, RootletError, UsageError
from rootlet.runtime.engine.options import PodActionOptions, PodCreateOptions
from rootlet.runtime.engine.reports import InspectReport, NamedResult, PodSummary, TopReport
from rootlet.runtime.linux import signals

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootlet.registry.store import ImageStore
    from rootlet.runtime.container.pods import PodConfig, PodStore
    from rootlet.runtime.container.record import ContainerConfig, ContainerState


class PodVerbs:
    """Mixed into ``Engine`` (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore

    @property
    def pods(self) -> PodStore:
        from rootlet.runtime.container.pods import PodStore

        return PodStore(self.images_store)

    def pod_create(self, opts: PodCreateOptions) -> str:
        """Record a pod (nothing runs until it starts); its id."""
        import os
        import time

        from rootlet.runtime.container.flags import parse_labels
        from rootlet.runtime.container.infra import check_pod_network
        from rootlet.runtime.container.pods import SHAREABLE, PodConfig, check_pod_name
        from rootlet.runtime.net.ports import parse_publish
        from rootlet.runtime.system.events import record_event

        share = [s.strip() for s in (opts.share if opts.share is not None else ",".join(SHAREABLE)).split(",")
                 if s.strip()]
        for s in share:
            if s not in SHAREABLE:
                raise UsageError(f"invalid --share {s!r}", "rootlet pods share net, ipc and uts (it makes no cgroups, "
                                 "and each container keeps its own pid namespace)")
        pod_id = os.urandom(32).hex()
        name = check_pod_name(opts.name) if opts.name else f"pod_{pod_id[:8]}"
        network, networks = self._pod_network(opts.network)
        ports = [pm for spec in opts.publish for pm in parse_publish(spec)]
        if ports and network in ("host", "none"):
            raise UsageError(f"a pod with --network {network} cannot publish ports", "drop -p, or the --network")
        if ports and "net" not in share:
            raise UsageError("a pod that does not share its network cannot publish ports", "add net to --share")
        cfg = PodConfig(id=pod_id, name=name, created=time.time(), infra_id=os.urandom(32).hex(), share=share,
                        network=network, networks=networks, ports=ports, hostname=opts.hostname or "",
                        labels=parse_labels(opts.labels))
        check_pod_network(cfg)
        self.pods.create(cfg)
        record_event(self.images_store.root, "pod", "create", id=cfg.id, name=cfg.name)
        return cfg.id

    def _pod_network(self, value: str | None) -> tuple[str, list]:
        from rootlet.runtime.net.networks import NetRequest, NetworkStore

        if value in (None, "", "private", "default", "bridge", "slirp4netns"):
            return "slirp4netns", []
        if value in ("none", "host"):
            return value, []
        if value == "pasta" or ":" in value:
            raise UsageError(f"a pod cannot use --network {value}",
                             "pods use the default network (slirp4netns), user networks, none or host")
        networks = NetworkStore(self.images_store)
        return "bridge", [NetRequest(networks.config(n).name) for n in value.split(",")]

    def pod_ps(self, filters: tuple[str, ...] = ()) -> list[PodSummary]:
        """Every pod, newest first (``filters``: name=, id=, status=, label=)."""
        from rootlet.runtime.container.pods import pod_status

        out = []
        for cfg in self.pods.configs():
            members = self._members(cfg.id)
            row = PodSummary(id=cfg.id, name=cfg.name, status=pod_status(self.pods.state(cfg.id), members),
                             created=cfg.created, infra_id=cfg.infra_id,
                             containers=[(cfg.infra_id, f"{cfg.id[:12]}-infra",
                                          "running" if self.pods.state(cfg.id).alive else "created")]
                             + [(c.id, c.name, s.shown_status) for c, s in members],
                             networks=[r.network for r in cfg.networks], labels=dict(cfg.labels))
            if all(_pod_matches(row, f) for f in filters):
                out.append(row)
        return out

    def pod_inspect(self, names: tuple[str, ...]) -> InspectReport:
        from rootlet.runtime.container.inspect import rfc3339
        from rootlet.runtime.container.pods import inspect_doc

        if not names:
            raise UsageError("pod inspect needs a pod name", "rootlet pod inspect NAME")
        report = InspectReport()
        for name in names:
            try:
                cfg = self.pods.config(name)
                report.docs.append(inspect_doc(cfg, self.pods.state(cfg.id), self._members(cfg.id), rfc3339))
            except PodNotFound as exc:
                report.errors.append(exc)
        return report

    def pod_exists(self, name: str) -> bool:
        return self.pods.exists(name)

    def pod_start(self, opts: PodActionOptions) -> list[NamedResult]:
        """Start the pods: their infra, then every container of theirs that is not running."""
        from rootlet.runtime.container.infra import ensure_infra
        from rootlet.runtime.lifecycle.detach import start_detached
        from rootlet.runtime.system.events import record_event

        def start(cfg: PodConfig) -> None:
            ensure_infra(self.images_store, cfg)
            for c, s in self._members(cfg.id):
                if s.status not in ("running", "restarting"):
                    start_detached(self.images_store, c.id)
            record_event(self.images_store.root, "pod", "start", id=cfg.id, name=cfg.name)

        return self._each_pod(opts, start)

    def pod_stop(self, opts: PodActionOptions) -> list[NamedResult]:
        """Stop the pods' containers (their stop signal, SIGKILL after ``timeout``), then the infra."""
        from rootlet.runtime.container.infra import stop_infra
        from rootlet.runtime.lifecycle.stop import stop_container
        from rootlet.runtime.system.events import record_event

        def stop(cfg: PodConfig) -> None:
            for c, _ in self._members(cfg.id):
                with contextlib.suppress(RootletError):
                    stop_container(self.images_store, c.id, timeout=opts.timeout)
            stop_infra(self.images_store, cfg)
            record_event(self.images_store.root, "pod", "stop", id=cfg.id, name=cfg.name)

        return self._each_pod(opts, stop)

    def pod_restart(self, opts: PodActionOptions) -> list[NamedResult]:
        """Stop the pods, then start them again."""
        results = self.pod_stop(opts)
        stopped = tuple(r.id for r in results if r.error is None)
        started = {r.name: r for r in self.pod_start(PodActionOptions(names=stopped))} if stopped else {}
        return [r.replace(error=started[r.id].error) if r.id in started else r for r in results]

    def pod_kill(self, opts: PodActionOptions) -> list[NamedResult]:
        """Send a signal to every running container of the pods (SIGKILL also ends the infra)."""
        from rootlet.runtime.container.flags import parse_signal
        from rootlet.runtime.container.infra import stop_infra
        from rootlet.runtime.lifecycle.stop import kill_container, wait_recorded

        num = parse_signal(opts.signal, "--signal")

        def kill(cfg: PodConfig) -> None:
            running = [c for c, s in self._members(cfg.id) if s.status == "running"]
            if not running and not self.pods.state(cfg.id).alive:
                raise PodStateError(f"pod {cfg.name} is not running", "start it first: rootlet pod start")
            for c in running:
                with contextlib.suppress(RootletError):
                    kill_container(self.images_store, c.id, num)
            if num == signals.SIGKILL:
                for c in running:
                    with contextlib.suppress(RootletError):
                        wait_recorded(self.containers, c.id)  # type: ignore[attr-defined]
                stop_infra(self.images_store, cfg)

        return self._each_pod(opts, kill)

    def pod_rm(self, opts: PodActionOptions) -> list[NamedResult]:
        """Remove the pods with their containers; one with running containers needs ``force``."""
        from rootlet.runtime.container.infra import stop_infra
        from rootlet.runtime.lifecycle.stop import remove_container
        from rootlet.runtime.system.events import record_event

        def rm(cfg: PodConfig) -> None:
            members = self._members(cfg.id)
            running = [c.name for c, s in members if s.status in ("running", "restarting")]
            if running and not opts.force:
                raise PodStateError(f"pod {cfg.name} has running containers ({', '.join(running)}): cannot remove it",
                                    "stop it first (`rootlet pod stop`), or use `rootlet pod rm -f`", exit_code=2)
            for c, _ in members:
                with contextlib.suppress(RootletError):
                    remove_container(self.images_store, c.id, force=True, volumes=True)
            stop_infra(self.images_store, cfg)
            self.pods.forget(cfg.id)
            record_event(self.images_store.root, "pod", "remove", id=cfg.id, name=cfg.name)

        return self._each_pod(opts, rm, ignore_missing=opts.force)

    def pod_prune(self) -> list[str]:
        """Remove every pod that does not run (no running container, no infra); their ids."""
        gone = []
        for row in self.pod_ps():
            if row.status in ("Created", "Exited"):
                results = self.pod_rm(PodActionOptions(names=(row.id,)))
                if results and results[0].error is None:
                    gone.append(row.id)
        return gone

    def pod_top(self, name: str, descriptors: tuple[str, ...] = ()) -> TopReport:
        """The processes of every running container of the pod."""
        from rootlet.runtime.container.top import DEFAULT_COLUMNS, columns_for, container_processes

        cfg = self.pods.config(name)
        columns = columns_for(descriptors) if descriptors else list(DEFAULT_COLUMNS)
        rows = []
        running = [c for c, s in self._members(cfg.id) if s.status == "running"]
        if not running:
            raise PodStateError(f"pod {cfg.name} has no running containers", "start it first: rootlet pod start")
        for c in running:
            with contextlib.suppress(RootletError):
                rows += [{k: r[k] for k in columns} for r in container_processes(self.images_store, c.id)]
        return TopReport(columns, rows)

    # --- helpers ---------------------------------------------------------------------------------

    def _members(self, pod_id: str) -> list[tuple[ContainerConfig, ContainerState]]:
        from rootlet.runtime.container.store import ContainerStore

        containers = ContainerStore(self.images_store)
        out = []
        for cfg in containers.configs():
            if cfg.pod == pod_id:
                with contextlib.suppress(RootletError):
                    out.append((cfg, containers.refresh(cfg.id)))
        return sorted(out, key=lambda m: m[0].created)

    def _each_pod(self, opts: PodActionOptions, action: Callable[[PodConfig], None],
                  ignore_missing: bool = False) -> list[NamedResult]:
        if opts.all and opts.names:
            raise UsageError("--all and pod names cannot be combined")
        if not opts.all and not opts.names:
            raise UsageError("give at least one pod name or id", "or --all")
        names = opts.names or tuple(c.id for c in self.pods.configs())
        results = []
        for name in names:
            try:
                cfg = self.pods.config(name)
                action(cfg)
                results.append(NamedResult(name, cfg.id))
            except PodNotFound as exc:
                results.append(NamedResult(name, error=None if ignore_missing else exc))
            except RootletError as exc:
                results.append(NamedResult(name, error=exc))
        return results


def _pod_matches(row: PodSummary, item: str) -> bool:
    import re

    key, eq, value = item.partition("=")
    if not eq or key not in ("name", "id", "status", "label", "network"):
        raise UsageError(f"invalid pod filter {item!r}", "use name=, id=, status=, label=KEY[=VALUE] or network=")
    if key == "name":
        return re.search(value, row.name) is not None
    if key == "id":
        return row.id.startswith(value.lower())
    if key == "status":
        return row.status.lower() == value.lower()
    if key == "network":
        return value in row.networks
    k, eq2, v = value.partition("=")
    return k in row.labels and (not eq2 or row.labels[k] == v)
