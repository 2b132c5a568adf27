"""The engine: the one way into rootlet's containers and images, for every front end.

    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.options import RunOptions

    engine = Engine(root, env=os.environ)
    code = engine.run(RunOptions(image="alpine", command=("echo", "hi"), rm=True))

One method per verb; each takes an options record (``rootlet.runtime.engine.options``) and returns
a report record (``rootlet.runtime.engine.reports``), a list of them, or an iterator (``logs``).
The engine never prints, formats for humans, or exits: failures are ``RootletError``s with a
message, a hint and an exit code, which the front end renders (the CLI in ``rootlet.cli.main``).
Rules that cut across verbs live here once: e.g. an image a container uses is not removed.

The verbs are grouped in families, one mixin class per module of this package (``ImageVerbs`` in
``images``, ``ContainerVerbs`` in ``containers``, …). Importing this package costs microseconds:
an Engine takes a family's methods on first use (the table in ``verbs``), so ``rootlet ps`` imports
the container verbs and not the twelve other families with their options; and each verb imports
what it needs when called, so ``rootlet run`` does not pay for pulling either.
"""

from __future__ import annotations

import os

from rootlet.runtime.engine.verbs import FAMILIES, VERBS

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Mapping

    from rootlet.runtime.engine.api_support import ApiVerbs
    from rootlet.runtime.engine.archives import ArchiveVerbs
    from rootlet.runtime.engine.build import BuildVerbs
    from rootlet.runtime.engine.commit import CommitVerbs
    from rootlet.runtime.engine.containers import ContainerVerbs
    from rootlet.runtime.engine.health import HealthVerbs
    from rootlet.runtime.engine.images import ImageVerbs
    from rootlet.runtime.engine.kube import KubeVerbs
    from rootlet.runtime.engine.networks import NetworkVerbs
    from rootlet.runtime.engine.pods import PodVerbs
    from rootlet.runtime.engine.push import PushVerbs
    from rootlet.runtime.engine.system import SystemVerbs
    from rootlet.runtime.engine.volumes import VolumeVerbs

    class _Verbs(ImageVerbs, CommitVerbs, PushVerbs, ArchiveVerbs, BuildVerbs, ContainerVerbs, SystemVerbs,
                 VolumeVerbs, ApiVerbs, NetworkVerbs, PodVerbs, HealthVerbs, KubeVerbs):
        """What type checkers see: every family mixed in (at run time they join on first use)."""
else:
    _Verbs = object

__all__ = ["Engine", "default_root"]


def default_root(env: Mapping[str, str] | None = None) -> str:
    """The store root when none is given: ``$ROOTLET_ROOT``, else ``$XDG_DATA_HOME/rootlet``,
    else ``~/.local/share/rootlet``."""
    from rootlet.registry.store import default_store_root

    return default_store_root(dict(os.environ if env is None else env))


class Engine(_Verbs):
    """rootlet's containers and images under one store root.

    ``env`` is the caller's environment: ``-e NAME`` and ``--env-file`` pass values through from
    it, and ``ROOTLET_OVERLAY`` (kernel|fuse|auto) chooses the overlay of new containers.
    """

    def __init__(self, root: str | None = None, env: Mapping[str, str] | None = None) -> None:
        from rootlet.registry.store import ImageStore

        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self.root = os.path.abspath(root) if root else default_root(self.env)
        self.overlay = self.env.get("ROOTLET_OVERLAY") or "auto"
        self.images_store = ImageStore(self.root)

    def __getattr__(self, name: str) -> object:
        """A verb of a family not used yet (only then is this called): the family joins the class."""
        family = VERBS.get(name)
        if family is None or family in _JOINED:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        _join(family)
        return getattr(self, name)


#: The families whose methods Engine has taken (each module's class is read once).
_JOINED: set[str] = set()


def _join(family: str) -> None:
    """Give Engine the methods, properties and class attributes of one verb family."""
    mixin = getattr(__import__(f"rootlet.runtime.engine.{family}", fromlist=[FAMILIES[family]]), FAMILIES[family])
    for name, value in vars(mixin).items():
        if not (name.startswith("__") and name.endswith("__")) and name not in vars(Engine):
            setattr(Engine, name, value)
    _JOINED.add(family)
