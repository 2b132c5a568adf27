"""Docker's variable substitution and word rules for Dockerfile arguments.

``$NAME``, ``${NAME}``, ``${NAME:-word}`` / ``${NAME-word}`` (a default when unset — or empty,
with the colon), ``${NAME:+word}`` / ``${NAME+word}`` (an alternative when set), ``${NAME:?msg}``
(an error when unset or empty); single quotes keep everything literal, double quotes allow
expansion, the escape character (``\\`` or the ``# escape=`` one) makes the next character
literal. Quotes are removed, as docker's lexer does; ``expand_words`` also splits into words on
unquoted blanks (an unquoted expansion's blanks included).
"""

from __future__ import annotations

from collections.abc import Mapping

from rootlet.registry.errors import BuildError

_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME_CHARS = _NAME_START + "0123456789"


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, split: bool) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.split = split
        self.pos = 0
        self.words: list[str] = []
        self.current: list[str] = []
        self.started = False  # the current word exists (an empty "" counts)

    def _emit(self, s: str) -> None:
        self.current.append(s)
        self.started = True

    def _break(self) -> None:
        if self.started:
            self.words.append("".join(self.current))
        self.current = []
        self.started = False

    def _emit_unquoted(self, value: str) -> None:
        """An unquoted expansion: its blanks separate words when splitting."""
        if not self.split:
            self._emit(value)
            return
        parts = value.split()
        if value[:1].isspace():
            self._break()
        for n, part in enumerate(parts):
            if n:
                self._break()
            self._emit(part)
        if value[-1:].isspace():
            self._break()

    def run(self, stop: str = "") -> str:
        """Process up to ``stop`` (``}`` inside ``${…}``); returns the text (non-splitting use)."""
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if stop and ch == stop:
                break
            if ch == self.escape:
                self.pos += 1
                if self.pos < len(text):
                    self._emit(text[self.pos])
                    self.pos += 1
                continue
            if ch == "'" and not stop:
                self._single()
                continue
            if ch == '"' and not stop:
                self._double()
                continue
            if ch == "$":
                self._emit_unquoted(self._variable())
                continue
            if self.split and ch in " \t\n\r":
                self._break()
                self.pos += 1
                continue
            self._emit(ch)
            self.pos += 1
        return "".join(self.current)

    def _single(self) -> None:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise BuildError(f"unmatched ' in {self.text!r}", "close the quote")
        self._emit(self.text[self.pos + 1:end])
        self.pos = end + 1

    def _double(self) -> None:
        text = self.text
        self.pos += 1
        self.started = True
        while self.pos < len(text) and text[self.pos] != '"':
            ch = text[self.pos]
            if ch == self.escape and self.pos + 1 < len(text) and text[self.pos + 1] in ('"', "$", self.escape):
                self._emit(text[self.pos + 1])
                self.pos += 2
            elif ch == "$":
                self._emit(self._variable())
            else:
                self._emit(ch)
                self.pos += 1
        if self.pos >= len(text):
            raise BuildError(f'unmatched " in {self.text!r}', "close the quote")
        self.pos += 1

    def _name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _NAME_CHARS:
            self.pos += 1
        return self.text[start:self.pos]

    def _variable(self) -> str:
        text = self.text
        self.pos += 1  # the $
        if self.pos >= len(text):
            return "$"
        if text[self.pos] != "{":
            if text[self.pos] not in _NAME_START:
                return "$"
            return self.env.get(self._name(), "")
        self.pos += 1
        name = self._name()
        if not name:
            raise BuildError(f"bad substitution in {text!r}", "use ${NAME} with a name of letters, digits and _")
        if self.pos >= len(text):
            raise BuildError(f"missing '}}' in {text!r}", "close ${NAME} with }")
        if text[self.pos] == "}":
            self.pos += 1
            return self.env.get(name, "")
        colon = text[self.pos] == ":"
        if colon:
            self.pos += 1
        op = text[self.pos] if self.pos < len(text) else ""
        if op not in ("-", "+", "?"):
            raise BuildError(f"unsupported modifier in {text!r}", "use ${NAME:-default}, ${NAME:+alt} or ${NAME:?msg}")
        self.pos += 1
        inner = _Lexer(text, self.env, self.escape, False)
        inner.pos = self.pos
        word = inner.run(stop="}")
        if inner.pos >= len(text):
            raise BuildError(f"missing '}}' in {text!r}", "close ${NAME…} with }")
        self.pos = inner.pos + 1
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if op == "-":
            return value if is_set else word  # type: ignore[return-value]
        if op == "+":
            return word if is_set else ""
        if not is_set:
            raise BuildError(f"{name}: {word or 'is not set'}", f"give it with --build-arg {name}=…")
        return value  # type: ignore[return-value]


def expand(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``text`` with variables substituted and quotes removed, as one string."""
    return _Lexer(text, env, escape, False).run()


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` substituted and split into words (quoted blanks and ``""`` kept)."""
    lexer = _Lexer(text, env, escape, True)
    lexer.run()
    lexer._break()
    return lexer.words


def key_values(text: str, env: Mapping[str, str], what: str, escape: str = "\\") -> list[tuple[str, str]]:
    """ENV/LABEL/ARG pairs: ``K=V K2="v 2"`` (each value substituted), or the old ``K value with
    spaces`` form (one pair)."""
    first = text.split(None, 1)[0] if text.split() else ""
    if "=" not in first:
        key, _, value = text.strip().partition(" ")
        if not value.strip():
            raise BuildError(f"{what} {text!r}: needs KEY=VALUE (or KEY VALUE)")
        return [(key, expand(value.strip(), env, escape))]
    out = []
    for raw in split_raw(text, escape):
        word = expand(raw, env, escape)
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise BuildError(f"{what} {text!r}: {word!r} is not KEY=VALUE")
        out.append((key, value))
    return out


def split_raw(text: str, escape: str = "\\") -> list[str]:
    """``text`` split on blanks outside quotes, nothing substituted or removed (docker splits ENV
    and LABEL pairs so, then expands each: a value's own blanks never split it)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and quote != "'":
            current.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in " \t\n\r":
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if current:
        words.append("".join(current))
    return words
