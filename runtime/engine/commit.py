"""The engine's verbs commit, diff, history (the container's changes as an image, and what an image is made of)."""

from __future__ import annotations

from rootlet.runtime.engine.options import CommitOptions, DiffOptions, HistoryOptions

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Mapping

    from rootlet.registry.store import ImageStore
    from rootlet.runtime.container.changes import Change
    from rootlet.runtime.container.commit import CommitReport
    from rootlet.runtime.image.history import HistoryRow


class CommitVerbs:
    """Mixed into ``Engine``; ``self.images_store`` is the image store."""

    images_store: ImageStore
    env: Mapping[str, str]

    def commit(self, opts: CommitOptions) -> CommitReport:
        """A new image from a container (running or not): its image plus one layer of its changes."""
        from rootlet.runtime.container.commit import check_options, commit_container

        if not opts.squash:
            return self._committed(opts, commit_container(self.images_store, opts, self.env))
        # --squash: the container's whole filesystem (its image's layers and its changes) as the one
        # layer of the new image, written as `export` writes it.
        import os
        import tempfile

        check_options(opts)
        self.images_store.ensure()
        fd, path = tempfile.mkstemp(prefix=f"layer-{os.getpid()}-squash-", dir=self.images_store.tmp)
        try:
            self.export_to_fd(opts.container, fd)  # type: ignore[attr-defined]
            os.fsync(fd)
            return self._committed(opts, commit_container(self.images_store, opts, self.env, squashed=path))
        finally:
            os.close(fd)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _committed(self, opts: CommitOptions, report: CommitReport) -> CommitReport:
        """Record the commit in the event log (podman's container ``commit`` event)."""
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.system.events import container_event

        containers = ContainerStore(self.images_store)
        container_event(self.images_store.root, containers.config(containers.resolve(opts.container)), "commit")
        return report

    def diff(self, opts: DiffOptions) -> list[Change]:
        """What a container changed in its image (or an image's top layer in the layers below),
        as podman's A/C/D lines, sorted by path."""
        from rootlet.registry.errors import ContainerNotFound, ImageNotFound, UsageError
        from rootlet.runtime.container.changes import layer_changes
        from rootlet.runtime.container.imagefiles import lower_dirs
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.image.layers import LayerStore
        from rootlet.runtime.oci.idmap import plan_userns
        from rootlet.runtime.oci.userns import run_in_userns

        if opts.kind not in ("auto", "container", "image"):
            raise UsageError(f"unknown diff type {opts.kind!r}", "use --type container or --type image")
        store = self.images_store
        upper = lowers = None
        container = False
        if opts.kind in ("auto", "container") and store.exists():
            containers = ContainerStore(store)
            try:
                cid = containers.resolve(opts.name)
            except ContainerNotFound:
                if opts.kind == "container":
                    raise
            else:
                upper = containers.path(cid, "upper")
                lowers = lower_dirs(store, containers.config(cid).layers)
                container = True
        if upper is None:
            try:
                rec = store.resolve(opts.name) if store.exists() else None
            except ImageNotFound:
                rec = None
            if rec is None:
                raise ContainerNotFound(f"{opts.name} not found: no such container or image",
                                        "list them with `rootlet ps -a` and `rootlet images`") \
                    if opts.kind == "auto" else ImageNotFound(f"{opts.name}: image not known")
            layers = LayerStore(store)
            upper = layers.diff_dir(rec.layers[-1]) if rec.layers else None
            lowers = lower_dirs(store, rec.layers[:-1])
            if upper is None:
                return []
        return run_in_userns(plan_userns(), layer_changes, upper, lowers, container)

    def history(self, opts: HistoryOptions) -> list[HistoryRow]:
        """The image's build steps, newest first (``ImageNotFound`` when there is no such image)."""
        from rootlet.registry.errors import ImageNotFound
        from rootlet.runtime.image.history import image_history

        if not self.images_store.exists():
            raise ImageNotFound(f"{opts.image}: image not known", "list local images with `rootlet images`")
        return image_history(self.images_store, opts.image)
