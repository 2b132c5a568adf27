"""The builder: a Dockerfile's stages, step by step, each step an image (the cache), the last one
named.

Every instruction but FROM and ARG makes an image on top of the previous one: config
instructions a new config (no layer), RUN, COPY, ADD and WORKDIR a layer of their container's
changes (``runtime/container/commit.py``'s layer writer). Those images are *intermediate* (listed
by ``images -a`` only) and are the cache: ``build-cache/`` in the store maps the digest of (the
previous image, the instruction as written, the ARGs in scope, what a COPY would copy) to the
image it made, so a rebuild with nothing changed makes nothing and returns the same image id
(podman's ``--layers``, its default). A step's container is always removed, and a failed build
names nothing; its completed steps stay cached, as podman's do.

ARGs follow docker: those before the first FROM are for FROM lines (and are inherited by an
``ARG NAME`` without a value in a stage); ``--build-arg`` overrides a default; ARGs are in RUN's
environment but never in the image; ENV wins over an ARG of the same name. The platform ARGs
(``TARGETPLATFORM``, ``TARGETOS``, ``TARGETARCH``, ``TARGETVARIANT``, ``BUILDPLATFORM``, …) are
predefined. A base image's ONBUILD triggers run right after the FROM that names it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time

from rootlet.registry.errors import BuildError, ImageNotFound, RootletError
from rootlet.runtime.build import config as configs
from rootlet.runtime.build import plan
from rootlet.runtime.build.addfiles import FileSteps
from rootlet.runtime.build.dockerfile import Instruction, Stage, parse, parse_line, split_stages
from rootlet.runtime.build.expand import expand
from rootlet.runtime.build.runstep import RunStep
from rootlet.runtime.build.state import BuildReport, StageState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from rootlet.registry.store import ImageRecord, ImageStore
    from rootlet.runtime.build.ignore import IgnoreRules
    from rootlet.runtime.build.options import BuildOptions
    from rootlet.runtime.engine import Engine

class _Builder(FileSteps, RunStep):
    """One build: its options, its store, what it made and must clean up."""

    def __init__(self, engine: Engine, opts: BuildOptions, notify: Callable[[str], None]) -> None:
        self.engine = engine
        self.store: ImageStore = engine.images_store
        self.opts = opts
        self.say = (lambda _line: None) if opts.quiet else notify
        self.warnings: list[str] = []
        self.context = os.path.realpath(opts.context)
        self.cache_dir = os.path.join(self.store.root, "build-cache")
        self.timestamp = opts.timestamp
        if self.timestamp is None and engine.env.get("SOURCE_DATE_EPOCH", "").strip().isdigit():
            self.timestamp = int(engine.env["SOURCE_DATE_EPOCH"].strip())
        self.build_args = plan.build_args(opts.build_args, engine.env)
        self.used_args: set[str] = set()
        self.finished: dict[int, StageState] = {}
        self.secrets: dict[str, str] = {}
        self.temp_files: list[str] = []
        self.trees: list[str] = []  # temporary directories holding files of other owners (the user namespace's)
        self.containers: list[str] = []
        self.step = 0
        self.steps = 0
        self.escape = "\\"
        self.file = "Dockerfile"
        self.stage_prefix = ""

    # --- the whole build ------------------------------------------------------------------------

    def run(self) -> BuildReport:
        from rootlet.runtime.build.ignore import read_rules
        from rootlet.runtime.build.runstep import parse_secrets

        if not os.path.isdir(self.context):
            raise BuildError(f"the build context {self.opts.context} is not a directory",
                             "give the directory that holds the files COPY takes")
        if self.opts.format not in ("oci", "docker"):
            raise BuildError(f"unknown image format {self.opts.format!r}", "use --format oci or --format docker")
        tags = plan.tags(self.opts.tags)
        self.annotations = plan.pairs(self.opts.annotations, "--annotation")
        labels = plan.pairs(self.opts.labels, "--label")
        if self.annotations and self.opts.format == "docker":
            raise BuildError("--annotation needs the OCI format: Docker's manifests have no annotations",
                             "drop --format docker")
        text, self.file = plan.read_dockerfile(self.opts, self.context)
        df = parse(text, self.file)
        self.escape = df.escape
        head, stages = split_stages(df)
        self.rules: IgnoreRules = read_rules(self.context, self.opts.ignorefile)
        head_scope = plan.head_scope(head, self.build_args, self.used_args, self.opts.platform, self.escape)
        last = plan.target_index(stages, self.opts.target)
        wanted = plan.needed_stages(stages, last)
        self.steps = 0
        self.store.ensure()
        self.secrets, made = parse_secrets(self.opts.secrets, self.engine.env, self.store.tmp)
        self.temp_files.extend(made)
        try:
            final: StageState | None = None
            for stage in stages[:last + 1]:
                if stage.index not in wanted:
                    continue
                self.stage_prefix = f"[{len([i for i in wanted if i <= stage.index])}/{len(wanted)}] " \
                    if len(wanted) > 1 else ""
                self.step = 0
                self.steps = 1 + len(stage.instructions)
                final = self._stage(stage, stages, head_scope)
                self.finished[stage.index] = final
            assert final is not None
            image_id = self._finish(final, tags, labels)
        finally:
            self._cleanup()
        unused = sorted(set(self.build_args) - self.used_args)
        if unused:
            self.warnings.append(f"one or more build args were not consumed: {unused}")
        return BuildReport(image_id=image_id, tags=tuple(tags), warnings=tuple(self.warnings))

    def _cleanup(self) -> None:
        import contextlib

        from rootlet.runtime.lifecycle.stop import remove_container

        for cid in self.containers:
            with contextlib.suppress(RootletError, OSError):
                remove_container(self.store, cid, force=True, volumes=True)
        self.containers.clear()
        for path in self.temp_files:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self.trees:
            import shutil

            from rootlet.runtime.oci.idmap import plan_userns
            from rootlet.runtime.oci.userns import UsernsWorker

            # Their files may belong to other ids of the user namespace: removed from inside it.
            with contextlib.suppress(RootletError, OSError), UsernsWorker(plan_userns()) as worker:
                for tree in self.trees:
                    worker.call(shutil.rmtree, tree, True)
            self.trees.clear()

    # --- one stage ------------------------------------------------------------------------------

    def _progress(self, inst_text: str) -> None:
        self.step += 1
        self.say(f"{self.stage_prefix}STEP {self.step}/{self.steps}: {inst_text}")

    def _stage(self, stage: Stage, stages: list[Stage], head_scope: dict[str, str]) -> StageState:
        base = expand(stage.base, head_scope, self.escape).strip()
        self._progress(stage.source.text)
        state = self._from(stage, base, stages)
        triggers = list(state.config.get("OnBuild") or [])
        if triggers:
            state.config.pop("OnBuild", None)  # consumed here: the child's own image has none
            for n, text in enumerate(triggers):
                inst = parse_line(text, stage.source.line, self.file, self.escape)
                self.steps += 1
                self._progress(f"ONBUILD {text}")
                self._instruction(state, inst, head_scope, stages, onbuild=n)
        for inst in stage.instructions:
            self._progress(inst.text)
            self._instruction(state, inst, head_scope, stages)
        return state

    def _from(self, stage: Stage, base: str, stages: list[Stage]) -> StageState:
        if not base:
            raise BuildError(f"{stage.source.where()}: FROM {stage.base}: the image name is empty",
                             "pass the ARG it uses with --build-arg")
        earlier = self._stage_ref(base, stage.index, stages)
        if earlier is not None:
            prev = self.finished[earlier]
            state = StageState(stage, copy.deepcopy(prev.doc), list(prev.layers), prev.image_id, prev.base_name)
            state.shell = prev.shell
            return state
        if base == "scratch":
            from rootlet.registry.manifest import Platform

            p = Platform.parse(self.opts.platform) if self.opts.platform else Platform.host()
            doc: dict[str, Any] = {"architecture": p.architecture, "os": p.os, "config": {},
                                   "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            if p.variant:
                doc["variant"] = p.variant
            return StageState(stage, doc, [], None, "scratch")
        platform = stage.source.flag("platform")
        rec = self._image(base, f"{stage.source.where()}: FROM",
                          expand(platform, plan.platform_args(self.opts.platform), self.escape) if platform else None)
        doc = json.loads(self.store.read_blob(rec.config_digest))
        return StageState(stage, doc, list(rec.layers), rec.id, base)

    def _stage_ref(self, word: str, before: int, stages: list[Stage]) -> int | None:
        for s in stages[:before]:
            if s.name == word.lower():
                return s.index
        if word.isdigit():
            if int(word) >= before:
                raise BuildError(f"stage {word} is not before this one", "refer to an earlier stage")
            return int(word)
        return None

    def _image(self, name: str, what: str, platform: str | None = None) -> ImageRecord:
        """A base or ``--from`` image (for ``platform``, default ``--platform``'s), pulled as
        ``--pull`` says."""
        from rootlet.registry.manifest import Platform
        from rootlet.runtime.image.options import PullOptions

        platform = platform or self.opts.platform
        policy = self.opts.pull
        local = None
        if policy != "always":
            try:
                local = self.store.resolve(name)
            except ImageNotFound:
                local = None
            except RootletError as exc:
                raise BuildError(f"{what} {name}: {exc.message}", exc.hint) from None
        if local is not None and platform and not Platform.parse(platform).matches(Platform.parse(local.platform)):
            local = None
        if local is not None and policy in ("missing", "never"):
            return local
        if policy == "never":
            raise BuildError(f"{what} {name}: image not known", "pull it first, or drop --pull=never")
        try:
            return self.engine.pull_record(PullOptions(reference=name, platform=platform,
                                                       tls_verify=self.opts.tls_verify))
        except RootletError as exc:
            if policy == "newer" and local is not None:
                return local
            raise BuildError(f"{what} {name}: {exc.message}", exc.hint) from None

    # --- one instruction ------------------------------------------------------------------------

    def _instruction(self, state: StageState, inst: Instruction, head_scope: dict[str, str], stages: list[Stage],
                     onbuild: int | None = None) -> None:
        kw = inst.keyword
        try:
            if kw == "ARG":
                for key, default in plan.arg_pairs(inst, state.scope(), self.escape):
                    if key in self.build_args:
                        state.args[key] = self.build_args[key]
                        self.used_args.add(key)
                    elif default is not None:
                        state.args[key] = default
                    elif key in head_scope:
                        state.args[key] = head_scope[key]
                return
            if kw == "RUN":
                self._run(state, inst, stages)
            elif kw in ("COPY", "ADD"):
                self._copy(state, inst, stages)
            elif kw == "WORKDIR":
                self._workdir(state, inst)
            else:
                self._config(state, inst)
        except BuildError:
            raise
        except RootletError as exc:
            raise BuildError(f"{inst.where()}: {kw}: {exc.message}", exc.hint, exc.exit_code) from None

    def _key(self, state: StageState, inst: Instruction, *extra: str) -> str:
        doc = [state.image_id or "scratch", inst.keyword, inst.text, [h.body for h in inst.heredocs],
               sorted(state.args.items()), list(state.shell), self.timestamp, self.opts.format, *extra]
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()

    def _cached(self, state: StageState, key: str) -> bool:
        """Take the image the cache has for ``key`` as the state's, when there is one."""
        if not self.opts.layers or self.opts.no_cache:
            return False
        try:
            with open(os.path.join(self.cache_dir, key)) as f:
                image_id = f.read().strip()
        except OSError:
            return False
        rec = self.store.load().get(image_id)
        if rec is None:
            return False
        try:
            doc = json.loads(self.store.read_blob(rec.config_digest))
        except (OSError, RootletError, ValueError):
            return False
        state.doc, state.layers, state.image_id = doc, list(rec.layers), rec.id
        self.say(f"--> Using cache {rec.id}")
        self.say(f"--> {rec.id[:12]}")
        return True

    def _commit(self, state: StageState, key: str, created_by: str, layer: dict[str, object] | None) -> None:
        """Make the step's image from ``state.doc`` (plus ``layer``, a new layer's chain/diff_id)."""
        from rootlet.registry.fsutil import atomic_write
        from rootlet.runtime.image.newimage import add_image

        when = float(self.timestamp) if self.timestamp is not None else time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e9):09d}Z"
        doc = state.doc
        for stale in ("container", "container_config", "docker_version"):
            doc.pop(stale, None)
        doc["created"] = stamp
        entry: dict[str, Any] = {"created": stamp, "created_by": created_by}
        if layer is not None and layer.get("status") != "empty":
            rootfs = doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), str(layer["diff_id"])]
            state.layers = [*state.layers, str(layer["chain"])]
        else:
            entry["empty_layer"] = True
        doc["history"] = [*(doc.get("history") or []), entry]
        if not doc["config"]:
            doc["config"] = {}
        data = json.dumps(doc, separators=(",", ":")).encode()
        rec = add_image(self.store, data, state.layers, [], intermediate=True, docker=self.opts.format == "docker")
        state.image_id = rec.id
        if self.opts.layers:
            os.makedirs(self.cache_dir, 0o700, exist_ok=True)
            atomic_write(os.path.join(self.cache_dir, key), rec.id.encode(), durable=False)
        self.say(f"--> {rec.id[:12]}")

    def _config(self, state: StageState, inst: Instruction) -> None:
        key = self._key(state, inst)
        if self._cached(state, key):
            return
        created_by, state.shell = configs.apply(inst, state.config, state.scope(), state.shell, self.escape)
        if inst.keyword == "MAINTAINER":
            state.doc["author"] = inst.args
        if inst.keyword == "SHELL":
            state.config["Shell"] = list(state.shell)
        self._commit(state, key, created_by, None)

    # --- steps with a container -------------------------------------------------------------------

    def _container(self, image_id: str | None, **run: Any) -> str:
        """A container of image ``image_id`` (created, not started), removed at the end of the build
        at the latest."""
        from rootlet.runtime.container.options import RunOptions

        assert image_id is not None
        run.setdefault("command", ("true",))  # a COPY's container never runs
        opts = RunOptions(image=image_id, pull="never", entrypoint="", labels=("io.rootlet.build=1",), **run)
        cid = self.engine.create(opts).id
        self.containers.append(cid)
        return cid

    def _drop(self, cid: str) -> None:
        from rootlet.runtime.lifecycle.stop import remove_container

        remove_container(self.store, cid, force=True, volumes=True)
        self.containers.remove(cid)

    def _source_image(self, state: StageState, stages: list[Stage], ref: str, what: str) -> str:
        """The image id of ``--from``'s stage (by name or number) or image."""
        earlier = self._stage_ref(ref, state.stage.index, stages)
        if earlier is None:
            return self._image(ref, f"{what}: image").id
        if earlier not in self.finished:
            raise BuildError(f"{what}: stage {ref} was not built", "check --target")
        image_id = self.finished[earlier].image_id
        if image_id is None:
            raise BuildError(f"{what}: stage {ref} is empty (FROM scratch with nothing in it)")
        return image_id

    # --- the end --------------------------------------------------------------------------------

    def _finish(self, state: StageState, tags: list[str], labels: dict[str, str]) -> str:
        """The final image: the last step's (with ``--label``s added), named, its id written."""
        from rootlet.registry.fsutil import atomic_write
        from rootlet.runtime.image.newimage import add_image

        if state.image_id is None:
            raise BuildError("the build made nothing: FROM scratch with no files", "COPY something into it")
        if labels:
            state.config["Labels"] = {**(state.config.get("Labels") or {}), **labels}
        if state.config.get("OnBuild") == []:
            state.config.pop("OnBuild")
        data = json.dumps(state.doc, separators=(",", ":")).encode() if self.opts.labels else \
            self.store.read_blob(self.store.load()[state.image_id].config_digest)
        rec = add_image(self.store, data, state.layers, tags, docker=self.opts.format == "docker",
                        annotations=self.annotations or None)
        self.say(f"COMMIT {' '.join(tags)}".rstrip())
        self.say(f"--> {rec.id[:12]}")
        for tag in tags:
            self.say(f"Successfully tagged {tag}")
        if self.opts.iidfile:
            try:
                atomic_write(self.opts.iidfile, f"sha256:{rec.id}".encode(), mode=0o644)
            except OSError as exc:
                raise BuildError(f"cannot write --iidfile {self.opts.iidfile}: {exc.strerror}") from None
        return rec.id






def build_image(engine: Engine, opts: BuildOptions, notify: Callable[[str], None]) -> BuildReport:
    """Build ``opts`` with ``engine`` (its store, its containers); ``notify`` gets podman's progress
    lines. ``BuildError`` (a RUN's exit status as its code) when the build cannot finish."""
    return _Builder(engine, opts, notify).run()
