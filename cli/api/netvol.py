"""Volume endpoints (the engine's volume verbs) and network endpoints (the engine's network verbs).

``/networks`` lists docker's predefined networks as rootlet's modes under docker's names
(``bridge``: rootlet's default user-mode network, each container its own; ``host``; ``none``),
then the user networks, which containers on them reach each other on by name.
"""

from __future__ import annotations

import hashlib

from rootlet.cli.api import query
from rootlet.cli.api.http import HttpError, Request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootlet.cli.api.routes import Context

# --- volumes -----------------------------------------------------------------------------------------

def _volume(doc: dict[str, object]) -> dict[str, object]:
    out = {k: doc[k] for k in ("Name", "Driver", "Mountpoint", "CreatedAt", "Labels", "Scope", "Options") if k in doc}
    out["Labels"] = out.get("Labels") or None
    out["Options"] = out.get("Options") or None
    return out


def volume_list(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import VolumeLsOptions

    filters = tuple(f"{k}={v}" for k, v in query.filters(req))
    req.send_json({"Volumes": [_volume(d) for d in ctx.engine.volume_ls(VolumeLsOptions(filters=filters))],
                   "Warnings": None})


def volume_create(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import VolumeCreateOptions

    body = query.object_body(req)
    unknown = sorted(set(body) - {"Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec"})
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r} in the volume configuration", keep=True)
    if body.get("ClusterVolumeSpec"):
        raise HttpError(400, "cluster volumes need a swarm: rootlet has none", keep=True)
    opts = query.string_map(body, "DriverOpts") or {}
    labels = query.string_map(body, "Labels") or {}
    name = ctx.engine.volume_create(VolumeCreateOptions(
        name=query.string(body, "Name") or None, driver=query.string(body, "Driver") or "local",
        labels=tuple(f"{k}={v}" for k, v in labels.items()), options=tuple(f"{k}={v}" for k, v in opts.items()),
        ignore=True))
    report = ctx.engine.volume_inspect((name,))
    req.send_json(_volume(report.docs[0]), 201)


def volume_inspect(req: Request, ctx: Context) -> None:
    report = ctx.engine.volume_inspect((req.params["name"],))
    if report.errors:
        raise report.errors[0]  # type: ignore[misc]
    req.send_json(_volume(report.docs[0]))


def volume_remove(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import VolumeRmOptions

    for r in ctx.engine.volume_rm(VolumeRmOptions(names=(req.params["name"],), force=query.boolean(req, "force"))):
        if r.error is not None:
            raise r.error
    req.send(204, b"", None)


def volume_prune(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import VolumePruneOptions

    filters = tuple(f"{k}={v}" for k, v in query.filters(req))
    report = ctx.engine.volume_prune(VolumePruneOptions(filters=filters))
    req.send_json({"VolumesDeleted": report.names or None, "SpaceReclaimed": report.reclaimed})


# --- networks ----------------------------------------------------------------------------------------

#: docker's predefined networks, as rootlet's modes: name → driver.
BUILTIN = {"bridge": "slirp4netns", "host": "host", "none": "null"}


def _builtin_id(name: str) -> str:
    return hashlib.sha256(f"rootlet-network-{name}".encode()).hexdigest()


def _network_doc(name: str, ident: str, driver: str, created: str = "0001-01-01T00:00:00Z",
                 subnets: list[dict[str, str]] | None = None, internal: bool = False,
                 labels: dict[str, str] | None = None) -> dict[str, object]:
    config = [{"Subnet": s.get("subnet", ""), "Gateway": s.get("gateway", "")} for s in subnets or []]
    return {"Name": name, "Id": ident, "Created": created, "Scope": "local", "Driver": driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": config}, "Internal": internal,
            "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": {}, "Options": {}, "Labels": labels or {}}


def _user_doc(doc: dict[str, object]) -> dict[str, object]:
    """The engine's (podman's) network document as docker's."""
    return _network_doc(str(doc["name"]), str(doc["id"]), str(doc.get("driver") or "bridge"),
                        str(doc.get("created") or ""), list(doc.get("subnets") or []),  # type: ignore[arg-type]
                        bool(doc.get("internal")), dict(doc.get("labels") or {}))  # type: ignore[arg-type]


def _builtin(ident: str) -> str | None:
    for name in BUILTIN:
        if ident == name or (len(ident) >= 3 and _builtin_id(name).startswith(ident)):
            return name
    return None


def _find(ctx: Context, ident: str) -> dict[str, object]:
    """docker's document of a predefined or user network (404 ``NetworkNotFound`` when none)."""
    name = _builtin(ident)
    if name is not None:
        return _network_doc(name, _builtin_id(name), BUILTIN[name])
    report = ctx.engine.network_inspect((ident,))
    if report.errors:
        raise report.errors[0]  # type: ignore[misc]
    return _user_doc(report.docs[0])  # type: ignore[arg-type]


def network_list(req: Request, ctx: Context) -> None:
    builtin = list(BUILTIN)
    custom = True
    engine_filters = []
    for key, value in query.filters(req):
        if key == "type":
            if value not in ("builtin", "custom"):
                raise HttpError(400, f"invalid filter type={value!r}: builtin or custom", keep=True)
            builtin, custom = (builtin, False) if value == "builtin" else ([], custom)
            continue
        if key == "scope":
            builtin, custom = (builtin, custom) if value == "local" else ([], False)
            continue
        if key == "name":
            builtin = [n for n in builtin if value in n]
        elif key == "id":
            builtin = [n for n in builtin if _builtin_id(n).startswith(value)]
        elif key == "driver":
            builtin = [n for n in builtin if BUILTIN[n] == value]
        elif key == "label":
            builtin = []
        elif key != "dangling":
            raise HttpError(400, f"invalid filter {key!r} for networks", keep=True)
        engine_filters.append(f"{key}={value}")
    docs = [_network_doc(n, _builtin_id(n), BUILTIN[n]) for n in builtin]
    if custom:
        docs += [_user_doc(d) for d in ctx.engine.network_ls(tuple(engine_filters))]
    req.send_json(docs)


def network_inspect(req: Request, ctx: Context) -> None:
    req.send_json(_find(ctx, req.params["id"]))


def network_create(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import NetworkCreateOptions

    body = query.object_body(req, required=True)
    unknown = sorted(set(body) - {"Name", "CheckDuplicate", "Driver", "Internal", "Attachable", "Ingress", "IPAM",
                                  "EnableIPv6", "Options", "Labels", "Scope", "ConfigOnly", "ConfigFrom"})
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r} in the network configuration", keep=True)
    name = query.string(body, "Name") or ""
    if not name:
        raise HttpError(400, "Name is required", keep=True)
    for key in ("Ingress", "EnableIPv6", "ConfigOnly"):  # Attachable: every local network is
        if query.field(body, key, bool):
            raise HttpError(400, f"{key} is not supported by rootlet's networks", keep=True)
    if query.string_map(body, "Options") or body.get("ConfigFrom"):
        raise HttpError(400, "driver options and config-from networks are not supported", keep=True)
    if _builtin(name) == name or ctx.engine.network_exists(name):
        raise HttpError(409, f"network with name {name} already exists", keep=True)
    ipam = query.field(body, "IPAM", dict) or {}
    pools = query.field(ipam, "Config", list, "IPAM.") or []  # type: ignore[arg-type]
    if len(pools) > 1 or query.string_map(ipam, "Options", "IPAM.") or \
            (query.string(ipam, "Driver", "IPAM.") or "default") != "default":  # type: ignore[arg-type]
        raise HttpError(400, "IPAM: one pool of the default driver is supported", keep=True)
    pool = pools[0] if pools else {}
    if not isinstance(pool, dict) or set(k for k, v in pool.items() if v) - {"Subnet", "Gateway"}:
        raise HttpError(400, "IPAM.Config: Subnet and Gateway are supported", keep=True)
    labels = query.string_map(body, "Labels") or {}
    created = ctx.engine.network_create(NetworkCreateOptions(
        name=name, subnet=pool.get("Subnet") or None, gateway=pool.get("Gateway") or None,
        internal=bool(query.field(body, "Internal", bool)), labels=tuple(f"{k}={v}" for k, v in labels.items()),
        driver=query.string(body, "Driver") or "bridge"))
    req.send_json({"Id": _find(ctx, created)["Id"], "Warning": ""}, 201)


def network_remove(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import NetworkRmOptions

    ident = req.params["id"]
    if _builtin(ident) is not None:
        raise HttpError(403, f"{_builtin(ident)} is a pre-defined network and cannot be removed", keep=True)
    for r in ctx.engine.network_rm(NetworkRmOptions(names=(ident,))):
        if r.error is not None:
            raise r.error
    req.send(204, b"", None)


def network_connect(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import NetworkConnectOptions

    ident = req.params["id"]
    body = query.object_body(req, required=True)
    container = query.string(body, "Container") or ""
    if not container:
        raise HttpError(400, "Container is required", keep=True)
    if _builtin(ident) is not None:
        raise HttpError(400, f"a container cannot be connected to or disconnected from {_builtin(ident)}: it is "
                        "a network mode, chosen at create", keep=True)
    if req.path.rstrip("/").endswith("/disconnect"):
        ctx.engine.network_disconnect(NetworkConnectOptions(network=ident, container=container,
                                                            force=bool(query.field(body, "Force", bool))))
    else:
        endpoint = query.field(body, "EndpointConfig", dict) or {}
        ipam = query.field(endpoint, "IPAMConfig", dict, "EndpointConfig.") or {}  # type: ignore[arg-type]
        ctx.engine.network_connect(NetworkConnectOptions(
            network=ident, container=container,
            aliases=tuple(query.strings(endpoint, "Aliases", "EndpointConfig.") or ()),  # type: ignore[arg-type]
            ip=query.string(ipam, "IPv4Address", "EndpointConfig.IPAMConfig.") or None))  # type: ignore[arg-type]
    req.send(200, b"", None)


def network_prune(req: Request, ctx: Context) -> None:
    if query.filters(req):
        raise HttpError(400, "network prune filters are not supported", keep=True)
    req.send_json({"NetworksDeleted": ctx.engine.network_prune() or None})
