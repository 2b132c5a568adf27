"""The engine's image verbs: pull, images, inspect, rmi, tag, untag, image prune."""

from __future__ import annotations

from rootlet.registry.errors import ImageNotFound, UsageError
from rootlet.runtime.engine.options import ImagePruneOptions, ImagesOptions, PullOptions, RmiOptions, TagOptions, UntagOptions
from rootlet.runtime.engine.reports import InspectReport

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from rootlet.registry.store import ImageRecord, ImageStore
    from rootlet.runtime.image.catalog import ImageSummary, InUse, RemoveReport
    from rootlet.runtime.image.pull import PullProgress, PullReport


class ImageVerbs:
    """Mixed into ``Engine``; ``self.images_store`` is the image store, ``self.containers`` the
    container store (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore

    def pull(self, opts: PullOptions, progress: PullProgress | None = None) -> PullReport:
        """Pull an image into the store and tag it. ``progress`` receives events as the pull goes
        (from download threads too); None reports nothing."""
        from rootlet.runtime.image.pull import pull_image

        report = pull_image(self.images_store, opts, progress)
        self._image_event("pull", report.image_id, report.reference)
        return report

    def pull_record(self, opts: PullOptions, progress: PullProgress | None = None) -> ImageRecord:
        """``pull``, returning the image's record."""
        report = self.pull(opts, progress)
        return self.images_store.load()[report.image_id]

    def images(self, opts: ImagesOptions = ImagesOptions()) -> list[ImageSummary]:
        """Local images, one row per name (``<none>`` once for an image without any), newest first."""
        from rootlet.runtime.image.catalog import list_images

        if not self.images_store.exists():
            return []
        return list_images(self.images_store, opts.name, all_images=opts.all)

    def image_exists(self, name: str) -> bool:
        """Whether ``name`` (a name, id or id prefix) is a local image (``image exists``)."""
        if not self.images_store.exists():
            return False
        try:
            self.images_store.resolve(name)
        except ImageNotFound:
            return False
        return True

    def image_inspect(self, names: tuple[str, ...]) -> InspectReport:
        """docker's ``image inspect`` documents; names that do not resolve become errors."""
        from rootlet.runtime.image.catalog import inspect_image

        report = InspectReport()
        for name in names:
            try:
                report.docs.append(inspect_image(self.images_store, name))
            except ImageNotFound as exc:
                report.errors.append(exc)
        return report

    def rmi(self, opts: RmiOptions) -> RemoveReport:
        """Remove images (untagging names that are one of several tags) and free their layers.

        An image a container uses is refused, as podman refuses it; with ``force`` those
        containers are removed first (stopped if they run), and a name that is no image is no
        error, as ``podman rmi -f`` does.
        """
        from rootlet.runtime.image.catalog import RemoveReport, remove_images, resolve_targets

        if not opts.names and not opts.all:
            raise UsageError("rmi needs at least one image", "rootlet rmi IMAGE [IMAGE…] or rootlet rmi -a")
        if opts.names and opts.all:
            raise UsageError("--all and image names cannot be combined")
        if not self.images_store.exists():
            if opts.all or opts.force:
                return RemoveReport()
            raise ImageNotFound(f"{opts.names[0]}: image not known", "list local images with `rootlet images`")
        if opts.force:
            if opts.all:
                wanted = set(self.images_store.load())
            else:
                found, _ = resolve_targets(self.images_store, list(opts.names))
                wanted = {image_id for image_id, _ in found}
            self._remove_users_of(wanted)
        report = remove_images(self.images_store, list(opts.names), self._in_use, all_images=opts.all)
        if opts.force:  # podman's -f takes a missing image as removed already
            report.errors = [e for e in report.errors if not isinstance(e, ImageNotFound)]
        return self._removed(report)

    def tag(self, opts: TagOptions) -> None:
        """Add names to a local image (moving each off any other image)."""
        from rootlet.runtime.image.catalog import tag_image

        rec = tag_image(self.images_store, opts.source, list(opts.targets))
        for target in opts.targets:
            self._image_event("tag", rec.id, target)

    def untag(self, opts: UntagOptions) -> None:
        """Remove names from a local image (all of them when none are given)."""
        from rootlet.runtime.image.catalog import untag_image

        before = self.images_store.resolve(opts.source).repo_tags
        rec = untag_image(self.images_store, opts.source, list(opts.names))
        for name in before:
            if name not in rec.repo_tags:
                self._image_event("untag", rec.id, name)

    def image_prune(self, opts: ImagePruneOptions = ImagePruneOptions()) -> RemoveReport:
        """Remove dangling images (or with ``all`` every image) no container uses, and every layer
        nothing needs."""
        from rootlet.runtime.image.catalog import RemoveReport, prune_images

        if not self.images_store.exists():
            return RemoveReport()
        return self._removed(prune_images(self.images_store, self._in_use, all_images=opts.all))

    def _image_event(self, status: str, image_id: str, name: str = "") -> None:
        from rootlet.runtime.system.events import record_event

        record_event(self.images_store.root, "image", status, id=image_id, name=name)

    def _removed(self, report: RemoveReport) -> RemoveReport:
        """Record the events of an ``rmi`` or a prune (podman's: untag per name, remove per image)."""
        for name in report.untagged:
            self._image_event("untag", "", name)
        for image_id in report.deleted:
            self._image_event("remove", image_id)
        return report

    # --- the cross-cutting rule: nothing deletes what a container refers to --------------------------

    def _in_use(self) -> InUse:
        """What containers use (called by the catalogue under the image store's lock)."""
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.image.catalog import InUse

        used = InUse()
        for cfg in ContainerStore(self.images_store).configs():
            used.images.setdefault(cfg.image_id, []).append(cfg.name)
            used.layers.update(cfg.layers)
        return used

    def _remove_users_of(self, image_ids: set[str]) -> None:
        """``rmi -f``: remove (stopping them first) the containers made from ``image_ids``."""
        from rootlet.registry.errors import ContainerNotFound
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.lifecycle.stop import remove_container

        for cfg in ContainerStore(self.images_store).configs():
            if cfg.image_id in image_ids:
                try:
                    remove_container(self.images_store, cfg.id, force=True, volumes=False)
                except ContainerNotFound:
                    pass  # removed meanwhile
