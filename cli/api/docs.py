"""docker's JSON documents made from the engine's reports: a container as ``/containers/json``
lists it and ``/containers/{id}/json`` inspects it, an image as ``/images/json`` lists it.

rootlet's own inspect documents already carry docker's field names; what differs here is what
docker's clients rely on: names with a leading ``/``, the fields docker always sends (zero values
included: clients index into them), and docker's words for states.
"""

from __future__ import annotations

from rootlet.cli.render import describe_status, parse_time

#: rootlet's network modes → what NetworkSettings.Networks names them.
DEFAULT_NETWORK = "bridge"


def _state_word(status: str) -> str:
    return {"stopping": "running", "unknown": "dead"}.get(status, status)


def port_list(ports: list[object]) -> list[dict[str, object]]:
    out = []
    for p in ports:
        entry: dict[str, object] = {"PrivatePort": p.container_port, "Type": p.protocol}  # type: ignore[attr-defined]
        if p.host_port:  # type: ignore[attr-defined]
            entry.update(IP=p.host_ip or "0.0.0.0", PublicPort=p.host_port)  # type: ignore[attr-defined]
        out.append(entry)
    return out


def network_name(mode: str) -> str:
    return mode if mode in ("host", "none") else DEFAULT_NETWORK


def summary(r: object) -> dict[str, object]:
    """A ``ContainerSummary`` as ``GET /containers/json`` lists it."""
    doc: dict[str, object] = {
        "Id": r.id, "Names": [f"/{r.name}"], "Image": r.image,  # type: ignore[attr-defined]
        "ImageID": "sha256:" + r.image_id.removeprefix("sha256:"),  # type: ignore[attr-defined]
        "Command": " ".join(r.command), "Created": int(r.created),  # type: ignore[attr-defined]
        "Ports": port_list(r.ports), "Labels": dict(r.labels),  # type: ignore[attr-defined]
        "State": _state_word(r.status),  # type: ignore[attr-defined]
        "Status": describe_status(r.status, r.started_at, r.finished_at, r.exit_code),  # type: ignore[attr-defined]
        "HostConfig": {"NetworkMode": "default"},
        "NetworkSettings": {"Networks": {DEFAULT_NETWORK: _endpoint()}},
        "Mounts": [{"Destination": d} for d in r.mounts],  # type: ignore[attr-defined]
    }
    if r.rw_size is not None:  # type: ignore[attr-defined]
        doc.update(SizeRw=r.rw_size, SizeRootFs=r.root_size)  # type: ignore[attr-defined]
    return doc


def _endpoint() -> dict[str, object]:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": DEFAULT_NETWORK, "EndpointID": "",
            "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}


def container(doc: dict[str, object]) -> dict[str, object]:
    """rootlet's container inspect document as docker's."""
    state = dict(doc["State"])  # type: ignore[arg-type]
    state["Status"] = _state_word(str(state["Status"]))
    config = dict(doc["Config"])  # type: ignore[arg-type]
    host = dict(doc["HostConfig"])  # type: ignore[arg-type]
    net = dict(doc["NetworkSettings"])  # type: ignore[arg-type]
    mounts = [dict(m) for m in doc.get("Mounts") or []]  # type: ignore[union-attr]
    for m in mounts:
        m.setdefault("Mode", "" if m.get("RW", True) else "ro")
        m.setdefault("Propagation", "rprivate" if m.get("Type") == "bind" else "")
        if m.get("Type") == "volume":
            m.setdefault("Driver", "local")
    config.update({k: v for k, v in {"Domainname": "", "AttachStdin": False, "AttachStdout": True,
                                     "AttachStderr": True, "StdinOnce": False, "Volumes": None,
                                     "OnBuild": None, "ExposedPorts": _exposed(net.get("Ports"))}.items()
                   if k not in config})
    log = dict(host.get("LogConfig") or {})  # type: ignore[call-overload]
    if log.get("Type") == "k8s-file":
        # rootlet's log file is what docker's json-file is to docker: the log ``/logs`` reads (and
        # docker-py's run() reads the output only from a json-file or journald container).
        log["Type"] = "json-file"
    host["LogConfig"] = {"Type": log.get("Type", "json-file"), "Config": log.get("Config") or {}}
    mode = str(host.get("NetworkMode") or "")
    ports = net.get("Ports") or {}
    binds = [f"{m['Source']}:{m['Destination']}" + ("" if m.get("RW", True) else ":ro") for m in mounts
             if m.get("Type") == "bind"]
    for key, value in {"Binds": binds or None, "ContainerIDFile": "", "PortBindings": ports, "VolumeDriver": "",
                       "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": host.get("CapAdd") or None,
                       "CapDrop": None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [],
                       "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None,
                       "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
                       "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 65536000,
                       "Runtime": "rootlet", "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
                       "CgroupParent": "", "BlkioWeight": 0, "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "",
                       "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None,
                       "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False,
                       "PidsLimit": None, "Ulimits": None, "MaskedPaths": None, "ReadonlyPaths": None}.items():
        host.setdefault(key, value)
    net.update({"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0, "SandboxKey": "", "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
                "Ports": ports})
    networks = net.get("Networks")
    if isinstance(networks, dict) and networks:  # user networks, as the engine reports them
        net["Networks"] = {name: {**_endpoint(), **dict(ep), "NetworkID": ep.get("NetworkID") or name}
                           for name, ep in networks.items()}
        net["IPAddress"] = str(doc["NetworkSettings"].get("IPAddress") or "")  # type: ignore[union-attr]
    else:
        net["Networks"] = {network_name(mode): _endpoint()}
    out = dict(doc)
    directory = str(doc.get("LogPath") or "").rsplit("/", 1)[0]
    out.update({"Name": f"/{doc['Name']}", "State": state, "Config": config, "HostConfig": host,
                "NetworkSettings": net, "Mounts": mounts, "Driver": "overlay", "Platform": "linux",
                "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
                "ResolvConfPath": f"{directory}/etc/resolv.conf", "HostnamePath": f"{directory}/etc/hostname",
                "HostsPath": f"{directory}/etc/hosts", "GraphDriver": {"Name": "overlay", "Data": None},
                "SizeRw": None, "SizeRootFs": None})
    out.pop("ImageName", None)
    return out


def _exposed(ports: object) -> dict[str, object] | None:
    if not isinstance(ports, dict) or not ports:
        return None
    return {key: {} for key in ports}


def image_summaries(rows: list[object], containers: dict[str, int] | None = None) -> list[dict[str, object]]:
    """``ImageSummary`` rows (one per name) as ``GET /images/json`` lists images (one per image)."""
    by_id: dict[str, dict[str, object]] = {}
    for r in rows:
        image_id = r.id.removeprefix("sha256:")  # type: ignore[attr-defined]
        doc = by_id.get(image_id)
        if doc is None:
            created = parse_time(r.created) or r.pulled or 0  # type: ignore[attr-defined]
            doc = by_id[image_id] = {
                "Id": "sha256:" + image_id, "ParentId": "", "RepoTags": [], "RepoDigests": list(r.repo_digests),
                "Created": int(created), "Size": r.size, "SharedSize": -1, "VirtualSize": r.size,  # type: ignore
                "Labels": {}, "Containers": (containers or {}).get(image_id, -1)}
        if r.repository != "<none>":  # type: ignore[attr-defined]
            tag = f"{r.repository}:{r.tag}"  # type: ignore[attr-defined]
            if tag not in doc["RepoTags"]:  # type: ignore[operator]
                doc["RepoTags"].append(tag)  # type: ignore[union-attr]
    return list(by_id.values())


def image(doc: dict[str, object]) -> dict[str, object]:
    """rootlet's image inspect document with the fields docker adds."""
    out = dict(doc)
    out.setdefault("Parent", "")
    out.update({"DockerVersion": doc.get("Version", ""), "ContainerConfig": doc.get("Config"),
                "GraphDriver": {"Name": "overlay", "Data": None}, "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}})
    return out
