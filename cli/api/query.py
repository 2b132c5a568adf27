"""Reading a request's parameters as docker sends them: query booleans and numbers, the JSON
``filters`` parameter, and typed fields of JSON bodies (a wrong type is a 400 naming the field)."""

from __future__ import annotations

import json

from rootlet.cli.api.http import HttpError, Request

_FALSE = ("", "0", "no", "false", "none")


def boolean(req: Request, name: str, default: bool = False) -> bool:
    """docker's rule: absent → ``default``; ``0``, ``no``, ``false``, ``none`` or empty → false."""
    value = req.arg(name)
    if value is None:
        return default
    return value.strip().lower() not in _FALSE


def integer(req: Request, name: str, default: int | None = None) -> int | None:
    value = req.arg(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise HttpError(400, f"invalid value for {name}: {value!r} is not an integer", keep=True) from None


def filters(req: Request) -> list[tuple[str, str]]:
    """The ``filters`` parameter as (key, value) pairs: ``{"key": ["v", …]}`` or the older
    ``{"key": {"v": true}}``."""
    text = req.arg("filters")
    if not text:
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        raise HttpError(400, f"invalid filters {text[:200]!r}: not JSON", keep=True) from None
    if not isinstance(doc, dict):
        raise HttpError(400, "invalid filters: a JSON object of key → values is expected", keep=True)
    out = []
    for key, values in doc.items():
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise HttpError(400, f"invalid filter {key!r}: values must be strings", keep=True)
        out += [(key, v) for v in values]
    return out


def object_body(req: Request, required: bool = False) -> dict[str, object]:
    """The JSON body, which must be an object (empty → {} unless ``required``)."""
    doc = req.json(required=required)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise HttpError(400, f"the body must be a JSON object, not {type(doc).__name__}", keep=True)
    return doc


_TYPES = {str: "a string", bool: "a boolean", int: "an integer", list: "a list", dict: "an object"}


def field(doc: dict[str, object], key: str, kind: type, where: str = "") -> object:
    """``doc[key]`` when it is of ``kind`` (None when absent or null); 400 naming the field else."""
    value = doc.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise HttpError(400, f"{where}{key}: {_TYPES.get(kind, kind.__name__)} is expected, not "
                        f"{json.dumps(value)[:60]}", keep=True)
    return value


def string(doc: dict[str, object], key: str, where: str = "") -> str | None:
    return field(doc, key, str, where)  # type: ignore[return-value]


def strings(doc: dict[str, object], key: str, where: str = "", one_or_list: bool = False) -> list[str] | None:
    """A list of strings (with ``one_or_list`` a lone string too, as docker's StrSlice)."""
    value = doc.get(key)
    if value is None:
        return None
    if one_or_list and isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HttpError(400, f"{where}{key}: a list of strings is expected", keep=True)
    return value


def string_map(doc: dict[str, object], key: str, where: str = "") -> dict[str, str] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise HttpError(400, f"{where}{key}: an object of strings is expected", keep=True)
    return value
