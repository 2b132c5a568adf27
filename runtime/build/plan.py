"""What a build starts from, before any step runs: the Dockerfile's text, the names and pairs given
on the command line, the ARGs (``--build-arg``, the predefined platform and proxy ones, the ARGs
before the first FROM) and which stages the target needs.

Everything here is checked up front, so that a typo fails the build before it has made anything.
"""

from __future__ import annotations

import os

from rootlet.registry.errors import BuildError, RootletError
from rootlet.runtime.build.dockerfile import Instruction, Stage
from rootlet.runtime.build.expand import expand, split_raw

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from rootlet.runtime.build.options import BuildOptions

#: docker's predefined ARGs: given with --build-arg, they reach RUN without an ARG line.
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy")
#: The largest Dockerfile read (a real one is a few KiB).
MAX_DOCKERFILE = 4 << 20


def pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    """``K=V`` flags (``--label``, ``--annotation``) as a mapping."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise BuildError(f"invalid {flag} {item!r}", f"use {flag} KEY=VALUE")
        out[key] = value
    return out


def tags(names: tuple[str, ...]) -> list[str]:
    """``-t`` names as full references (``localhost/NAME:latest``, podman's rule)."""
    from rootlet.runtime.image.newimage import local_name

    out = []
    for tag in names:
        try:
            out.append(local_name(tag).tagged())
        except RootletError as exc:
            raise BuildError(f"invalid tag {tag!r}: {exc.message}", exc.hint) from None
    return out


def read_dockerfile(opts: BuildOptions, context: str) -> tuple[str, str]:
    """The Dockerfile's text and the name errors give it: ``-f -``'s text, ``-f FILE`` (relative to
    the context unless absolute), else the context's Containerfile, then Dockerfile."""
    if opts.dockerfile_text is not None:
        return opts.dockerfile_text, "Dockerfile"
    if opts.file:
        candidates = [opts.file if os.path.isabs(opts.file) else os.path.join(context, opts.file)]
    else:
        candidates = [os.path.join(context, n) for n in ("Containerfile", "Dockerfile")]
    for path in candidates:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_DOCKERFILE + 1)
        except (FileNotFoundError, IsADirectoryError):
            continue
        except OSError as exc:
            raise BuildError(f"cannot read {path}: {exc.strerror}") from None
        if len(data) > MAX_DOCKERFILE:
            raise BuildError(f"{path} is larger than {MAX_DOCKERFILE >> 20} MiB", "is it really a Dockerfile?")
        return data.decode("utf-8", errors="replace"), os.path.basename(path)
    if opts.file:
        raise BuildError(f"no Dockerfile {opts.file}", "the path is relative to the build context")
    raise BuildError(f"no Containerfile or Dockerfile in {opts.context}", "write one there, or give it with -f FILE")


def build_args(items: tuple[str, ...], env: Mapping[str, str]) -> dict[str, str]:
    """``--build-arg K=V`` and ``--build-arg K`` (then from ``env``, skipped when unset: docker's)."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise BuildError(f"invalid --build-arg {item!r}", "use --build-arg NAME=VALUE (or NAME)")
        if eq:
            out[key] = value
        elif key in env:
            out[key] = env[key]
    return out


def platform_args(platform: str | None) -> dict[str, str]:
    """The predefined TARGET* (``--platform``'s, default this machine's) and BUILD* (this machine's) ARGs."""
    from rootlet.registry.manifest import Platform

    here = Platform.host()
    target = Platform.parse(platform) if platform else here
    out = {}
    for prefix, p in (("TARGET", target), ("BUILD", here)):
        text = f"{p.os}/{p.architecture}" + (f"/{p.variant}" if p.variant else "")
        out.update({f"{prefix}PLATFORM": text, f"{prefix}OS": p.os, f"{prefix}ARCH": p.architecture,
                    f"{prefix}VARIANT": p.variant or ""})
    return out


def arg_pairs(inst: Instruction, scope: Mapping[str, str], escape: str) -> list[tuple[str, str | None]]:
    """An ARG line's names and defaults (None: no default), defaults expanded with ``scope``."""
    out: list[tuple[str, str | None]] = []
    for raw in split_raw(inst.args, escape):
        key, eq, value = raw.partition("=")
        if not key or not all(c.isalnum() or c == "_" for c in key):
            raise BuildError(f"{inst.where()}: ARG {raw!r}: invalid name", "ARG NAME[=DEFAULT]")
        out.append((key, expand(value, scope, escape) if eq else None))
    return out


def head_scope(head: list[Instruction], given: Mapping[str, str], used: set[str], platform: str | None,
               escape: str) -> dict[str, str]:
    """What FROM lines see: the platform ARGs and the ARGs before the first FROM (``given`` values
    win; the names taken are added to ``used``)."""
    scope = platform_args(platform)
    for inst in head:
        for key, default in arg_pairs(inst, scope, escape):
            if key in given:
                scope[key] = given[key]
                used.add(key)
            elif default is not None:
                scope[key] = default
    return scope


def target_index(stages: list[Stage], target: str | None) -> int:
    """The index of the ``--target`` stage (default the last)."""
    if not target:
        return len(stages) - 1
    for stage in stages:
        if stage.name == target.lower():
            return stage.index
    raise BuildError(f"target stage '{target}' not found", "name a stage of the Dockerfile (FROM IMAGE AS NAME)")


def _mount_sources(inst: Instruction) -> list[str]:
    out = []
    for spec in inst.flag_values("mount"):
        for item in spec.split(","):
            key, _, value = item.partition("=")
            if key.strip().lower() == "from":
                out.append(value)
    return out


def needed_stages(stages: list[Stage], last: int) -> set[int]:
    """The stages the target needs (itself, its bases, its ``--from`` sources, transitively), as
    BuildKit builds them; a reference that needs an ARG to be read makes every earlier stage needed."""
    names = {s.name: s.index for s in stages if s.name}

    def refs(stage: Stage) -> set[int] | None:
        out: set[int] = set()
        words = [stage.base] + [v for inst in stage.instructions
                                for v in inst.flag_values("from") + _mount_sources(inst)]
        for word in words:
            if "$" in word:
                return None
            ref = names.get(word.lower(), int(word) if word.isdigit() else None)
            if ref is not None and ref < stage.index:
                out.add(ref)
        return out

    needed: set[int] = set()
    todo = [last]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        got = refs(stages[index])
        if got is None:
            return set(range(last + 1))
        todo.extend(got)
    return needed
