"""What the builder carries from step to step: a stage's current image, and the build's result."""

from __future__ import annotations

from rootlet.registry.record import Record
from rootlet.runtime.build import config as configs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from rootlet.runtime.build.dockerfile import Stage


class BuildReport(Record):
    """The built image's id (hex), the names it got, and warnings for the user."""

    image_id: str
    tags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class StageState:
    """A stage being built: its current image (``image_id`` None: FROM scratch, nothing yet), its
    config document (``doc``, the OCI image config) and layers (chain ids), the ARGs in scope and
    the SHELL."""

    def __init__(self, stage: Stage, doc: dict[str, Any], layers: list[str], image_id: str | None,
                 base_name: str) -> None:
        self.stage = stage
        self.doc = doc
        self.layers = layers
        self.image_id = image_id
        self.base_name = base_name
        self.args: dict[str, str] = {}
        self.shell: tuple[str, ...] = tuple(doc.get("config", {}).get("Shell") or configs.DEFAULT_SHELL)

    @property
    def config(self) -> dict[str, Any]:
        """The image config's ``config`` object (Env, Cmd, …), made when missing."""
        return self.doc.setdefault("config", {})  # type: ignore[no-any-return]

    def scope(self) -> dict[str, str]:
        """What ``$VAR`` sees: the ARGs, overridden by the ENVs."""
        out = dict(self.args)
        out.update(configs.env_map(self.config))
        return out
