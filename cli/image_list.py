"""``rootlet images`` (and ``image ls|list``): parsed by the fast table parser (cli/argv.py).

Benchmarked against ``podman images``: nothing here imports typer.
"""

from __future__ import annotations

import sys

from rootlet.cli.argv import HELP_FLAG, Flag, parse_command
from rootlet.cli.render import ago, go_time, human_size, parse_time, print_rows

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    from rootlet.runtime.engine.reports import ImageSummary

IMAGES_FLAGS: tuple[Flag, ...] = (
    Flag(("-q", "--quiet"), "quiet", "bool", "Print only image ids."),
    Flag(("-a", "--all"), "all", "bool", "Also the intermediate images of builds."),
    Flag(("--format",), "format", "value", "json, or a Go template: '{{.Repository}}:{{.Tag}} {{.ID}}', "
         "'table {{.ID}}\\t{{.Size}}' (with headers).", "FORMAT"),
    Flag(("--no-trunc",), "no_trunc", "bool", "Do not truncate image ids."),
    Flag(("--digests",), "digests", "bool", "Show the manifest digest column."),
    Flag(("-n", "--noheading"), "noheading", "bool", "Omit the table header."),
    HELP_FLAG,
)

#: podman's default ``images`` table, and the header words that differ from the field names.
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADERS = {"ID": "IMAGE ID", "CreatedSince": "CREATED"}


def images_command(root: str, argv: list[str], command: str = "images") -> int:
    """List local images (only those named REPOSITORY[:TAG] when one is given)."""
    from rootlet.registry.errors import UsageError

    p = parse_command(argv, IMAGES_FLAGS, command, "[OPTIONS] [REPOSITORY[:TAG]]", "List local images.")
    if p is None:
        return 0
    if len(p.positional) > 1:
        raise UsageError(f"{command} takes at most one name, got {len(p.positional)}",
                         f"see 'rootlet {command} --help'")
    from rootlet.runtime.engine import Engine
    from rootlet.runtime.engine.options import ImagesOptions

    rows = Engine(root).images(ImagesOptions(name=p.positional[0] if p.positional else None, all=p.all))
    if p.quiet and not (p.format and _is_json(p.format)):  # -q wins over a template, not over json
        ids = dict.fromkeys(row.id if p.no_trunc else row.id[:12] for row in rows)
        sys.stdout.write("".join(i + "\n" for i in ids))
        return 0

    def json_docs() -> list[dict]:
        docs: dict[str, dict] = {}  # one entry per image, however many names list it
        for row in rows:
            docs.setdefault(row.id, image_json(row))
        return list(docs.values())

    default = IMAGES_TABLE.replace("{{.Tag}}", "{{.Tag}}\t{{.Digest}}" if p.digests else "{{.Tag}}")
    print_rows(p.format, json_docs, lambda: [_image_doc(row, p.no_trunc) for row in rows], default,
               IMAGES_HEADERS, heading=not p.noheading)
    return 0


def _is_json(fmt: str) -> bool:
    from rootlet.cli.template import format_kind

    return format_kind(fmt) == "json"


def _image_doc(row: ImageSummary, no_trunc: bool) -> dict:
    """The fields an ``images --format`` template sees: podman's names and texts (``.Created`` is
    the age there, as in podman; ``.CreatedAt`` the time)."""
    created = parse_time(row.created) or row.pulled or None
    return dict(image_json(row), ID=row.id if no_trunc else row.id[:12], Repository=row.repository, Tag=row.tag,
                CreatedSince=ago(created), Created=ago(created), CreatedAt=go_time(created),
                Size=human_size(row.size), ReadOnly=False, Dangling=row.repository == "<none>")


def image_json(row: ImageSummary) -> dict:
    """``images --format json`` entry, with the keys podman prints."""
    return {
        "Id": row.id, "ParentId": "", "RepoTags": list(row.repo_tags), "RepoDigests": list(row.repo_digests),
        "Size": row.size, "SharedSize": 0, "VirtualSize": row.size, "Labels": None, "Containers": 0,
        "Names": list(row.repo_tags), "Digest": row.digest, "Created": row.created, "Arch": row.architecture,
        "Os": row.os,
    }
