"""RUN: a command in a container of the step's image, its changes the step's layer.

The container is an ordinary engine container (the same user namespace, overlay, seccomp and
capabilities as ``rootlet run``), made from the previous step's image with the stage's SHELL,
user, working directory, ENVs and ARGs (ARGs only in the command's environment, never in the
image), and removed when the step ends, whatever happens. ``RUN --mount``:

- ``type=cache,target=DIR[,id=ID][,sharing=shared|private|locked][,ro]`` a directory kept in the
  store (``build-cache-mounts/``) across builds, never in the image (its mount point is, empty,
  as docker leaves it); steps run one at a time, so every sharing mode holds;
- ``type=secret,id=ID[,target=PATH][,required]`` the ``--secret`` file, read-only at
  ``/run/secrets/ID``, never in the image or its history;
- ``type=bind,source=PATH[,target=DIR][,from=STAGE|IMAGE]`` a context path (checked to be inside
  it) or, with ``from``, a path of a stage or image (copied out of it for the step), read-only;
- ``type=tmpfs,target=DIR[,size=N]``.

``rw`` binds and ``type=ssh`` are refused with a clear error.
"""

from __future__ import annotations

import hashlib
import os
import posixpath

from rootlet.registry.errors import BuildError
from rootlet.registry.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from rootlet.runtime.build.dockerfile import Heredoc, Instruction, Stage
    from rootlet.runtime.build.state import StageState


class RunMounts(Record):
    """``RUN --mount``s as the engine's ``--mount`` specs, and the targets that are placeholders
    of the step's own mounts (files the runtime created to mount on: not in the layer)."""

    mounts: tuple[str, ...] = ()
    placeholders: tuple[str, ...] = ()


def _fields(spec: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in spec.split(","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        out[key.strip().lower()] = value if eq else "true"
    if "type" not in out:
        out["type"] = "bind"
    for alias, key in (("dst", "target"), ("destination", "target"), ("src", "source"), ("readonly", "ro")):
        if alias in out:
            out[key] = out.pop(alias)
    return out


def parse_mounts(specs: list[str], *, what: str, context: str, cache_root: str, secrets: Mapping[str, str],
                 workdir: str, from_files: Callable[[str, str], str]) -> RunMounts:
    """The step's ``--mount`` flags; ``secrets`` maps ids to files, ``cache_root`` holds cache
    dirs, ``from_files(stage_or_image, path)`` gives a host copy of a path of a stage or image."""
    from rootlet.runtime.build.context import resolve_sources
    from rootlet.runtime.build.ignore import IgnoreRules

    mounts: list[str] = []
    placeholders: list[str] = []
    for spec in specs:
        f = _fields(spec, what)
        kind = f.pop("type")
        from_ref = f.pop("from", None)
        if from_ref is not None and kind != "bind":
            raise BuildError(f"{what}: from= is supported for bind mounts only",
                             "a cache mount starts empty; COPY --from the files instead")
        target = f.pop("target", "")
        if target and not target.startswith("/"):
            target = posixpath.join(workdir or "/", target)
        ro = f.pop("ro", "false").lower() in ("true", "1")
        if kind == "cache":
            if not target:
                raise BuildError(f"{what}: a cache mount needs target=DIR")
            cache_id = f.pop("id", target)
            sharing = f.pop("sharing", "shared")
            if sharing not in ("shared", "private", "locked"):
                raise BuildError(f"{what}: sharing={sharing}: use shared, private or locked")
            for key in ("uid", "gid"):
                if f.pop(key, "0") != "0":
                    raise BuildError(f"{what}: a cache mount's {key}= other than 0 is not supported yet",
                                     "chown the directory in the RUN command instead")
            mode = f.pop("mode", None)
            path = os.path.join(cache_root, hashlib.sha256(cache_id.encode()).hexdigest()[:32])
            os.makedirs(path, 0o755, exist_ok=True)
            if mode is not None:
                try:
                    os.chmod(path, int(mode, 8))
                except ValueError:
                    raise BuildError(f"{what}: mode={mode} is not an octal mode") from None
            mounts.append(f"type=bind,source={path},target={target}" + (",ro" if ro else ""))
        elif kind == "secret":
            sid = f.pop("id", "") or (posixpath.basename(target) if target else "")
            required = f.pop("required", "false").lower() in ("true", "1")
            for key in ("mode", "uid", "gid"):
                f.pop(key, None)  # a read-only bind of the user's file: its mode and owner are the file's
            if not sid:
                raise BuildError(f"{what}: a secret mount needs id=ID")
            target = target or f"/run/secrets/{sid}"
            source = secrets.get(sid)
            if source is None:
                if required:
                    raise BuildError(f"{what}: secret {sid!r} is required and was not given",
                                     f"pass --secret id={sid},src=FILE")
                continue  # docker's rule: a missing optional secret is simply not mounted
            mounts.append(f"type=bind,source={source},target={target},ro")
            placeholders.append(target.lstrip("/"))
        elif kind == "bind":
            source = f.pop("source", "/" if from_ref else ".")
            if from_ref is not None:
                full = from_files(from_ref, source)
            else:
                rel = resolve_sources(context, [source], IgnoreRules([]), what)[0]
                full = os.path.join(os.path.realpath(context), rel) if rel != "." else os.path.realpath(context)
            target = target or "/" + source.lstrip("/")
            rw = f.pop("rw", "false").lower() in ("true", "1") or f.pop("readwrite", "false").lower() in ("true", "1")
            if rw:
                raise BuildError(f"{what}: a read-write bind mount is not supported by rootlet build yet",
                                 "drop rw: the context is mounted read-only")
            mounts.append(f"type=bind,source={full},target={target},ro")
            if not os.path.isdir(full):
                placeholders.append(target.lstrip("/"))
        elif kind == "tmpfs":
            size = f.pop("size", None)
            if not target:
                raise BuildError(f"{what}: a tmpfs mount needs target=DIR")
            mounts.append(f"type=tmpfs,target={target}" + (f",tmpfs-size={size}" if size else ""))
        elif kind == "ssh":
            raise BuildError(f"{what}: --mount=type=ssh is not supported by rootlet build",
                             "use a secret mount for the key instead")
        else:
            raise BuildError(f"{what}: unknown mount type {kind!r}", "use cache, secret, bind or tmpfs")
        if f:
            raise BuildError(f"{what}: unsupported --mount option(s) {', '.join(sorted(f))} in {spec!r}")
    return RunMounts(mounts=tuple(mounts), placeholders=tuple(placeholders))


def parse_secrets(specs: tuple[str, ...], env: Mapping[str, str], tmp: str) -> tuple[dict[str, str], list[str]]:
    """``--secret id=ID,src=FILE|env=VAR``: ids → files; an env secret is written to a 0600 file
    in ``tmp`` (returned second, for the builder to remove)."""
    out: dict[str, str] = {}
    made: list[str] = []
    for spec in specs:
        f = _fields(spec, "--secret")
        f.pop("type", None)
        sid = f.pop("id", "")
        src = f.pop("source", None) or f.pop("src", None)
        var = f.pop("env", None)
        if not sid or (src is None) == (var is None) or f:
            raise BuildError(f"invalid --secret {spec!r}", "use id=ID,src=FILE or id=ID,env=VARIABLE")
        if var is not None:
            if var not in env:
                raise BuildError(f"--secret {spec!r}: the variable {var} is not set")
            fd, path = _private_file(tmp)
            with os.fdopen(fd, "w") as fh:
                fh.write(env[var])
            made.append(path)
            out[sid] = path
        else:
            path = os.path.abspath(os.path.expanduser(src or ""))
            if not os.path.isfile(path):
                raise BuildError(f"--secret {spec!r}: {path} is not a file")
            out[sid] = path
    return out, made


def _private_file(tmp: str) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="build-secret-", dir=tmp)


def shell_argv(args: str, heredocs: tuple[Heredoc, ...], json_words: tuple[str, ...] | None,
               shell: tuple[str, ...]) -> tuple[list[str], str]:
    """RUN's argv and its history line. The shell form goes to SHELL as one word (the shell
    expands its variables from the environment). A heredoc (BuildKit's): ``RUN <<EOF`` alone runs
    the body as the script; otherwise the command line and its heredoc bodies together go to the
    shell, which feeds each body to the command."""
    if json_words is not None:
        return list(json_words), " ".join(json_words)
    if heredocs:
        first = heredocs[0]
        alone = args.strip().lstrip("<").lstrip("-").strip("'\"") == first.name
        text = first.body if alone and len(heredocs) == 1 else \
            args + "\n" + "".join(h.body + h.name + "\n" for h in heredocs)
        return [*shell, text], f"{' '.join(shell)} {text}"
    return [*shell, args], f"{' '.join(shell)} {args}"


class RunStep:
    """RUN as the builder drives it (mixed into the builder, which provides the store, the cache,
    containers and ``_stage_files``)."""

    def _run(self, state: StageState, inst: Instruction, stages: list[Stage]) -> None:
        import json

        from rootlet.runtime.build import config as configs
        from rootlet.runtime.build.plan import PROXY_ARGS
        from rootlet.runtime.container.commit import MOUNT_PLACEHOLDERS, container_layer
        from rootlet.runtime.lifecycle.foreground import run_foreground

        if inst.flag("security") not in (None, "sandbox"):
            raise BuildError(f"{inst.where()}: RUN --security={inst.flag('security')} is not supported",
                             "rootless builds run every step sandboxed")
        network = {None: self.opts.network, "default": self.opts.network, "none": "none",
                   "host": "host"}.get(inst.flag("network"), "?")
        if network == "?":
            raise BuildError(f"{inst.where()}: RUN --network={inst.flag('network')}: use default, none or host")
        argv, created_by = shell_argv(inst.args, inst.heredocs, inst.json, state.shell)
        key = self._key(state, inst, json.dumps(inst.flag_values("mount")))
        if self._cached(state, key):
            return
        if state.image_id is None or not state.layers:
            raise BuildError(f"{inst.where()}: RUN in an empty image (FROM scratch): there is no command to run",
                             "COPY a static binary in first, or start FROM an image with a shell")
        cfg = state.config
        mounts = parse_mounts(inst.flag_values("mount"), what=f"{inst.where()}: RUN", context=self.context,
                              cache_root=os.path.join(self.store.root, "build-cache-mounts"),
                              secrets=self.secrets, workdir=cfg.get("WorkingDir") or "/",
                              from_files=lambda ref, path: self._stage_files(state, stages, ref, path, inst))
        args = dict(state.args)
        for name in PROXY_ARGS:  # predefined: in RUN's environment without an ARG, never in the cache key
            if name in self.build_args:
                args.setdefault(name, self.build_args[name])
                self.used_args.add(name)
        env = [f"{k}={v}" for k, v in sorted(args.items()) if k not in configs.env_map(cfg)]
        cid = self._container(state.image_id, command=tuple(argv), env=tuple(env), mounts=mounts.mounts,
                              user=cfg.get("User") or None, workdir=cfg.get("WorkingDir") or None,
                              network=network)
        streams = ("stderr",) if self.opts.quiet else ("stdout", "stderr")
        code = run_foreground(self.store, cid, interactive=False, sig_proxy=True, keep_log=False, streams=streams)
        if code != 0:
            raise BuildError(f'building at STEP "{inst.text}": while running runtime: exit status {code}',
                             "the step's command failed; its output is above", exit_code=code)
        layer = container_layer(self.store, cid, state.layers, self.timestamp,
                                MOUNT_PLACEHOLDERS + mounts.placeholders)
        self._drop(cid)
        self._commit(state, key, created_by, layer)
