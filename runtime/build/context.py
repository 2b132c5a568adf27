"""The build context on the host: COPY/ADD sources found in it, kept inside it, and hashed.

A source is a path relative to the context directory, with docker's glob characters (``*``, ``?``,
``[…]``) allowed in any component. It must stay inside the context: ``..`` that climbs out, or a
symlink on the way (or the source itself) whose target is outside, is refused — the build never
reads a host file the user did not put in the context. Entries the ignore file excludes are not
there at all, as docker sees them. The hash of what a COPY would take (names, types, modes,
contents, link targets) is its cache key: touching a file changes nothing, editing one does.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat

from rootlet.registry.errors import BuildError
from rootlet.runtime.build.ignore import IgnoreRules

_GLOB = "*?["


def _outside(what: str, source: str) -> BuildError:
    return BuildError(f"{what}: {source} is outside the build context",
                      "COPY and ADD take files from inside the context directory; copy the file there first")


def resolve_sources(context: str, patterns: list[str], rules: IgnoreRules, what: str) -> list[str]:
    """The context-relative paths (``.`` for the context itself) the source ``patterns`` name, in
    order, each checked to be inside the context (symlinks resolved) and not excluded."""
    root = os.path.realpath(context)
    out: list[str] = []
    for pattern in patterns:
        clean = posixpath.normpath("/" + pattern).lstrip("/") or "."
        if posixpath.normpath(pattern).startswith("../") or posixpath.normpath(pattern) == "..":
            raise _outside(what, pattern)
        candidates = _glob(root, clean, rules) if any(c in clean for c in _GLOB) else [clean]
        if not candidates:
            raise BuildError(f"{what}: no source files were specified by {pattern!r}",
                             "the pattern matches nothing in the build context (or only excluded files)")
        for rel in candidates:
            full = os.path.join(root, rel) if rel != "." else root
            real = os.path.realpath(full)
            if real != root and not real.startswith(root + os.sep):
                raise _outside(what, pattern)
            if not os.path.lexists(real):
                raise BuildError(f"{what}: {pattern}: no such file or directory in the build context",
                                 "the path is relative to the context directory")
            rel_real = os.path.relpath(real, root)
            if rel_real != "." and rules.excluded(rel_real) and not _has_kept_below(rules):
                raise BuildError(f"{what}: {pattern} is excluded by the ignore file",
                                 "remove it from .containerignore/.dockerignore to copy it")
            out.append(rel_real)
    return out


def _has_kept_below(rules: IgnoreRules) -> bool:
    return rules.has_exceptions


def _glob(root: str, pattern: str, rules: IgnoreRules) -> list[str]:
    found = [""]
    for part in pattern.split("/"):
        nxt: list[str] = []
        for base in found:
            directory = os.path.join(root, base) if base else root
            if any(c in part for c in _GLOB):
                try:
                    names = sorted(os.listdir(directory))
                except (NotADirectoryError, FileNotFoundError, PermissionError):
                    continue
                nxt.extend(posixpath.join(base, n) if base else n for n in names if fnmatch.fnmatchcase(n, part))
            else:
                nxt.append(posixpath.join(base, part) if base else part)
        found = nxt
    return [f for f in found if os.path.lexists(os.path.join(root, f)) and not rules.excluded(f)]


def walk_kept(context: str, rel: str, rules: IgnoreRules):  # type: ignore[no-untyped-def]
    """(relative path, lstat) of ``rel`` and everything below it that the rules keep, sorted; no
    symlink is followed below ``rel``."""
    root = os.path.realpath(context)
    top = os.path.join(root, rel) if rel != "." else root
    st = os.stat(top)
    yield rel, st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [rel]
    while stack:
        cur = stack.pop()
        directory = os.path.join(root, cur) if cur != "." else root
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise BuildError(f"cannot read {directory}: {exc.strerror}") from None
        for entry in entries:
            child = entry.name if cur == "." else f"{cur}/{entry.name}"
            est = entry.stat(follow_symlinks=False)
            if rules.excluded(child) and not (stat.S_ISDIR(est.st_mode) and rules.has_exceptions):
                continue
            if not rules.excluded(child):
                yield child, est
            if stat.S_ISDIR(est.st_mode):
                stack.append(child)


def hash_sources(context: str, rels: list[str], rules: IgnoreRules) -> str:
    """A digest of everything the sources ``rels`` would copy."""
    h = hashlib.sha256()
    root = os.path.realpath(context)
    for rel in rels:
        h.update(b"\0src\0" + rel.encode())
        for path, st in walk_kept(context, rel, rules):
            h.update(f"\0{path}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
            full = os.path.join(root, path) if path != "." else root
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(full).encode())
    return h.hexdigest()
