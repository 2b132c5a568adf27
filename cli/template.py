"""Go's text/template language for ``--format``, the subset podman users write, in pure Python.

A tokenizer and a recursive-descent parser (the tree is plain tuples), rendered against a
JSON-like document: text, ``{{-``/``-}}`` trimming, ``{{/* comments */}}``; fields on ``.``, ``$``
and variables (``$x := …``, ``$x = …``, ``range $i, $v := …``); pipelines, parentheses; ``if``/
``else if``/``else``, ``range`` (lists, maps in sorted key order, ints; ``else``, ``break``,
``continue``), ``with``/``else``; Go's truthiness; Go's builtins (``and or not eq ne lt le gt ge
len index slice print printf println``) and podman's (``json join lower upper title split truncate
pad``, from containers/common pkg/report). As podman does, a typed backslash-t or backslash-n in
the text is a tab or newline, and ``table …`` prints a header row, then columns aligned like
podman's tabwriter (render_rows).

Where rootlet decides differently from Go, or had to choose:

* A missing field or map key is an error naming it (``can't evaluate field Foo``), never Go's
  silent ``<no value>``: a typo in a CI script must fail, not print nothing.
* ``None`` (a JSON null that exists) prints ``<nil>``: rootlet's nulls stand for podman's nil
  pointers (``{{.State.Health}}`` without a healthcheck prints ``<nil>`` in podman).
* ``index`` of a missing map key is the zero value of the map's values (``""`` for string maps
  such as ``.Labels``, as Go's ``map[string]string`` gives): scripts probe labels that way.
* A stray ``}}`` in the text is refused (Go prints it): it is almost always a broken action
  (to print one: ``{{"}}"}}``).
* Ints and floats compare with each other (JSON does not keep Go's types); ``json`` keeps the
  document's key order (the documents stand for Go structs, encoded in field order).
* Not supported: ``define``/``template``/``block``, methods, ``call``, ``html``/``js``/``urlquery``.

Errors are ``UsageError("template: …", hint)``, one line; syntax errors give ``line:column``.
"""

from __future__ import annotations

import functools
import re

from rootlet.cli.tabwrite import tabwrite
from rootlet.registry import jsoncodec
from rootlet.registry.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds to import, and commands that format pay startup
if TYPE_CHECKING:
    from typing import Any, Sequence

SYNTAX_HINT = "see https://pkg.go.dev/text/template"
FIELD_HINT = "see the JSON output (--format json) for the field names"

#: One token inside an action; ``close`` comes first so the space of `` -}}`` is not whitespace.
_TOKEN = re.compile(r"""(?P<close>(?:[ \t\r\n]+-)?}})|(?P<ws>\s+)|(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)
  |(?P<num>[-+]?(?:0[xX][\da-fA-F_]+|0[oObB][\d_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?)(?![\w.]))
  |(?P<var>\$\w*)|(?P<field>\.[A-Za-z_]\w*)|(?P<dot>\.)|(?P<ident>[A-Za-z_]\w*)|(?P<op>:=|=|[|(),])""", re.X)
_COMMENT_END = re.compile(r"\*/(?:[ \t\r\n]+-)?}}")
_ESCAPE = re.compile(r"\\(x[\da-fA-F]{2}|u[\da-fA-F]{4}|U[\da-fA-F]{8}|[0-7]{3}|.)", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d*))?([a-zA-Z%])")
#: podman's camelcase.Split: runs of upper, lower, digits, others; an upper before lower starts a word.
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^A-Za-z\d]+")
_JSON_FORMAT = re.compile(r"\s*(json|\{\{\s*json\.?\s*\}\})\s*")
_WS = " \t\r\n"
_KEYWORDS = ("if", "else", "end", "range", "with", "break", "continue", "define", "template", "block")
_NONE = object()  # "nothing piped in", distinct from a piped None


class _Loop(Exception):
    """``{{break}}`` or ``{{continue}}`` (its one argument), unwinding to the innermost range."""


def _fail(message: str, hint: str = SYNTAX_HINT) -> UsageError:
    return UsageError(f"template: {message}", hint)


def _where(src: str, pos: int) -> str:
    """``line:column`` of offset *pos*, as Go's parser names positions."""
    return f"{src.count(chr(10), 0, pos) + 1}:{pos - src.rfind(chr(10), 0, pos)}"


def _lex(src: str, table: bool) -> list[tuple[str, Any, int]]:
    """``("text", str, pos)`` and ``("action", [(kind, text, start, end)], pos)`` items, trimmed,
    with podman's rewriting of the text (escapes; in a table, spaces become column breaks)."""
    items: list[tuple[str, Any, int]] = []
    pos, trim_next = 0, False
    while True:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        if "}}" in text:
            raise _fail(f'{_where(src, pos + text.index("}}"))}: unexpected "}}}}" outside an action')
        trim = start >= 0 and src[start + 2:start + 3] == "-" and src[start + 3:start + 4] in tuple(_WS)
        text = text.replace("\\t", "\t").replace("\\n", "\n")
        text = text.replace(" ", "\t") if table else text
        text = text.lstrip(_WS) if trim_next else text
        if text := text.rstrip(_WS) if trim else text:
            items.append(("text", text, pos))
        if start < 0:
            return items
        i = start + (4 if trim else 2)
        if src.startswith("/*", i):
            close = _COMMENT_END.search(src, i + 2)
            if close is None or src.find("*/", i + 2) != close.start():
                raise _fail(f"{_where(src, start)}: unclosed comment or comment ends before closing delimiter")
            pos, trim_next = close.end(), close.group() != "*/}}"
            continue
        tokens = []
        while m := _TOKEN.match(src, i):  # up to the closing }}; the else: no token fits here
            i = m.end()
            if m.lastgroup == "close":
                break
            if m.lastgroup != "ws":
                tokens.append((m.lastgroup, m.group(), m.start(), m.end()))
        else:
            what = "unclosed action" if i >= len(src) else "unterminated quoted string" \
                if src[i] in "\"`" else f"unexpected {src[i]!r} in action"
            raise _fail(f"{_where(src, start if i >= len(src) else i)}: {what}")
        items.append(("action", tokens, start))
        pos, trim_next = i, m.group() != "}}"


def _literal(kind: str, text: str) -> Any:
    """The value of a string, raw string or number token."""
    if kind == "raw":
        return text[1:-1]
    if kind == "str":
        def one(m: re.Match[str]) -> str:
            esc = m.group(1)
            if len(esc) > 1:
                return chr(int(esc[1:], 16) if esc[0] in "xuU" else int(esc, 8))
            return _ESCAPES.get(esc, esc)
        return _ESCAPE.sub(one, text[1:-1])
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        return float(text.replace("_", ""))


class _Parser:
    """Recursive descent over the lexed items. Nodes: ``("text", s)``, ``("action", pipe)``,
    ``(if|range|with, pipe, body, else)``, ``(break|continue,)``; a pipe is ``(declared variables,
    is "=", [commands])``, a command a list of operands: ``("lit", v)``, ``("fn", name)``, or
    ``(field|var|pipe, base, [field names], source text)``."""

    def __init__(self, src: str, items: list[tuple[str, Any, int]]) -> None:
        self.src, self.items, self.i = src, items, 0
        self.toks: list[tuple[str, str, int, int]] = []
        self.t = 0

    def error(self, message: str, pos: int | None = None) -> UsageError:
        if pos is None:
            pos = self.toks[self.t][2] if self.t < len(self.toks) else self.items[self.i - 1][2]
        return _fail(f"{_where(self.src, pos)}: {message}")

    def block(self, inside: str, in_range: bool) -> tuple[list[Any], str]:
        """Nodes up to the ``{{end}}`` or ``{{else}}`` of block *inside* (``""``: the end), and which."""
        nodes: list[Any] = []
        while self.i < len(self.items):
            kind, body, pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(("text", body))
                continue
            self.toks = body
            word = body[0][1] if body and body[0][0] == "ident" and body[0][1] in _KEYWORDS else ""
            self.t = 1 if word else 0
            if word in ("end", "else"):
                if not inside:
                    raise self.error(f"unexpected {{{{{word}}}}}", pos)
                if word == "end":
                    self.expect_end()
                return nodes, word
            if word in ("if", "range", "with"):
                nodes.append(self.control(word, in_range))
            elif word in ("break", "continue"):
                if not in_range:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", pos)
                self.expect_end()
                nodes.append((word,))
            elif word:
                raise self.error(f"{{{{{word}}}}} is not supported", pos)
            else:
                nodes.append(("action", self.pipeline(decl_ok=True)))
        if inside:
            raise self.error(f"unexpected EOF: missing {{{{end}}}} for {{{{{inside}}}}}", len(self.src))
        return nodes, ""

    def control(self, word: str, in_range: bool) -> tuple[Any, ...]:
        pipe = self.pipeline(decl_ok=True, two=word == "range")
        body, stop = self.block(word, in_range or word == "range")
        orelse: list[Any] = []
        if stop == "else":
            if word != "range" and self.toks[1:2] and self.toks[1][:2] == ("ident", word):
                self.t = 2  # {{else if …}}: a nested if that shares this one's {{end}}
                orelse = [self.control(word, in_range)]
            else:
                self.expect_end()
                orelse, stop = self.block(word, in_range)
                if stop == "else":
                    raise self.error(f"expected {{{{end}}}}; found {{{{else}}}} in {{{{{word}}}}}")
        return (word, pipe, body, orelse)

    def peek(self) -> str:
        """The operator at the cursor (``|``, ``(``…), or ``""``."""
        return self.toks[self.t][1] if self.t < len(self.toks) and self.toks[self.t][0] == "op" else ""

    def expect_end(self) -> None:
        if self.t < len(self.toks):
            raise self.error(f"unexpected {self.toks[self.t][1]!r} in action")

    def pipeline(self, decl_ok: bool = False, two: bool = False, closer: str = "") -> tuple[Any, ...]:
        toks, t = self.toks, self.t
        kinds = [tok[0] if tok[0] != "op" else tok[1] for tok in toks[t:t + 4]]
        decl, op = [], ""
        if decl_ok and kinds[:1] == ["var"] and kinds[1:2] in (["="], [":="]):
            decl, op = [toks[t][1]], kinds[1]
        elif decl_ok and two and kinds[:3] == ["var", ",", "var"] and kinds[3:] in (["="], [":="]):
            decl, op = [toks[t][1], toks[t + 2][1]], kinds[3]
        self.t += 2 * len(decl)
        cmds = [self.command()]
        while self.peek() == "|":
            self.t += 1
            cmds.append(self.command())
        if not closer:
            self.expect_end()
        elif self.peek() != closer:
            raise self.error("unclosed left paren")
        else:
            self.t += 1
        return (decl, op == "=", cmds)

    def command(self) -> list[Any]:
        args = []
        while self.t < len(self.toks) and self.peek() not in ("|", ")"):
            args.append(self.operand())
        if not args:
            raise self.error("missing value for command")
        return args

    def operand(self) -> tuple[Any, ...]:
        kind, text, start, end = self.toks[self.t]
        self.t += 1
        node: tuple[Any, ...]
        if kind in ("field", "dot", "var"):
            node = ("var", text, []) if kind == "var" else ("field", None, [text[1:]] if text != "." else [])
        elif kind == "op" and text == "(":
            node = ("pipe", self.pipeline(closer=")"), [])
            end = self.toks[self.t - 1][3]
        elif kind == "ident" and text in ("true", "false", "nil"):
            node = ("lit", {"true": True, "false": False, "nil": None}[text])
        elif kind == "ident" and text in _FUNCS:
            node = ("fn", text)
        elif kind == "ident" and text not in _KEYWORDS:
            raise self.error(f'function "{text}" not defined', start)
        elif kind in ("str", "raw", "num"):
            node = ("lit", _literal(kind, text))
        else:
            raise self.error(f"unexpected {text!r} in operand", start)
        # .A.B, $x.A and (…).A: a field written right after a term continues its chain
        while self.t < len(self.toks) and self.toks[self.t][0] == "field" and self.toks[self.t][2] == end:
            if len(node) != 3:
                raise self.error(f"unexpected {self.toks[self.t][1]!r} after {text!r}")
            node[2].append(self.toks[self.t][1][1:])
            end = self.toks[self.t][3]
            self.t += 1
        return node + (self.src[start:end],) if len(node) == 3 else node


@functools.lru_cache(maxsize=32)
def _parse(src: str, table: bool) -> list[Any]:
    return _Parser(src, _lex(src, table)).block("", False)[0]


def _type(v: Any) -> str:
    """Go's name for the type of *v*, for messages."""
    return {type(None): "<nil>", bool: "bool", int: "int", float: "float64", str: "string",
            list: "[]interface {}", dict: "map[string]interface {}"}.get(type(v), type(v).__name__)


def _float(f: float) -> str:
    """Go's %v of a float64: the shortest digits, in exponent form below 1e-4 and from 1e+06."""
    if f != f:
        return "NaN"
    if f == 0 or f in (float("inf"), float("-inf")):
        return ("+Inf" if f > 0 else "-Inf") if f else "-0" if str(f)[0] == "-" else "0"
    mant, _, exp = repr(abs(f)).partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + int(exp or 0) - (len(whole + frac) - len(digits))  # digits before the point
    digits, sign, exp10 = digits.rstrip("0"), "-" if f < 0 else "", point - 1
    if exp10 < -4 or exp10 >= 6:  # strconv's 'g' with the shortest precision switches at 6
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    return sign + (digits + "0" * (point - len(digits)) if point >= len(digits) else f"{digits[:point]}.{digits[point:]}")


def _text(v: Any) -> str:
    """Go's fmt %v: ``[a b]`` lists, ``map[k:v]`` maps with sorted keys, ``<nil>`` for None."""
    if isinstance(v, str):
        return v
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, list):
        return "[" + " ".join(map(_text, v)) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{_text(k)}:{_text(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _verb(verb: str, a: Any, flags: str, width: str | None, prec: str | None) -> str:
    """One printf verb, Go's flags and width mapped onto Python's format mini-language."""
    if isinstance(a, float) and a.is_integer() and verb in "dboxXc":
        a = int(a)  # JSON has one number type: an integral float stands for a Go int
    left = "<" if "-" in flags else ""
    if isinstance(a, (int, float)) and not isinstance(a, bool) and verb in "dboxXceEfFgG" \
            and (verb in "eEfFgG" or isinstance(a, int)) and not (verb in "gG" and prec is None):
        spec = left + ("+" if "+" in flags else " " if " " in flags else "") + ("#" if "#" in flags else "")
        spec += ("0" if "0" in flags and not left else "") + (width or "")
        spec += f".{prec or 0}" if prec is not None and verb not in "dboxXc" else ""
        return format(float(a) if verb in "eEfFgG" else a, spec + verb)
    if verb in "vs" or verb == "t" and isinstance(a, bool) or verb in "gG" and _kind(a) == "number":  # %g: shortest
        body = _text(a) if prec is None or verb in "gG" else _text(a)[:int(prec or 0)]
    elif verb == "q":
        body = jsoncodec.dumps(a if isinstance(a, str) else _text(a), ensure_ascii=False)
    elif verb in "xX" and isinstance(a, str):
        body = a.encode().hex().upper() if verb == "X" else a.encode().hex()
    else:
        return f"%!{verb}({_type(a)}={_text(a)})"
    return format(body, f"{left or '>'}{width or ''}")


def _sprintf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the common verbs, with Go's ``%!d(MISSING)`` and ``%!(EXTRA …)``."""
    used = 0

    def one(m: re.Match[str]) -> str:
        nonlocal used
        if m.group(4) == "%":
            return "%"
        used += 1
        return _verb(m.group(4), args[used - 1], *m.group(1, 2, 3)) if used <= len(args) else f"%!{m.group(4)}(MISSING)"
    out = _VERB.sub(one, fmt)
    extra = ", ".join(f"{_type(a)}={_text(a)}" for a in args[used:])
    return out + (f"%!(EXTRA {extra})" if extra else "")


def _sprint(*args: Any) -> str:
    """Go's fmt.Sprint: a space between two operands when neither is a string."""
    return "".join((" " if i and not isinstance(a, str) and not isinstance(args[i - 1], str) else "") + _text(a)
                   for i, a in enumerate(args))


def _kind(v: Any) -> str:
    return "nil" if v is None else "bool" if isinstance(v, bool) else "number" \
        if isinstance(v, (int, float)) else "string" if isinstance(v, str) else "other"


def _eq(a: Any, *others: Any) -> bool:
    """Go's eq: *a* equals one of *others*; nil is unequal to any other value, never an error."""
    for b in others:
        ka, kb = _kind(a), _kind(b)
        if "nil" not in (ka, kb) and (ka != kb or ka == "other"):
            raise _fail(f"error calling eq: incompatible or non-comparable types {_type(a)} and {_type(b)}")
        if ka == kb and a == b:
            return True
    return False


def _cmp(a: Any, b: Any) -> int:
    """Go's order for lt/le/gt/ge: numbers with numbers, strings with strings."""
    if _kind(a) != _kind(b) or _kind(a) not in ("number", "string"):
        raise _fail(f"incompatible types for comparison: {_type(a)} and {_type(b)}")
    return (a > b) - (a < b)


def _index(v: Any, *keys: Any) -> Any:
    """Go's index: list positions (in range) and map keys (a missing key gives the zero value)."""
    for key in keys:
        if isinstance(v, dict) and isinstance(key, str):
            zero = {str: "", int: 0, float: 0.0, bool: False, list: [], dict: {}}
            v = v[key] if key in v else zero.get(type(next(iter(v.values()), "")))
        elif isinstance(v, (list, str)) and _kind(key) == "number" and isinstance(key, int):
            if not 0 <= key < len(v):
                raise _fail(f"error calling index: index out of range: {key}")
            v = v[key] if isinstance(v, list) else ord(v[key])  # Go indexes a string's bytes
        else:
            raise _fail(f"error calling index: can't index item of type {_type(v)} with {_type(key)}")
    return v


def _slice(v: Any, *idx: Any) -> Any:
    lo, hi = (list(idx) + [0, len(v)][len(idx):])[:2] if len(idx) <= 2 else (-1, -1)
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi <= len(v)):
        raise _fail(f"error calling slice: bad indexes {list(idx)} for length {len(v)}")
    return v[lo:hi]


#: name -> (callable, signature): a letter per argument (``s`` string, ``i`` int, ``l`` list,
#: ``c`` string/list/map, ``q`` string/list, ``a`` anything), a trailing ``*``: any number more.
#: and/or are short-circuit, evaluated in _Run.command.
_FUNCS: dict[str, tuple[Any, str]] = {
    "and": (None, "a*"), "or": (None, "a*"), "not": (lambda v: not v, "a"),
    "eq": (_eq, "aa*"), "ne": (lambda a, b: not _eq(a, b), "aa"),
    "lt": (lambda a, b: _cmp(a, b) < 0, "aa"), "le": (lambda a, b: _cmp(a, b) <= 0, "aa"),
    "gt": (lambda a, b: _cmp(a, b) > 0, "aa"), "ge": (lambda a, b: _cmp(a, b) >= 0, "aa"),
    "len": (len, "c"), "index": (_index, "a*"), "slice": (_slice, "q*"),
    "print": (_sprint, "*"), "printf": (_sprintf, "s*"), "println": (lambda *a: " ".join(map(_text, a)) + "\n", "*"),
    # podman's, containers/common pkg/report DefaultFuncs; json is Go's encoder minus its newline
    "json": (lambda v: jsoncodec.dumps(v, ensure_ascii=False), "a"),
    "join": (lambda items, sep: sep.join(map(_text, items)), "ls"),
    "lower": (str.lower, "s"), "upper": (str.upper, "s"),
    "title": (lambda s: re.sub(r"(?<!\w)\w", lambda m: m.group().upper(), s), "s"),  # strings.Title
    "split": (lambda s, sep: s.split(sep) if sep else list(s), "ss"),
    "truncate": (lambda s, n: s[:max(n, 0)], "si"),
    "pad": (lambda s, left, right: " " * left + s + " " * right if s else s, "sii"),
}
_ARG_TYPES = {"s": (str, "string"), "i": (int, "int"), "l": (list, "[]string"),
              "c": ((str, list, dict), "string, slice or map"), "q": ((str, list), "string or slice")}


def _call(name: str, args: list[Any]) -> Any:
    fn, sig = _FUNCS[name]
    fixed = sig.rstrip("*")
    if len(args) < len(fixed) or (not sig.endswith("*") and len(args) > len(fixed)):
        more = " or more" if sig.endswith("*") else ""
        raise _fail(f"wrong number of args for {name}: want {len(fixed)}{more} got {len(args)}")
    for arg, want in zip(args, fixed):
        if want in _ARG_TYPES and (not isinstance(arg, _ARG_TYPES[want][0]) or isinstance(arg, bool)):
            raise _fail(f"error calling {name}: wrong type for value; expected {_ARG_TYPES[want][1]}; got {_type(arg)}")
    return fn(*args)


class _Run:
    """One execution of a parsed template against one document."""

    def __init__(self, root: Any) -> None:
        self.vars: list[list[Any]] = [["$", root]]  # [name, value], innermost last
        self.out: list[str] = []

    def nodes(self, nodes: list[Any], dot: Any) -> None:
        for node in nodes:
            if node[0] == "text":
                self.out.append(node[1])
            elif node[0] == "action":
                value = self.pipe(node[1], dot)
                if not node[1][0]:  # a declaration prints nothing
                    self.out.append(_text(value))
            elif node[0] in ("break", "continue"):
                raise _Loop(node[0])
            else:
                self.control(node, dot)

    def control(self, node: tuple[Any, ...], dot: Any) -> None:
        kind, pipe, body, orelse = node
        mark = len(self.vars)  # the variables declared from here on end at {{end}}
        try:
            if kind != "range":
                value = self.pipe(pipe, dot)
                self.nodes(body if value else orelse, value if kind == "with" and value else dot)
                return
            value = self.pipe(pipe, dot, bind=False)
            if isinstance(value, (dict, list)) or value is None:
                items = sorted(value.items()) if isinstance(value, dict) else list(enumerate(value or ()))
            elif isinstance(value, int) and not isinstance(value, bool):
                items = [(i, i) for i in range(value)]
            else:
                raise _fail(f"range can't iterate over {_text(value)}")
            if not items:
                self.nodes(orelse, dot)
            for key, elem in items:
                self.bind(pipe[0], [elem] if len(pipe[0]) == 1 else [key, elem], pipe[1])
                try:
                    self.nodes(body, elem)
                except _Loop as loop:
                    if loop.args[0] == "break":
                        break
                finally:
                    del self.vars[mark:]
        finally:
            del self.vars[mark:]

    def bind(self, names: list[str], values: list[Any], assign: bool) -> None:
        for name, value in zip(names, values):
            if assign:
                self.var(name)[1] = value
            else:
                self.vars.append([name, value])

    def var(self, name: str) -> list[Any]:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry
        raise _fail(f"undefined variable: {name}")

    def pipe(self, pipe: tuple[Any, ...], dot: Any, bind: bool = True) -> Any:
        value = _NONE
        for cmd in pipe[2]:
            value = self.command(cmd, dot, value)
        if pipe[0] and bind:
            self.bind(pipe[0], [value], pipe[1])
        return value

    def command(self, cmd: list[Any], dot: Any, final: Any) -> Any:
        """One command; *final* is the value piped in from the previous one (its last argument)."""
        head, rest = cmd[0], cmd[1:]
        if head[0] != "fn":
            if rest or final is not _NONE:
                raise _fail(f"can't give argument to non-function {head[-1] if len(head) == 4 else head[1]!r}")
            return self.operand(head, dot)
        name = head[1]
        if name in ("and", "or"):  # Go 1.18+: stop at the deciding argument, which is the result
            thunks = [lambda a=a: self.operand(a, dot) for a in rest] + ([lambda: final] if final is not _NONE else [])
            if not thunks:
                raise _fail(f"wrong number of args for {name}: want 1 or more got 0")
            for thunk in thunks:
                if bool(value := thunk()) != (name == "and"):
                    break
            return value
        return _call(name, [self.operand(a, dot) for a in rest] + ([] if final is _NONE else [final]))

    def operand(self, node: tuple[Any, ...], dot: Any) -> Any:
        if node[0] in ("lit", "fn"):
            return node[1] if node[0] == "lit" else _call(node[1], [])
        value = dot if node[0] == "field" else self.var(node[1])[1] if node[0] == "var" else self.pipe(node[1], dot)
        for name in node[2]:
            if not isinstance(value, dict) or name not in value:
                in_type = "" if isinstance(value, dict) else f" in type {_type(value)}"
                raise _fail(f"at <{node[3]}>: can't evaluate field {name}{in_type}", FIELD_HINT)
            value = value[name]
        return value


def _execute(nodes: list[Any], doc: Any) -> str:
    run = _Run(doc)
    run.nodes(nodes, doc)
    return "".join(run.out)


def render_template(template: str, doc: Any) -> str:
    """*template* rendered against *doc* (a JSON-like tree), no newline added. Raises UsageError
    for a syntax error, an unknown field or function, or a function given the wrong arguments."""
    return _execute(_parse(template, False), doc)


def format_kind(fmt: str | None) -> str:
    """What a ``--format`` value asks for: ``"default"`` (none, empty or the bare word ``table``:
    the command's own output), ``"json"`` (``json`` or ``{{json}}``, as podman's report.IsJSON;
    ``{{json .}}`` is a template), ``"table"`` (``table `` + a template) or ``"template"``."""
    if fmt is None or fmt.strip() in ("", "table"):
        return "default"
    if _JSON_FORMAT.fullmatch(fmt):
        return "json"
    return "table" if fmt.startswith("table ") else "template"


def header_text(field: str, headers: dict[str, str] | None = None) -> str:
    """The column header for *field* (a dotted path): *headers*' word for it, else its last name
    split as podman's camelcase.Split does and upper-cased (``CreatedAt`` -> ``CREATED AT``)."""
    if headers and field in headers:
        return headers[field].upper()
    return " ".join(_CAMEL.findall(field.rsplit(".", 1)[-1])).upper()


def _first_field(node: Any) -> str:
    """The dotted path of the first field a parsed node reads (``.A.B``, ``$x.A``), or ``""``."""
    if isinstance(node, tuple) and len(node) == 4 and node[0] in ("field", "var") and node[2]:
        return ".".join(node[2])
    return next(filter(None, map(_first_field, node)), "") if isinstance(node, (tuple, list)) else ""


def render_rows(fmt: str, docs: Sequence[Any], headers: dict[str, str] | None = None,
                heading: bool = True) -> str:
    """*fmt* rendered once per document (parsed once), the rows joined by newlines, none at the end.

    ``table …`` as podman: spaces in the text break columns as tabs do; a header row first (not
    when *heading* is false: ``--noheading``), where each top-level action becomes header_text of
    the first field it reads; then all lines aligned like podman's tabwriter. Any other template:
    one rendering per document, no header."""
    table = fmt.startswith("table ")
    nodes = _parse(fmt[len("table "):] if table else fmt, table)
    rows = [_execute(nodes, doc) for doc in docs]
    if not table:
        return "\n".join(rows)
    if heading:
        rows.insert(0, "".join(n[1] if n[0] == "text" else header_text(_first_field(n), headers) for n in nodes))
    return tabwrite("\n".join(rows))
