"""A small subset of Go templates for ``--format``: ``{{.Field.Sub}}`` and ``{{json .Field}}``.

Scripts written for docker mostly use these two forms (``--format '{{.Id}}'``); anything beyond
them is refused with a clear error rather than printed wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rootlet.registry.errors import UsageError

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def _lookup(doc: Any, path: str, template: str) -> Any:
    if path == ".":
        return doc
    value = doc
    for part in path.lstrip(".").split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise UsageError(f"template {template!r}: no field {path!r}", "see the JSON output for field names")
    return value


def _text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_text(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def render_template(template: str, doc: Any) -> str:
    """Render *template* against *doc* (a JSON-like dict)."""
    def action(match: re.Match[str]) -> str:
        expr = match.group(1)
        if re.fullmatch(r"\.[A-Za-z0-9_.]*", expr):
            return _text(_lookup(doc, expr, template))
        m = re.fullmatch(r"json\s+(\.[A-Za-z0-9_.]*)", expr)
        if m:
            return json.dumps(_lookup(doc, m.group(1), template))
        raise UsageError(f"unsupported template action {{{{{expr}}}}}",
                         "rootlet supports {{.Field}} and {{json .Field}}")
    rest = _ACTION.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise UsageError(f"invalid template {template!r}: an unclosed or stray '{{{{' or '}}}}'",
                         "rootlet supports {{.Field}} and {{json .Field}}")
    text = _ACTION.sub(action, template)
    return text.replace("\\n", "\n").replace("\\t", "\t")
