"""``rootlet ps`` (and ``container ps|ls|list``): parsed by the fast table parser (cli/argv.py).

Listing is what scripts poll; its start-up is benchmarked against ``podman ps``, so nothing here
imports typer, and the default table is laid out without the template engine.
"""

from __future__ import annotations

import sys

from rootlet.cli.argv import HELP_FLAG, Flag, parse_command
from rootlet.cli.render import ago, describe_status, go_time, human_size, ports_text, print_rows

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    from rootlet.runtime.engine.reports import ContainerSummary

PS_FLAGS: tuple[Flag, ...] = (
    Flag(("-a", "--all"), "all", "bool", "Also containers that are not running."),
    Flag(("-q", "--quiet"), "quiet", "bool", "Print only container ids."),
    Flag(("--no-trunc",), "no_trunc", "bool", "Do not truncate ids and commands."),
    Flag(("--format",), "format", "value", "json, or a Go template: '{{.Names}} {{.Status}}', "
         "'table {{.ID}}\\t{{.Names}}' (with headers).", "FORMAT"),
    Flag(("-f", "--filter"), "filter", "multi", "name=, status=, label=K[=V], ancestor=, id=, exited=.", "FILTER"),
    Flag(("-n", "--last"), "last", "value", "Only the N most recently created containers (implies -a).", "N"),
    Flag(("-l", "--latest"), "latest", "bool", "Only the most recently created container (implies -a)."),
    Flag(("--noheading",), "noheading", "bool", "Omit the table header."),
    Flag(("-s", "--size"), "size", "bool", "Show each container's own files' size (and with its image's)."),
    Flag(("--sort",), "sort", "value", "command, created, id, image, names, runningfor, size or status.", "KEY",
         "created"),
    Flag(("--external",), "external", "bool", "Also containers of other tools (rootlet lists all it has anyway: "
         "it keeps no containers outside its own store)."),
    HELP_FLAG,
)

#: podman's default ``ps`` table, and the header words that differ from the field names.
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "CreatedHuman": "CREATED"}


def ps_command(root: str, argv: list[str], command: str = "ps") -> int:
    """List containers (running ones, or all with -a)."""
    from rootlet.registry.errors import UsageError

    p = parse_command(argv, PS_FLAGS, command, "[OPTIONS]", "List containers (running ones, or all with -a).")
    if p is None:
        return 0
    if p.positional:
        raise UsageError(f"{command} takes no arguments, got {p.positional[0]!r}",
                         f"filter with --filter; see 'rootlet {command} --help'")
    last = 1 if p.latest else None
    if p.last is not None and not p.latest:
        if not p.last.lstrip("-").isdigit():
            raise UsageError(f"invalid --last {p.last!r}", "give a whole number")
        last = int(p.last)
    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.options import PsOptions

    rows = Engine(root).ps(PsOptions(all=p.all, filters=tuple(p.filter), last=last, size=p.size, sort=p.sort))
    if p.quiet:
        sys.stdout.write("".join((r.id if p.no_trunc else r.id[:12]) + "\n" for r in rows))
        return 0
    print_rows(p.format, lambda: [ps_json(r) for r in rows],
               lambda: [ps_doc(r, p.no_trunc, p.size) for r in rows], PS_TABLE + ("\t{{.Size}}" if p.size else ""),
               PS_HEADERS, heading=not p.noheading)
    return 0


def ps_doc(r: ContainerSummary, no_trunc: bool, size: bool) -> dict:
    """The fields a ``ps --format`` template sees: podman's names and texts. ``.State`` is the state
    word (``running``), as docker and podman 5 print it (podman 4 printed the status text)."""
    doc = dict(ps_json(r), ID=r.id if no_trunc else r.id[:12], Names=r.name, ImageID=r.image_id if no_trunc
               else r.image_id[:12], Command=_command(r, no_trunc), Ports=ports_text(r.ports),
               CreatedAt=go_time(r.created), Created=go_time(r.created), CreatedHuman=ago(r.created),
               RunningFor=ago(r.created), Status=_status(r), Mounts=list(r.mounts), Networks=[],
               Pod="", PodName="")
    if size:
        doc["Size"] = f"{human_size(r.rw_size or 0)} (virtual {human_size(r.root_size or 0)})"
    return doc


def _status(r: ContainerSummary) -> str:
    text = describe_status(r.status, r.started_at, r.finished_at, r.exit_code)
    return f"{text} ({r.health})" if r.health and r.status == "running" else text  # podman's "(healthy)"


def ps_json(r: ContainerSummary) -> dict:
    """podman's ``ps --format json`` record."""
    return {
        "Id": r.id, "Names": [r.name], "Image": r.image, "ImageID": r.image_id, "Command": list(r.command),
        "Created": int(r.created), "CreatedAt": r.created_at, "State": r.status, "Status": _status(r),
        "ExitCode": r.exit_code if r.exit_code is not None else 0, "Exited": r.status == "exited",
        "StartedAt": int(r.started_at or 0), "ExitedAt": int(r.finished_at or 0), "Pid": r.pid,
        "Ports": [{"host_ip": p.host_ip or "", "host_port": p.host_port, "container_port": p.container_port,
                   "protocol": p.protocol} for p in r.ports],
        "Labels": dict(r.labels), "AutoRemove": r.auto_remove, "RestartCount": r.restart_count,
    }


def _command(r: ContainerSummary, no_trunc: bool) -> str:
    """podman's COMMAND: the words joined, unquoted, cut to 17 characters and "..." past 20."""
    cmd = " ".join(r.command)
    return cmd[:17] + "..." if not no_trunc and len(cmd) > 20 else cmd
