"""What kube generate and kube play can be asked to do (the engine's options records)."""

from __future__ import annotations

from rootlet.registry.record import Record

class KubeGenerateOptions(Record):
    """``kube generate``: containers and pods by name; ``kind`` pod, deployment, daemonset or job;
    ``service`` adds a NodePort Service for the published ports."""

    names: tuple[str, ...]
    kind: str = "pod"
    replicas: int = 1
    service: bool = False
    filename: str | None = None  # -f: written there (atomically) instead of returned only


class KubePlayOptions(Record):
    """``kube play``: the manifest ``text`` (``source`` names it in messages), more ConfigMap files'
    texts in ``configmaps``; ``down`` removes what the file made; ``replace`` removes existing pods
    of the file first; ``start`` false only creates; ``network`` for every pod; ``publish`` more
    ``-p`` values for every pod; ``build`` builds each container's image first from the directory
    ``build_root/NAME`` (NAME the image's last path component) when it holds a Containerfile or
    Dockerfile, as podman's ``--build``."""

    text: str
    source: str = "-"
    configmaps: tuple[tuple[str, str], ...] = ()
    down: bool = False
    replace: bool = False
    start: bool = True
    network: str | None = None
    publish: tuple[str, ...] = ()
    build: bool = False              # --build: build each image from BUILD_ROOT/NAME first (podman's rule)
    build_root: str | None = None    # the directory holding those contexts (the caller's working directory)

