"""``--change``/``-c`` instructions (``commit``, ``import``): Dockerfile lines that edit an image config.

podman and docker take the same set: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL,
USER, VOLUME, WORKDIR. CMD, ENTRYPOINT and VOLUME take the JSON (exec) form or the shell form
(CMD and ENTRYPOINT then run under ``/bin/sh -c``, as a Dockerfile's do). Anything else, or a
malformed value, is a ``UsageError`` naming the instruction.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from rootlet.registry.errors import UsageError

INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME",
                "WORKDIR")


def _json_or_shell(value: str, what: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, list) and all(isinstance(v, str) for v in doc):
            return doc
        # Docker's rule: what is not a valid JSON array of strings is the shell form.
    if not text:
        raise UsageError(f"{what} needs a command", f'e.g. --change \'{what} ["/bin/app"]\'')
    return ["/bin/sh", "-c", text]


def _pairs(value: str, what: str) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` pairs, or the old ``K V`` form (one pair, the rest is the value)."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise UsageError(f"{what} {value!r}: {exc}") from None
    if not words:
        raise UsageError(f"{what} needs KEY=VALUE")
    if "=" not in words[0]:
        key, _, rest = value.strip().partition(" ")
        if not rest.strip():
            raise UsageError(f"{what} {value!r}: needs KEY=VALUE or KEY VALUE")
        return [(key, rest.strip())]
    out = []
    for word in words:
        key, eq, val = word.partition("=")
        if not eq or not key:
            raise UsageError(f"{what} {value!r}: {word!r} is not KEY=VALUE")
        out.append((key, val))
    return out


def _set_env(config: dict[str, Any], key: str, value: str) -> None:
    env = [e for e in config.get("Env") or [] if e.split("=", 1)[0] != key]
    env.append(f"{key}={value}")
    config["Env"] = env


def apply_change(config: dict[str, Any], change: str) -> None:
    """Apply one instruction to the image config's ``config`` object (in place)."""
    word, _, value = change.strip().partition(" ")
    if not word:
        raise UsageError("an empty --change", "e.g. --change 'CMD [\"/bin/app\"]'")
    kind = word.upper()
    value = value.strip()
    if kind not in INSTRUCTIONS:
        raise UsageError(f"invalid change {change!r}: {word} is not one of {', '.join(INSTRUCTIONS)}",
                         "--change takes Dockerfile instructions that describe an image, e.g. 'ENV K=V'")
    if kind == "CMD":
        config["Cmd"] = _json_or_shell(value, kind)
    elif kind == "ENTRYPOINT":
        config["Entrypoint"] = _json_or_shell(value, kind)
    elif kind == "ENV":
        for key, val in _pairs(value, kind):
            _set_env(config, key, val)
    elif kind == "LABEL":
        labels = dict(config.get("Labels") or {})
        labels.update(_pairs(value, kind))
        config["Labels"] = labels
    elif kind == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for item in value.split():
            port, _, proto = item.partition("/")
            if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                raise UsageError(f"EXPOSE {item!r} is not PORT[/tcp|udp|sctp]")
            ports[f"{int(port)}/{proto or 'tcp'}"] = {}
        if not value.split():
            raise UsageError("EXPOSE needs a port")
        config["ExposedPorts"] = ports
    elif kind == "VOLUME":
        text = value
        paths = json.loads(text) if text.startswith("[") and _is_json_list(text) else text.split()
        if not paths or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise UsageError(f"VOLUME {value!r}: needs absolute paths")
        volumes = dict(config.get("Volumes") or {})
        volumes.update({p: {} for p in paths})
        config["Volumes"] = volumes
    elif kind == "ONBUILD":
        if not value:
            raise UsageError("ONBUILD needs an instruction")
        config["OnBuild"] = [*(config.get("OnBuild") or []), value]
    else:
        if not value:
            raise UsageError(f"{kind} needs a value")
        if kind == "WORKDIR" and not value.startswith("/"):
            value = "/" + value.lstrip("/") if not config.get("WorkingDir") else \
                config["WorkingDir"].rstrip("/") + "/" + value
        if kind == "STOPSIGNAL":
            _check_signal(value)
        key = {"STOPSIGNAL": "StopSignal", "USER": "User", "WORKDIR": "WorkingDir"}[kind]
        config[key] = value


def _check_signal(value: str) -> None:
    from rootlet.runtime.linux import signals

    name = value.upper()
    if value.isdigit() and 0 < int(value) < 65:
        return
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in signals.NUMBERS and not name.startswith("SIGRTM"):
        raise UsageError(f"STOPSIGNAL {value!r} is not a signal", "e.g. STOPSIGNAL SIGINT or STOPSIGNAL 2")


def _is_json_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def apply_changes(config: dict[str, Any], changes: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Apply every instruction in order; returns *config* (changed in place)."""
    for change in changes:
        apply_change(config, change)
    return config
