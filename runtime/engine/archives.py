"""The engine's verbs save, load, export, import (images and filesystems as archive files)."""

from __future__ import annotations

from rootlet.runtime.engine.options import ExportOptions, ImportOptions, LoadOptions, SaveOptions

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    from rootlet.registry.store import ImageRecord, ImageStore
    from rootlet.runtime.image.archive_read import LoadedImage


class ArchiveVerbs:
    """Mixed into ``Engine``; ``self.images_store`` is the image store.

    Each verb reads or writes a file named in its options, or, when none is, the binary stream
    the front end passes (its stdin or stdout); ``progress`` receives podman's progress lines
    (``Copying blob sha256:…``), None reports nothing."""

    images_store: ImageStore

    def save(self, opts: SaveOptions, stream: BinaryIO | None = None,
             progress: Callable[[str], None] | None = None) -> None:
        """Write images into one archive (``docker save``/``podman save`` formats)."""
        from rootlet.registry.errors import ImageNotFound, UsageError
        from rootlet.runtime.image.archive_write import FORMATS, save_images

        if opts.format not in FORMATS:
            raise UsageError(f"unsupported format {opts.format!r} for saving images",
                             "use --format docker-archive, oci-archive or oci-dir")
        if not opts.images:
            raise UsageError("save needs at least one image", "rootlet save [-o FILE] IMAGE…")
        if opts.output is None and stream is None:
            raise UsageError("save needs an output file (-o FILE) or a stream to write to")
        if not self.images_store.exists():
            raise ImageNotFound(f"{opts.images[0]}: image not known", "list local images with `rootlet images`")
        names = list(opts.images)
        extra: list[str] = []
        if opts.format == "docker-archive" and not opts.multi_image and len(names) > 1:
            names, extra = names[:1], _extra_tags(names[1:])
        items = self._saved_images(names)
        if extra:
            items[0] = (items[0][0], [*extra, *items[0][1]])  # podman's order: the extra tags first
        self.images_store.ensure()
        out_fd = stream.fileno() if stream is not None and opts.output is None else None
        if stream is not None:
            stream.flush()
        save_images(self.images_store, items, opts.output, opts.format, out_fd=out_fd, progress=progress)
        from rootlet.runtime.system.events import record_event

        for rec, tags in items:
            record_event(self.images_store.root, "image", "save", id=rec.id, name=(tags or [rec.id])[0])

    def _saved_images(self, names: list[str]) -> list[tuple[ImageRecord, list[str]]]:
        """Each name's image and the tag it is saved under (none for an id or a digest), in order,
        an image named twice once with both tags."""
        from rootlet.registry.config import RegistriesConfig
        from rootlet.registry.store import match_image

        images = self.images_store.load()
        search = RegistriesConfig.load().search_registries()
        out: dict[str, tuple[ImageRecord, list[str]]] = {}
        for name in names:
            rec, full = match_image(images, name, search)
            text = name[7:] if name.startswith("sha256:") else name
            by_id = rec.id.startswith(text) and all(c in "0123456789abcdef" for c in text)
            entry = out.setdefault(rec.id, (rec, []))
            if not by_id and "@" not in full and full not in entry[1]:
                entry[1].append(full)
        return list(out.values())

    def load(self, opts: LoadOptions, stream: BinaryIO | None = None,
             progress: Callable[[str], None] | None = None) -> list[LoadedImage]:
        """Load every image of a docker-archive or oci-archive (compressed or not); returns them."""
        from rootlet.registry.errors import UsageError
        from rootlet.runtime.image.archive_read import load_archive

        if opts.input is None and stream is None:
            raise UsageError("load needs an input file (-i FILE) or a stream to read")
        from rootlet.runtime.system.events import record_event

        loaded = load_archive(self.images_store, opts.input, None if opts.input is not None else stream, progress)
        for image in loaded:
            record_event(self.images_store.root, "image", "load", id=image.id, name=(image.names or [image.id])[0])
        return loaded

    def export(self, opts: ExportOptions, stream: BinaryIO | None = None) -> None:
        """Write a container's filesystem (running or not) as a flat tar."""
        from rootlet.registry.errors import UsageError
        from rootlet.runtime.image.archive_write import write_to_file

        if opts.output is None and stream is None:
            raise UsageError("export needs an output file (-o FILE) or a stream to write to")
        if opts.output is not None:
            write_to_file(opts.output, lambda fd: self.export_to_fd(opts.container, fd))
        else:
            assert stream is not None
            stream.flush()
            self.export_to_fd(opts.container, stream.fileno())

    def export_to_fd(self, container: str, fd: int) -> None:
        """The container's filesystem as a flat tar written to *fd* (export; commit --squash)."""
        from rootlet.runtime.container.launchspec import check_layers, runtime_spec
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.image.flat import export_running, export_stopped_job
        from rootlet.runtime.oci.idmap import plan_userns
        from rootlet.runtime.oci.userns import UsernsWorker

        store = self.images_store
        containers = ContainerStore(store)
        cid = containers.resolve(container)
        cfg = containers.config(cid)
        check_layers(store, cfg)
        spec = runtime_spec(store, cfg)
        state = containers.refresh(cid)
        if state.status == "running":
            export_running(state.pid, state.pid_start, spec.merged_dir, fd)
            return
        plan = spec.plan or plan_userns()  # the container's own maps (keep-id differs), as cp
        with containers.starting(cid):  # it must not start while its overlay is mounted here
            with UsernsWorker(plan, mount_ns=True, keep_fds=(fd,)) as worker:
                worker.call(export_stopped_job, (spec.lower_dirs, spec.upper_dir, spec.work_dir, spec.merged_dir,
                                                 spec.overlay, plan.rootful, spec.fuse_options), fd)

    def import_image(self, opts: ImportOptions, stream: BinaryIO | None = None,
                     progress: Callable[[str], None] | None = None) -> str:
        """A one-layer image from a tar file (or ``-``: the stream); returns its id."""
        from rootlet.runtime.image.flat import import_tarball
        from rootlet.runtime.image.newimage import local_name

        name = local_name(opts.reference).tagged() if opts.reference else None
        rec = import_tarball(self.images_store, opts.source, stream, name, tuple(opts.changes), opts.message,
                             progress)
        from rootlet.runtime.system.events import record_event

        record_event(self.images_store.root, "image", "import", id=rec.id, name=name or rec.id)
        return rec.id


def _extra_tags(names: list[str]) -> list[str]:
    """``save IMAGE NAME…`` without ``-m``: the names are more tags for the image (podman's rule;
    a name without a registry is under ``localhost/``)."""
    from rootlet.registry.errors import UsageError
    from rootlet.registry.reference import parse_reference
    from rootlet.runtime.image.newimage import local_name

    out = []
    for name in names:
        if parse_reference(name).digest:
            raise UsageError(f"invalid additional tag {name!r}: a digest is not a tag",
                             "give NAME[:TAG], or save several images into one archive with -m")
        tag = local_name(name).tagged()
        if tag not in out:
            out.append(tag)
    return out
