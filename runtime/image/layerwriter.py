"""The layer writer: a directory tree → an OCI layer (a tar, gzip- or zstd-compressed or not).

It runs inside the user namespace (owners under the default id map are the image's own ids: a
file of subordinate uid 100000+N-1 reads as uid N here, keep-id containers included, since
fuse-overlayfs stores their files under the default map) and reads the tree through directory
descriptors only: every name is opened with ``O_NOFOLLOW`` relative to its parent's descriptor,
so a running container that swaps a directory for a symlink cannot lead the writer outside the
tree (the file read would otherwise be the user's own, e.g. ``~/.ssh``, into an image).

With ``overlay`` the tree is an overlay upper directory and its markers become the layer
format's: a whiteout (a char 0/0 device, or a file with ``user.overlay.whiteout``) →
``.wh.NAME``; an opaque directory (``trusted.overlay.opaque``/``user.overlay.opaque`` = y, as the
kernel overlay and fuse-overlayfs mark them) → ``DIR/.wh..wh..opq``. Overlay-private xattrs are
never written; every other xattr is, ``security.capability`` included (PAX ``SCHILY.xattr``).

Entries are written in a stable order (each directory, then its names sorted bytewise) with no
user or group names and integer mtimes, so the same tree gives the same digest; ``timestamp`` sets
every mtime (``--timestamp``, ``SOURCE_DATE_EPOCH``) for reproducible layers. The tar is hashed
(diff_id), compressed and hashed again (digest) as it is produced: nothing is written twice and
memory is bounded by one chunk, whatever the layer's size.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile

from rootlet.registry.errors import UsageError
from rootlet.registry.record import Record

#: xattrs that belong to the overlay implementation, never to the layer.
PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.", "security.selinux")
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque")
WHITEOUT_XATTRS = ("trusted.overlay.whiteout", "user.overlay.whiteout")
COMPRESSIONS = ("gzip", "zstd", "none")
#: Compressed output is flushed in chunks of this size; tar data is fed to the compressor in chunks
#: at least this large (zlib is much faster on large buffers than on one call per header).
CHUNK = 1 << 20
#: gzip level 1: measured here on a 50 MB layer, zlib's level 1 compresses ~4× faster than its
#: default 6 for ~10 % more bytes, and ISA-L's level 1 (``deflate.py``) 5× faster again;
#: commit and push are interactive, so speed wins (podman's pgzip uses 6 on all cores).
GZIP_LEVEL = 1
ZSTD_LEVEL = 3

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class NewLayer(Record):
    """A layer blob made or received here, verified: ``digest``/``size`` of the file as it is,
    ``diff_id`` of its uncompressed tar (checked again when it is unpacked)."""

    path: str
    digest: str
    size: int
    compression: str
    diff_id: str
    tar_size: int = 0   # of the uncompressed tar (what the writer made; 0 when received)
    entries: int = 0    # tar members written


class LayerWriteOptions(Record):
    """``compression`` gzip|zstd|none; ``timestamp`` (seconds) replaces every mtime; ``overlay``
    translates overlay markers (an upper directory) rather than writing a plain tree;
    ``placeholders`` are paths (relative, no leading /) left out when they are empty regular files:
    the mount points a runtime created for its own bind mounts (``etc/resolv.conf``), which are
    not the container's changes."""

    compression: str = "gzip"
    timestamp: int | None = None
    overlay: bool = True
    placeholders: tuple[str, ...] = ()


def compressor(compression: str):  # type: ignore[no-untyped-def]
    """A streaming compressor (``compress``/``flush``) for "gzip" (level GZIP_LEVEL, reproducible
    header) or "zstd" (ZSTD_LEVEL); None for "none"."""
    if compression == "gzip":
        from rootlet.runtime.image.deflate import gzip_compressobj

        return gzip_compressobj(GZIP_LEVEL)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    return None


class _Sink:
    """Hashes the tar, compresses it, hashes and writes the result to *fd*."""

    def __init__(self, fd: int, compression: str, tee: int | None = None) -> None:
        self.fd = fd
        self.tee = tee
        self.tar_hash = hashlib.sha256()
        self.out_hash = hashlib.sha256()
        self.tar_size = 0
        self.out_size = 0
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.comp = compressor(compression)

    def write(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size >= CHUNK:
            self._feed()

    def _feed(self) -> None:
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_size = 0
        self.tar_hash.update(data)
        self.tar_size += len(data)
        if self.tee is not None:
            _write_all(self.tee, data)
        self._out(self.comp.compress(data) if self.comp is not None else data)

    def _out(self, data: bytes) -> None:
        if not data:
            return
        self.out_hash.update(data)
        self.out_size += len(data)
        _write_all(self.fd, data)

    def close(self) -> None:
        self._feed()
        if self.comp is not None:
            self._out(self.comp.flush())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Writer:
    def __init__(self, sink: _Sink, opts: LayerWriteOptions) -> None:
        self.sink = sink
        self.opts = opts
        self.links: dict[tuple[int, int], str] = {}
        self.entries = 0

    # -- entries ----------------------------------------------------------------------------
    def header(self, info: tarfile.TarInfo, xattrs: dict[str, bytes] | None = None) -> None:
        if xattrs:
            # Binary values survive as surrogate escapes: tarfile writes them back byte for byte
            # under ``hdrcharset=BINARY``, which is how Go's archive/tar reads them too.
            for key, value in sorted(xattrs.items()):
                info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
        self.entries += 1
        self.sink.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def entry(self, name: str, st: os.stat_result, kind: bytes, **extra: object) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = self.opts.timestamp if self.opts.timestamp is not None else int(st.st_mtime)
        for key, value in extra.items():
            setattr(info, key, value)
        return info

    def whiteout(self, name: str, st: os.stat_result) -> None:
        parent, _, base = name.rpartition("/")
        self.header(self.entry(f"{parent}/.wh.{base}" if parent else f".wh.{base}", st, tarfile.REGTYPE,
                               size=0, mode=0o644))

    def file(self, dir_fd: int, base: str, name: str, st: os.stat_result) -> None:
        try:
            fd = os.open(base, _OPEN_FLAGS, dir_fd=dir_fd)
        except OSError:
            return  # removed (or replaced by a symlink) since it was listed: a running container
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                first = self.links.get(key)
                if first is not None:
                    self.header(self.entry(name, st, tarfile.LNKTYPE, linkname=first, size=0))
                    return
                self.links[key] = name
            if st.st_size == 0 and name in self.opts.placeholders:
                return
            if self.opts.overlay and st.st_size == 0 and _has_any_xattr(fd, WHITEOUT_XATTRS):
                self.whiteout(name, st)
                return
            size = st.st_size
            self.header(self.entry(name, st, tarfile.REGTYPE, size=size), _xattrs(fd))
            left = size
            while left:
                chunk = os.read(fd, min(left, CHUNK))
                if not chunk:  # shrunk while being read: the header promised *size* bytes
                    chunk = bytes(min(left, CHUNK))
                self.sink.write(chunk)
                left -= len(chunk)
            if size % 512:
                self.sink.write(bytes(512 - size % 512))
        finally:
            os.close(fd)

    def directory(self, dir_fd: int, prefix: str) -> None:
        """Write the entries of the open directory *dir_fd* (whose path in the layer is *prefix*)."""
        with os.scandir(dir_fd) as it:
            names = sorted((e.name for e in it), key=os.fsencode)
        for base in names:
            name = f"{prefix}{base}"
            try:
                st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                self.subdirectory(dir_fd, base, name, st)
            elif stat.S_ISREG(mode):
                self.file(dir_fd, base, name, st)
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(base, dir_fd=dir_fd)
                except OSError:
                    continue
                self.header(self.entry(name, st, tarfile.SYMTYPE, linkname=target))
            elif stat.S_ISCHR(mode) and st.st_rdev == 0 and self.opts.overlay:
                self.whiteout(name, st)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                self.header(self.entry(name, st, kind, devmajor=os.major(st.st_rdev),
                                       devminor=os.minor(st.st_rdev)))
            elif stat.S_ISFIFO(mode):
                self.header(self.entry(name, st, tarfile.FIFOTYPE))
            # Sockets have no tar form; docker and podman leave them out too.

    def subdirectory(self, dir_fd: int, base: str, name: str, st: os.stat_result) -> None:
        try:
            fd = os.open(base, _OPEN_FLAGS | os.O_DIRECTORY, dir_fd=dir_fd)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            xattrs = _xattrs(fd)
            opaque = self.opts.overlay and _has_any_xattr(fd, OPAQUE_XATTRS)
            self.header(self.entry(name + "/", st, tarfile.DIRTYPE), xattrs)
            if opaque:
                self.header(self.entry(f"{name}/.wh..wh..opq", st, tarfile.REGTYPE, size=0, mode=0o644))
            self.directory(fd, name + "/")
        finally:
            os.close(fd)


def _has_any_xattr(fd: int, names: tuple[str, ...]) -> bool:
    for key in names:
        try:
            if os.getxattr(fd, key):
                return True
        except OSError:
            continue
    return False


def _xattrs(fd: int) -> dict[str, bytes]:
    try:
        keys = os.listxattr(fd)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for key in keys:
        if key.startswith(PRIVATE_XATTR_PREFIXES):
            continue
        try:
            out[key] = os.getxattr(fd, key)
        except OSError:
            continue
    return out


def write_layer(src_dir: str, out: str | int, opts: LayerWriteOptions = LayerWriteOptions(),
                tee: int | None = None) -> NewLayer:
    """Write the tree at *src_dir* as a layer to *out* (a path, created 0600 and fsynced, or an open
    descriptor, left open); returns what the layer is. *tee* also gets the uncompressed tar (a
    pipe to an applier that stores the layer in the same pass). Runs inside the user namespace."""
    if opts.compression not in COMPRESSIONS:
        raise UsageError(f"unknown compression {opts.compression!r}", "use gzip, zstd or none")
    root = os.open(src_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fd = out if isinstance(out, int) else os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        sink = _Sink(fd, opts.compression, tee)
        writer = _Writer(sink, opts)
        writer.directory(root, "")
        sink.write(bytes(1024))  # the tar's end: two zero blocks
        sink.close()
        if not isinstance(out, int):
            os.fsync(fd)
    finally:
        os.close(root)
        if not isinstance(out, int):
            os.close(fd)
    return NewLayer(path=out if isinstance(out, str) else "", digest="sha256:" + sink.out_hash.hexdigest(),
                    size=sink.out_size, compression=opts.compression,
                    diff_id="sha256:" + sink.tar_hash.hexdigest(), tar_size=sink.tar_size, entries=writer.entries)
