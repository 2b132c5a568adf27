"""The instructions that change only the image's config: ENV, LABEL, EXPOSE, VOLUME, USER,
WORKDIR (the path; the directory itself is made by the builder), STOPSIGNAL, ENTRYPOINT, CMD,
SHELL, HEALTHCHECK, ONBUILD, MAINTAINER.

Each takes the image config's ``config`` object (docker's names: ``Env``, ``Cmd``, …) and changes
it as docker's builder does; the values are already substituted where docker substitutes them
(``expand`` with the stage's ARGs and ENVs). ``created_by`` is the history line podman writes
(``/bin/sh -c #(nop) ENV K=V``).
"""

from __future__ import annotations

import json
import posixpath

from rootlet.registry.errors import BuildError, RootletError
from rootlet.runtime.build.dockerfile import Instruction
from rootlet.runtime.build.expand import expand, expand_words, key_values
from rootlet.runtime.linux import signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: Instructions handled here (no container, no layer).
CONFIG_KEYWORDS = ("ENV", "LABEL", "EXPOSE", "VOLUME", "USER", "WORKDIR", "STOPSIGNAL", "ENTRYPOINT", "CMD", "SHELL",
                   "HEALTHCHECK", "ONBUILD", "MAINTAINER")
DEFAULT_SHELL = ("/bin/sh", "-c")


def command_words(inst: Instruction, shell: tuple[str, ...]) -> list[str]:
    """CMD/ENTRYPOINT/RUN's argv: the JSON form as written, else the shell form through SHELL."""
    if inst.json is not None:
        return list(inst.json)
    return [*shell, inst.args]


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    """Set ``key`` in the config's Env, in place when it is there already (docker's order)."""
    env = list(config.get("Env") or [])
    for i, entry in enumerate(env):
        if entry.split("=", 1)[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    config["Env"] = env


def env_map(config: Mapping[str, Any]) -> dict[str, str]:
    """The config's Env as a mapping."""
    out: dict[str, str] = {}
    for entry in config.get("Env") or []:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def apply(inst: Instruction, config: dict[str, Any], scope: Mapping[str, str], shell: tuple[str, ...],
          escape: str) -> tuple[str, tuple[str, ...]]:
    """Apply config instruction ``inst`` to ``config``; returns (history line, the stage's SHELL
    afterwards). ``scope`` is what ``$VAR`` sees (ARGs overridden by ENVs)."""
    kw = inst.keyword
    what = f"{inst.where()}: {kw}"
    nop = "/bin/sh -c #(nop) "
    if kw == "ENV":
        pairs = key_values(inst.args, scope, what, escape)
        for key, value in pairs:
            set_env(config, key, value)
        return nop + "ENV " + " ".join(f"{k}={v}" for k, v in pairs), shell
    if kw == "LABEL":
        pairs = key_values(inst.args, scope, what, escape)
        labels = dict(config.get("Labels") or {})
        labels.update(pairs)
        config["Labels"] = labels
        return nop + "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), shell
    if kw == "MAINTAINER":
        return nop + "MAINTAINER " + inst.args, shell  # the builder sets "author"
    if kw == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        words = expand_words(inst.args, scope, escape)
        for word in words:
            ports[_port(word, what)] = {}
        config["ExposedPorts"] = ports
        return nop + "EXPOSE " + " ".join(words), shell
    if kw == "VOLUME":
        paths = list(inst.json) if inst.json is not None else expand_words(inst.args, scope, escape)
        volumes = dict(config.get("Volumes") or {})
        for path in paths:
            if not path:
                raise BuildError(f"{what}: an empty path", "VOLUME takes absolute paths")
            volumes[path] = {}
        config["Volumes"] = volumes
        return nop + "VOLUME " + json.dumps(paths), shell
    if kw == "USER":
        user = expand(inst.args, scope, escape).strip()
        if not user or " " in user:
            raise BuildError(f"{what}: needs one USER[:GROUP], not {inst.args!r}")
        config["User"] = user
        return nop + "USER " + user, shell
    if kw == "WORKDIR":
        path = expand(inst.args, scope, escape).strip()
        config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))
        return nop + "WORKDIR " + config["WorkingDir"], shell
    if kw == "STOPSIGNAL":
        sig = expand(inst.args, scope, escape).strip()
        config["StopSignal"] = _signal(sig, what)
        return nop + "STOPSIGNAL " + sig, shell
    if kw == "ENTRYPOINT":
        config["Entrypoint"] = command_words(inst, shell)
        # docker's rule: a new ENTRYPOINT drops the CMD the base image had.
        config.pop("Cmd", None)
        return nop + "ENTRYPOINT " + json.dumps(config["Entrypoint"]), shell
    if kw == "CMD":
        config["Cmd"] = command_words(inst, shell)
        return nop + "CMD " + json.dumps(config["Cmd"]), shell
    if kw == "SHELL":
        assert inst.json is not None  # the parser insists
        if not inst.json:
            raise BuildError(f"{what}: needs at least one word", 'e.g. SHELL ["/bin/bash", "-c"]')
        return nop + "SHELL " + json.dumps(list(inst.json)), tuple(inst.json)
    if kw == "HEALTHCHECK":
        config["Healthcheck"] = _healthcheck(inst, shell, what)
        return nop + "HEALTHCHECK " + inst.args, shell
    if kw == "ONBUILD":
        from rootlet.runtime.build.dockerfile import parse_line

        parse_line(inst.args, inst.line, inst.file, escape)  # refuse a bad trigger now, not in the child
        config["OnBuild"] = [*(config.get("OnBuild") or []), inst.args]
        return nop + "ONBUILD " + inst.args, shell
    raise BuildError(f"{what}: not a config instruction")  # the builder never sends one


def _port(word: str, what: str) -> str:
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    lo, _, hi = port.partition("-")
    if proto not in ("tcp", "udp", "sctp") or not lo.isdigit() or (hi and not hi.isdigit()):
        raise BuildError(f"{what}: invalid port {word!r}", "use PORT[/tcp|udp|sctp]")
    if not 0 < int(lo) < 65536:
        raise BuildError(f"{what}: port {lo} is out of range", "ports are 1 to 65535")
    return f"{port}/{proto}"


def _signal(sig: str, what: str) -> str:
    if sig.isdigit():
        return sig
    name = sig.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX") or name in signals.NUMBERS:
        return name
    raise BuildError(f"{what}: unknown signal {sig!r}", "use a name (SIGINT) or a number")


def _healthcheck(inst: Instruction, shell: tuple[str, ...], what: str) -> dict[str, Any]:
    from rootlet.runtime.container.health import parse_duration

    args = inst.args.strip()
    head, _, rest = args.partition(" ")
    if head.upper() == "NONE":
        if rest.strip() or inst.flags:
            raise BuildError(f"{what}: HEALTHCHECK NONE takes nothing else")
        return {"Test": ["NONE"]}
    if head.upper() != "CMD" or not rest.strip():
        raise BuildError(f"{what}: needs CMD COMMAND or NONE, not {args!r}")
    rest = rest.strip()
    words = None
    if rest.startswith("["):
        try:
            doc = json.loads(rest)
            words = doc if isinstance(doc, list) and all(isinstance(w, str) for w in doc) else None
        except ValueError:
            words = None
    out: dict[str, Any] = {"Test": ["CMD", *words] if words is not None else ["CMD-SHELL", rest]}
    keys = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
            "start-interval": "StartInterval"}
    for flag, key in keys.items():
        value = inst.flag(flag)
        if value is not None:
            try:
                out[key] = parse_duration(value, f"--{flag}")
            except RootletError as exc:  # a UsageError: said again with the file and line
                raise BuildError(f"{what}: {exc.message}", exc.hint) from None
    retries = inst.flag("retries")
    if retries is not None:
        if not retries.isdigit() or int(retries) < 1:
            raise BuildError(f"{what}: --retries={retries} is not a positive number")
        out["Retries"] = int(retries)
    return out
