"""COPY, ADD and WORKDIR as the builder drives them (``FileSteps``, mixed into the builder).

The sources are found first, on the host: context paths (checked to stay inside the context,
the ignore rules applied, hashed for the cache key), heredoc bodies and ``ADD URL`` downloads
(``--checksum`` verified) as private temp files, and ``--from`` stages or images. Then the copy
job (``copystep.py``) runs in a worker with the step's filesystem mounted, and its changes become
the step's layer. A stage FROM scratch has no filesystem to mount yet: its first files are copied
into a plain directory, written as its first layer. ``RUN --mount=type=bind,from=`` gets its files
the same way, as a host copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from rootlet.registry.errors import BuildError
from rootlet.runtime.build import config as configs
from rootlet.runtime.build.expand import expand, expand_words

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from rootlet.runtime.build.dockerfile import Instruction, Stage
    from rootlet.runtime.build.state import StageState

#: The largest file ``ADD URL`` downloads.
MAX_DOWNLOAD = 8 << 30


class FileSteps:
    """The builder's file steps; the builder provides the store, the cache and containers."""

    def _workdir(self, state: StageState, inst: Instruction) -> None:
        key = self._key(state, inst)
        if self._cached(state, key):
            return
        created_by, _ = configs.apply(inst, state.config, state.scope(), state.shell, self.escape)
        path = state.config["WorkingDir"]
        layer = self._files(state, [], path + "/", mkdir=True)
        self._commit(state, key, created_by, layer)

    def _copy(self, state: StageState, inst: Instruction, stages: list[Stage]) -> None:
        from rootlet.runtime.build.context import hash_sources, resolve_sources
        from rootlet.runtime.build.copystep import Source, is_archive, parse_chmod

        kw = inst.keyword
        what = f"{inst.where()}: {kw}"
        scope = state.scope()
        # --link is accepted: it asks BuildKit for a layer independent of those below, which changes how
        # a later rebuild may reuse it, not the files the image gets (rootlet's step cache decides reuse).
        for flag in ("parents", "keep-git-dir"):
            if inst.flag(flag) not in (None, "false"):
                raise BuildError(f"{what}: --{flag} is not supported by rootlet build yet", f"drop --{flag}")
        parse_chmod(inst.flag("chmod"), what)
        words = list(inst.json) if inst.json is not None else expand_words(inst.args, scope, self.escape)
        if len(words) < 2:
            raise BuildError(f"{what}: needs a source and a destination", f"{kw} SRC... DEST")
        *patterns, dest = words
        chown = expand(inst.flag("chown") or "", scope, self.escape) or None
        from_ref = expand(inst.flag("from") or "", scope, self.escape) or None
        sources: list[Source] = []
        digest_parts: list[str] = []
        stage_patterns: list[str] = []
        source_image: str | None = None
        checksum = inst.flag("checksum")
        later: list[str] = []
        heredocs = {f"<<{h.name}": h for h in inst.heredocs}
        heredocs.update({f"<<-{h.name}": h for h in inst.heredocs})
        for pattern in list(patterns):
            if pattern in heredocs:
                h = heredocs[pattern]
                body = expand(h.body, scope, self.escape) if h.expand else h.body
                path = self._temp_file(body.encode())
                sources.append(Source(path=path, name=h.name))
                digest_parts.append("heredoc:" + hashlib.sha256(body.encode()).hexdigest())
                patterns.remove(pattern)
        if checksum is not None and (kw != "ADD" or not all(is_url(p) for p in patterns) or not patterns):
            raise BuildError(f"{what}: --checksum is only for ADD of a URL")
        if from_ref is not None:
            if kw == "ADD":
                raise BuildError(f"{what}: ADD does not take --from", "use COPY --from")
            source_image = self._source_image(state, stages, from_ref, kw)
            stage_patterns = patterns
            digest_parts.append("from:" + source_image)
        else:
            for pattern in patterns:
                if kw == "ADD" and is_url(pattern) and checksum is not None:
                    later.append(pattern)  # known by its checksum: fetched only when the cache misses
                    digest_parts.append("url:" + checksum)
                    continue
                if kw == "ADD" and is_url(pattern):
                    path, name, digest = self._download(pattern, checksum, what, dest)
                    sources.append(Source(path=path, name=name, mode=0o600))
                    digest_parts.append("url:" + digest)
                    continue
                rels = resolve_sources(self.context, [pattern], self.rules, what)
                digest_parts.append(hash_sources(self.context, rels, self.rules))
                for rel in rels:
                    full = os.path.join(self.context, rel) if rel != "." else self.context
                    sources.append(Source(path=full, name=os.path.basename(full), rel=rel,
                                          unpack=kw == "ADD" and os.path.isfile(full) and is_archive(full)))
        dest = expand(dest, scope, self.escape) if inst.json is not None else dest
        key = self._key(state, inst, *digest_parts)
        if self._cached(state, key):
            return
        for url in later:
            path, name, _ = self._download(url, checksum, what, dest)
            sources.append(Source(path=path, name=name, mode=0o600))
        layer = self._files(state, sources, dest, chown=chown, chmod=inst.flag("chmod"), source_image=source_image,
                            patterns=stage_patterns, what=what)
        desc = " ".join(p for p in patterns) or ",".join(s.name for s in sources)
        self._commit(state, key, f"/bin/sh -c #(nop) {kw} {desc} in {dest}", layer)

    def _files(self, state: StageState, sources: list[Any], dest: str, *, chown: str | None = None,
               chmod: str | None = None, source_image: str | None = None, patterns: list[str] | None = None,
               what: str = "COPY", mkdir: bool = False) -> dict[str, object]:
        """Run a copy job (or, with ``mkdir``, only make ``dest``) against the state's filesystem;
        the new layer. The files go into a fresh tree that becomes the layer itself; the image's
        filesystem is mounted (a container of it, never started) only to resolve paths, owners
        and the directories on the way."""
        from rootlet.runtime.build.copystep import CopyJob, copy_job
        from rootlet.runtime.container.view import with_views

        job = CopyJob(sources=tuple(sources), dest=dest, workdir=state.config.get("WorkingDir") or "/", chown=chown,
                      chmod=chmod, ignore=self.rules.lines, what=what, patterns=tuple(patterns or ()))
        staging, tree = self._layer_tree()
        if not state.layers:  # FROM scratch, nothing yet: the tree is the whole filesystem
            if source_image is not None:
                src = self._container(source_image)
                with_views(self.store, [src], copy_into_tree, tree, job)
                self._drop(src)
            else:
                self._in_userns(copy_job, [tree], job)
        else:
            cids = [self._container(state.image_id)]
            if source_image is not None:
                cids.append(self._container(source_image))
            with_views(self.store, cids, copy_job, job.replace(tree=tree))
            for cid in cids:
                self._drop(cid)
        return self._tree_layer(state, staging, keep_empty=not mkdir)

    def _layer_tree(self) -> tuple[str, str]:
        """A staging directory for a new layer and its (empty) tree; removed at the end of the build
        unless it became a layer."""
        from rootlet.registry.fsutil import make_temp_dir

        # Named like a pull's staging directory: the next pull removes it if this process dies.
        staging = make_temp_dir(self.store.tmp, f"layer-{os.getpid()}-build-")
        self.trees.append(staging)
        tree = os.path.join(staging, "diff")
        os.mkdir(tree, 0o755)
        return staging, tree

    def _in_userns(self, fn: Any, *args: Any) -> Any:
        from rootlet.runtime.oci.idmap import plan_userns
        from rootlet.runtime.oci.userns import UsernsWorker

        with UsernsWorker(plan_userns()) as worker:
            return worker.call(fn, *args)

    def _tree_layer(self, state: StageState, staging: str, keep_empty: bool) -> dict[str, object]:
        """The tree of ``staging`` as the state's next layer: kept as it is (it is what the blob
        holds), or with ``--timestamp`` unpacked from the blob (whose times are the timestamp)."""
        from rootlet.runtime.container.imagefiles import lower_dirs
        from rootlet.runtime.image.layers import LayerStore, adopt_layer_job, write_and_unpack_job
        from rootlet.runtime.image.layerwriter import LayerWriteOptions
        from rootlet.runtime.oci.idmap import plan_userns

        blob = staging + ".blob"
        parent = state.layers[-1] if state.layers else None
        layers_root = LayerStore(self.store).root
        try:
            if self.timestamp is None:
                return self._in_userns(adopt_layer_job, layers_root, staging, blob,  # type: ignore[no-any-return]
                                       LayerWriteOptions(compression="gzip", overlay=False), parent, keep_empty)
            plan = plan_userns()
            return self._in_userns(  # type: ignore[no-any-return]
                write_and_unpack_job, self.store.tmp, layers_root, os.getpid(), os.path.join(staging, "diff"), blob,
                LayerWriteOptions(compression="gzip", timestamp=self.timestamp, overlay=False), parent,
                lower_dirs(self.store, state.layers), plan.single_id, plan.rootful, keep_empty)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(blob)

    def _stage_files(self, state: StageState, stages: list[Stage], ref: str, path: str, inst: Instruction) -> str:
        """``RUN --mount=type=bind,from=REF,source=PATH``: a host copy of PATH (owners kept), removed
        with the build's other temporary trees."""
        from rootlet.registry.fsutil import make_temp_dir
        from rootlet.runtime.build.copystep import CopyJob
        from rootlet.runtime.container.view import with_views

        what = f"{inst.where()}: RUN --mount"
        image_id = self._source_image(state, stages, ref, what)
        tree = make_temp_dir(self.store.tmp, f"layer-{os.getpid()}-mount-")  # a dead build's: removed by the next pull
        self.trees.append(tree)
        os.chmod(tree, 0o755)
        job = CopyJob(sources=(), dest="/content/", patterns=(path,), what=what)
        cid = self._container(image_id)
        is_dir = with_views(self.store, [cid], copy_into_tree, tree, job)
        self._drop(cid)
        content = os.path.join(tree, "content")
        return content if is_dir else os.path.join(content, os.path.basename(path.rstrip("/")))

    def _temp_file(self, data: bytes) -> str:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="build-heredoc-", dir=self.store.tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        self.temp_files.append(path)
        return path

    def _download(self, url: str, checksum: str | None, what: str, dest: str) -> tuple[str, str, str]:
        """``ADD URL``: the file fetched to a private temp file; (path, its name, sha256 digest)."""
        import tempfile
        import urllib.parse

        import requests

        if checksum is not None and not checksum.startswith("sha256:"):
            raise BuildError(f"{what}: --checksum={checksum}: only sha256:HEX is supported")
        name = os.path.basename(urllib.parse.urlparse(url).path) or "index.html"
        if not dest.endswith("/"):
            name = os.path.basename(dest) or name
        fd, path = tempfile.mkstemp(prefix="build-download-", dir=self.store.tmp)
        self.temp_files.append(path)
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out, requests.get(url, stream=True, timeout=(10, 60)) as resp:
                if resp.status_code != 200:
                    raise BuildError(f"{what}: {url}: the server answered {resp.status_code} {resp.reason}")
                for chunk in resp.iter_content(1 << 20):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise BuildError(f"{what}: {url}: larger than {MAX_DOWNLOAD >> 30} GiB")
                    h.update(chunk)
                    out.write(chunk)
        except requests.RequestException as exc:
            raise BuildError(f"{what}: cannot fetch {url}: {type(exc).__name__}",
                             "check the URL and that the server is reachable") from None
        digest = "sha256:" + h.hexdigest()
        if checksum is not None and checksum != digest:
            raise BuildError(f"{what}: {url}: the file's digest is {digest}, not {checksum}",
                             "the file changed, or the checksum is wrong")
        return path, name, digest


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def copy_into_tree(merged: list[str], tree: str, job: Any) -> bool:
    """In a view of a ``--from`` source: copy into the plain directory ``tree``; whether the (first)
    source is a directory."""
    import posixpath

    from rootlet.runtime.build.copystep import copy_job
    from rootlet.runtime.container.view import Chroot

    copy_job([tree, merged[0]], job)
    with Chroot(merged[0]):
        return os.path.isdir(posixpath.normpath("/" + job.patterns[0])) if job.patterns else False

