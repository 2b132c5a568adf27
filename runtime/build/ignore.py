"""``.containerignore`` / ``.dockerignore``: which context paths a build never sees.

docker's rules: one pattern per line, ``#`` comments, paths relative to the context root (a
leading ``/`` and ``./`` mean the same), ``*`` and ``?`` within one path component, ``[…]``
classes, ``**`` for any number of directories; a pattern that matches a directory excludes all
below it; ``!pattern`` takes an earlier exclusion back; the last matching line wins.
"""

from __future__ import annotations

import posixpath
import re

#: The files, in order of preference, that hold the rules for a context.
IGNORE_FILES = (".containerignore", ".dockerignore")


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if pattern.startswith("**", i):
            at_start = i == 0 or pattern[i - 1] == "/"
            if at_start and pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


class IgnoreRules:
    """The rules of one ignore file; ``excluded(path)`` for a context-relative path."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = tuple(lines)  # as given: what a worker process rebuilds the rules from
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = posixpath.normpath(line.lstrip("/")) if line.lstrip("/") else "."
            if line == ".":
                continue
            try:
                self.rules.append((negate, re.compile(_translate(line) + r"\Z")))
            except re.error:
                continue  # docker skips a pattern it cannot compile too
        self.has_exceptions = any(neg for neg, _ in self.rules)

    def excluded(self, path: str) -> bool:
        """Whether the context path ``path`` (``a/b/c``) is left out."""
        if not self.rules:
            return False
        path = posixpath.normpath(path.lstrip("/"))
        parts = path.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        result = False
        for negate, rx in self.rules:
            if any(rx.match(p) for p in prefixes):
                result = not negate
        return result

    def __bool__(self) -> bool:
        return bool(self.rules)


def read_rules(context: str, ignorefile: str | None) -> IgnoreRules:
    """The rules for a context: ``ignorefile`` when given, else its .containerignore or
    .dockerignore; none: nothing is excluded."""
    import os

    from rootlet.registry.errors import BuildError

    paths = [ignorefile] if ignorefile else [os.path.join(context, name) for name in IGNORE_FILES]
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return IgnoreRules(f.read().splitlines())
        except FileNotFoundError:
            if ignorefile:
                raise BuildError(f"the ignore file {ignorefile} does not exist") from None
        except OSError as exc:
            raise BuildError(f"cannot read {path}: {exc.strerror}") from None
    return IgnoreRules([])
