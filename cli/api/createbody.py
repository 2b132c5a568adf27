"""docker's container-create body → the engine's ``RunOptions``.

Every field docker's ``container.Config``, ``HostConfig`` and ``NetworkingConfig`` define is known
here. A field rootlet honours is translated into the textual syntax the engine parses for the CLI
too (``-v``, ``--mount``, ``-p``, ``--ulimit`` …), so the same rules and messages apply; a field
rootlet cannot honour is accepted only at its zero value (what clients send when it is unset) and
otherwise refused with a 400 naming it; an unknown field is refused too: nothing a client asks
for is silently dropped. Values of the wrong JSON type are 400s naming the field.
"""

from __future__ import annotations

import json

from rootlet.cli.api.http import HttpError
from rootlet.cli.api.query import field, string, string_map, strings
from rootlet.runtime.engine.options import RunOptions

#: Config fields taken as they are meant, or as metadata (ExposedPorts, ArgsEscaped, Shell: they
#: change nothing at run time in docker either).
CONFIG_FIELDS = {"Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
                 "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
                 "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
                 "StopTimeout", "Shell", "HostConfig", "NetworkingConfig"}
HOST_FIELDS = {"Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy", "AutoRemove",
               "VolumeDriver", "VolumesFrom", "ConsoleSize", "Annotations", "CapAdd", "CapDrop", "CgroupnsMode",
               "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "IpcMode", "Cgroup", "Links",
               "OomScoreAdj", "PidMode", "Privileged", "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt",
               "StorageOpt", "Tmpfs", "UTSMode", "UsernsMode", "ShmSize", "Sysctls", "Runtime", "Isolation",
               "CpuShares", "Memory", "NanoCpus", "CgroupParent", "BlkioWeight", "BlkioWeightDevice",
               "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
               "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems",
               "Devices", "DeviceCgroupRules", "DeviceRequests", "KernelMemory", "KernelMemoryTCP",
               "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable", "PidsLimit", "Ulimits",
               "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth", "Mounts", "MaskedPaths",
               "ReadonlyPaths", "Init"}
#: Fields rootlet does not implement, with what "unset" looks like for each (besides null, an empty
#: string, list or object, and 0/false), and why they cannot be honoured.
UNSET_ONLY = {
    "Domainname": "a container's domain name", "MacAddress": "MAC addresses (user-mode networking)",
    "OnBuild": "ONBUILD at create", "VolumesFrom": "--volumes-from",
    "Links": "links (user networks)", "OomScoreAdj": "OOM score adjustments", "PublishAllPorts": "-P",
    "StorageOpt": "storage options", "Sysctls": "sysctls", "ShmSize": "a /dev/shm size", "CpuShares": "cgroup limits",
    "CgroupParent": "cgroups", "BlkioWeight": "cgroup limits", "BlkioWeightDevice": "cgroup limits",
    "BlkioDeviceReadBps": "cgroup limits", "BlkioDeviceWriteBps": "cgroup limits",
    "BlkioDeviceReadIOps": "cgroup limits", "BlkioDeviceWriteIOps": "cgroup limits", "CpuPeriod": "cgroup limits",
    "CpuQuota": "cgroup limits", "CpuRealtimePeriod": "cgroup limits", "CpuRealtimeRuntime": "cgroup limits",
    "CpusetCpus": "cgroup limits", "CpusetMems": "cgroup limits", "Devices": "host devices (rootless)",
    "DeviceCgroupRules": "cgroups", "DeviceRequests": "GPUs", "KernelMemory": "cgroup limits",
    "KernelMemoryTCP": "cgroup limits", "MemoryReservation": "cgroup limits", "OomKillDisable": "cgroups",
    "CpuCount": "cgroup limits", "CpuPercent": "cgroup limits", "IOMaximumIOps": "cgroup limits",
    "IOMaximumBandwidth": "cgroup limits", "MaskedPaths": "custom masked paths",
    "ReadonlyPaths": "custom read-only paths", "Shell": "SHELL at create",
}
#: Values that mean "the default" for modes rootlet has one way of doing.
DEFAULT_WORDS = {"CgroupnsMode": ("", "private", "host"), "IpcMode": ("", "private", "shareable"),
                 "PidMode": ("",), "UTSMode": ("",), "Cgroup": ("",), "Isolation": ("", "default"),
                 "Runtime": ("", "runc", "crun", "rootlet"), "VolumeDriver": ("", "local"), "UsernsMode": ("",),
                 "ContainerIDFile": ("",)}


def _unset(value: object) -> bool:
    return value in (None, "", 0, False, [], {}) or (isinstance(value, list) and value == [0, 0])


def run_options(doc: dict[str, object], name: str | None, platform: str | None) -> RunOptions:
    """The engine's options for a docker create body (``name``/``platform``: the query's)."""
    for key in doc:
        if key not in CONFIG_FIELDS:
            raise HttpError(400, f"unknown field {key!r} in the container configuration", keep=True)
    host = field(doc, "HostConfig", dict) or {}
    for key in host:  # type: ignore[union-attr]
        if key not in HOST_FIELDS:
            raise HttpError(400, f"unknown field HostConfig.{key}", keep=True)
    for where, part in (("", doc), ("HostConfig.", host)):
        for key, why in UNSET_ONLY.items():
            if key in part and not _unset(part[key]):  # type: ignore[operator,index]
                if key == "MemorySwappiness" and part[key] == -1:  # type: ignore[index]
                    continue
                raise HttpError(400, f"{where}{key} is not supported: rootlet has no {why}", keep=True)
        for key, words in DEFAULT_WORDS.items():
            value = part.get(key)  # type: ignore[union-attr]
            if value is not None and value not in words:
                raise HttpError(400, f"{where}{key} {value!r} is not supported (rootlet supports: "
                                f"{', '.join(repr(w) for w in words if w) or 'the default only'})", keep=True)
    image = string(doc, "Image")
    if not image:
        raise HttpError(400, "Image: the image to create the container from is required", keep=True)
    h = host  # type: ignore[assignment]
    swappiness = h.get("MemorySwappiness")
    if swappiness not in (None, -1, 0):
        raise HttpError(400, "HostConfig.MemorySwappiness is not supported: rootlet has no cgroup limits", keep=True)
    if h.get("MemorySwap") not in (None, 0, -1):
        raise HttpError(400, "HostConfig.MemorySwap is not supported: rootlet has no cgroup limits", keep=True)
    if h.get("UsernsMode") == "host":
        raise HttpError(400, "HostConfig.UsernsMode host is not supported rootless", keep=True)
    env = [e for e in strings(doc, "Env") or [] if "=" in e]  # docker's CLI sends NAME alone when unset
    entrypoint = strings(doc, "Entrypoint", one_or_list=True)
    volumes = list(strings(h, "Binds", "HostConfig.") or [])
    mounts = [_mount(m) for m in field(h, "Mounts", list, "HostConfig.") or []]  # type: ignore[union-attr]
    tmpfs = string_map(h, "Tmpfs", "HostConfig.") or {}
    # Config.Volumes names mount points; those no bind, mount or tmpfs covers get anonymous volumes.
    covered = {_destination(v) for v in volumes} | {_mount_target(m) for m in mounts} | set(tmpfs)
    anonymous = field(doc, "Volumes", dict) or {}
    volumes += [path for path in anonymous if path.rstrip("/") not in covered]  # type: ignore[union-attr]
    network, publish, net_extra = _network(doc, h)
    stop_timeout = field(doc, "StopTimeout", int)
    memory = field(h, "Memory", int, "HostConfig.")
    nano = field(h, "NanoCpus", int, "HostConfig.")
    pids = field(h, "PidsLimit", int, "HostConfig.")
    init = field(h, "Init", bool, "HostConfig.")
    return RunOptions(
        image=image, command=tuple(strings(doc, "Cmd", one_or_list=True) or ()), name=name or None,
        rm=bool(field(h, "AutoRemove", bool, "HostConfig.")), interactive=bool(field(doc, "OpenStdin", bool)),
        tty=bool(field(doc, "Tty", bool)), stdin_once=bool(field(doc, "StdinOnce", bool)),
        hostname=string(doc, "Hostname") or None, env=tuple(env), workdir=string(doc, "WorkingDir") or None,
        user=string(doc, "User") or None, group_add=tuple(strings(h, "GroupAdd", "HostConfig.") or ()),
        entrypoint=None if entrypoint is None else _entrypoint(entrypoint),
        volumes=tuple(volumes), mounts=tuple(mounts),
        tmpfs=tuple(f"{k}:{v}" if v else k for k, v in tmpfs.items()),
        read_only=bool(field(h, "ReadonlyRootfs", bool, "HostConfig.")), init=bool(init),
        cap_add=tuple(strings(h, "CapAdd", "HostConfig.") or ()), cap_drop=tuple(strings(h, "CapDrop", "HostConfig.") or ()),
        security_opt=tuple(strings(h, "SecurityOpt", "HostConfig.") or ()),
        ulimits=tuple(_ulimit(u) for u in field(h, "Ulimits", list, "HostConfig.") or []),  # type: ignore[union-attr]
        network=network, publish=tuple(publish),
        dns=tuple(strings(h, "Dns", "HostConfig.") or ()), dns_search=tuple(strings(h, "DnsSearch", "HostConfig.") or ()),
        dns_option=tuple(strings(h, "DnsOptions", "HostConfig.") or ()),
        add_host=tuple(strings(h, "ExtraHosts", "HostConfig.") or ()),
        labels=tuple(f"{k}={v}" for k, v in (string_map(doc, "Labels") or {}).items()),
        pull="never", platform=platform or None, privileged=bool(field(h, "Privileged", bool, "HostConfig.")),
        memory=str(memory) if memory else None, cpus=str(nano / 1e9) if nano else None,
        pids_limit=str(pids) if pids and pids > 0 else None,
        restart=_restart(field(h, "RestartPolicy", dict, "HostConfig.")),  # type: ignore[arg-type]
        stop_signal=string(doc, "StopSignal") or None, stop_timeout=stop_timeout,
        **_log(field(h, "LogConfig", dict, "HostConfig.")),  # type: ignore[arg-type]
        **_health(field(doc, "Healthcheck", dict)), **net_extra,  # type: ignore[arg-type]
    )


def _health(check: dict[str, object] | None) -> dict[str, object]:
    """``--health-*``: docker's Test (CMD, CMD-SHELL, NONE) and its durations in nanoseconds."""
    if not check:
        return {}
    test = strings(check, "Test", "Healthcheck.")
    out: dict[str, object] = {}
    if test == ["NONE"]:
        return {"no_healthcheck": True}
    if test:
        out["health_cmd"] = json.dumps(test)
    for key, name in (("Interval", "health_interval"), ("Timeout", "health_timeout"),
                      ("StartPeriod", "health_start_period")):
        ns = field(check, key, int, "Healthcheck.")
        if ns:
            out[name] = f"{ns}ns"
    retries = field(check, "Retries", int, "Healthcheck.")
    if retries:
        out["health_retries"] = str(retries)
    unknown = sorted(set(check) - {"Test", "Interval", "Timeout", "StartPeriod", "Retries", "StartInterval"})
    if unknown or field(check, "StartInterval", int, "Healthcheck."):
        raise HttpError(400, f"Healthcheck.{(unknown or ['StartInterval'])[0]} is not supported", keep=True)
    return out


def _destination(bind: str) -> str:
    """The container path of a ``Binds`` entry (``SRC:DST[:OPTS]``, or ``DST`` alone)."""
    parts = bind.split(":")
    return (parts[1] if len(parts) > 1 else parts[0]).rstrip("/")


def _mount_target(text: str) -> str:
    return next((p[len("target="):] for p in text.split(",") if p.startswith("target=")), "").rstrip("/")


def _entrypoint(words: list[str]) -> str:
    """``--entrypoint``'s syntax: "" clears the image's, one word as is, several as a JSON array."""
    if not words or words == [""]:
        return ""
    return words[0] if len(words) == 1 and not words[0].startswith("[") else json.dumps(words)


def _network(doc: dict[str, object], h: dict[str, object]) -> tuple[str | None, list[str], dict[str, object]]:
    """(``--network``, ``-p`` values, ``network_aliases``/``ip``): docker's default and bridge
    networks are rootlet's default one; another name is a user network (the engine checks it
    exists), joined with the other networks of ``EndpointsConfig``; aliases and an address are
    taken for the first."""
    mode = string(h, "NetworkMode", "HostConfig.") or "default"
    if field(doc, "NetworkDisabled", bool):
        mode = "none"
    builtin = {"default": None, "bridge": None, "host": "host", "none": "none", "slirp4netns": "slirp4netns",
               "pasta": "pasta", "private": None}
    networking = field(doc, "NetworkingConfig", dict) or {}
    endpoints = field(networking, "EndpointsConfig", dict, "NetworkingConfig.") or {}  # type: ignore[arg-type]
    user = mode not in builtin and not mode.startswith(("slirp4netns:", "pasta:", "container:"))
    names = [mode] if user else []
    extra: dict[str, object] = {}
    for net, cfg in endpoints.items():  # type: ignore[union-attr]
        cfg = cfg or {}
        where = f"NetworkingConfig.EndpointsConfig.{net}."
        if not isinstance(cfg, dict):
            raise HttpError(400, f"{where[:-1]}: an object is expected", keep=True)
        settings = {k: v for k, v in cfg.items() if not _unset(v) and k not in ("NetworkID", "EndpointID")}
        if not user:
            if net not in (mode, "bridge", "default", "host", "none"):
                raise HttpError(400, f"{where[:-1]}: a user network beside the {mode} network mode: give it as "
                                "HostConfig.NetworkMode", keep=True)
            if settings:
                raise HttpError(400, f"{where}{sorted(settings)[0]}: aliases and addresses need a user-defined "
                                "network (on the default one each container has its own)", keep=True)
            continue
        if net not in names:
            names.append(net)
        first = net == names[0]
        for key, value in settings.items():
            if key == "Aliases" and first:
                extra["network_aliases"] = tuple(strings(cfg, "Aliases", where) or ())
            elif key == "IPAMConfig" and first and isinstance(value, dict) and \
                    set(k for k, v in value.items() if not _unset(v)) <= {"IPv4Address"}:
                extra["ip"] = value.get("IPv4Address") or None
            else:
                raise HttpError(400, f"{where}{key} is not supported" + ("" if first else " on a second network"),
                                keep=True)
    publish = []
    bindings = field(h, "PortBindings", dict, "HostConfig.") or {}
    for port, hosts in bindings.items():  # type: ignore[union-attr]
        if not hosts:
            publish.append(port)
            continue
        if not isinstance(hosts, list):
            raise HttpError(400, f"HostConfig.PortBindings.{port}: a list is expected", keep=True)
        for binding in hosts:
            binding = binding or {}
            ip = str(binding.get("HostIp") or "")
            host_port = str(binding.get("HostPort") or "")
            inner = port if "/" in port else f"{port}/tcp"
            ip_part = f"[{ip}]" if ":" in ip else ip
            publish.append(f"{ip_part}:{host_port}:{inner}" if ip else f"{host_port}:{inner}" if host_port else inner)
    if user:
        return ",".join(names), publish, extra
    return builtin.get(mode, mode), publish, extra


def _mount(m: object) -> str:
    """A ``Mounts`` entry as ``--mount`` text."""
    if not isinstance(m, dict):
        raise HttpError(400, "HostConfig.Mounts: objects are expected", keep=True)
    kind = string(m, "Type", "HostConfig.Mounts.") or "volume"
    target = string(m, "Target", "HostConfig.Mounts.")
    if not target:
        raise HttpError(400, "HostConfig.Mounts: Target is required", keep=True)
    parts = [f"type={kind}", f"target={target}"]
    source = string(m, "Source", "HostConfig.Mounts.")
    if source:
        parts.append(f"source={source}")
    if field(m, "ReadOnly", bool, "HostConfig.Mounts."):
        parts.append("readonly")
    bind = field(m, "BindOptions", dict, "HostConfig.Mounts.") or {}
    if bind.get("Propagation"):  # type: ignore[union-attr]
        parts.append(f"bind-propagation={bind['Propagation']}")  # type: ignore[index]
    tmpfs = field(m, "TmpfsOptions", dict, "HostConfig.Mounts.") or {}
    if tmpfs.get("SizeBytes"):  # type: ignore[union-attr]
        parts.append(f"tmpfs-size={tmpfs['SizeBytes']}")  # type: ignore[index]
    if tmpfs.get("Mode"):  # type: ignore[union-attr]
        parts.append(f"tmpfs-mode={int(tmpfs['Mode']):o}")  # type: ignore[index]
    volume = field(m, "VolumeOptions", dict, "HostConfig.Mounts.") or {}
    if any(not _unset(v) for k, v in volume.items() if k not in ("NoCopy",)):  # type: ignore[union-attr]
        raise HttpError(400, "HostConfig.Mounts.VolumeOptions: labels and driver options are set on the volume "
                        "(POST /volumes/create), not on the mount", keep=True)
    if volume.get("NoCopy"):  # type: ignore[union-attr]
        parts.append("volume-nocopy")
    if any(k not in ("Type", "Target", "Source", "ReadOnly", "BindOptions", "TmpfsOptions", "VolumeOptions",
                     "Consistency") for k in m):
        raise HttpError(400, f"HostConfig.Mounts: unknown field in {sorted(m)}", keep=True)
    return ",".join(parts)


def _ulimit(u: object) -> str:
    if not isinstance(u, dict) or not isinstance(u.get("Name"), str):
        raise HttpError(400, "HostConfig.Ulimits: objects with Name, Soft and Hard are expected", keep=True)
    soft, hard = u.get("Soft", 0), u.get("Hard", u.get("Soft", 0))
    return f"{u['Name']}={soft}:{hard}"


def _restart(policy: dict[str, object] | None) -> str | None:
    if not policy:
        return None
    name = string(policy, "Name", "HostConfig.RestartPolicy.") or "no"
    count = field(policy, "MaximumRetryCount", int, "HostConfig.RestartPolicy.") or 0
    return f"{name}:{count}" if name == "on-failure" and count else name


def _log(config: dict[str, object] | None) -> dict[str, object]:
    """``--log-driver``/``--log-opt``: docker's json-file and local (its defaults) are rootlet's log
    file, which ``logs`` reads as docker's reads its own."""
    if not config:
        return {}
    kind = string(config, "Type", "HostConfig.LogConfig.") or ""
    opts = string_map(config, "Config", "HostConfig.LogConfig.") or {}
    driver = {"": None, "json-file": None, "local": None, "k8s-file": "k8s-file", "none": "none"}.get(kind, kind)
    return {"log_driver": driver, "log_opts": tuple(f"{k}={v}" for k, v in opts.items())}
