"""The engine's volume verbs: volume create, ls, inspect, rm, prune, exists."""

from __future__ import annotations

from rootlet.registry.errors import RootletError, UsageError, VolumeNotFound
from rootlet.runtime.engine.options import VolumeCreateOptions, VolumeLsOptions, VolumePruneOptions, VolumeRmOptions
from rootlet.runtime.engine.reports import InspectReport, VolumePruneReport, VolumeResult

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from rootlet.registry.store import ImageStore
    from rootlet.runtime.container.volumes import VolumeStore


class VolumeVerbs:
    """Mixed into ``Engine`` (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore

    @property
    def volumes(self) -> VolumeStore:
        from rootlet.runtime.container.volumes import VolumeStore

        return VolumeStore(self.images_store)

    def volume_create(self, opts: VolumeCreateOptions) -> str:
        """Create a volume (plain, a tmpfs per container, or a bind of a host directory); its name."""
        import time

        from rootlet.runtime.container.flags import parse_labels
        from rootlet.runtime.container.volumes import VolumeConfig, check_volume_name, parse_volume_options

        if opts.driver != "local":
            raise UsageError(f"volume driver {opts.driver!r} is not available", "rootlet has the local driver only")
        name = check_volume_name(opts.name) if opts.name is not None else self._free_volume_name()
        cfg = VolumeConfig(name=name, created=time.time(), labels=parse_labels(opts.labels),
                           options=parse_volume_options(opts.options))
        return self.volumes.create(cfg, ignore=opts.ignore)[0].name

    def _free_volume_name(self) -> str:
        import os

        return os.urandom(32).hex()

    def volume_ls(self, opts: VolumeLsOptions = VolumeLsOptions()) -> list[dict[str, object]]:
        """podman's ``volume inspect`` documents of the volumes passing the filters, by name."""
        from rootlet.runtime.container.volumes import inspect_doc, select_volumes

        vols = self.volumes
        return [inspect_doc(vols, cfg) for cfg in select_volumes(vols, opts.filters, parse_time=self._seconds)]

    def volume_inspect(self, names: tuple[str, ...], all_: bool = False) -> InspectReport:
        """podman's ``volume inspect`` documents; names that are no volume become errors."""
        from rootlet.runtime.container.volumes import inspect_doc

        if names and all_:
            raise UsageError("--all and volume names cannot be combined")
        if not names and not all_:
            raise UsageError("volume inspect needs a volume name", "rootlet volume inspect NAME, or --all")
        vols = self.volumes
        report = InspectReport()
        for name in names or tuple(vols.names()):
            try:
                report.docs.append(inspect_doc(vols, vols.config(name)))
            except VolumeNotFound as exc:
                report.errors.append(exc)
        return report

    def volume_exists(self, name: str) -> bool:
        return self.volumes.exists(name)

    def volume_rm(self, opts: VolumeRmOptions) -> list[VolumeResult]:
        """Remove volumes; one in use is refused (``VolumeInUse``) unless ``force``, which removes
        the containers using it first (stopping them), as podman does."""
        if opts.all and opts.names:
            raise UsageError("--all and volume names cannot be combined")
        if not opts.all and not opts.names:
            raise UsageError("volume rm needs a volume name", "rootlet volume rm NAME, or --all")
        vols = self.volumes
        results = []
        for name in opts.names or tuple(vols.names()):
            try:
                if opts.force:
                    self._remove_volume_users(name)
                self._delete([vols.take(name)])
                results.append(VolumeResult(name))
            except RootletError as exc:
                results.append(VolumeResult(name, exc))
        return results

    def volume_prune(self, opts: VolumePruneOptions = VolumePruneOptions()) -> VolumePruneReport:
        """Remove every volume no container refers to (narrowed by ``label=``/``until=``)."""
        from rootlet.registry.errors import VolumeInUse
        from rootlet.runtime.container.volumes import select_volumes
        from rootlet.runtime.system.events import record_event

        vols = self.volumes
        if not vols.names():
            return VolumePruneReport()
        users = vols.users()
        unused = [c.name for c in select_volumes(vols, opts.filters, ("label", "until"), parse_time=self._seconds)
                  if not users.get(c.name)]
        sizes = self._volume_sizes(unused)
        report = VolumePruneReport()
        taken = []
        for name in unused:
            try:
                taken.append(vols.take(name))  # checks again for users, under the lock
            except (VolumeInUse, VolumeNotFound):
                continue
            record_event(self.images_store.root, "volume", "prune", name=name)
            report.names.append(name)
            report.reclaimed += sizes.get(name, 0)
        self._delete(taken)
        return report

    # --- helpers ---------------------------------------------------------------------------------

    def _remove_volume_users(self, name: str) -> None:
        """``volume rm -f``: remove (stopping them first) the containers whose mounts name ``name``."""
        from rootlet.registry.errors import ContainerNotFound
        from rootlet.runtime.lifecycle.stop import remove_container

        for cfg in self.volumes.users().get(name, []):
            try:
                remove_container(self.images_store, cfg.id, force=True, volumes=False)
            except ContainerNotFound:
                pass  # removed meanwhile

    def _volume_sizes(self, names: list[str]) -> dict[str, int]:
        """Bytes each volume's data holds, counted inside the user namespace (its files may belong
        to subordinate ids)."""
        if not names:
            return {}
        from rootlet.runtime.linux.trees import tree_size
        from rootlet.runtime.oci.idmap import plan_userns
        from rootlet.runtime.oci.userns import UsernsWorker

        vols = self.volumes
        with UsernsWorker(plan_userns()) as worker:
            return {n: worker.call(tree_size, vols.data(n)) for n in names}

    def _delete(self, paths: list[str]) -> None:
        from rootlet.runtime.lifecycle.stop import delete_trees

        delete_trees(paths)

    def _seconds(self, text: str) -> float:
        """A ``--filter until=`` time (RFC 3339, Unix seconds, or a duration back from now)."""
        from rootlet.runtime.lifecycle.logfile import parse_since

        return parse_since(text, "until") / 1e9
