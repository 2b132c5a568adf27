"""``kube generate``: containers and pods as Kubernetes objects (Pod, Deployment, DaemonSet, Job,
and a NodePort Service for the published ports).

Only what a cluster can use is written: the image by its full reference; ``command``/``args`` only
where they differ from the image's ENTRYPOINT/CMD; the environment without what the image or the
runtime sets; named volumes as PersistentVolumeClaims, bind mounts as hostPath, tmpfs and
anonymous volumes as emptyDir; the security settings as a securityContext relative to the
default capabilities. Names become DNS labels (``my_app`` → ``my-app``), as the API requires.
Nothing rootless-specific (user namespace maps, overlay, slirp4netns) is written.
"""

from __future__ import annotations

import re

from rootlet.registry.errors import KubeError
from rootlet.registry.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from rootlet.runtime.container.pods import PodConfig
    from rootlet.runtime.container.record import ContainerConfig

#: ``--type`` values.
KINDS = ("pod", "deployment", "daemonset", "job")
_RESTART = {"always": "Always", "unless-stopped": "Always", "on-failure": "OnFailure", "no": "Never"}
#: Environment the runtime sets in every container: not the user's, not written.
_RUNTIME_ENV = ("HOSTNAME", "container", "HOME", "TERM")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class Member(Record):
    """One container to describe: its config and its image's config object (``Env``, ``Cmd``, …)."""

    config: ContainerConfig
    image_config: dict[str, Any] = {}


def dns_label(name: str, limit: int = 63) -> str:
    """``name`` as a DNS-1123 label: lower case letters, digits and ``-``."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:limit].strip("-")
    if not out:
        raise KubeError(f"cannot make a Kubernetes name of {name!r}", "give the container or pod a name with letters")
    return out


def generate(name: str, members: list[Member], pod: PodConfig | None, kind: str = "pod", replicas: int = 1,
             service: bool = False) -> list[dict[str, Any]]:
    """The objects for one pod (or one container, then its pod is ``NAME-pod``, podman's name)."""
    if kind not in KINDS:
        raise KubeError(f"unknown --type {kind!r}", f"use one of {', '.join(KINDS)}")
    if replicas < 1:
        raise KubeError("--replicas must be at least 1")
    if replicas != 1 and kind != "deployment":
        raise KubeError("--replicas is for --type deployment")
    pod_name = dns_label(name if pod is not None else f"{name}-pod")
    labels = {"app": pod_name}
    annotations: dict[str, str] = {}
    volumes: dict[str, dict[str, Any]] = {}
    containers = []
    restart = "Never"
    for n, m in enumerate(members):
        ports = pod.ports if pod is not None and n == 0 else (m.config.ports if pod is None else [])
        containers.append(_container(m, ports, volumes))
        restart = _RESTART.get(m.config.restart.name, "Never")
        for key, value in m.config.labels.items():
            if _LABEL_KEY.match(key) and _LABEL_VALUE.match(value) and len(value) <= 63:
                labels.setdefault(key, value)
            else:
                annotations[key] = value
    if pod is not None:
        labels.update({k: v for k, v in pod.labels.items() if _LABEL_KEY.match(k) and _LABEL_VALUE.match(v)})
    if kind == "deployment":
        restart = "Always"  # the only policy a Deployment's pods may have
    elif kind == "job" and restart == "Always":
        restart = "OnFailure"
    spec: dict[str, Any] = {"containers": containers}
    if pod is not None and pod.hostname:
        spec["hostname"] = pod.hostname
    if pod is not None and pod.network == "host" or pod is None and members and members[0].config.network == "host":
        spec["hostNetwork"] = True
    spec["restartPolicy"] = restart
    if volumes:
        spec["volumes"] = list(volumes.values())
    metadata: dict[str, Any] = {"name": pod_name, "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    docs: list[dict[str, Any]] = []
    if kind == "pod":
        docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    else:
        template = {"metadata": metadata, "spec": spec}
        body: dict[str, Any] = {"selector": {"matchLabels": {"app": pod_name}}, "template": template}
        if kind == "deployment":
            body = {"replicas": replicas, **body}
            docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": pod_name}, "spec": body})
        elif kind == "daemonset":
            docs.append({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": pod_name}, "spec": body})
        else:
            docs.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": pod_name},
                         "spec": {"template": template}})
    if service:
        ports = [p for c in containers for p in c.get("ports", []) if p.get("hostPort")]
        if not ports:
            raise KubeError(f"{name}: --service needs published ports (-p)", "publish a port, or drop -s")
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": pod_name}, "spec": {
            "type": "NodePort", "selector": {"app": pod_name},
            "ports": [{"name": f"{p['containerPort']}-{p['protocol'].lower()}", "port": p["containerPort"],
                       "protocol": p["protocol"], "targetPort": p["containerPort"]} for p in ports]}})
    return docs


def _container(m: Member, ports: list[Any], volumes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    cfg, image = m.config, m.image_config
    out: dict[str, Any] = {"name": dns_label(cfg.name), "image": cfg.image_name}
    image_ep = list(image.get("Entrypoint") or [])
    image_cmd = list(image.get("Cmd") or [])
    if list(cfg.entrypoint) != image_ep:
        out["command"] = list(cfg.entrypoint)
        if cfg.cmd:
            out["args"] = list(cfg.cmd)  # a command given drops the image's CMD in Kubernetes
    elif list(cfg.cmd) != image_cmd:
        out["args"] = list(cfg.cmd)
    image_env = set(image.get("Env") or [])
    image_keys = {e.split("=", 1)[0] for e in image_env}
    env = []
    for entry in cfg.env:
        key, _, value = entry.partition("=")
        if entry in image_env or (key in _RUNTIME_ENV and key not in image_keys):
            continue
        env.append({"name": key, "value": value})
    if env:
        out["env"] = env
    if cfg.cwd and cfg.cwd != (image.get("WorkingDir") or "/"):
        out["workingDir"] = cfg.cwd
    if ports:
        out["ports"] = [_port(p) for p in ports]
    mounts = []
    for mount in cfg.mounts:
        vol_name, volume = _volume(mount)
        volumes.setdefault(vol_name, volume)
        entry: dict[str, Any] = {"name": vol_name, "mountPath": mount.destination}
        if mount.readonly:
            entry["readOnly"] = True
        mounts.append(entry)
    if mounts:
        out["volumeMounts"] = mounts
    security = _security(cfg)
    if security:
        out["securityContext"] = security
    if cfg.interactive:
        out["stdin"] = True
    if cfg.tty:
        out["tty"] = True
    return out


def _port(p: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"containerPort": p.container_port}
    if p.host_port:
        out["hostPort"] = p.host_port
    if p.host_ip and p.host_ip not in ("0.0.0.0", "::"):
        out["hostIP"] = p.host_ip
    out["protocol"] = p.protocol.upper()
    return out


def _volume(mount: Any) -> tuple[str, dict[str, Any]]:
    import os

    if mount.type == "bind":
        name = dns_label("host-" + mount.source.strip("/").replace("/", "-") or "host-root")
        kind = "Directory" if os.path.isdir(mount.source) else "File"
        return name, {"name": name, "hostPath": {"path": mount.source, "type": kind}}
    if mount.type == "tmpfs":
        name = dns_label("tmpfs-" + mount.destination.strip("/").replace("/", "-"))
        return name, {"name": name, "emptyDir": {"medium": "Memory"}}
    if mount.anonymous or not mount.name:
        name = dns_label("anon-" + mount.destination.strip("/").replace("/", "-"))
        return name, {"name": name, "emptyDir": {}}
    name = dns_label(mount.name + "-pvc")
    return name, {"name": name, "persistentVolumeClaim": {"claimName": mount.name}}


def _security(cfg: ContainerConfig) -> dict[str, Any]:
    from rootlet.runtime.oci.capnames import PODMAN_DEFAULT_CAPS

    out: dict[str, Any] = {}
    if cfg.privileged:
        out["privileged"] = True
    else:
        have, default = set(cfg.caps), set(PODMAN_DEFAULT_CAPS)
        caps: dict[str, list[str]] = {}
        if have - default:
            caps["add"] = sorted(c.removeprefix("CAP_") for c in have - default)
        if default - have:
            caps["drop"] = sorted(c.removeprefix("CAP_") for c in default - have)
        if caps:
            out["capabilities"] = caps
    if cfg.readonly_rootfs:
        out["readOnlyRootFilesystem"] = True
    if cfg.no_new_privs:
        out["allowPrivilegeEscalation"] = False
    user, _, group = cfg.user.partition(":")
    if user.isdigit():
        out["runAsUser"] = int(user)
    if group.isdigit():
        out["runAsGroup"] = int(group)
    return out
