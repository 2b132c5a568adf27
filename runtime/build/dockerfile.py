"""The Dockerfile (Containerfile) parser: directives, instructions, continuations, heredocs, flags.

The rules are docker's (the Dockerfile reference): ``# syntax=`` and ``# escape=`` directives only
at the very top; a line ending in the escape character continues on the next one, with comment
lines and empty lines inside a continuation dropped; ``--name=value`` flags before the arguments;
the JSON (exec) form where it is a valid array of strings; BuildKit's heredocs (``<<EOF``,
``<<-EOF`` strips leading tabs, a quoted name means no expansion) for RUN, COPY and ADD. Every
error names the file, the line and the instruction, as a ``BuildError``.
"""

from __future__ import annotations

import json
import re

from rootlet.registry.errors import BuildError
from rootlet.registry.record import Record

#: Every instruction docker knows.
KEYWORDS = ("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
            "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL")
#: The flags each instruction takes (others: none).
FLAGS = {
    "FROM": ("platform",),
    "RUN": ("mount", "network", "security"),
    "COPY": ("from", "chown", "chmod", "link", "parents"),
    "ADD": ("chown", "chmod", "link", "checksum", "keep-git-dir"),
    "HEALTHCHECK": ("interval", "timeout", "start-period", "start-interval", "retries"),
}
#: Instructions whose arguments may hold heredocs.
HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"(?:^|(?<=\s))<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")


class Heredoc(Record):
    """A heredoc: its ``name`` (the terminator), ``body`` (with the final newline) and whether
    variables in it are ``expand``ed (an unquoted name)."""

    name: str
    body: str
    expand: bool = True


class Instruction(Record):
    """One instruction: ``keyword`` (upper case), ``args`` (after the flags, continuations joined),
    ``line`` (where it starts), ``flags`` in order, ``heredocs``, ``json`` (the exec form's words,
    or None) and ``text`` (as written, flags included, for progress and errors)."""

    keyword: str
    args: str
    line: int
    flags: tuple[tuple[str, str], ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    json: tuple[str, ...] | None = None
    text: str = ""
    file: str = "Dockerfile"

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The last value of ``--name`` (``--name`` alone: "true"), or ``default``."""
        value = default
        for key, val in self.flags:
            if key == name:
                value = val
        return value

    def flag_values(self, name: str) -> list[str]:
        """Every value of a repeatable flag (``--mount``), in order."""
        return [val for key, val in self.flags if key == name]

    def where(self) -> str:
        """``FILE:LINE`` for messages."""
        return f"{self.file}:{self.line}"


class Dockerfile(Record):
    """A parsed file: its directives and instructions."""

    instructions: list[Instruction]
    syntax: str | None = None
    escape: str = "\\"
    file: str = "Dockerfile"


class Stage(Record):
    """One ``FROM`` and the instructions up to the next: ``base`` as written (not expanded yet),
    ``name`` (``AS name``, lower case) and ``index``."""

    index: int
    base: str
    name: str | None
    source: Instruction
    instructions: list[Instruction]


def parse(text: str, file: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile; ``BuildError`` on the first problem."""
    lines = text.splitlines()
    syntax, escape, start = _directives(lines, file)
    out: list[Instruction] = []
    i = start
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        first = i
        logical, i = _logical_line(lines, i, escape)
        inst, i = _instruction(logical, first + 1, lines, i, escape, file)
        out.append(inst)
    _check_order(out, file)
    return Dockerfile(instructions=out, syntax=syntax, escape=escape, file=file)


def parse_line(text: str, line: int = 0, file: str = "Dockerfile", escape: str = "\\") -> Instruction:
    """One instruction written on one line (an ONBUILD trigger)."""
    inst, _ = _instruction(text.strip(), line, [], 0, escape, file)
    return inst


def split_stages(df: Dockerfile) -> tuple[list[Instruction], list[Stage]]:
    """The ARGs before the first FROM, and the stages."""
    head: list[Instruction] = []
    stages: list[Stage] = []
    for inst in df.instructions:
        if inst.keyword == "FROM":
            words = inst.args.split()
            name = None
            if len(words) == 3 and words[1].upper() == "AS":
                name = words[2].lower()
                if not re.fullmatch(r"[a-z][a-z0-9_.-]*", name):
                    raise BuildError(f"{inst.where()}: invalid stage name {words[2]!r}",
                                     "a stage name starts with a letter: letters, digits, _ . -")
            elif len(words) != 1:
                raise BuildError(f"{inst.where()}: FROM takes IMAGE [AS NAME], not {inst.args!r}")
            stages.append(Stage(index=len(stages), base=words[0], name=name, source=inst, instructions=[]))
        elif stages:
            stages[-1].instructions.append(inst)
        else:
            head.append(inst)
    return head, stages


def _directives(lines: list[str], file: str) -> tuple[str | None, str, int]:
    syntax, escape = None, "\\"
    seen: set[str] = set()
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in seen:
            break  # a repeated directive is a comment, as docker reads it
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise BuildError(f"{file}:{i + 1}: invalid escape {value!r}", "use # escape=\\ or # escape=`")
            escape = value
        elif key == "syntax":
            syntax = value
        i += 1
    return syntax, escape, i


def _continues(line: str, escape: str) -> str | None:
    """The line without its continuation mark, or None when it does not continue."""
    body = line.rstrip(" \t")
    if body.endswith(escape) and not body.endswith(escape * 2):
        return body[:-1]
    return None


def _logical_line(lines: list[str], i: int, escape: str) -> tuple[str, int]:
    """The instruction starting at line ``i``, continuations joined; the next line's index."""
    parts: list[str] = []
    line = lines[i]
    i += 1
    while True:
        rest = _continues(line, escape)
        if rest is None:
            parts.append(line)
            return "".join(parts), i
        parts.append(rest)
        while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
            i += 1
        if i >= len(lines):
            return "".join(parts), i
        line = lines[i]
        i += 1


def _instruction(logical: str, line: int, lines: list[str], i: int, escape: str,
                 file: str) -> tuple[Instruction, int]:
    logical = logical.strip()
    word, _, rest = logical.partition(" ") if " " in logical else logical.partition("\t")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    keyword = word.upper()
    where = f"{file}:{line}"
    if keyword not in KEYWORDS:
        raise BuildError(f"{where}: unknown instruction: {word}", "see the Dockerfile reference for the instructions")
    rest = rest.strip()
    flags, args = _flags(keyword, rest, where)
    heredocs: list[Heredoc] = []
    if keyword in HEREDOC_KEYWORDS:
        for m in _HEREDOC.finditer(args):
            strip_tabs, quote, name = m.group(1) == "-", m.group(2), m.group(3)
            body: list[str] = []
            while True:
                if i >= len(lines):
                    raise BuildError(f"{where}: {keyword}: the heredoc <<{name} has no closing {name}",
                                     f"end it with a line that is just {name}")
                raw = lines[i]
                i += 1
                text = raw.lstrip("\t") if strip_tabs else raw
                if text == name:
                    break
                body.append(text + "\n")
            heredocs.append(Heredoc(name=name, body="".join(body), expand=not quote))
    if not args and keyword != "ONBUILD" or keyword == "ONBUILD" and not args.strip():
        raise BuildError(f"{where}: {keyword} needs arguments")
    words = _json_words(args)
    if keyword == "SHELL" and words is None:
        raise BuildError(f'{where}: SHELL needs the JSON form', 'e.g. SHELL ["/bin/bash", "-c"]')
    if keyword == "ONBUILD" and args.split()[0].upper() in ("ONBUILD", "FROM", "MAINTAINER"):
        raise BuildError(f"{where}: ONBUILD cannot trigger {args.split()[0].upper()}")
    return Instruction(keyword=keyword, args=args, line=line, flags=tuple(flags), heredocs=tuple(heredocs),
                       json=words, text=f"{keyword} {rest}".strip(), file=file), i


def _flags(keyword: str, rest: str, where: str) -> tuple[list[tuple[str, str]], str]:
    allowed = FLAGS.get(keyword, ())
    flags: list[tuple[str, str]] = []
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--":
            break
        name, eq, value = word[2:].partition("=")
        if name not in allowed:
            took = f"only {', '.join('--' + f for f in allowed)}" if allowed else "no flags"
            raise BuildError(f"{where}: {keyword} does not take --{name}", f"{keyword} takes {took}")
        flags.append((name, value if eq else "true"))
        rest = after.lstrip()
    return flags, rest.strip()


def _json_words(args: str) -> tuple[str, ...] | None:
    if not args.startswith("["):
        return None
    try:
        doc = json.loads(args)
    except ValueError:
        return None
    if isinstance(doc, list) and all(isinstance(w, str) for w in doc):
        return tuple(doc)
    return None


def _check_order(out: list[Instruction], file: str) -> None:
    if not any(i.keyword == "FROM" for i in out):
        raise BuildError(f"{file}: no FROM instruction", "a build starts with FROM IMAGE (or FROM scratch)")
    for inst in out:
        if inst.keyword == "FROM":
            break
        if inst.keyword != "ARG":
            raise BuildError(f"{inst.where()}: {inst.keyword} before the first FROM",
                             "only ARG may come before the first FROM")
