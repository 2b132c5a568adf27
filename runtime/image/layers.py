"""The layer store: each image layer unpacked once, into its own directory, named by its ChainID.

``layers/<chain hex>/diff`` holds the layer's files exactly as the overlay reads them (whiteouts as
char 0/0 devices, opaque directories marked with ``user.overlay.opaque``); ``info.json`` beside it
records the diff_id and size; ``blob`` is the compressed layer exactly as it was pulled, loaded or
committed (a hard link to the verified download, so keeping it costs no copy).

Keeping the blob is containerd's choice, not podman's: podman keeps only the unpacked files plus
tar-split metadata and recompresses on push, so a pushed or saved image gets new layer digests.
rootlet pushes and saves the very bytes it verified: a pulled image pushed elsewhere keeps its
manifest digest, ``save``/``load`` keep every digest, and a push costs no compression. The price is
disk: the compressed size again (about a third of the unpacked size for typical images). A layer is built in ``tmp/layer-<pid>-…`` inside the user namespace
and renamed into place only when complete and verified, so a crash never leaves a half layer under
``layers/``; leftovers in ``tmp/`` from dead processes are removed by the next pull.

Layers are keyed by ChainID rather than diff_id because an unpacked layer depends on the layers
below it: directories a tar implies but does not contain take their mode from the lower layers.
"""

from __future__ import annotations

import errno
import os

from rootlet.registry import jsoncodec
from rootlet.registry.errors import DigestMismatch, RootletError, StoreError
from rootlet.registry.fsutil import atomic_write, flocked, make_temp_dir, read_json
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.linux.proc import pid_alive
from rootlet.runtime.linux.rmtree import remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rootlet.runtime.image.layerwriter import NewLayer


class LayerInfo(Record):
    """What the store knows of one unpacked layer."""

    chain_id: str      # hex
    diff_id: str       # sha256:…
    size: int          # uncompressed bytes
    compressed_digest: str | None = None


class LayerBlob(Record):
    """A layer's kept blob: the bytes whose digest a manifest names."""

    path: str
    digest: str        # sha256:… of the file as stored (compressed)
    size: int
    compression: str   # "gzip", "zstd" or "none"
    diff_id: str       # sha256:… of the uncompressed tar


class LayerStore:
    """Unpacked layers under ``<root>/layers``; unpacking and deletion run in a user-namespace worker."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.root = store.layers

    def layer_dir(self, chain_hex: str) -> str:
        return os.path.join(self.root, chain_hex)

    def diff_dir(self, chain_hex: str) -> str:
        return os.path.join(self.root, chain_hex, "diff")

    def has(self, chain_hex: str) -> bool:
        return os.path.exists(os.path.join(self.root, chain_hex, "info.json"))

    def info(self, chain_hex: str) -> LayerInfo:
        doc = read_json(os.path.join(self.layer_dir(chain_hex), "info.json"))
        if doc is None:
            raise StoreError(f"layer {chain_hex[:12]} is missing", "pull the image again to repair it")
        return LayerInfo(chain_hex, doc["diff_id"], int(doc["size"]), doc.get("compressed_digest"))

    def blob(self, chain_hex: str) -> LayerBlob | None:
        """The layer's kept blob, or None for a layer unpacked by a rootlet that did not keep them."""
        doc = read_json(os.path.join(self.layer_dir(chain_hex), "info.json"))
        path = os.path.join(self.layer_dir(chain_hex), "blob")
        if doc is None or not doc.get("compressed_digest") or not os.path.exists(path):
            return None
        size = doc.get("compressed_size")
        return LayerBlob(path=path, digest=doc["compressed_digest"],
                         size=int(size) if size is not None else os.stat(path).st_size,
                         compression=doc.get("compression") or "gzip", diff_id=doc["diff_id"])

    def lock(self, chain_hex: str) -> flocked:
        """Serialise placing one layer across processes (held only for the rename into place and
        what decides it: never across a download or an unpack)."""
        return flocked(self.store.lock_path("layer-" + chain_hex))

    def unpack(self, worker: object, blob_path: str, compression: str, chain_hex: str, diff_id: str,
               lower_chain_hexes: list[str], compressed_digest: str, compressed_size: int,
               single_id: bool, privileged: bool) -> LayerInfo:
        """Unpack a verified blob into the store as layer *chain_hex*; returns its info.

        *worker* is a ``UsernsWorker`` whose namespace maps the user's subordinate ids, so owners
        in the tar become real owners on disk. The layer is applied into a staging directory with
        no lock held, then placed under the layer's lock (``place``), held only for that: two
        processes making one layer may both unpack it; the first to place it wins.
        """
        lowers = tuple(self.diff_dir(h) for h in reversed(lower_chain_hexes))
        staged = worker.call(  # type: ignore[attr-defined]
            stage_job, self.store.tmp, os.getpid(), blob_path, compression, diff_id, compressed_digest,
            compressed_size, lowers, False, single_id, privileged)
        leftovers = [str(staged["staging"])]
        try:
            info = info_doc(diff_id, int(staged["size"]), int(staged["entries"]), compressed_digest, compressed_size,
                            compression)
            _status, leftovers = self.place(leftovers[0], chain_hex, blob_path, False, info)
        finally:
            for path in leftovers:
                try:
                    worker.call(remove_tree, path)  # type: ignore[attr-defined]
                except (RootletError, OSError):
                    pass
        return LayerInfo(chain_hex, diff_id, int(staged["size"]), compressed_digest)

    def place(self, staging: str, chain_hex: str, blob_path: str, move_blob: bool,
              info: dict[str, object]) -> tuple[str, list[str]]:
        """Finish a staged layer whose blob and diff_id are verified, from the calling process
        (the staging dir is the user's own; only its contents belong to subordinate ids), under
        the layer's lock, held only for that: ``_finish``. The blob is moved in when *move_blob*
        (a download of this pull), else hard linked. Returns "unpacked" or "exists", and the
        directories the caller must remove inside the user namespace."""
        with self.lock(chain_hex):
            return _finish(staging, self.layer_dir(chain_hex), blob_path, move_blob, info)

    def stale_entries(self) -> list[str]:
        """Staging and deletion dirs and stream FIFOs in ``tmp/`` left by processes that no longer run."""
        out: list[str] = []
        try:
            names = os.listdir(self.store.tmp)
        except FileNotFoundError:
            return out
        for name in names:
            parts = name.split("-")
            if len(parts) >= 3 and parts[0] in ("layer", "del", "stream") and parts[1].isdigit():
                if not pid_alive(int(parts[1])):
                    out.append(os.path.join(self.store.tmp, name))
        return out

    def all_layers(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root) if len(n) == 64]
        except FileNotFoundError:
            return []


def info_doc(diff_id: str, size: int, entries: int, compressed_digest: str, compressed_size: int,
             compression: str) -> dict[str, object]:
    """A stored layer's ``info.json``: its diff_id, unpacked size and tar entries, and its kept blob."""
    return {"diff_id": diff_id, "size": size, "compressed_digest": compressed_digest,
            "compressed_size": compressed_size, "compression": compression, "entries": entries}


def stage_job(tmp_root: str, owner_pid: int, source: str, compression: str, diff_id: str, compressed_digest: str,
              compressed_size: int, lower_dirs: tuple[str, ...], lowers_pending: bool, single_id: bool,
              privileged: bool) -> dict[str, object]:
    """Runs inside the user namespace: apply the layer read from *source* (its blob, or a FIFO a
    pull writes the blob into while it downloads) into a new staging directory ``tmp/layer-PID-…``
    and check its diff_id. Nothing is placed: the caller places it once the blob's own digest is
    verified too (``LayerStore.place``), or removes it. On failure nothing of it is left.

    Returns ``staging``, ``size`` and ``entries``, and ``implied``: with *lowers_pending* (the
    layers below are still being unpacked), the implied parents ``fix_implied_job`` must finish.
    """
    from rootlet.runtime.image.applier import ApplyOptions, apply_layer

    staging = make_temp_dir(tmp_root, f"layer-{owner_pid}-")
    try:
        diff = os.path.join(staging, "diff")
        os.mkdir(diff, 0o755)
        opts = ApplyOptions(single_id=single_id, privileged_xattrs=privileged, lower_dirs=lower_dirs,
                            lowers_pending=lowers_pending)
        result = apply_layer(source, compression, diff, opts, compressed_size=compressed_size)
        if result.diff_id != diff_id:
            raise DigestMismatch(
                f"layer {compressed_digest} unpacks to {result.diff_id}, but the image config says {diff_id}",
                "the image is corrupt or was tampered with; nothing of it was kept")
        return {"staging": staging, "size": result.size, "entries": result.entries, "implied": result.implied}
    except BaseException:
        try:
            remove_tree(staging)
        except OSError:
            pass
        raise


def fix_implied_job(staging: str, implied: tuple[str, ...], lower_dirs: tuple[str, ...], single_id: bool) -> None:
    """Runs inside the user namespace: give the implied parents of a staged layer the metadata of
    the lower layers, now in place (``applier.fix_implied``)."""
    from rootlet.runtime.image.applier import ApplyOptions, fix_implied

    fix_implied(os.path.join(staging, "diff"), implied, ApplyOptions(single_id=single_id, lower_dirs=lower_dirs))


def _place(staging: str, final: str, blob_path: str, info: dict[str, object]) -> str:
    """``_finish`` inside the user namespace, under the layer's lock (as ``LayerStore.place``:
    without it, a layer another process placed meanwhile would look like debris to ``_finish``);
    removes what it leaves over itself, after the lock."""
    layers_root, chain_hex = os.path.split(final)
    with flocked(ImageStore(os.path.dirname(layers_root)).lock_path("layer-" + chain_hex)):
        status, leftovers = _finish(staging, final, blob_path, False, info)
    for path in leftovers:
        remove_tree(path)
    return status


def _finish(staging: str, final: str, blob_path: str, move_blob: bool,
            info: dict[str, object]) -> tuple[str, list[str]]:
    """Finish a staged layer: its blob in as ``blob`` (moved, or hard linked), ``info.json``
    written durably (file and directory fsynced: once per layer), then the directory renamed
    into place. Returns "unpacked", or "exists" when another process placed the same layer first,
    and the directories to remove (subordinate ids: inside the user namespace): the staging dir
    when it was not needed, debris of an old crash moved out of the way into ``tmp/``."""
    dest = os.path.join(staging, "blob")
    if move_blob:
        try:
            os.rename(blob_path, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _keep_blob(blob_path, dest)
            os.unlink(blob_path)
    else:
        _keep_blob(blob_path, dest)
    atomic_write(os.path.join(staging, "info.json"), jsoncodec.dumps(info).encode(), 0o600)
    if os.path.exists(os.path.join(final, "info.json")):
        return "exists", [staging]
    leftovers: list[str] = []
    if os.path.isdir(final):  # without info.json: debris of an old crash; never trust it
        aside = make_temp_dir(os.path.dirname(staging), f"del-{os.getpid()}-")
        os.rename(final, os.path.join(aside, "layer"))
        leftovers.append(aside)
    try:
        os.rename(staging, final)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        return "exists", [*leftovers, staging]
    return "unpacked", leftovers


def _store_new_layer(staging: str, layers_root: str, blob_path: str, layer: NewLayer, size: int, entries: int,
                     parent_chain: str | None, keep_empty: bool) -> dict[str, object]:
    """Place the staged layer (its tree in ``staging``/diff) as the child of ``parent_chain``; the
    job's result (``write_and_unpack_job``)."""
    import hashlib

    if entries == 0 and not keep_empty:
        remove_tree(staging)
        return {"status": "empty", "diff_id": layer.diff_id}
    chain = layer.diff_id if parent_chain is None else \
        "sha256:" + hashlib.sha256(f"sha256:{parent_chain} {layer.diff_id}".encode()).hexdigest()
    chain_hex = chain.split(":", 1)[1]
    info = info_doc(layer.diff_id, size, entries, layer.digest, layer.size, layer.compression)
    final = os.path.join(layers_root, chain_hex)
    if os.path.exists(os.path.join(final, "info.json")):
        remove_tree(staging)
        status = "exists"
    else:
        status = _place(staging, final, blob_path, info)
    return {"chain": chain_hex, "diff_id": layer.diff_id, "digest": layer.digest, "size": layer.size,
            "compression": layer.compression, "status": status}


def adopt_layer_job(layers_root: str, staging: str, blob_path: str, write_opts: object, parent_chain: str | None,
                    keep_empty: bool = True) -> dict[str, object]:
    """Runs inside the user namespace: write the plain tree ``staging``/diff (made for this layer:
    no overlay markers, no whiteouts) as a layer blob, and keep that tree itself as the stored
    layer: it is what the blob holds, so nothing is unpacked again (``build``'s COPY writes its
    files once). The tree must not be written with ``timestamp`` (its files keep their times)."""
    from rootlet.runtime.image.layerwriter import write_layer

    try:
        layer = write_layer(os.path.join(staging, "diff"), blob_path, write_opts)  # type: ignore[arg-type]
        return _store_new_layer(staging, layers_root, blob_path, layer, layer.tar_size, layer.entries, parent_chain,
                                keep_empty)
    except BaseException:
        try:
            remove_tree(staging)
        except OSError:
            pass
        raise


def write_and_unpack_job(tmp_root: str, layers_root: str, owner_pid: int, src_dir: str, blob_path: str,
                         write_opts: object, parent_chain: str | None, lower_dirs: tuple[str, ...],
                         single_id: bool, privileged: bool, keep_empty: bool = True) -> dict[str, object]:
    """Runs inside the user namespace: write the tree *src_dir* as a layer blob (the layer writer)
    and, in the same pass, unpack it as a stored layer on top of *parent_chain* (hex).

    The uncompressed tar goes from the writer straight into an applier in a forked child through
    a pipe, so the layer is neither decompressed again nor read twice, and the two run on two
    cores. The applier's own diff_id is checked against the writer's before the layer is placed.
    Returns the layer's chain (hex), diff_id, digest, size, compression and status ("unpacked",
    "exists", or "empty" when the tree held nothing and *keep_empty* is false: no layer is kept).
    """
    import pickle

    from rootlet.runtime.image.applier import ApplyOptions, apply_layer
    from rootlet.runtime.image.layerwriter import write_layer

    staging = make_temp_dir(tmp_root, f"layer-{owner_pid}-")
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        import fcntl

        # A pipe as large as an unprivileged process may make (1 MiB by default): the writer
        # hands over whole chunks instead of 64 KiB at a time, so the two processes switch less.
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass
    result_r, result_w = os.pipe2(os.O_CLOEXEC)
    pid = -1
    try:
        os.chmod(staging, 0o700)
        diff = os.path.join(staging, "diff")
        os.mkdir(diff, 0o755)
        pid = os.fork()
        if pid == 0:  # the applier
            status = 1
            try:
                os.close(write_end)
                os.close(result_r)
                opts = ApplyOptions(single_id=single_id, privileged_xattrs=privileged, lower_dirs=lower_dirs)
                # Our own writer's output: no bomb guard needed beyond the disk itself.
                outcome: object = apply_layer(f"/proc/self/fd/{read_end}", "none", diff, opts,
                                              compressed_size=1 << 50)
                status = 0
            except BaseException as exc:  # reported to the parent, which raises it
                outcome = exc
            try:
                data = pickle.dumps(outcome)
            except Exception:
                data = pickle.dumps(StoreError(f"unpacking the new layer failed: {outcome}"))
            try:
                os.write(result_w, data)
            except OSError:
                pass
            os._exit(status)
        os.close(read_end)
        read_end = -1
        os.close(result_w)
        result_w = -1
        try:
            layer = write_layer(src_dir, blob_path, write_opts, tee=write_end)  # type: ignore[arg-type]
        except BrokenPipeError:
            layer = None  # the applier failed: its error says why
        os.close(write_end)
        write_end = -1
        chunks = []
        while chunk := os.read(result_r, 1 << 16):
            chunks.append(chunk)
        os.waitpid(pid, 0)
        pid = -1
        applied = pickle.loads(b"".join(chunks)) if chunks else StoreError("the layer applier died")
        if isinstance(applied, BaseException):
            raise applied
        if layer is None or applied.diff_id != layer.diff_id:
            raise StoreError("the new layer unpacked differently from how it was written",
                             "the tree changed under the writer in a way it could not follow; try again")
        return _store_new_layer(staging, layers_root, blob_path, layer, applied.size, applied.entries, parent_chain,
                                keep_empty)
    except BaseException:
        try:
            remove_tree(staging)
        except OSError:
            pass
        raise
    finally:
        for fd in (read_end, write_end, result_r, result_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if pid > 0:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass


def _keep_blob(blob_path: str, dest: str) -> None:
    """Hard-link the verified blob into the layer (a copy only when it lives on another filesystem)."""
    try:
        os.link(blob_path, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        import shutil

        shutil.copyfile(blob_path, dest)
    os.chmod(dest, 0o600)
