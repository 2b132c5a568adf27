"""What ``create`` records of a container's network, pod and healthcheck, and its /etc files.

``--network`` takes, beside the modes of ``rootlet.runtime.net.usermode`` (none, host,
slirp4netns, pasta, private), user networks by name (``--network a,b``, with ``--network-alias``
and ``--ip`` for the first) and ``container:NAME`` (that container's network namespace); ``--pod``
puts the container into a pod, whose network it then has. Everything is checked here, before the
container exists: a network that does not exist, ports published where they cannot be (a pod's
are published by the pod; a joined namespace has its owner's), a hostname in a pod that shares
its UTS namespace.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import NetworkUsageError, UsageError
from rootlet.registry.store import ImageStore
from rootlet.runtime.container.record import ContainerConfig

TYPE_CHECKING = False  # typing costs milliseconds to import; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Mapping

    from rootlet.runtime.container.create import Prepared
    from rootlet.runtime.container.options import RunOptions

#: The modes ``--network`` names without being a user network.
BUILTIN_MODES = ("private", "default", "bridge", "none", "host", "slirp4netns", "pasta")


def config_extras(store: ImageStore, opts: RunOptions, prepared: Prepared,
                  image_config: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """(the network mode to record, more ``ContainerConfig`` fields: networks, pod, healthcheck)."""
    from rootlet.runtime.container.health import health_config
    from rootlet.runtime.net.usermode import check_network_mode, default_network_mode

    extras: dict[str, object] = {"healthcheck": health_config(opts, image_config)}
    mode = prepared.network
    if opts.pod:
        mode = _pod_mode(store, opts, extras)
    elif mode == "container":
        mode = _container_mode(store, opts, prepared.network_options["container"])
    elif mode not in BUILTIN_MODES:
        mode = _user_networks(store, opts, extras)
    if opts.network_aliases and mode != "bridge":
        raise UsageError("--network-alias is only for user networks", "create one: rootlet network create NAME")
    if opts.ip and mode != "bridge":
        raise UsageError("--ip is only for user networks", "create one: rootlet network create NAME")
    if mode in ("private", "default", "bridge") and not extras.get("networks"):
        mode = default_network_mode()
    if mode in BUILTIN_MODES and not extras.get("networks"):
        check_network_mode(mode)
    return mode, extras


def _user_networks(store: ImageStore, opts: RunOptions, extras: dict[str, object]) -> str:
    from rootlet.runtime.net.networks import NetRequest, NetworkStore

    names = [n for n in (opts.network or "").split(",")]
    if any(not n or n in BUILTIN_MODES or ":" in n for n in names) or len(set(names)) != len(names):
        raise NetworkUsageError(f"invalid --network {opts.network!r}",
                                "give user networks as NAME[,NAME…], or one mode: none, host, slirp4netns, pasta")
    if opts.userns == "keep-id":
        raise UsageError("--userns keep-id cannot be used with user networks: their containers share one user "
                         "namespace", "drop --userns keep-id, or use the default network")
    networks = NetworkStore(store)
    requests = []
    for i, name in enumerate(names):
        cfg = networks.config(name)  # NetworkNotFound names it
        requests.append(NetRequest(cfg.name, tuple(opts.network_aliases) if i == 0 else (),
                                   (opts.ip or "") if i == 0 else ""))
    for alias in opts.network_aliases:
        from rootlet.runtime.container.store import check_name

        check_name(alias)
    extras["networks"] = requests
    return "bridge"


def _container_mode(store: ImageStore, opts: RunOptions, target: str) -> str:
    from rootlet.runtime.container.store import ContainerStore

    if opts.publish:
        raise NetworkUsageError("conflicting options: port publishing and the network mode container:",
                                f"publish the ports on {target} instead")
    if opts.userns == "keep-id":
        raise UsageError("--userns keep-id cannot be used with --network container:", "drop one of them")
    return "container:" + ContainerStore(store).resolve(target)


def _pod_mode(store: ImageStore, opts: RunOptions, extras: dict[str, object]) -> str:
    from rootlet.runtime.container.pods import PodStore

    if opts.network and opts.network not in ("private", "default"):
        raise NetworkUsageError("a container in a pod has the pod's network: --network cannot be given with --pod",
                                "give the network to `pod create --network`")
    if opts.publish:
        raise NetworkUsageError("published ports must be defined when the pod is created: a container in a pod "
                                "has the pod's network", "rootlet pod create -p HOST:CTR …")
    if opts.userns == "keep-id":
        raise UsageError("--userns keep-id cannot be used with --pod", "drop --userns keep-id")
    pod = PodStore(store).config(opts.pod or "")
    if opts.hostname and "uts" in pod.share:
        raise UsageError("cannot set a hostname when joining the pod's UTS namespace",
                         "drop --hostname; the pod's name is its hostname")
    extras["pod"] = pod.id
    return "pod"


def write_container_etc(store: ImageStore, etc: str, opts: RunOptions, cfg: ContainerConfig) -> None:
    """hosts, resolv.conf and hostname (``rootlet.runtime.net.etcfiles``), and /run/.containerenv:
    empty, or under ``--privileged`` what podman writes there (engine, name, id, image). On user
    networks the nameserver is the first network's DNS responder, with podman's search domain."""
    from rootlet.registry.fsutil import atomic_write
    from rootlet.runtime.net.addresses import NetworkInfo, host_address, host_resolv, slirp_addresses
    from rootlet.runtime.net.etcfiles import write_etc_files

    slirp = cfg.network == "slirp4netns"
    info = None
    search = tuple(opts.dns_search)
    if slirp:
        guest, gateway, dns = slirp_addresses(cfg.network_options.get("cidr"))
        info = NetworkInfo("slirp4netns", guest, gateway, (dns,))
    elif cfg.network in ("bridge", "pod"):
        info = _joined_info(store, cfg)
        if info is not None and info.mode == "bridge" and not search:
            from rootlet.runtime.net.networks import DNS_DOMAIN

            search = (DNS_DOMAIN, *host_resolv()[1])
    # Only slirp4netns reaches the host at its own address: pasta gives the container a copy of
    # that address, so from inside it names the container itself.
    write_etc_files(etc, hostname=cfg.hostname, mode=info.mode if info else cfg.network, info=info, dns=opts.dns,
                    dns_search=search, dns_options=opts.dns_option, add_hosts=opts.add_host, name=cfg.name,
                    host_ip=host_address() if slirp else None)
    env = ""
    if cfg.privileged:
        env = (f'engine="rootlet"\nname="{cfg.name}"\nid="{cfg.id}"\nimage="{cfg.image_name}"\n'
               f'imageid="{cfg.image_id}"\nrootless={int(os.getuid() != 0)}\n')
    atomic_write(os.path.join(etc, "containerenv"), env.encode(), 0o644, durable=False)


def _joined_info(store: ImageStore, cfg: ContainerConfig):  # -> NetworkInfo | None
    """What the container sees of a user network or a pod's network (its address comes at start)."""
    from rootlet.runtime.net.addresses import NetworkInfo, slirp_addresses
    from rootlet.runtime.net.networks import NetworkStore

    networks = cfg.networks
    if cfg.pod:
        from rootlet.runtime.container.pods import PodStore

        pod = PodStore(store).config(cfg.pod)
        if pod.network == "slirp4netns":
            guest, gateway, dns = slirp_addresses(None)
            return NetworkInfo("slirp4netns", guest, gateway, (dns,))
        if pod.network != "bridge":
            return NetworkInfo(pod.network, None, None, ())
        networks = pod.networks
    if not networks:
        return None
    first = NetworkStore(store).config(networks[0].network)
    return NetworkInfo("bridge", None, first.gateway, (first.gateway,))


def set_own_address(etc: str, ip: str) -> None:
    """At a start on a user network: the container's own line of /etc/hosts (its last) names its
    address there, which is known only now."""
    from rootlet.registry.fsutil import atomic_write

    path = os.path.join(etc, "hosts")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    if lines:
        _old, _, names = lines[-1].partition("\t")
        lines[-1] = f"{ip}\t{names}"
        atomic_write(path, ("\n".join(lines) + "\n").encode(), 0o644, durable=False)


def inspect_extras(store: ImageStore, cfg: ContainerConfig, state: object, doc: dict) -> None:
    """What ``inspect`` adds for user networks (``NetworkSettings.Networks``), a pod (``Pod``) and a
    healthcheck (``Config.Healthcheck``, ``State.Health``), into ``doc``."""
    if cfg.healthcheck is not None:
        from rootlet.runtime.container.health import health_doc, read_health

        hc = cfg.healthcheck
        doc["Config"]["Healthcheck"] = {"Test": list(hc.test), "Interval": hc.interval, "Timeout": hc.timeout,
                                        "StartPeriod": hc.start_period, "Retries": hc.retries}
        health = read_health(store, cfg.id)
        if health is not None:
            doc["State"]["Health"] = health_doc(health)
    if cfg.pod:
        doc["Pod"] = cfg.pod
    if cfg.networks:
        from rootlet.runtime.net import netns
        from rootlet.runtime.net.networks import NetworkStore

        running = getattr(state, "status", "") == "running"
        live = {a.network: a for a in netns.attachments(store) if a.cid == cfg.id} if running else {}
        networks = NetworkStore(store)
        out = {}
        for req in cfg.networks:
            try:
                net = networks.config(req.network)
            except Exception:  # noqa: BLE001 - removed since: shown without its details
                net = None
            att = live.get(req.network)
            out[req.network] = {
                "NetworkID": net.id if net else "", "IPAddress": att.ip if att else "",
                "IPPrefixLen": net.prefix if net and att else 0, "Gateway": net.gateway if net and att else "",
                "Aliases": [*req.aliases, cfg.id[:12]], "MacAddress": ""}
        doc["NetworkSettings"]["Networks"] = out
        if cfg.networks[0].network in live:
            doc["NetworkSettings"]["IPAddress"] = live[cfg.networks[0].network].ip
