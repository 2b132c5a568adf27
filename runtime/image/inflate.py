"""Compressed input: what a stream's magic bytes say it is, and its bytes inflated once, bounded.

``load`` and ``import`` take files and streams compressed with gzip, zstd, xz or bzip2 (what
``docker save | gzip`` and friends produce) or not at all. The decompressors are read in
bounded chunks whatever the compression ratio, and the decompression-bomb guard is the layer
applier's (``rootlet.runtime.image.applier``): more than 1 GiB and more than 1000 times the
compressed size is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat

from rootlet.registry.errors import LayerError, RootletError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

CHUNK = 1 << 20
#: Compression of a whole archive or a layer, by magic bytes.
MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"))
BOMB_FLOOR = 1 << 30
BOMB_RATIO = 1000


def sniff(head: bytes) -> str:
    """The compression whose magic *head* starts with, or "none"."""
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), "none")


def open_input(path: str | None, stream: BinaryIO | None, spool: str) -> str:
    """The archive as an uncompressed regular file: *path* itself, or *spool* holding what
    *stream* (or a compressed or non-regular *path*) gives, inflated."""
    if path is None:
        assert stream is not None
        spool_stream(stream, spool, None)
        return spool
    try:
        src = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise LayerError(f"cannot open {path}: {exc.strerror}") from None
    with src:
        st = os.fstat(src.fileno())
        if stat.S_ISREG(st.st_mode):
            if sniff(src.read(8)) == "none":
                return path
            src.seek(0)
        spool_stream(src, spool, st.st_size if stat.S_ISREG(st.st_mode) else None)
    return spool


def spool_stream(src: BinaryIO, dest: str, total: int | None) -> None:
    """Copy *src* to the new file *dest*, inflating it if it is compressed."""
    with open(dest, "wb") as out:
        inflate(Tee(src), total, "archive", out.write)


def inflate(tee: Tee, total: int | None, what: str, sink: Callable[[bytes], None]) -> str:
    """Read *tee* to its end, inflated if its magic bytes say it is compressed, handing each chunk
    to *sink*; returns the compression. The bomb guard (the applier's) counts against *total*
    compressed bytes when known, else against those read so far."""
    head = tee.peek(8)
    if not head:
        raise LayerError(f"the {what} is empty")
    kind = sniff(head)
    reader = decompressing(tee, kind)
    size = 0
    while True:
        try:
            data = reader.read(CHUNK)
        except RootletError:
            raise
        except Exception as exc:  # noqa: BLE001 - zlib, lzma, bz2, zstandard errors, EOFError
            raise LayerError(f"the {kind} {what} is corrupt or truncated: {exc}") from None
        if not data:
            return kind
        size += len(data)
        if kind != "none" and size > max(BOMB_FLOOR, BOMB_RATIO * (total or tee.count)):
            raise LayerError(f"the {kind} {what} inflates to more than {BOMB_RATIO} times its size; "
                             "refusing a decompression bomb")
        sink(data)


def decompressing(src: Tee, kind: str) -> BinaryIO:
    """*src*'s bytes inflated as *kind* says (read in bounded chunks whatever the ratio)."""
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[arg-type]
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(src)  # type: ignore[arg-type]
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(src)  # type: ignore[arg-type]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)  # type: ignore[return-value]
    return src  # type: ignore[return-value]


class Tee:
    """A readable stream that can peek at its start, counts what it hands out, and hashes it into
    ``hash`` and copies it to ``out`` when those are set."""

    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.out: BinaryIO | None = None
        self.hash: hashlib._Hash | None = None
        self.count = 0
        self._head = b""

    def readable(self) -> bool:
        return True

    def peek(self, n: int) -> bytes:
        while len(self._head) < n and (data := self.src.read(n - len(self._head))):
            self._head += data
        return self._head

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = (self._head, b"") if n < 0 or n >= len(self._head) else \
                (self._head[:n], self._head[n:])
        else:
            data = self.src.read(n)
        if data:
            self.count += len(data)
            if self.hash is not None:
                self.hash.update(data)
            if self.out is not None:
                self.out.write(data)
        return data
