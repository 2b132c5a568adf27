"""The ``pod`` group: create, ps, inspect, start, stop, restart, kill, rm, prune, top, exists (podman's)."""

from __future__ import annotations

from typing import List, Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import ago, dump_json, go_time, out, print_docs, print_rows, raise_collected, table

#: podman's ``pod ps`` table and its headers.
PS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.InfraID}}\t{{.NumberOfContainers}}"
PS_HEADERS = {"ID": "POD ID", "InfraID": "INFRA ID", "NumberOfContainers": "# OF CONTAINERS"}


def create(
    ctx: typer.Context,
    name: Optional[str] = typer.Option(None, "--name", help="The pod's name (default: pod_ and its id's start)."),
    publish: List[str] = typer.Option(None, "--publish", "-p", help="Publish [IP:]HOSTPORT:CTRPORT[/PROTO] for the "
                                      "pod (repeatable)."),
    network: Optional[str] = typer.Option(None, "--network", help="slirp4netns (default), user networks NAME[,NAME], "
                                          "none or host."),
    share: Optional[str] = typer.Option(None, "--share", help="Namespaces its containers share: net,ipc,uts (default)."),
    hostname: Optional[str] = typer.Option(None, "--hostname", help="The pod's host name (default: its name)."),
    labels: List[str] = typer.Option(None, "--label", "-l", help="KEY=VALUE (repeatable)."),
    name_arg: Optional[str] = typer.Argument(None, metavar="[NAME]", help="The name, as --name."),
) -> None:
    """Create a pod (it starts with its first container, or `pod start`); prints its id."""
    from rootlet.registry.errors import UsageError
    from rootlet.runtime.engine.options import PodCreateOptions

    if name and name_arg and name != name_arg:
        raise UsageError("give the pod's name once: --name or as an argument")
    app: AppContext = ctx.obj
    out(app.engine().pod_create(PodCreateOptions(name=name or name_arg, publish=tuple(publish or ()), network=network,
                                                 share=share, hostname=hostname, labels=tuple(labels or ()))))


def _ps_json(r) -> dict:  # noqa: ANN001 - a PodSummary
    """podman's ``pod ps --format json`` record."""
    return {"Cgroup": "", "Containers": [{"Id": i, "Names": n, "Status": s} for i, n, s in r.containers],
            "Created": go_time(r.created), "Id": r.id, "InfraId": r.infra_id, "Name": r.name, "Namespace": "",
            "Networks": list(r.networks), "Status": r.status, "Labels": dict(r.labels)}


def ps(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the ids."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Full ids."),
    filters: List[str] = typer.Option(None, "--filter", "-f", help="name=REGEX, id=, status=, label=K[=V], network=."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json, or a Go template: '{{.Name}} {{.Status}}'."),
    noheading: bool = typer.Option(False, "--noheading", "-n", help="Omit the table header."),
) -> None:
    """List pods."""
    app: AppContext = ctx.obj
    rows = app.engine().pod_ps(tuple(filters or ()))
    if quiet:
        for r in rows:
            out(r.id if no_trunc else r.id[:12])
        return
    json_docs = [_ps_json(r) for r in rows]
    docs = [dict(j, ID=r.id if no_trunc else r.id[:12], Created=ago(r.created),
                 InfraID=r.infra_id if no_trunc else r.infra_id[:12], NumberOfContainers=len(r.containers))
            for j, r in zip(json_docs, rows)]
    print_rows(fmt, json_docs, docs, PS_TABLE, PS_HEADERS, heading=not noheading)


def inspect(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="POD..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (default) or a Go template: '{{.State}}'."),
) -> None:
    """Show pods' details as JSON (podman's fields)."""
    app: AppContext = ctx.obj
    report = app.engine().pod_inspect(tuple(names))
    if len(report.docs) == 1 and fmt in (None, "", "json"):
        dump_json(report.docs[0])  # podman 4 prints one pod as an object
    else:
        print_docs(report.docs, fmt)
    raise_collected(report.errors)


def _report(results: list) -> None:
    from rootlet.registry.errors import PodNotFound, PodStateError

    for r in results:
        if r.error is None and r.id:
            out(r.id)
    raise_collected([r.error for r in results if r.error is not None], ((PodStateError, 2), (PodNotFound, 1)))


def _action(verb: str):  # -> a typer command for pod start|stop|restart
    def command(
        ctx: typer.Context,
        names: List[str] = typer.Argument(None, metavar="POD..."),
        all_: bool = typer.Option(False, "--all", "-a", help="Every pod."),
        timeout: Optional[int] = typer.Option(None, "--time", "-t", help="Seconds to wait for each container's stop "
                                              "signal before SIGKILL (stop, restart)."),
    ) -> None:
        from rootlet.registry.errors import UsageError
        from rootlet.runtime.engine.options import PodActionOptions

        if timeout is not None and verb == "start":
            raise UsageError("pod start takes no --time")
        app: AppContext = ctx.obj
        opts = PodActionOptions(names=tuple(names or ()), all=all_, timeout=timeout)
        _report(getattr(app.engine(), f"pod_{verb}")(opts))

    command.__doc__ = {"start": "Start pods: their infra, then their containers.",
                       "stop": "Stop pods: their containers, then their infra.",
                       "restart": "Stop and start pods again."}[verb]
    return command


def kill(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="POD..."),
    all_: bool = typer.Option(False, "--all", "-a", help="Every pod."),
    sig: str = typer.Option("KILL", "--signal", "-s", help="Signal name or number (default KILL)."),
) -> None:
    """Send a signal to the containers of pods (KILL also ends their infra)."""
    from rootlet.runtime.engine.options import PodActionOptions

    app: AppContext = ctx.obj
    _report(app.engine().pod_kill(PodActionOptions(names=tuple(names or ()), all=all_, signal=sig)))


def rm(
    ctx: typer.Context,
    names: List[str] = typer.Argument(None, metavar="POD..."),
    all_: bool = typer.Option(False, "--all", "-a", help="Every pod."),
    force: bool = typer.Option(False, "--force", "-f", help="Stop running containers first; a missing pod is no error."),
) -> None:
    """Remove pods and their containers. Exit status as podman's: 1 when one did not exist, 2 when one
    has running containers."""
    from rootlet.runtime.engine.options import PodActionOptions

    app: AppContext = ctx.obj
    _report(app.engine().pod_rm(PodActionOptions(names=tuple(names or ()), all=all_, force=force)))


def prune(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove every pod that is not running; prints their ids."""
    from rootlet.cli.volumes import confirm_or_refuse

    app: AppContext = ctx.obj
    if not confirm_or_refuse(force, "pod prune", "WARNING! This will remove all stopped/exited pods.."):
        return
    for pid in app.engine().pod_prune():
        out(pid)


def top(
    ctx: typer.Context,
    pod: str = typer.Argument(..., metavar="POD"),
    descriptors: List[str] = typer.Argument(None, metavar="[FORMAT-DESCRIPTORS]"),
) -> None:
    """Show the processes of a pod's running containers."""
    app: AppContext = ctx.obj
    report = app.engine().pod_top(pod, tuple(descriptors or ()))
    out(table(report.columns, [[r[c] for c in report.columns] for r in report.rows]))


def exists(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="POD"),
) -> None:
    """Exit 0 when the pod exists, 1 when it does not (nothing is printed)."""
    app: AppContext = ctx.obj
    raise typer.Exit(0 if app.engine().pod_exists(name) else 1)


def register(app: typer.Typer) -> None:
    """Add the ``pod`` group."""
    group = typer.Typer(help="Manage pods.", no_args_is_help=True)
    group.command("create")(create)
    group.command("ps")(ps)
    group.command("ls")(ps)
    group.command("list")(ps)
    group.command("inspect")(inspect)
    for verb in ("start", "stop", "restart"):
        group.command(verb)(_action(verb))
    group.command("kill")(kill)
    group.command("rm")(rm)
    group.command("remove")(rm)
    group.command("prune")(prune)
    group.command("top")(top)
    group.command("exists")(exists)
    app.add_typer(group, name="pod")
