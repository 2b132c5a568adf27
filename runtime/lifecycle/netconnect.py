"""``network connect`` and ``disconnect``: a container's user networks changed, now and for later.

The change is written into the container's record (its networks are read at every start), and a
container that runs on user networks is connected or disconnected at once: a veth pair made into
its network namespace (``rootlet.runtime.net.netns.connect``) or taken away. A container in a user
namespace of its own (the default slirp4netns or pasta network) cannot enter rootlet's network
namespace while it runs, and a container in a pod or in another's network has that network: both
are refused, as podman refuses them for rootless user-mode networks.
"""

from __future__ import annotations

from rootlet.registry.errors import NetworkUsageError
from rootlet.registry.fsutil import atomic_write_json
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.store import ContainerStore
from rootlet.runtime.net.networks import NetRequest, NetworkConfig


def change_networks(store: ImageStore, container: str, *, config: NetworkConfig, add: NetRequest | None = None,
                    remove: str | None = None) -> None:
    """Connect ``container`` to ``add`` (a request for network ``config``) or disconnect it from
    network ``remove``."""
    from rootlet.runtime.net import netns

    containers = ContainerStore(store)
    cid = containers.resolve(container)
    with containers.starting(cid):  # no start slips in between: it would see the old networks
        cfg = containers.config(cid)
        if cfg.network != "bridge":
            raise NetworkUsageError(f"container {cfg.name} has network mode {cfg.network.partition(':')[0]}: only "
                                    "containers on user networks can be connected or disconnected",
                                    "create it with --network NAME")
        state = containers.refresh(cid)
        names = [r.network for r in cfg.networks]
        if add is not None:
            if add.network in names:
                raise NetworkUsageError(f"container {cfg.name} is already connected to network {add.network}")
            if state.status == "running":
                netns.connect(store, cid, cfg.name, state.pid, add, config)
            cfg = cfg.replace(networks=[*cfg.networks, add])
        else:
            if remove not in names:
                raise NetworkUsageError(f"container {cfg.name} is not connected to network {remove}")
            if len(names) == 1:
                raise NetworkUsageError(f"network {remove} is the only network of container {cfg.name}",
                                        "connect it to another first, or remove the container")
            if state.status == "running":
                netns.leave(store, cid, remove)
            cfg = cfg.replace(networks=[r for r in cfg.networks if r.network != remove])
        with containers.locked(cid):
            atomic_write_json(containers.path(cid, "config.json"), cfg.to_json(), durable=False)
