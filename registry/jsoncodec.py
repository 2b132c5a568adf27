"""JSON through CPython's C accelerator, without importing the ``json`` package.

``import json`` costs 4–8 ms on every command: json.decoder and json.scanner compile regular
expressions when imported, which pulls in ``re`` and with it ``enum``. The documents rootlet reads and
writes on its warm paths (store records, image configs, inspect output) need none of that, since
``_json``'s scanner and encoder do the actual work in either case.

Valid input takes the C path; anything else (invalid JSON, bytes that are not UTF-8, an interpreter
without ``_json``) is handed to the ``json`` package, so results and error messages are exactly the
standard library's, and the import is paid only on that path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import; it is only needed by type checkers
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # not CPython: the json package is the only codec
    _json = None  # type: ignore[assignment]

#: JSON's whitespace (RFC 8259 §2); str.strip's default set is larger.
_WHITESPACE = " \t\n\r"


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__


def _unserialisable(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_ScanContext())
    #: (sort_keys, ensure_ascii) -> encoder; made once each, as json.dumps' default encoder is.
    _ENCODERS = {
        (sort_keys, ascii_only): _json.make_encoder(
            None, _unserialisable, _json.encode_basestring_ascii if ascii_only else _json.encode_basestring,
            None, ":", ",", sort_keys, False, True)
        for sort_keys in (False, True) for ascii_only in (False, True)}


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads(data)``."""
    if _json is not None:
        try:
            text = data if isinstance(data, str) else bytes(data).decode("utf-8")
            start = len(text) - len(text.lstrip(_WHITESPACE))
            obj, end = _scan(text, start)
            if end == len(text) or not text[end:].strip(_WHITESPACE):
                return obj
        except (StopIteration, ValueError, RecursionError):
            pass  # the json package raises the error it would have raised
    import json

    return json.loads(data)


def dumps(obj: Any, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """``json.dumps(obj, separators=(",", ":"), sort_keys=…, ensure_ascii=…)``: compact JSON."""
    if _json is not None:
        if isinstance(obj, str):
            return (_json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring)(obj)
        # markers=None: the C encoder then skips its circular-reference bookkeeping, which costs a
        # dict insert per container; a cycle still ends, in RecursionError instead of ValueError.
        return "".join(_ENCODERS[sort_keys, ensure_ascii](obj, 0))
    import json

    return json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii)


def dumps_indented(obj: Any, indent: int = 4) -> str:
    """``json.dumps(obj, indent=indent)``: the layout of ``inspect``.

    CPython's C encoder ignores ``indent`` (before 3.14), so json.dumps falls back to its pure-Python
    encoder for this, which is the module that imports ``re``. This walk produces the same text: each
    container opened on its own line, ``", "`` becoming ``",\\n"`` and ``": "`` after keys; scalars are
    encoded by the C encoder, so numbers and strings come out exactly as json.dumps writes them.
    """
    if _json is not None:
        parts: list[str] = []
        try:
            _indent_into(obj, parts, "\n", " " * indent)
            return "".join(parts)
        except _NotStringKey:
            pass  # json.dumps converts int, float, bool and None keys; that layout is rare
    import json

    return json.dumps(obj, indent=indent)


class _NotStringKey(Exception):
    """A dict key that is not a string: left to the json package."""


def _indent_into(obj: Any, parts: list[str], newline: str, step: str) -> None:
    if isinstance(obj, str):
        parts.append(_json.encode_basestring_ascii(obj))
    elif isinstance(obj, (list, tuple)):
        if not obj:
            parts.append("[]")
            return
        inner = newline + step
        parts.append("[")
        for i, item in enumerate(obj):
            parts.append("," + inner if i else inner)
            _indent_into(item, parts, inner, step)
        parts.append(newline + "]")
    elif isinstance(obj, dict):
        if not obj:
            parts.append("{}")
            return
        inner = newline + step
        parts.append("{")
        for i, (key, value) in enumerate(obj.items()):
            if not isinstance(key, str):
                raise _NotStringKey
            parts.append(("," + inner if i else inner) + _json.encode_basestring_ascii(key) + ": ")
            _indent_into(value, parts, inner, step)
        parts.append(newline + "}")
    else:
        parts.extend(_ENCODERS[False, True](obj, 0))
