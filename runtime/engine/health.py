"""The engine's healthcheck verb: ``healthcheck run``."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Mapping

    from rootlet.registry.store import ImageStore
    from rootlet.runtime.container.health import HealthState


class HealthVerbs:
    """Mixed into ``Engine`` (see ``rootlet.runtime.engine``)."""

    images_store: ImageStore
    env: Mapping[str, str]

    def healthcheck_run(self, container: str) -> HealthState:
        """Run a running container's healthcheck once and record it; the container's health after it
        (its last result says whether this check passed)."""
        from rootlet.runtime.container.health import run_check
        from rootlet.runtime.container.store import ContainerStore

        cid = ContainerStore(self.images_store).resolve(container)
        return run_check(self.images_store, cid, self.env)
