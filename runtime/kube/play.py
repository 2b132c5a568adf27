"""``kube play``: Kubernetes manifests read into a plan of pods, containers and volumes, checked
as a whole, then made with the engine (``kube play --down`` removes them).

Kinds: Pod; Deployment (``replicas`` pods ``NAME-pod-N``), DaemonSet and Job (one pod
``NAME-pod``); ConfigMap and Secret (``env.valueFrom``, ``envFrom`` and volumes of files);
PersistentVolumeClaim (a named volume). A Service is only a description for rootlet (ports come
from ``hostPort`` and ``--publish``): it is reported, not run. Every manifest is planned before
anything is made, so a bad field fails the play with nothing created; a failure while creating
removes what this play made. Fields rootlet cannot honour are listed in warnings, never dropped in
silence.
"""

from __future__ import annotations

import base64
import posixpath
import re

from rootlet.registry.errors import KubeError
from rootlet.registry.record import Record
from rootlet.runtime.kube.manifests import Doc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WORKLOADS = ("Pod", "Deployment", "DaemonSet", "Job")
KNOWN = WORKLOADS + ("ConfigMap", "Secret", "PersistentVolumeClaim", "Service")
_RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
_PULL = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}
#: securityContext fields rootlet applies; every other one is warned about.
_SECURITY = {"runAsUser", "runAsGroup", "readOnlyRootFilesystem", "privileged", "capabilities",
             "allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile", "supplementalGroups"}


class FileVolume(Record):
    """A ConfigMap or Secret volume: ``files`` relative path → content, written for the pod."""

    name: str
    files: dict[str, bytes]
    mode: int = 0o644


class ContainerPlan(Record):
    """One container: its engine ``run`` options as keyword values, and its file volumes
    (``(volume, mountPath, readOnly, subPath)``) bound once the pod's files are written."""

    name: str
    run: dict[str, Any]
    file_mounts: list[tuple[str, str, bool, str]] = []


class PodPlan(Record):
    """One pod to make."""

    name: str
    labels: dict[str, str] = {}
    hostname: str | None = None
    network: str | None = None
    publish: list[str] = []
    init: list[ContainerPlan] = []
    containers: list[ContainerPlan] = []
    files: list[FileVolume] = []
    shared_volumes: list[str] = []  # emptyDir volumes: named volumes of the pod, removed with it
    host_paths: list[tuple[str, str]] = []  # (path, DirectoryOrCreate|FileOrCreate) to make when missing


class PlayPlan(Record):
    """Everything a file asks for."""

    pods: list[PodPlan] = []
    claims: list[str] = []
    warnings: list[str] = []


def plan(docs: list[dict[str, Any]], source: str, network: str | None = None,
         publish: tuple[str, ...] = ()) -> PlayPlan:
    """Read the documents into a plan; ``KubeError`` naming the document and field on bad input."""
    out = PlayPlan()
    maps: dict[str, dict[str, bytes]] = {}
    secrets: dict[str, dict[str, bytes]] = {}
    workloads: list[Doc] = []
    for n, data in enumerate(docs, 1):
        kind = data.get("kind")
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        where = f"{source}: document {n} ({kind} {meta.get('name', '?')})"
        if not isinstance(kind, str) or kind not in KNOWN:
            raise KubeError(f"{source}: document {n}: unsupported kind {kind!r}",
                            f"rootlet plays {', '.join(KNOWN)}")
        doc = Doc(data, where)
        name = _name(doc.child("metadata"))
        if kind == "ConfigMap":
            maps[name] = {**{k: v.encode() for k, v in doc.string_map("data").items()},
                          **{k: _b64(v, doc.where, k) for k, v in doc.string_map("binaryData").items()}}
        elif kind == "Secret":
            secrets[name] = {**{k: _b64(v, doc.where, k) for k, v in doc.string_map("data").items()},
                             **{k: v.encode() for k, v in doc.string_map("stringData").items()}}
        elif kind == "PersistentVolumeClaim":
            out.claims.append(name)
        elif kind == "Service":
            out.warnings.append(f"{where}: a Service is not run by rootlet: ports are published from "
                                "hostPort and --publish")
        else:
            workloads.append(doc)
    if not workloads:
        raise KubeError(f"{source}: no Pod, Deployment, DaemonSet or Job to play")
    for doc in workloads:
        out.pods.extend(_workload(doc, maps, secrets, out.warnings, network, publish))
    names = [p.name for p in out.pods]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise KubeError(f"{source}: pod {dupes[0]} is defined twice", "give every workload its own name")
    return out


_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _name(doc: Doc, key: str = "name", label: bool = False) -> str:
    """A name Kubernetes would accept (a DNS subdomain, or with ``label`` a DNS label): what the
    API server checks, and what keeps a name from ever being a path (``..``, ``/``) here, where pod
    and volume names name directories of the store."""
    value = doc.need_str(key)
    rx, limit, what = (_LABEL, 63, "a DNS label") if label else (_SUBDOMAIN, 253, "a DNS subdomain")
    if len(value) > limit or not rx.match(value) or ".." in value:
        raise KubeError(f"{doc.where}: {key} {value!r} is not {what}",
                        "lower case letters, digits and '-' (and '.' between words in object names)")
    return value


def _b64(value: str, where: str, key: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise KubeError(f"{where}: {key} is not base64", "Secret data is base64; stringData takes plain text") from None


def _workload(doc: Doc, maps: dict[str, dict[str, bytes]], secrets: dict[str, dict[str, bytes]],
              warnings: list[str], network: str | None, publish: tuple[str, ...]) -> list[PodPlan]:
    kind = doc.data["kind"]
    name = _name(doc.child("metadata"))
    if kind == "Pod":
        return [_pod(name, doc.child("metadata"), doc.child("spec"), maps, secrets, warnings, network, publish, kind)]
    spec = doc.child("spec")
    template = spec.child("template")
    meta = template.child("metadata")
    pod_spec = template.child("spec")
    if kind == "Deployment":
        replicas = spec.int("replicas", 1)
        if replicas is None or replicas < 0:
            raise KubeError(f"{doc.where}: spec.replicas must be 0 or more")
        return [_pod(f"{name}-pod-{i}", meta, pod_spec, maps, secrets, warnings, network, publish, kind)
                for i in range(replicas)]
    return [_pod(f"{name}-pod", meta, pod_spec, maps, secrets, warnings, network, publish, kind)]


def _pod(name: str, meta: Doc, spec: Doc, maps: dict[str, dict[str, bytes]], secrets: dict[str, dict[str, bytes]],
         warnings: list[str], network: str | None, publish: tuple[str, ...], kind: str) -> PodPlan:
    pod = PodPlan(name=name, labels=meta.string_map("labels"), hostname=spec.str("hostname"),
                  network="host" if spec.bool("hostNetwork") else network, publish=list(publish))
    restart = spec.str("restartPolicy") or ("Never" if kind == "Job" else "Always")
    if restart not in _RESTART:
        raise KubeError(f"{spec.where}: restartPolicy {restart!r}", "use Always, OnFailure or Never")
    volumes = _volumes(spec, maps, secrets, pod)
    pod_security = spec.child("securityContext")
    for extra in ("nodeSelector", "affinity", "tolerations", "serviceAccountName", "dnsPolicy", "dnsConfig",
                  "priorityClassName", "terminationGracePeriodSeconds", "shareProcessNamespace"):
        if spec.data.get(extra) is not None:
            warnings.append(f"{spec.where}: {extra} is not used by rootlet")
    for n, c in enumerate(spec.children("initContainers")):
        pod.init.append(_container(c, name, volumes, maps, secrets, pod_security, warnings, "no", pod))
    containers = spec.children("containers")
    if not containers:
        raise KubeError(f"{spec.where}: containers is required", "a pod has at least one container")
    for c in containers:
        pod.containers.append(_container(c, name, volumes, maps, secrets, pod_security, warnings,
                                         _RESTART[restart], pod))
    return pod


def _volumes(spec: Doc, maps: dict[str, dict[str, bytes]], secrets: dict[str, dict[str, bytes]],
             pod: PodPlan) -> dict[str, tuple[str, Any]]:
    """The pod's volumes: name → (kind, what the container mounts)."""
    import os

    out: dict[str, tuple[str, Any]] = {}
    for v in spec.children("volumes"):
        vname = _name(v, label=True)
        if "persistentVolumeClaim" in v.data:
            out[vname] = ("volume", v.child("persistentVolumeClaim").need_str("claimName"))
        elif "hostPath" in v.data:
            hp = v.child("hostPath")
            path = hp.need_str("path")
            kind = hp.str("type") or ""
            if not path.startswith("/"):
                raise KubeError(f"{hp.where}: path {path!r} must be absolute")
            exists = os.path.exists(path)
            if kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice") and not exists:
                raise KubeError(f"{hp.where}: {path} does not exist (type {kind})",
                                "create it first, or use type DirectoryOrCreate")
            if kind == "Directory" and not os.path.isdir(path) or kind == "File" and not os.path.isfile(path):
                raise KubeError(f"{hp.where}: {path} is not a {kind.lower()}")
            if kind in ("DirectoryOrCreate", "FileOrCreate") and not exists:
                pod.host_paths.append((path, kind))
            elif kind not in ("", "Directory", "File", "Socket", "CharDevice", "BlockDevice", "DirectoryOrCreate",
                              "FileOrCreate"):
                raise KubeError(f"{hp.where}: unknown type {kind!r}", "use Directory, File, DirectoryOrCreate, "
                                "FileOrCreate, Socket, CharDevice or BlockDevice")
            elif not exists:
                raise KubeError(f"{hp.where}: {path} does not exist", "create it, or use type DirectoryOrCreate")
            out[vname] = ("bind", (path, kind))
        elif "emptyDir" in v.data:
            ed = v.child("emptyDir")
            if ed.str("medium") == "Memory":
                out[vname] = ("tmpfs", ed.str("sizeLimit"))
            else:
                shared = f"{pod.name}-{vname}"
                pod.shared_volumes.append(shared)
                out[vname] = ("volume", shared)
        elif "configMap" in v.data or "secret" in v.data:
            is_map = "configMap" in v.data
            ref = v.child("configMap" if is_map else "secret")
            ref_name = ref.need_str("name" if is_map else "secretName")
            source = (maps if is_map else secrets).get(ref_name)
            if source is None:
                if ref.bool("optional"):
                    source = {}
                else:
                    raise KubeError(f"{ref.where}: {'ConfigMap' if is_map else 'Secret'} {ref_name!r} is not "
                                    "defined in the file", "define it there, or pass it with --configmap FILE")
            files = {}
            items = ref.children("items")
            for item in items:
                key = item.need_str("key")
                if key not in source:
                    raise KubeError(f"{item.where}: key {key!r} is not in {ref_name}")
                files[_relative(item.need_str("path"), item.where)] = source[key]
            if not items:
                files = {_relative(k, ref.where): val for k, val in source.items()}
            mode = ref.int("defaultMode", 0o644 if is_map else 0o600)
            pod.files.append(FileVolume(name=vname, files=files, mode=mode or 0o644))
            out[vname] = ("files", vname)
        else:
            raise KubeError(f"{v.where}: volume {vname!r} has no type rootlet knows",
                            "use persistentVolumeClaim, hostPath, emptyDir, configMap or secret")
    return out


def _relative(path: str, where: str) -> str:
    clean = posixpath.normpath(path)
    if clean.startswith(("/", "..")) or clean == ".":
        raise KubeError(f"{where}: path {path!r} must be relative and stay inside the volume")
    return clean


def _container(c: Doc, pod_name: str, volumes: dict[str, tuple[str, Any]], maps: dict[str, dict[str, bytes]],
               secrets: dict[str, dict[str, bytes]], pod_security: Doc, warnings: list[str], restart: str,
               pod: PodPlan) -> ContainerPlan:
    import json

    name = _name(c, label=True)
    run: dict[str, Any] = {"image": c.need_str("image"), "name": f"{pod_name}-{name}", "restart": restart}
    policy = c.str("imagePullPolicy")
    if policy is not None:
        if policy not in _PULL:
            raise KubeError(f"{c.where}: imagePullPolicy {policy!r}", "use Always, IfNotPresent or Never")
        run["pull"] = _PULL[policy]
    command, args = c.strings("command"), c.strings("args")
    if "command" in c.data:
        run["entrypoint"] = json.dumps(command)
    if args:
        run["command"] = tuple(args)
    if c.str("workingDir"):
        run["workdir"] = c.str("workingDir")
    run["env"] = tuple(_env(c, maps, secrets))
    run["interactive"] = bool(c.bool("stdin"))
    run["tty"] = bool(c.bool("tty"))
    for p in c.children("ports"):
        port = p.int("containerPort")
        if port is None or not 0 < port < 65536:
            raise KubeError(f"{p.where}: containerPort must be 1 to 65535")
        proto = (p.str("protocol") or "TCP").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise KubeError(f"{p.where}: protocol {proto!r}", "use TCP, UDP or SCTP")
        host = p.int("hostPort")
        if host:
            ip = p.str("hostIP")
            pod.publish.append(f"{ip + ':' if ip else ''}{host}:{port}/{proto}")
    binds: list[str] = []
    tmpfs: list[str] = []
    file_mounts: list[tuple[str, str, bool, str]] = []
    for vm in c.children("volumeMounts"):
        vname, path = vm.need_str("name"), vm.need_str("mountPath")
        ro = bool(vm.bool("readOnly"))
        sub = vm.str("subPath") or ""
        if vname not in volumes:
            raise KubeError(f"{vm.where}: volume {vname!r} is not in the pod's volumes")
        kind, value = volumes[vname]
        if sub and kind not in ("bind", "files"):
            raise KubeError(f"{vm.where}: subPath is supported for hostPath, configMap and secret volumes only")
        if kind == "volume":
            binds.append(f"{value}:{path}" + (":ro" if ro else ""))
        elif kind == "bind":
            src = posixpath.join(value[0], _relative(sub, vm.where)) if sub else value[0]
            binds.append(f"{src}:{path}" + (":ro" if ro else ""))
        elif kind == "tmpfs":
            tmpfs.append(path + (f":size={_bytes(value, vm.where)}" if value else ""))
        else:
            file_mounts.append((value, path, True, _relative(sub, vm.where) if sub else ""))
    run["volumes"] = tuple(binds)
    run["tmpfs"] = tuple(tmpfs)
    _security(c, pod_security, run, warnings)
    _probe(c, run, warnings)
    limits = c.child("resources").mapping("limits")
    if limits:
        warnings.append(f"{c.where}: resources.limits are not applied (rootless, without a delegated cgroup)")
    for extra in ("readinessProbe", "startupProbe", "lifecycle", "volumeDevices"):
        if c.data.get(extra) is not None:
            warnings.append(f"{c.where}: {extra} is not used by rootlet")
    return ContainerPlan(name=name, run=run, file_mounts=file_mounts)


def _env(c: Doc, maps: dict[str, dict[str, bytes]], secrets: dict[str, dict[str, bytes]]) -> list[str]:
    out: list[str] = []
    for ef in c.children("envFrom"):
        prefix = ef.str("prefix") or ""
        for key, store, label in (("configMapRef", maps, "ConfigMap"), ("secretRef", secrets, "Secret")):
            if key in ef.data:
                ref = ef.child(key)
                ref_name = ref.need_str("name")
                if ref_name not in store and not ref.bool("optional"):
                    raise KubeError(f"{ref.where}: {label} {ref_name!r} is not defined in the file",
                                    "define it there, or pass it with --configmap FILE")
                out.extend(f"{prefix}{k}={v.decode(errors='replace')}" for k, v in store.get(ref_name, {}).items())
    for e in c.children("env"):
        key = e.need_str("name")
        if "valueFrom" not in e.data:
            out.append(f"{key}={e.str('value') or ''}")
            continue
        vf = e.child("valueFrom")
        for ref_key, store, label in (("configMapKeyRef", maps, "ConfigMap"), ("secretKeyRef", secrets, "Secret")):
            if ref_key in vf.data:
                ref = vf.child(ref_key)
                ref_name, item = ref.need_str("name"), ref.need_str("key")
                value = store.get(ref_name, {}).get(item)
                if value is None:
                    if ref.bool("optional"):
                        break
                    raise KubeError(f"{ref.where}: {label} {ref_name!r} has no key {item!r} in the file",
                                    "define it there, or pass it with --configmap FILE")
                out.append(f"{key}={value.decode(errors='replace')}")
                break
        else:
            raise KubeError(f"{vf.where}: only configMapKeyRef and secretKeyRef are supported")
    return out


def _security(c: Doc, pod_level: Doc, run: dict[str, Any], warnings: list[str]) -> None:
    sc = Doc({**pod_level.data, **c.child("securityContext").data}, f"{c.where}, securityContext")
    for key in sorted(set(sc.data) - _SECURITY):
        warnings.append(f"{sc.where}: {key} is not applied by rootlet")
    uid, gid = sc.int("runAsUser"), sc.int("runAsGroup")
    if uid is not None or gid is not None:
        run["user"] = f"{uid if uid is not None else 0}" + (f":{gid}" if gid is not None else "")
    if sc.bool("runAsNonRoot") and uid == 0:
        raise KubeError(f"{sc.where}: runAsNonRoot with runAsUser 0")
    if sc.bool("readOnlyRootFilesystem"):
        run["read_only"] = True
    if sc.bool("privileged"):
        run["privileged"] = True
    caps = sc.child("capabilities")
    run["cap_add"] = tuple(caps.strings("add"))
    run["cap_drop"] = tuple(caps.strings("drop"))
    opts: list[str] = []
    if sc.bool("allowPrivilegeEscalation") is False:
        opts.append("no-new-privileges")
    seccomp = sc.child("seccompProfile").str("type")
    if seccomp == "Unconfined":
        opts.append("seccomp=unconfined")
    elif seccomp not in (None, "RuntimeDefault"):
        warnings.append(f"{sc.where}: seccompProfile {seccomp} is not applied (the default profile is)")
    run["security_opt"] = tuple(opts)
    run["group_add"] = tuple(str(g) for g in sc._get("supplementalGroups", list, "a list of numbers", []))


def _probe(c: Doc, run: dict[str, Any], warnings: list[str]) -> None:
    import json

    if "livenessProbe" not in c.data:
        return
    probe = c.child("livenessProbe")
    if "exec" not in probe.data:
        warnings.append(f"{probe.where}: only exec probes are run (as the container's healthcheck)")
        return
    run["health_cmd"] = json.dumps(["CMD", *probe.child("exec").strings("command")])
    for key, opt in (("periodSeconds", "health_interval"), ("timeoutSeconds", "health_timeout"),
                     ("initialDelaySeconds", "health_start_period")):
        value = probe.int(key)
        if value is not None:
            run[opt] = f"{value}s"
    failures = probe.int("failureThreshold")
    if failures is not None:
        run["health_retries"] = str(failures)


def _bytes(quantity: str, where: str) -> str:
    """A Kubernetes quantity (``64Mi``, ``1G``, ``500000``) as bytes."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6, "G": 10**9,
             "T": 10**12}
    for suffix, factor in units.items():
        if quantity.endswith(suffix) and quantity[:-len(suffix)].isdigit():
            return str(int(quantity[:-len(suffix)]) * factor)
    if quantity.isdigit():
        return quantity
    raise KubeError(f"{where}: {quantity!r} is not a quantity", "e.g. 64Mi or 1Gi")


def teardown(docs: list[dict[str, Any]], source: str) -> PlayPlan:
    """The pods a file would make, with their emptyDir volumes, for ``--down``: read leniently (a
    ConfigMap the file refers to need not be there to take its pods down)."""
    out = PlayPlan()
    for n, data in enumerate(docs, 1):
        kind = data.get("kind")
        if kind not in WORKLOADS:
            continue
        doc = Doc(data, f"{source}: document {n} ({kind})")
        name = _name(doc.child("metadata"))
        spec = doc.child("spec") if kind == "Pod" else doc.child("spec").child("template").child("spec")
        if kind == "Deployment":
            replicas = doc.child("spec").int("replicas", 1) or 0
            names = [f"{name}-pod-{i}" for i in range(replicas)]
        else:
            names = [name] if kind == "Pod" else [f"{name}-pod"]
        empty = [_name(v, label=True) for v in spec.children("volumes")
                 if "emptyDir" in v.data and v.child("emptyDir").str("medium") != "Memory"]
        out.pods.extend(PodPlan(name=p, shared_volumes=[f"{p}-{e}" for e in empty]) for p in names)
    return out
