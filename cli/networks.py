"""The ``network`` group: create, ls, inspect, rm, prune, exists, connect, disconnect (podman's)."""

from __future__ import annotations

from typing import List, Optional

import typer

from rootlet.cli.context import AppContext
from rootlet.cli.render import out, print_docs, print_rows, raise_collected

#: podman's ``network ls`` table.
LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}"
LS_HEADERS = {"ID": "NETWORK ID"}


def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME"),
    subnet: Optional[str] = typer.Option(None, "--subnet", help="IPv4 subnet (default: the first free 10.89.N.0/24)."),
    gateway: Optional[str] = typer.Option(None, "--gateway", help="Gateway address (default: the subnet's first)."),
    internal: bool = typer.Option(False, "--internal", help="No way out of the network (names still resolve)."),
    labels: List[str] = typer.Option(None, "--label", help="KEY=VALUE (repeatable)."),
    driver: str = typer.Option("bridge", "--driver", "-d", help="bridge (the only rootless one)."),
) -> None:
    """Create a user network; prints its name."""
    from rootlet.runtime.engine.options import NetworkCreateOptions

    app: AppContext = ctx.obj
    out(app.engine().network_create(NetworkCreateOptions(name=name, subnet=subnet, gateway=gateway, internal=internal,
                                                         labels=tuple(labels or ()), driver=driver)))


def _template_doc(doc: dict) -> dict:
    """A network as podman's templates see it (its Go field names beside the JSON's)."""
    return dict(doc, ID=doc["id"][:12], Name=doc["name"], Driver=doc["driver"], Labels=doc.get("labels") or {},
                Created=doc["created"], Internal=doc["internal"], NetworkInterface=doc["network_interface"],
                DNSEnabled=doc["dns_enabled"], IPv6Enabled=doc["ipv6_enabled"], Subnets=doc["subnets"], Id=doc["id"])


def ls(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the names."),
    filters: List[str] = typer.Option(None, "--filter", "-f", help="name=REGEX, id=, driver=, label=K[=V], until=, "
                                      "dangling=true|false."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json, or a Go template: '{{.Name}} {{.ID}}'."),
    noheading: bool = typer.Option(False, "--noheading", "-n", help="Omit the table header."),
) -> None:
    """List user networks."""
    app: AppContext = ctx.obj
    docs = app.engine().network_ls(tuple(filters or ()))
    if quiet:
        for doc in docs:
            out(str(doc["name"]))
        return
    print_rows(fmt, docs, [_template_doc(d) for d in docs], LS_TABLE, LS_HEADERS, heading=not noheading)


def inspect(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="NETWORK..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json (default) or a Go template: '{{.Subnets}}'."),
) -> None:
    """Show networks' details as JSON (podman's fields)."""
    from rootlet.cli.template import format_kind

    app: AppContext = ctx.obj
    report = app.engine().network_inspect(tuple(names))
    docs = report.docs if format_kind(fmt) in ("json", "default") else [_template_doc(d) for d in report.docs]
    print_docs(docs, fmt)
    raise_collected(report.errors)


def rm(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="NETWORK..."),
    force: bool = typer.Option(False, "--force", "-f", help="Also remove the containers and pods on them."),
) -> None:
    """Remove networks. Exit status as podman's: 1 when one did not exist, 2 when one is in use."""
    from rootlet.registry.errors import NetworkInUse, NetworkNotFound
    from rootlet.runtime.engine.options import NetworkRmOptions

    app: AppContext = ctx.obj
    results = app.engine().network_rm(NetworkRmOptions(tuple(names), force=force))
    for r in results:
        if r.error is None:
            out(r.name)
    raise_collected([r.error for r in results if r.error is not None], ((NetworkInUse, 2), (NetworkNotFound, 1)))


def prune(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove every network no container or pod uses; prints their names."""
    from rootlet.cli.volumes import confirm_or_refuse

    app: AppContext = ctx.obj
    if not confirm_or_refuse(force, "network prune", "WARNING! This will remove all networks not used by at least "
                             "one container."):
        return
    for name in app.engine().network_prune():
        out(name)


def exists(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NETWORK"),
) -> None:
    """Exit 0 when the network exists, 1 when it does not (nothing is printed)."""
    app: AppContext = ctx.obj
    raise typer.Exit(0 if app.engine().network_exists(name) else 1)


def connect(
    ctx: typer.Context,
    network: str = typer.Argument(..., metavar="NETWORK"),
    container: str = typer.Argument(..., metavar="CONTAINER"),
    aliases: List[str] = typer.Option(None, "--alias", help="Another DNS name on this network (repeatable)."),
    ip: Optional[str] = typer.Option(None, "--ip", help="Its IPv4 address on this network."),
) -> None:
    """Connect a container to a network (at once when it runs on user networks)."""
    from rootlet.runtime.engine.options import NetworkConnectOptions

    app: AppContext = ctx.obj
    app.engine().network_connect(NetworkConnectOptions(network, container, aliases=tuple(aliases or ()), ip=ip))


def disconnect(
    ctx: typer.Context,
    network: str = typer.Argument(..., metavar="NETWORK"),
    container: str = typer.Argument(..., metavar="CONTAINER"),
    force: bool = typer.Option(False, "--force", "-f", help="Accepted as podman's (disconnecting never waits)."),
) -> None:
    """Disconnect a container from a network."""
    from rootlet.runtime.engine.options import NetworkConnectOptions

    app: AppContext = ctx.obj
    app.engine().network_disconnect(NetworkConnectOptions(network, container, force=force))


def register(app: typer.Typer) -> None:
    """Add the ``network`` group."""
    group = typer.Typer(help="Manage user networks.", no_args_is_help=True)
    group.command("create")(create)
    group.command("ls")(ls)
    group.command("list")(ls)
    group.command("inspect")(inspect)
    group.command("rm")(rm)
    group.command("remove")(rm)
    group.command("prune")(prune)
    group.command("exists")(exists)
    group.command("connect")(connect)
    group.command("disconnect")(disconnect)
    app.add_typer(group, name="network")
