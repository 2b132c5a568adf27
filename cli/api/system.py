"""System endpoints: ``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``, ``/auth``."""

from __future__ import annotations

import os
import time

from rootlet.cli.api import query
from rootlet.cli.api.http import ClientGone, HttpError, Request, exit_on_hangup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootlet.cli.api.routes import Context

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"


def ping(req: Request, ctx: Context) -> None:
    """docker's ping: ``OK`` (nothing for HEAD), with what a client negotiates from."""
    req.send(200, b"OK", "text/plain; charset=utf-8",
             headers=[("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
                      ("Pragma", "no-cache")])


def version(req: Request, ctx: Context) -> None:
    report = ctx.engine.version()
    kernel = os.uname().release
    details = {"ApiVersion": API_VERSION, "Arch": report.arch, "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": f"python{report.python_version}", "KernelVersion": kernel,
               "MinAPIVersion": MIN_API_VERSION, "Os": report.os}
    req.send_json({
        "Platform": {"Name": "rootlet"},
        "Components": [{"Name": "Engine", "Version": report.version, "Details": details}],
        "Version": report.version, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": f"python{report.python_version}", "Os": report.os, "Arch": report.arch,
        "KernelVersion": kernel, "BuildTime": "",
    })


def info(req: Request, ctx: Context) -> None:
    engine = ctx.engine
    report = engine.info()
    host, store = report.host, report.store
    from rootlet.runtime.engine.options import PsOptions

    rows = engine.ps(PsOptions(all=True))
    running = sum(1 for r in rows if r.status == "running")
    problems = [f"{c.name}: {c.detail}" for c in getattr(host, "checks", ()) if not getattr(c, "ok", True)]
    uname = os.uname()
    req.send_json({
        "ID": "", "Name": uname.nodename, "ServerVersion": engine.version().version,
        "Containers": len(rows), "ContainersRunning": running, "ContainersPaused": 0,
        "ContainersStopped": len(rows) - running, "Images": store.images,
        "Driver": "overlay", "DriverStatus": [["Backing Filesystem", "overlay"],
                                             ["Native Overlay Diff", str(bool(host.kernel_overlay)).lower()]],
        "DockerRootDir": store.root, "Plugins": {"Volume": ["local"], "Network": ["host", "none", "slirp4netns"],
                                                 "Authorization": None, "Log": ["k8s-file", "none"]},
        "MemoryLimit": False, "SwapLimit": False, "KernelMemory": False, "CpuCfsPeriod": False, "CpuCfsQuota": False,
        "CPUShares": False, "CPUSet": False, "PidsLimit": False, "IPv4Forwarding": True, "BridgeNfIptables": False,
        "BridgeNfIp6tables": False, "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
        "NGoroutines": 1, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "LoggingDriver": "k8s-file", "CgroupDriver": "none", "CgroupVersion": host.cgroup_version.lstrip("v"),
        "NEventsListener": 0, "KernelVersion": host.kernel, "OperatingSystem": _os_name(), "OSVersion": "",
        "OSType": "linux", "Architecture": uname.machine, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None, "HttpProxy": "",
        "HttpsProxy": "", "NoProxy": "", "Labels": [], "ExperimentalBuild": False, "LiveRestoreEnabled": True,
        "Runtimes": {"rootlet": {"path": "rootlet"}}, "DefaultRuntime": "rootlet", "Isolation": "",
        "InitBinary": "", "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""}, "Swarm": {"LocalNodeState": "inactive", "NodeID": "",
                                                              "NodeAddr": "", "ControlAvailable": False, "Error": "",
                                                              "RemoteManagers": None},
        "SecurityOptions": ["name=seccomp,profile=default", "name=rootless"], "Warnings": problems,
    })


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


#: rootlet's event words → docker's (podman's ``died`` is docker's ``die`` …).
DOCKER_ACTIONS = {("container", "died"): "die", ("container", "remove"): "destroy", ("image", "remove"): "delete"}
ROOTLET_ACTIONS = {docker: rootlet for (_, rootlet), docker in DOCKER_ACTIONS.items()}


def event_doc(e: object) -> dict[str, object]:
    """docker's event message for a recorded event."""
    kind, status = e.type, e.status  # type: ignore[attr-defined]
    action = DOCKER_ACTIONS.get((kind, status), status)
    attrs: dict[str, object] = dict(e.attributes)  # type: ignore[attr-defined]
    if e.name:  # type: ignore[attr-defined]
        attrs["name"] = e.name  # type: ignore[attr-defined]
    if e.image:  # type: ignore[attr-defined]
        attrs["image"] = e.image  # type: ignore[attr-defined]
    if e.exit_code is not None:  # type: ignore[attr-defined]
        attrs["exitCode"] = str(e.exit_code)  # type: ignore[attr-defined]
    ident = e.id or e.name  # type: ignore[attr-defined]
    doc: dict[str, object] = {"Type": kind, "Action": action, "Actor": {"ID": ident, "Attributes": attrs},
                              "scope": "local", "time": e.time // 1_000_000_000, "timeNano": e.time}  # type: ignore
    if kind == "container":
        doc.update(status=action, id=ident, **({"from": e.image} if e.image else {}))  # type: ignore[attr-defined]
    return doc


def events(req: Request, ctx: Context) -> None:
    from rootlet.runtime.engine.options import EventsOptions

    filters = []
    for key, value in query.filters(req):
        if key == "event":
            value = ROOTLET_ACTIONS.get(value, value)
        elif key not in ("type", "container", "image", "volume", "label"):
            raise HttpError(400, f"invalid filter {key!r} for events: use type, event, container, image, volume "
                            "or label", keep=True)
        filters.append(f"{key}={value}")
    # docker's events start now unless a since is given (the recorded past is there for those who ask)
    since, until = req.arg("since") or f"{time.time():.9f}", req.arg("until") or None
    source = ctx.engine.events(EventsOptions(since=since, until=until, filters=tuple(filters),
                                             stream=True))
    stream = req.start_stream()
    req.streaming()
    exit_on_hangup(req.conn)
    try:
        for e in source:
            stream.json(event_doc(e))
        stream.close()
    except ClientGone:
        return


def df(req: Request, ctx: Context) -> None:
    report = ctx.engine.system_df()
    images = _df_images(report.images)
    layers = sum(int(i["Size"]) - int(i["SharedSize"]) for i in images.values()) + \
        max((int(i["SharedSize"]) for i in images.values()), default=0)
    req.send_json({
        "LayersSize": layers,
        "Images": list(_df_images(report.images).values()),
        "Containers": [{"Id": c.id, "Names": [f"/{c.name}"], "Image": c.image_id, "ImageID": c.image_id,
                        "Command": " ".join(c.command), "Created": int(c.created), "State": c.status,
                        "Status": c.status, "SizeRw": c.size, "SizeRootFs": c.size, "Labels": {}, "Mounts": []}
                       for c in report.containers],
        "Volumes": [{"Name": v.name, "Driver": "local", "Mountpoint": "", "Labels": {}, "Scope": "local",
                     "Options": {}, "UsageData": {"Size": v.size, "RefCount": v.links}} for v in report.volumes],
        "BuildCache": [],
    })


def _df_images(rows: list[object]) -> dict[str, dict[str, object]]:
    """``system df``'s rows (one per name) as docker's (one per image, its names together)."""
    out: dict[str, dict[str, object]] = {}
    for i in rows:
        image_id = i.id.removeprefix("sha256:")  # type: ignore[attr-defined]
        doc = out.setdefault(image_id, {
            "Id": "sha256:" + image_id, "ParentId": "", "RepoTags": [], "RepoDigests": [],
            "Created": _unix(i.created), "Size": i.size, "SharedSize": i.shared,  # type: ignore[attr-defined]
            "VirtualSize": i.size, "Labels": {}, "Containers": i.containers})  # type: ignore[attr-defined]
        if i.repository != "<none>":  # type: ignore[attr-defined]
            doc["RepoTags"].append(f"{i.repository}:{i.tag}")  # type: ignore[attr-defined,union-attr]
    return out


def _unix(rfc3339: str | None) -> int:
    from rootlet.cli.render import parse_time

    try:
        return int(parse_time(rfc3339) or 0)
    except Exception:  # noqa: BLE001 - a creation time that does not parse shows as 0, as docker's zero time
        return 0


def auth(req: Request, ctx: Context) -> None:
    """``docker login``: check the credentials against the registry and keep them (podman's login)."""
    from rootlet.runtime.engine.options import LoginOptions

    body = query.object_body(req)
    server = query.string(body, "serveraddress") or "docker.io"
    user, password = query.string(body, "username"), query.string(body, "password")
    if not user or not password:
        raise HttpError(400, "username and password are required", keep=True)
    ctx.engine.login(LoginOptions(server=server, username=user, password=password))
    req.send_json({"Status": "Login Succeeded", "IdentityToken": ""})
