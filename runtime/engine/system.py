"""The engine's system verbs: info, version, login, logout; system df, prune and reset, events,
stats, pause and unpause."""

from __future__ import annotations

from rootlet.registry.errors import AuthError, RootletError, UsageError
from rootlet.runtime.engine.options import (EventsOptions, LoginOptions, LogoutOptions, StatsOptions,
                                            SystemPruneOptions)
from rootlet.runtime.engine.reports import ContainerResult, InfoReport, SystemPruneReport, VersionReport

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Iterator

    from rootlet.registry.store import ImageStore
    from rootlet.runtime.container.diskusage import DfReport
    from rootlet.runtime.container.stats import ContainerStats
    from rootlet.runtime.system.events import Event


class SystemVerbs:
    """Mixed into ``Engine`` (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore

    def info(self) -> InfoReport:
        """The rootless set-up as rootlet sees it (each check with a fix), and what the store holds.

        The kernel overlay is probed on the store's own filesystem: that is where layers are mounted
        from. Forks a user-namespace worker: call it from a single-threaded state.
        """
        from rootlet.runtime.system.hostinfo import host_info
        from rootlet.runtime.system.storeinfo import store_summary

        self.images_store.ensure()
        return InfoReport(host=host_info(tmpdir=self.images_store.tmp), store=store_summary(self.images_store))

    def version(self) -> VersionReport:
        """rootlet's version, Python's, and the platform as OCI names it."""
        import platform

        from rootlet.registry.manifest import Platform
        from rootlet.runtime.version import VERSION as mine

        host = Platform.host()
        return VersionReport(version=mine, python_version=platform.python_version(), os=host.os,
                             arch=host.architecture + (f"/{host.variant}" if host.variant else ""))

    def login(self, opts: LoginOptions) -> str:
        """Check the credentials against the registry, then store them in auth.json; the registry's
        name as stored (``docker.io`` for every name of Docker Hub)."""
        from rootlet.registry import auth
        from rootlet.registry.client import ClientSettings, login_check
        from rootlet.registry.reference import canonical_registry

        host = canonical_registry(opts.server)
        if not opts.username or not opts.password:
            raise UsageError("user name and password must not be empty")
        settings = ClientSettings(tls_verify=opts.tls_verify, cert_dir=opts.cert_dir, authfile=opts.authfile)
        login_check(host, opts.username, opts.password, settings)
        auth.login(host, opts.username, opts.password, authfile=opts.authfile)
        return host

    def login_username(self, server: str, authfile: str | None = None) -> str:
        """The user name stored for a registry (``login --get-login``)."""
        from rootlet.registry import auth
        from rootlet.registry.reference import canonical_registry

        host = canonical_registry(server)
        creds = auth.lookup(host, authfile=authfile)
        if creds is None:
            raise AuthError(f"not logged in to {host}", f"rootlet login {host}")
        return creds.username

    def logout(self, opts: LogoutOptions) -> str | None:
        """Remove stored credentials: of one registry (its name, as stored), or of all (None)."""
        from rootlet.registry import auth
        from rootlet.registry.reference import canonical_registry

        if opts.all:
            auth.logout_all(authfile=opts.authfile)
            return None
        if not opts.server:
            raise UsageError("logout needs a registry", "rootlet logout REGISTRY or rootlet logout --all")
        host = canonical_registry(opts.server)
        auth.logout(host, authfile=opts.authfile)
        return host

    # --- system df, prune, reset ---------------------------------------------------------------------

    def system_df(self) -> DfReport:
        """What images, containers and volumes take on disk, and what is reclaimable."""
        from rootlet.runtime.container.diskusage import disk_usage

        return disk_usage(self.images_store)

    def system_prune(self, opts: SystemPruneOptions = SystemPruneOptions()) -> SystemPruneReport:
        """Remove stopped containers, then (with ``volumes``) unused volumes, then dangling images
        (``all``: every image no container uses) and the layers nothing needs; what it freed."""
        from rootlet.runtime.container.diskusage import layer_sizes, tree_sizes
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.engine.options import ImagePruneOptions, VolumePruneOptions

        report = SystemPruneReport()
        if not self.images_store.exists():
            return report
        containers = ContainerStore(self.images_store)
        stopped = [c for c in containers.all_ids() if containers.refresh(c).status in ("created", "exited", "unknown")]
        sizes = dict(zip(stopped, tree_sizes([containers.path(c, "upper") for c in stopped])[0]))
        report.containers = self.container_prune()  # type: ignore[attr-defined]
        report.reclaimed += sum(sizes.get(c, 0) for c in report.containers)
        if opts.volumes:
            volumes = self.volume_prune(VolumePruneOptions())  # type: ignore[attr-defined]
            report.volumes, report.reclaimed = volumes.names, report.reclaimed + volumes.reclaimed
        before = sum(layer_sizes(self.images_store).values())
        images = self.image_prune(ImagePruneOptions(all=opts.all))  # type: ignore[attr-defined]
        report.images, report.untagged = images.deleted, images.untagged
        report.reclaimed += max(0, before - sum(layer_sizes(self.images_store).values()))
        return report

    def system_reset(self) -> list[str]:
        """Stop and remove every container, then everything else the store holds (files of
        subordinate ids removed in the user namespace); the root stays, empty. The container ids."""
        from rootlet.runtime.lifecycle.reset import reset_store

        return reset_store(self.images_store)

    # --- events ----------------------------------------------------------------------------------------

    def events(self, opts: EventsOptions) -> Iterator[Event]:
        """The recorded events that pass the filters, oldest first; with ``stream``, then each new
        one as it is recorded, until ``until`` (or for ever: the caller stops reading)."""
        import time

        from rootlet.runtime.lifecycle.logfile import parse_since
        from rootlet.runtime.system.events import follow_events, matches, parse_filters, read_events

        filters = parse_filters(opts.filters)
        since = parse_since(opts.since, "--since") if opts.since else None
        until = parse_since(opts.until, "--until") if opts.until else None
        if opts.stream:
            source = follow_events(self.images_store.root,
                                   lambda: until is None or time.time_ns() <= until)
        else:
            source = read_events(self.images_store.root)
        return (e for e in source if (since is None or e.time >= since) and (until is None or e.time <= until)
                and matches(e, filters))

    # --- stats, pause ----------------------------------------------------------------------------------

    def stats(self, opts: StatsOptions = StatsOptions()) -> list[ContainerStats]:
        """What containers use (from /proc: CPU time, RSS, processes, network and storage bytes):
        those named (each must run), or every running one (``all``: every one)."""
        from rootlet.runtime.container.stats import container_stats
        from rootlet.runtime.container.store import ContainerStore

        containers = ContainerStore(self.images_store)
        if opts.names:
            if opts.all:
                raise UsageError("--all and container names cannot be combined")
            return [container_stats(self.images_store, containers.resolve(n)) for n in opts.names]
        out = []
        for cid in containers.all_ids():
            try:
                stats = container_stats(self.images_store, cid, required=False)
            except (RootletError, OSError):
                continue  # removed meanwhile
            if stats.running or opts.all:
                out.append(stats)
        return sorted(out, key=lambda s: s.name)

    def pause(self, names: tuple[str, ...], unpause: bool = False, all_: bool = False) -> list[ContainerResult]:
        """Refused, for each container: pausing needs the cgroup freezer, and rootlet creates no
        cgroups (podman refuses it too without a delegated cgroup v2)."""
        from rootlet.registry.errors import ContainerNotFound, ContainerStateError
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.system.hostinfo import cgroup_version

        verb = "unpause" if unpause else "pause"
        containers = ContainerStore(self.images_store)
        if all_ and names:
            raise UsageError("--all and container names cannot be combined")
        if not names and not all_:
            raise UsageError(f"{verb} needs a container name or id", f"rootlet {verb} CONTAINER, or --all")
        targets = names or tuple(c for c in containers.all_ids() if containers.refresh(c).status == "running")
        results = []
        for name in targets:
            try:
                cid = containers.resolve(name)
            except (ContainerNotFound, RootletError) as exc:
                results.append(ContainerResult(name, error=exc))
                continue
            results.append(ContainerResult(name, cid, error=ContainerStateError(
                f"cannot {verb} container {name}: rootlet has no cgroup freezer (it creates no cgroups; podman "
                f"needs a delegated cgroup v2 for it, and this host has cgroup {cgroup_version()})",
                "stop it instead (`rootlet stop`); `rootlet kill -s STOP` and `-s CONT` suspend and resume only "
                "its main process")))
        return results
