"""The ``kube`` group: generate (containers and pods as Kubernetes YAML), play (YAML as pods and
containers), down; podman 4.3's older spellings ``generate kube`` and ``play kube`` too."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import err, out


def generate(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="CTR|POD...", help="Containers and pods to describe."),
    kind: str = typer.Option("pod", "--type", "-t", help="pod, deployment, daemonset or job."),
    replicas: int = typer.Option(1, "--replicas", "-r", help="Replicas of a deployment."),
    service: bool = typer.Option(False, "--service", "-s", help="Add a NodePort Service for the published ports."),
    filename: Optional[str] = typer.Option(None, "--filename", "-f", help="Write the YAML to this file."),
) -> None:
    """Kubernetes YAML for containers and pods (a container alone becomes the pod NAME-pod)."""
    from rootlet.runtime.engine.options import KubeGenerateOptions

    app: AppContext = ctx.obj
    text = app.engine().kube_generate(KubeGenerateOptions(names=tuple(names), kind=kind, replicas=replicas,
                                                          service=service, filename=filename))
    if not filename:
        sys.stdout.write(text)


def _read(path: str) -> str:
    from rootlet.registry.errors import UsageError

    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read((8 << 20) + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text", "give a Kubernetes YAML file") from None


def play(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE|-", help="The YAML (- : from stdin)."),
    down: bool = typer.Option(False, "--down", help="Remove the pods the file made (their volumes of claims stay)."),
    replace: bool = typer.Option(False, "--replace", help="Remove the file's pods first when they exist."),
    start: Optional[str] = typer.Option(None, "--start", metavar="BOOL", help="Start the pods (default true)."),
    network: Optional[str] = typer.Option(None, "--network", help="The pods' network (a user network, none, host)."),
    configmaps: List[str] = typer.Option([], "--configmap", metavar="FILE", help="More ConfigMaps (repeatable)."),
    publish: List[str] = typer.Option([], "--publish", metavar="[IP:]HOST:CTR[/PROTO]",
                                      help="Publish a port on every pod (repeatable)."),
    build: bool = typer.Option(False, "--build", help="Build each image first from ./NAME (NAME the image's "
                               "last path component) when it holds a Containerfile or Dockerfile."),
) -> None:
    """Play Kubernetes YAML: Pods, Deployments, DaemonSets, Jobs, ConfigMaps, Secrets and
    PersistentVolumeClaims become pods, containers and volumes (or, with --down, go away)."""
    from rootlet.cli.images import parse_bool
    from rootlet.runtime.engine.options import KubePlayOptions

    app: AppContext = ctx.obj
    opts = KubePlayOptions(text=_read(file), source=file, configmaps=tuple((f, _read(f)) for f in configmaps),
                           down=down, replace=replace, start=parse_bool(start, "--start") is not False,
                           network=network, publish=tuple(publish), build=build, build_root=os.getcwd())
    report = app.engine().kube_play(opts)
    for warning in report.warnings:
        err(f"Warning: {warning}")
    if down:
        if report.pods:
            out("Pods stopped and removed:")
            for name in report.pods:
                out(name)
        return
    if report.volumes:
        out("Volumes:")
        for name in report.volumes:
            out(name)
    out("Pods:")
    for name in report.pods:
        out(name)
    out("Containers:")
    for name in report.containers:
        out(name)


def kube_down(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE|-", help="The YAML that was played."),
) -> None:
    """Remove the pods a YAML file made (kube play --down)."""
    play(ctx, file=file, down=True, replace=False, start=None, network=None, configmaps=[], publish=[], build=False)


def register(app: typer.Typer) -> None:
    """Add ``kube generate|play|down`` and podman 4.3's ``generate kube`` and ``play kube``."""
    group = typer.Typer(help="Move to Kubernetes and back: generate YAML, play it.", no_args_is_help=True)
    group.command("generate")(generate)
    group.command("play")(play)
    group.command("down")(kube_down)
    app.add_typer(group, name="kube")
    for verb, fn in (("generate", generate), ("play", play)):
        old = typer.Typer(help=f"podman 4.3's spelling of kube {verb}.", no_args_is_help=True)
        old.command("kube")(fn)
        app.add_typer(old, name=verb)
