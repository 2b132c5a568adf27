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

import contextlib
import errno
import json
import os

from rootlet.registry.errors import DigestMismatch, StoreError
from rootlet.registry.fsutil import flocked, make_temp_dir, read_json
from rootlet.registry.record import Record
from rootlet.registry.store import ImageStore
from rootlet.runtime.linux.proc import pid_alive
from rootlet.runtime.linux.rmtree import remove_tree


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

    def lock(self, chain_hex: str) -> contextlib.AbstractContextManager[bool]:
        """Serialise unpacking of one layer across processes (two pulls store it once)."""
        return flocked(self.store.lock_path("layer-" + chain_hex))

    def unpack(self, worker: object, blob_path: str, compression: str, chain_hex: str, diff_id: str,
               lower_chain_hexes: list[str], compressed_digest: str, compressed_size: int,
               single_id: bool, privileged: bool) -> LayerInfo:
        """Unpack a verified blob into the store as layer *chain_hex*; returns its info.

        The caller holds ``lock(chain_hex)``. *worker* is a ``UsernsWorker`` whose namespace maps
        the user's subordinate ids, so owners in the tar become real owners on disk.
        """
        lowers = tuple(self.diff_dir(h) for h in reversed(lower_chain_hexes))
        result = worker.call(  # type: ignore[attr-defined]
            unpack_job, self.store.tmp, self.root, os.getpid(), blob_path, compression, chain_hex,
            diff_id, lowers, compressed_digest, compressed_size, single_id, privileged,
        )
        return LayerInfo(chain_hex, diff_id, int(result["size"]), compressed_digest)

    def stale_entries(self) -> list[str]:
        """Staging and deletion dirs in ``tmp/`` left by processes that no longer run."""
        out: list[str] = []
        try:
            names = os.listdir(self.store.tmp)
        except FileNotFoundError:
            return out
        for name in names:
            parts = name.split("-")
            if len(parts) >= 3 and parts[0] in ("layer", "del") and parts[1].isdigit():
                if not pid_alive(int(parts[1])):
                    out.append(os.path.join(self.store.tmp, name))
        return out

    def all_layers(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root) if len(n) == 64]
        except FileNotFoundError:
            return []


def unpack_job(tmp_root: str, layers_root: str, owner_pid: int, blob_path: str, compression: str,
               chain_hex: str, diff_id: str, lower_dirs: tuple[str, ...], compressed_digest: str,
               compressed_size: int, single_id: bool, privileged: bool) -> dict[str, int | str]:
    """Runs inside the user namespace: apply, verify the diff_id, rename into place."""
    from rootlet.runtime.image.applier import ApplyOptions, apply_layer

    final = os.path.join(layers_root, chain_hex)
    if os.path.exists(os.path.join(final, "info.json")):
        return {"size": int(read_json(os.path.join(final, "info.json"))["size"]), "status": "exists"}
    staging = make_temp_dir(tmp_root, f"layer-{owner_pid}-")
    try:
        os.chmod(staging, 0o700)
        diff = os.path.join(staging, "diff")
        os.mkdir(diff, 0o755)
        opts = ApplyOptions(single_id=single_id, privileged_xattrs=privileged, lower_dirs=lower_dirs)
        result = apply_layer(blob_path, compression, diff, opts, compressed_size=compressed_size)
        if result.diff_id != diff_id:
            raise DigestMismatch(
                f"layer {compressed_digest} unpacks to {result.diff_id}, but the image config says {diff_id}",
                "the image is corrupt or was tampered with; nothing of it was kept")
        _keep_blob(blob_path, os.path.join(staging, "blob"))
        info = {"diff_id": diff_id, "size": result.size, "compressed_digest": compressed_digest,
                "compressed_size": compressed_size, "compression": compression, "entries": result.entries}
        with open(os.path.join(staging, "info.json"), "w") as f:
            json.dump(info, f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.isdir(final):
            # A directory without info.json is debris of an old crash; never trust it.
            os.rename(final, staging + ".old")
            remove_tree(staging + ".old")
        try:
            os.rename(staging, final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            remove_tree(staging)
            return {"size": result.size, "status": "exists"}
        return {"size": result.size, "status": "unpacked"}
    except BaseException:
        with contextlib.suppress(OSError):
            remove_tree(staging)
        raise


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
