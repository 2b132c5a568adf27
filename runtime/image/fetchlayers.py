"""The layers of a pull: downloaded a few at a time, unpacked several at once, each streamed into
its unpacker while it downloads.

A pull forks its user-namespace workers first of all (``pull.py``: one per CPU, before it imports
its HTTP stack, so they stay small), sets up as many as layers are missing (``WorkerPool``), then
runs one job per missing layer in a few download threads. A job that finds a worker free
streams: the download thread writes every byte it receives both to the partial blob file and
into a FIFO the worker unpacks from, so inflating and file creation run while the bytes arrive.
A job that finds none downloads to the file and unpacks from it once a worker is free. Either
way the layer lands in a staging directory of its own (``tmp/layer-PID-…``): layers are
independent until they are stacked, and the one thing a layer takes from those below it, the
metadata of the parent directories its tar implies, is filled in when it is placed
(``applier.fix_implied``), so the result is the same as unpacking in order.

Nothing unverified is kept: a staged layer is placed (renamed into ``layers/``) only after its
blob matched the manifest's digest and size and its tar the config's diff_id, in the image's
layer order, by the main thread; on any failure every staging directory is removed and a partial
download is kept only when it may still be right (to resume). No lock is held across a download
or an unpack: partial downloads are named by process and layer (``blobs/partial/HEX.PID.I``; one
left by a dead pull is adopted by renaming it), and a layer's lock is taken only around its
placement. Two pulls of one layer may both unpack it; the first to place it wins, the other's
copy is removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NoReturn

from rootlet.registry import mediatypes as mt
from rootlet.registry.errors import DigestMismatch, LayerError, RootletError
from rootlet.registry.manifest import ImageConfig, ImageManifest
from rootlet.registry.store import ImageStore
from rootlet.runtime.image.layers import LayerStore, fix_implied_job, info_doc, stage_job
from rootlet.runtime.linux import signals
from rootlet.runtime.linux.proc import pid_alive
from rootlet.runtime.linux.rmtree import remove_tree

#: Downloads at once: enough to fill a link, few enough not to trip registry rate limits.
MAX_PARALLEL_DOWNLOADS = 3
#: The FIFO's buffer: the downloader hands over whole chunks, the two processes switch less.
_FIFO_BYTES = 1 << 20


class _Aborted(Exception):
    """Raised inside a download when the pull is being abandoned (another layer failed)."""


class WorkerPool:
    """User-namespace workers, started together before any thread exists, and lent to one thread
    at a time (``lend``); ``kill`` ends them at once (Ctrl-C: a worker's call cannot be
    interrupted otherwise). The workers come forked already (``UsernsWorker(deferred=True)``:
    forked before the pull imported its HTTP stack, they stay small); their namespaces are set
    up here, all at the same time."""

    def __init__(self, workers: list[Any]) -> None:
        self._all = workers
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        try:
            for worker in workers:
                worker.kick()
            for worker in workers:
                worker.start()
        except BaseException:
            self.close()
            raise
        for worker in workers:
            self._free.put(worker)

    def take(self, block: bool = True) -> Any:
        """A free worker (waiting for one when *block*), or None."""
        try:
            return self._free.get(block)
        except queue.Empty:
            return None

    def give(self, worker: Any) -> None:
        self._free.put(worker)

    @contextlib.contextmanager
    def lend(self) -> Any:
        """A worker for the ``with`` body."""
        worker = self.take()
        try:
            yield worker
        finally:
            self.give(worker)

    def kill(self) -> None:
        """SIGKILL every worker: a thread waiting on one's call then sees it die (UsernsError)."""
        for worker in self._all:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signals.SIGKILL)

    def close(self) -> None:
        for worker in self._all:
            worker.close()


class _FifoSink:
    """The blob's bytes, in order, into the FIFO a worker unpacks from.

    It never raises: when the worker stopped reading (its unpack failed: the download goes on,
    so the blob's digest decides which error is right) or the download restarted from zero (the
    worker already has bytes that are no longer the blob's: ``cut``), it stops feeding and
    closes its end, and the worker's unpack ends with an error. Its end is closed as soon as
    the blob's last byte is in (*size*), so the worker finishes while the download is still being
    made durable and checked (nothing it unpacked is placed before that check).
    """

    def __init__(self, path: str, unpack: Future[Any], size: int) -> None:
        self.path = path
        self.unpack = unpack
        self.size = size
        self.fd = -1
        self.sent = 0
        self.cut = False
        self.gone = False
        self.ended = False

    def __call__(self, offset: int, chunk: bytes) -> None:
        if self.cut or self.gone:
            return
        if offset != self.sent or self.ended:
            self.cut = True
            self.close()
            return
        if self.fd < 0 and not self._open():
            return
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:  # EPIPE: the worker gave up on this layer
            self.gone = True
            self.close()
            return
        self.sent += len(chunk)
        if self.sent == self.size:
            self.ended = True
            self.close()

    def _open(self) -> bool:
        """Open the writing end once the worker has opened the reading end (until then an
        O_NONBLOCK open fails with ENXIO); False when the worker's job ended without it."""
        while True:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO or self.unpack.done():
                    self.gone = True
                    return False
            time.sleep(0.0005)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, _FIFO_BYTES)
        return True

    def finish(self) -> None:
        """End the stream (the worker reads EOF), opening it first if no byte was ever sent, so a
        worker waiting in open() is released."""
        if self.fd < 0 and not (self.cut or self.gone or self.ended):
            self._open()
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class _Staged:
    """A layer unpacked into its staging directory, its blob verified, not yet placed."""

    staging: str
    size: int
    entries: int
    implied: tuple[str, ...]
    blob: str
    move_blob: bool  # the blob is this pull's download (moved into the layer), else a stored blob


class LayerFetcher:
    """Fetch, unpack and place the missing layers of one image (see the module docstring)."""

    def __init__(self, store: ImageStore, source: object, manifest: ImageManifest, config: ImageConfig,
                 chains: list[str], progress: Any, report: Any, pool: WorkerPool, plan: Any) -> None:
        self.store, self.source, self.progress, self.report = store, source, progress, report
        self.layers = LayerStore(store)
        self.descs = manifest.layers
        self.diff_ids = config.diff_ids
        self.chains = chains
        self.pool = pool
        self.single_id, self.rootful = plan.single_id, plan.rootful
        self.abort = threading.Event()
        self._lock = threading.Lock()
        self._unpackers: ThreadPoolExecutor | None = None

    # -- the main thread ----------------------------------------------------------------------

    def run(self, missing: list[int], workers: int) -> None:
        """Fetch and place layers *missing* (indexes, in order); raises the first failure, with
        every staging directory removed."""
        downloads = ThreadPoolExecutor(min(MAX_PARALLEL_DOWNLOADS, len(missing)), thread_name_prefix="pull")
        self._unpackers = ThreadPoolExecutor(workers, thread_name_prefix="unpack")
        jobs: dict[int, Future[_Staged | None]] = {i: downloads.submit(self._job, i) for i in missing}
        placed: set[int] = set()
        killed = False
        try:
            stored: set[str] = set()
            for i in missing:  # in order: a layer is placed once every layer below it is
                staged = jobs[i].result()
                if staged is not None:
                    self._place(i, staged)
                    if not staged.move_blob:
                        stored.add(self.descs[i].digest)
                placed.add(i)
            for digest in stored:  # it lives on in its layers, hard linked
                self.store.remove_blob(digest)
        except BaseException as exc:
            self.abort.set()
            for job in jobs.values():
                job.cancel()
            killed = not isinstance(exc, Exception)
            if killed:  # Ctrl-C: an unpack in a worker cannot be interrupted otherwise
                self.pool.kill()
            wait(jobs.values())
            self._discard([job.result() for i, job in jobs.items() if i not in placed and not job.cancelled()
                           and job.exception() is None], kill=killed)
            raise
        finally:
            # No thread may outlive a pull: `run` forks the container next. After Ctrl-C they
            # end on their own (the workers are dead, the downloads see the abort).
            downloads.shutdown(wait=not killed, cancel_futures=True)
            self._unpackers.shutdown(wait=not killed)

    def _place(self, i: int, staged: _Staged) -> None:
        """Place layer *i* (every layer below it is in place): implied parents finished from the
        layers below, then ``LayerStore.place``."""
        desc = self.descs[i]
        if staged.implied:
            lowers = tuple(self.layers.diff_dir(h) for h in reversed(self.chains[:i]))
            with self.pool.lend() as worker:
                worker.call(fix_implied_job, staged.staging, staged.implied, lowers, self.single_id)
        info = info_doc(self.diff_ids[i], staged.size, staged.entries, desc.digest, desc.size, self._compression(i))
        _status, leftovers = self.layers.place(staged.staging, self.chains[i], staged.blob, staged.move_blob, info)
        if leftovers:
            with self.pool.lend() as worker:
                for path in leftovers:
                    worker.call(remove_tree, path)
        self.progress.layer(desc.digest, desc.size, "done")

    def _discard(self, staged: list[_Staged | None], kill: bool) -> None:
        """Remove the staging directories of a failed pull. Their verified downloads stay in
        ``blobs/partial``, where the next pull adopts them (no byte fetched again). After Ctrl-C
        (*kill*: the workers are gone) the next pull removes the directories instead."""
        dirs = [s.staging for s in staged if s is not None]
        if dirs and not kill:
            with self.pool.lend() as worker:
                for path in dirs:
                    with contextlib.suppress(RootletError, OSError):
                        worker.call(remove_tree, path)

    # -- the download threads ------------------------------------------------------------------

    def _job(self, i: int) -> _Staged | None:
        """Layer *i*: None when it is already stored, else its staged, verified unpacking."""
        desc = self.descs[i]
        if self.layers.has(self.chains[i]):
            self.progress.layer(desc.digest, desc.size, "exists")
            return None
        stored = self.store.blob_path(desc.digest)
        if os.path.exists(stored):  # verified by an earlier pull that stopped before unpacking it
            return self._stage_file(i, stored, move=False)
        partial = self._claim_partial(i)
        worker = self.pool.take(block=False)
        if worker is None:
            self._download(i, partial, None)
            return self._stage_file(i, partial, move=True)
        try:
            return self._stream(i, worker, partial)
        finally:
            self.pool.give(worker)

    def _stream(self, i: int, worker: Any, partial: str) -> _Staged:
        """Download layer *i* into *partial* while *worker* unpacks it from a FIFO."""
        assert self._unpackers is not None
        fifo = os.path.join(self.store.tmp, f"stream-{os.getpid()}-{os.urandom(6).hex()}")
        os.mkfifo(fifo, 0o600)
        try:
            unpack = self._unpackers.submit(worker.call, stage_job, *self._stage_args(i, fifo))
            sink = _FifoSink(fifo, unpack, self.descs[i].size)
            try:
                self._download(i, partial, sink)
            except BaseException:
                sink.finish()
                with contextlib.suppress(Exception):
                    leftover = unpack.result()
                    worker.call(remove_tree, leftover["staging"])
                raise
            self.progress.layer(self.descs[i].digest, self.descs[i].size, "extracting")
            sink.finish()
            try:
                result = unpack.result()
            except (LayerError, DigestMismatch) as exc:
                if not sink.cut:  # it saw exactly the verified blob: its verdict stands
                    self._refuse(i, partial, exc)
                # The download restarted under it: unpack the verified file instead.
                result = self._call_stage(worker, i, partial)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(fifo)
        return self._staged(result, partial, move=True)

    def _stage_file(self, i: int, blob: str, move: bool) -> _Staged:
        """Unpack layer *i* from its verified blob file, in the first worker free."""
        self.progress.layer(self.descs[i].digest, self.descs[i].size, "extracting")
        with self.pool.lend() as worker:
            try:
                result = self._call_stage(worker, i, blob)
            except (LayerError, DigestMismatch) as exc:
                self._refuse(i, blob, exc)
        return self._staged(result, blob, move)

    def _call_stage(self, worker: Any, i: int, source: str) -> dict[str, Any]:
        return worker.call(stage_job, *self._stage_args(i, source))  # type: ignore[no-any-return]

    def _stage_args(self, i: int, source: str) -> tuple[Any, ...]:
        """``stage_job``'s arguments: the layers below are looked at directly when all are in
        place, else they are pending (``fix_implied_job`` at placement)."""
        below = self.chains[:i]
        pending = not all(self.layers.has(h) for h in below)
        lowers = () if pending else tuple(self.layers.diff_dir(h) for h in reversed(below))
        desc = self.descs[i]
        return (self.store.tmp, os.getpid(), source, self._compression(i), self.diff_ids[i], desc.digest,
                desc.size, lowers, pending, self.single_id, self.rootful)

    @staticmethod
    def _staged(result: dict[str, Any], blob: str, move: bool) -> _Staged:
        return _Staged(str(result["staging"]), int(result["size"]), int(result["entries"]),
                       tuple(result["implied"]), blob, move)

    def _compression(self, i: int) -> str:
        return mt.LAYER_COMPRESSION.get(self.descs[i].media_type, "gzip")

    def _download(self, i: int, partial: str, sink: _FifoSink | None) -> None:
        """Fetch layer *i*'s blob into *partial* (verified: digest and size), feeding *sink*."""
        digest, size = self.descs[i].digest, self.descs[i].size
        self.progress.layer(digest, size, "downloading")

        def on_data(offset: int, chunk: bytes) -> None:
            if self.abort.is_set():
                raise _Aborted
            if sink is not None:
                sink(offset, chunk)

        self.source.fetch_blob(digest, size, partial,  # type: ignore[attr-defined]
                               lambda n: self.progress.advance(digest, n), on_data)
        with self._lock:
            self.report.layers_fetched += 1
            self.report.bytes_fetched += size
        self.progress.layer(digest, size, "downloaded")

    def _claim_partial(self, i: int) -> str:
        """This process's partial download of layer *i*, ``blobs/partial/HEX.PID.I`` (the index:
        an image may hold one blob twice). A partial left by a pull that no longer runs (or by an
        older rootlet: ``HEX``, ``HEX.PID``) is adopted by renaming it, so the download resumes; a
        running pull's is left alone."""
        hex_ = self.descs[i].digest.split(":", 1)[1]
        mine = os.path.join(self.store.partial, f"{hex_}.{os.getpid()}.{i}")
        with contextlib.suppress(FileNotFoundError):
            for name in sorted(os.listdir(self.store.partial)):
                owner = name[len(hex_) + 1:].split(".", 1)[0]
                if name == hex_ or (name.startswith(hex_ + ".") and owner.isdigit() and not pid_alive(int(owner))):
                    try:
                        os.rename(os.path.join(self.store.partial, name), mine)
                        break
                    except FileNotFoundError:  # another pull (or job) adopted it first
                        continue
        return mine

    def _refuse(self, i: int, blob: str, exc: LayerError | DigestMismatch) -> NoReturn:
        """Layer *i* is bad (hostile, malformed, or not what the config says): delete its blob,
        so nothing of it is kept, and raise the error naming the layer."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(blob)
        if isinstance(exc, DigestMismatch):
            raise exc
        raise LayerError(f"layer {self.descs[i].digest[:19]}: {exc.message}",
                         exc.hint or "the image is malformed or hostile; nothing of it was kept") from None
