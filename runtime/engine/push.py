"""The engine's verbs push (an image to a registry or another transport)."""

from __future__ import annotations

from rootlet.runtime.engine.options import PushOptions

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from rootlet.registry.store import ImageStore
    from rootlet.runtime.image.push import PushProgress, PushReport


class PushVerbs:
    """Mixed into ``Engine``; ``self.images_store`` is the image store."""

    images_store: ImageStore

    def push(self, opts: PushOptions, progress: PushProgress | None = None) -> PushReport:
        """Push a local image to a registry (podman's ``push``): its kept layer blobs, the config,
        the manifest last. ``progress`` receives events as it goes (from upload threads too); None
        reports nothing. Writes ``opts.digestfile`` when given."""
        from rootlet.runtime.image.push import push_image
        from rootlet.runtime.system.events import record_event

        report = push_image(self.images_store, opts, progress)
        record_event(self.images_store.root, "image", "push", id=report.image_id, name=report.destination)
        return report
