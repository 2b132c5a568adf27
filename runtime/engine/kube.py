"""The engine's kube verbs: ``kube_generate`` (containers and pods as Kubernetes YAML) and
``kube_play`` (YAML played as pods, containers and volumes, or taken down).

A play's plan (``runtime/kube/play.py``) is made real here with the engine's own verbs. Every pod
of the file that exists already is found before the first thing is made (an error unless
``replace``); a failure halfway removes what this play made, so a play either happens or leaves
the store as it was. ConfigMap and Secret volumes are files written under the store's
``kube/POD/`` and bound read-only; emptyDir volumes are named volumes of the pod (``POD-VOLUME``),
shared by its containers and removed with it; init containers run to completion, in order,
before the pod's containers start.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import KubeError, RootletError
from rootlet.runtime.engine.reports import PlayReport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootlet.registry.store import ImageStore
    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.options import KubeGenerateOptions, KubePlayOptions
    from rootlet.runtime.kube.play import ContainerPlan, PlayPlan, PodPlan

#: The label on what a play makes: the pod it belongs to.
POD_LABEL = "io.rootlet.kube.pod"


class KubeVerbs:
    """Mixed into ``Engine``."""

    images_store: ImageStore

    def kube_generate(self, opts: KubeGenerateOptions) -> str:
        """The YAML for the containers and pods ``opts.names`` (each a container or a pod)."""
        import json

        from rootlet.registry.errors import ContainerNotFound
        from rootlet.runtime.container.store import ContainerStore
        from rootlet.runtime.kube.generate import Member, generate
        from rootlet.runtime.kube.manifests import dump_documents

        if not opts.names:
            raise KubeError("kube generate needs a container or pod", "name one or more")
        containers = ContainerStore(self.images_store)
        records = self.images_store.load() if self.images_store.exists() else {}

        def member(cfg):  # type: ignore[no-untyped-def]
            rec = records.get(cfg.image_id)
            image = json.loads(self.images_store.read_blob(rec.config_digest)).get("config") or {} if rec else {}
            return Member(config=cfg, image_config=image)

        docs = []
        for name in opts.names:
            try:
                cfg = containers.config(containers.resolve(name))
            except ContainerNotFound:
                if not self.pods.exists(name):  # type: ignore[attr-defined]
                    raise KubeError(f"no container or pod {name!r}", "see rootlet ps -a and rootlet pod ps") from None
                pod = self.pods.config(name)  # type: ignore[attr-defined]
                members = [member(c) for c, _ in self._members(pod.id)]  # type: ignore[attr-defined]
                docs += generate(pod.name, members, pod, opts.kind, opts.replicas, opts.service)
                continue
            if cfg.pod:
                raise KubeError(f"container {cfg.name} is in a pod", "generate the pod instead")
            docs += generate(cfg.name, [member(cfg)], None, opts.kind, opts.replicas, opts.service)
        text = dump_documents(docs)
        if opts.filename:
            from rootlet.registry.errors import UsageError
            from rootlet.registry.fsutil import atomic_write

            try:
                atomic_write(opts.filename, text.encode(), mode=0o644)
            except OSError as exc:
                raise UsageError(f"cannot write {opts.filename}: {exc.strerror}") from None
        return text

    def kube_play(self, opts: KubePlayOptions) -> PlayReport:
        """Play (or, with ``down``, take down) a Kubernetes YAML file."""
        from rootlet.runtime.kube.manifests import load_documents
        from rootlet.runtime.kube.play import plan, teardown

        docs = load_documents(opts.text, opts.source)
        if opts.down:
            return down(self, teardown(docs, opts.source))  # type: ignore[arg-type]
        for source, text in opts.configmaps:
            extra = load_documents(text, source)
            for n, doc in enumerate(extra, 1):
                if doc.get("kind") != "ConfigMap":
                    raise KubeError(f"{source}: document {n} is a {doc.get('kind')}, not a ConfigMap",
                                    "--configmap takes files of ConfigMaps")
            docs = extra + docs
        self.images_store.ensure()
        the_plan = plan(docs, opts.source, opts.network, opts.publish)
        if opts.build:
            self._kube_build(the_plan, opts.build_root or os.getcwd())
        return play(self, the_plan, replace=opts.replace, start=opts.start)  # type: ignore[arg-type]

    def _kube_build(self, the_plan: PlayPlan, root: str) -> None:
        """``--build``: each image that has a context directory ``root/NAME`` is built (quietly) and
        named as the manifest names it; one without is said in a warning."""
        from rootlet.registry.reference import parse_reference
        from rootlet.runtime.build.options import BuildOptions

        seen: set[str] = set()
        for pod in the_plan.pods:
            for c in [*pod.init, *pod.containers]:
                image = str(c.run["image"])
                if image in seen:
                    continue
                seen.add(image)
                name = parse_reference(image).repository.rsplit("/", 1)[-1]
                context = os.path.join(root, name)
                if not any(os.path.isfile(os.path.join(context, f)) for f in ("Containerfile", "Dockerfile")):
                    the_plan.warnings.append(f"--build: no {name}/Containerfile or {name}/Dockerfile in {root}: "
                                             f"image {image} is used as it is")
                    continue
                self.build(BuildOptions(context=context, tags=(image,), quiet=True))  # type: ignore[attr-defined]


def files_dir(engine: Engine, pod: str) -> str:
    """Where a pod's ConfigMap and Secret files live (the plan checked the name is a DNS name)."""
    if not pod or "/" in pod or pod.startswith("."):
        raise KubeError(f"invalid pod name {pod!r}")
    return os.path.join(engine.images_store.root, "kube", pod)


def play(engine: Engine, plan: PlayPlan, *, replace: bool = False, start: bool = True) -> PlayReport:
    """Make the pods, containers and volumes of ``plan``."""
    from rootlet.runtime.engine.options import VolumeCreateOptions

    for pod in plan.pods:
        if engine.pod_exists(pod.name) and not replace:
            raise KubeError(f"pod {pod.name} exists already", "use kube play --replace, or kube play --down first")
    report = PlayReport(warnings=list(plan.warnings))
    made_volumes: list[str] = []
    try:
        for pod in plan.pods:
            if replace and engine.pod_exists(pod.name):
                remove_pod(engine, pod.name, pod.shared_volumes)
        for claim in plan.claims:
            if not engine.volume_exists(claim):
                engine.volume_create(VolumeCreateOptions(name=claim))
                made_volumes.append(claim)
                report.volumes.append(claim)
        for pod in plan.pods:
            report.pods.append(pod.name)
            _pod(engine, pod, start, report)
    except BaseException:
        import contextlib

        for name in report.pods:
            with contextlib.suppress(RootletError, OSError):
                remove_pod(engine, name, next(p.shared_volumes for p in plan.pods if p.name == name))
        for name in made_volumes:
            _remove_volume(engine, name)
        raise
    return report


def _pod(engine: Engine, pod: PodPlan, start: bool, report: PlayReport) -> None:
    from rootlet.runtime.container.options import RunOptions
    from rootlet.runtime.engine.options import PodCreateOptions, RmOptions, VolumeCreateOptions, WaitOptions

    for name in pod.shared_volumes:
        engine.volume_create(VolumeCreateOptions(name=name, labels=(f"{POD_LABEL}={pod.name}",), ignore=True))
        report.volumes.append(name)
    _write_files(engine, pod)
    for path, kind in pod.host_paths:  # hostPath types that make what is missing, as the kubelet does
        try:
            if kind == "DirectoryOrCreate":
                os.makedirs(path, 0o755, exist_ok=True)
            elif not os.path.exists(path):
                os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
        except OSError as exc:
            raise KubeError(f"pod {pod.name}: cannot create hostPath {path}: {exc.strerror}") from None
    engine.pod_create(PodCreateOptions(name=pod.name, publish=tuple(pod.publish), network=pod.network,
                                       hostname=pod.hostname, labels=tuple(f"{k}={v}" for k, v in pod.labels.items())))
    if start:
        for init in pod.init:
            created = engine.run(RunOptions(**_run_args(engine, pod, init), pod=pod.name, detach=True))
            cid = created.id  # type: ignore[union-attr]
            code = engine.wait(WaitOptions(names=(cid,)))[0].exit_code
            engine.rm(RmOptions(names=(cid,), force=True, volumes=True))
            if code != 0:
                raise KubeError(f"pod {pod.name}: init container {init.name} exited {code}",
                                "run its image and command by hand (rootlet run) to see its output")
    for c in pod.containers:
        opts = RunOptions(**_run_args(engine, pod, c), pod=pod.name, detach=True)
        made = engine.run(opts) if start else engine.create(opts)
        report.containers.append(made.name)  # type: ignore[union-attr]


def _run_args(engine: Engine, pod: PodPlan, c: ContainerPlan) -> dict[str, object]:
    args = dict(c.run)
    binds = list(args.get("volumes", ()))
    for volume, path, ro, sub in c.file_mounts:
        src = os.path.join(files_dir(engine, pod.name), volume, sub) if sub else \
            os.path.join(files_dir(engine, pod.name), volume)
        if sub and not os.path.lexists(src):
            raise KubeError(f"pod {pod.name}: container {c.name}: subPath {sub} is not in volume {volume}")
        binds.append(f"{src}:{path}" + (":ro" if ro else ""))
    args["volumes"] = tuple(binds)
    args["labels"] = (f"{POD_LABEL}={pod.name}",)
    return args


def _write_files(engine: Engine, pod: PodPlan) -> None:
    from rootlet.registry.fsutil import atomic_write

    import shutil

    base = files_dir(engine, pod.name)
    shutil.rmtree(base, ignore_errors=True)
    for vol in pod.files:
        root = os.path.join(base, vol.name)
        os.makedirs(root, 0o755, exist_ok=True)
        for rel, data in vol.files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            atomic_write(path, data, mode=vol.mode, durable=False)


def remove_pod(engine: Engine, name: str, shared_volumes: list[str]) -> bool:
    """Remove pod ``name`` (its containers with it), its emptyDir volumes and its files; whether
    the pod was there."""
    import shutil

    from rootlet.runtime.engine.options import PodActionOptions

    existed = engine.pod_exists(name)
    if existed:
        for result in engine.pod_rm(PodActionOptions(names=(name,), force=True)):
            if getattr(result, "error", None):
                raise KubeError(f"cannot remove pod {name}: {result.error}")
    for volume in shared_volumes:
        _remove_volume(engine, volume)
    shutil.rmtree(files_dir(engine, name), ignore_errors=True)
    return existed


def _remove_volume(engine: Engine, name: str) -> None:
    from rootlet.runtime.engine.options import VolumeRmOptions

    import contextlib

    if engine.volume_exists(name):
        with contextlib.suppress(RootletError):
            engine.volume_rm(VolumeRmOptions(names=(name,), force=True))


def down(engine: Engine, plan: PlayPlan) -> PlayReport:
    """Remove the pods of ``plan`` (and their containers, emptyDir volumes and files); claims'
    volumes are kept, as podman keeps them: they hold the data."""
    report = PlayReport()
    for pod in plan.pods:
        if remove_pod(engine, pod.name, pod.shared_volumes):
            report.pods.append(pod.name)
            report.volumes.extend(pod.shared_volumes)
    return report
