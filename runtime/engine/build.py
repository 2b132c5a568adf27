"""The engine's verb build (an image from a Dockerfile, its RUN steps as engine containers)."""

from __future__ import annotations

from rootlet.runtime.engine.options import BuildOptions

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootlet.registry.store import ImageStore
    from rootlet.runtime.build.builder import BuildReport


class BuildVerbs:
    """Mixed into ``Engine``; ``self.images_store`` is the image store."""

    images_store: ImageStore

    def build(self, opts: BuildOptions, notify: Callable[[str], None] | None = None) -> BuildReport:
        """Build an image from a Dockerfile and a context directory; ``notify`` receives podman's
        progress lines (``STEP 2/7: RUN …``, ``--> Using cache …``, ``COMMIT``); a RUN step's own
        output goes to this process's stdout and stderr, as podman's does."""
        from rootlet.runtime.build.builder import build_image

        self.images_store.ensure()
        return build_image(self, opts, notify or (lambda _line: None))  # type: ignore[arg-type]

    def unpack_context(self, fd: int) -> str:
        """``build -``: the context tar read from *fd* into a private directory in the store's tmp/
        (unpacked by the layer applier, so a hostile tar cannot write outside it); its path."""
        import os

        from rootlet.registry.errors import BuildError, LayerError
        from rootlet.registry.fsutil import make_temp_dir
        from rootlet.runtime.image.applier import ApplyOptions, apply_layer

        self.images_store.ensure()
        path = make_temp_dir(self.images_store.tmp, f"context-{os.getpid()}-")
        try:
            apply_layer(f"/proc/self/fd/{fd}", "auto" if os.path.isfile(f"/proc/self/fd/{fd}") else "none",
                        path, ApplyOptions(single_id=True), compressed_size=1 << 40)
        except LayerError as exc:
            self.remove_context(path)
            raise BuildError(f"the build context on stdin: {exc.message}",
                             "give a tar (plain) of the context directory") from None
        except BaseException:
            self.remove_context(path)
            raise
        return path

    def remove_context(self, path: str) -> None:
        """Remove a context made by ``unpack_context``."""
        import shutil

        shutil.rmtree(path, ignore_errors=True)
