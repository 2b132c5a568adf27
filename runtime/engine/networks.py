"""The engine's network verbs: network create, ls, inspect, rm, prune, exists, connect, disconnect."""

from __future__ import annotations

from rootlet.registry.errors import NetworkNotFound, RootletError, UsageError
from rootlet.runtime.engine.options import NetworkConnectOptions, NetworkCreateOptions, NetworkRmOptions
from rootlet.runtime.engine.reports import InspectReport, NamedResult

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from rootlet.registry.store import ImageStore
    from rootlet.runtime.net.networks import NetworkStore


class NetworkVerbs:
    """Mixed into ``Engine`` (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore

    @property
    def networks(self) -> NetworkStore:
        from rootlet.runtime.net.networks import NetworkStore

        return NetworkStore(self.images_store)

    def network_create(self, opts: NetworkCreateOptions) -> str:
        """Record a user network; its name."""
        from rootlet.runtime.container.flags import parse_labels
        from rootlet.runtime.system.events import record_event

        cfg = self.networks.create(opts.name, subnet=opts.subnet, gateway=opts.gateway, internal=opts.internal,
                                   labels=parse_labels(opts.labels), driver=opts.driver)
        record_event(self.images_store.root, "network", "create", id=cfg.id, name=cfg.name)
        return cfg.name

    def network_ls(self, filters: tuple[str, ...] = ()) -> list[dict[str, object]]:
        """podman's ``network inspect`` documents of the networks passing the filters, by name."""
        from rootlet.runtime.net.networks import inspect_doc, select_networks

        used = set(self._network_users())
        return [inspect_doc(c) for c in select_networks(self.networks.configs(), filters, used, self._seconds)]  # type: ignore[attr-defined]

    def network_inspect(self, names: tuple[str, ...]) -> InspectReport:
        from rootlet.runtime.net.networks import inspect_doc

        if not names:
            raise UsageError("network inspect needs a network name", "rootlet network inspect NAME")
        report = InspectReport()
        for name in names:
            try:
                report.docs.append(inspect_doc(self.networks.config(name)))
            except NetworkNotFound as exc:
                report.errors.append(exc)
        return report

    def network_exists(self, name: str) -> bool:
        try:
            self.networks.config(name)
        except NetworkNotFound:
            return False
        return True

    def network_rm(self, opts: NetworkRmOptions) -> list[NamedResult]:
        """Remove networks; one containers or pods are on is refused (``NetworkInUse``) unless
        ``force``, which removes them first, as podman does."""
        if not opts.names:
            raise UsageError("network rm needs a network name", "rootlet network rm NAME")
        results = []
        for name in opts.names:
            try:
                cfg = self.networks.config(name)
                if opts.force:
                    self._remove_network_users(cfg.name)
                self._remove_network(cfg.name)
                results.append(NamedResult(cfg.name, cfg.id))
            except RootletError as exc:
                results.append(NamedResult(name, error=exc))
        return results

    def network_prune(self) -> list[str]:
        """Remove every network no container or pod refers to; their names."""
        from rootlet.registry.errors import NetworkInUse

        used = self._network_users()
        gone = []
        for cfg in self.networks.configs():
            if cfg.name in used:
                continue
            try:
                self._remove_network(cfg.name)
            except (NetworkInUse, NetworkNotFound):
                continue
            gone.append(cfg.name)
        return gone

    def network_connect(self, opts: NetworkConnectOptions) -> None:
        """Put a container on one more network: at its next start, and now when it runs on user
        networks already (a container in its own user namespace cannot be moved while it runs)."""
        from rootlet.runtime.container.store import check_name
        from rootlet.runtime.lifecycle.netconnect import change_networks
        from rootlet.runtime.net.networks import NetRequest

        for alias in opts.aliases:
            check_name(alias)
        cfg = self.networks.config(opts.network)
        change_networks(self.images_store, opts.container, add=NetRequest(cfg.name, tuple(opts.aliases),
                                                                          opts.ip or ""), config=cfg)

    def network_disconnect(self, opts: NetworkConnectOptions) -> None:
        """Take a container off a network (now, when it runs, and for its next starts)."""
        from rootlet.runtime.lifecycle.netconnect import change_networks

        cfg = self.networks.config(opts.network)
        change_networks(self.images_store, opts.container, remove=cfg.name, config=cfg)

    # --- helpers ---------------------------------------------------------------------------------

    def _network_users(self) -> dict[str, list[str]]:
        """Network name → the containers and pods (by name) that refer to it."""
        from rootlet.runtime.container.pods import PodStore
        from rootlet.runtime.container.store import ContainerStore

        users: dict[str, list[str]] = {}
        for c in ContainerStore(self.images_store).configs():
            for r in c.networks:
                users.setdefault(r.network, []).append(c.name)
        for p in PodStore(self.images_store).configs():
            for r in p.networks:
                users.setdefault(r.network, []).append(f"pod {p.name}")
        return users

    def _remove_network(self, name: str) -> None:
        from rootlet.runtime.net import netns
        from rootlet.runtime.system.events import record_event

        cfg = self.networks.remove(name, users=lambda n: self._network_users().get(n, []))
        netns.forget_network(self.images_store, cfg.name)
        record_event(self.images_store.root, "network", "remove", id=cfg.id, name=cfg.name)

    def _remove_network_users(self, name: str) -> None:
        """``network rm -f``: the pods and containers on ``name`` go first (stopped if running)."""
        from rootlet.registry.errors import ContainerNotFound, PodNotFound
        from rootlet.runtime.container.pods import PodStore
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.engine.options import PodActionOptions
        from rootlet.runtime.lifecycle.stop import remove_container

        for pod in PodStore(self.images_store).configs():
            if any(r.network == name for r in pod.networks):
                try:
                    self.pod_rm(PodActionOptions(names=(pod.id,), force=True))  # type: ignore[attr-defined]
                except PodNotFound:
                    pass
        for c in ContainerStore(self.images_store).configs():
            if any(r.network == name for r in c.networks):
                try:
                    remove_container(self.images_store, c.id, force=True, volumes=False)
                except ContainerNotFound:
                    pass
