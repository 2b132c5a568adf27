"""``rootlet cp`` with a tar stream: ``cp CTR:SRC -`` writes one, ``cp - CTR:DST`` extracts one.

Both run where "/" is the container's root (``rootlet.runtime.container.cp`` enters its view
first), so nothing they do can reach the host's files; the stream is a pipe or file descriptor
given by the caller.

Writing reads the tree through directory descriptors with ``O_NOFOLLOW``: symlinks are stored
as symlinks, hardlinked files once and then as links, owners as the container sees them (docker's
choice; podman 4.3 writes the container user's ids on files instead).

Extracting treats every member as hostile, as podman does with the same rules where they are
safe: a name is taken relative to DST after cleaning (``/abs`` and ``../x`` land in DST, never
above it); the parent of each member is resolved with ``openat2(RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS)`` from the container's root, so symlinks (the container's or the
archive's own) are followed as a chroot follows them and can never lead outside the container's
root, nor through /proc's magic links; the leaf itself is never followed (``O_EXCL|O_NOFOLLOW``
creation, no-follow chown and utime). Device nodes cannot be created by a rootless user: they
are skipped and counted, and the caller says so. A directory is not replaced by a non-directory
nor the reverse unless ``overwrite`` (podman's ``--overwrite``). Owners are the container user's
(``owner``, podman's ``--archive``, the default) or the archive's own. xattrs are not restored.

Every import this module needs is done at load time (``preload``): inside a stopped container's
view ``import`` would search the container's own /usr/lib for extension modules.
"""

from __future__ import annotations

import bz2  # noqa: F401 - loaded before entering a container's view (see above)
import errno
import lzma  # noqa: F401
import os
import posixpath
import stat
import sys
import tarfile
import zlib

from rootlet.registry.errors import CopyError
from rootlet.runtime.container import cptree
from rootlet.runtime.image import tarstream
from rootlet.runtime.image.tarstream import TarFormatError, TarReader
from rootlet.runtime.linux import syscalls as linux

CHUNK = 1 << 20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_RESOLVE = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
#: A copy of a container's whole root leaves out what the runtime mounts there (podman's too).
ROOT_EXCLUDES = frozenset({"proc", "sys", "dev"})


def preload() -> None:
    """Import now what writing or extracting may need later (zstandard when installed), and run
    tarfile's header code and openat2 once, so that nothing is imported inside a container's view
    (where only ``sys.modules`` is looked at for zstandard)."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        pass
    tarfile.TarInfo("x").tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    zlib.decompressobj(wbits=47)
    root = os.open("/", _DIR)
    try:
        os.close(linux.openat2(root, ".", _DIR, _RESOLVE))
    except OSError:
        pass  # no openat2 here: the extractor walks without it
    finally:
        os.close(root)


# --- out: a tree → tar --------------------------------------------------------------------------

class _TarOut:
    """Writes headers and data to ``fd`` through a buffer of about CHUNK bytes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.links: dict[tuple[int, int], str] = {}

    def write(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        view = memoryview(self.buf)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as e:
            raise CopyError(f"writing the tar stream: {e.strerror}") from None
        finally:
            view.release()
        self.buf.clear()

    def header(self, name: str, st: os.stat_result, kind: bytes, **extra: object) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""  # never looked up: NSS would load the container's libraries
        info.mtime = int(st.st_mtime)  # whole seconds: no PAX record per entry for the fraction
        for key, value in extra.items():
            setattr(info, key, value)
        self.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def entry(self, dir_fd: int, base: str, name: str, depth: int) -> None:
        """Entry ``base`` of ``dir_fd`` as ``name`` (a directory with everything below it)."""
        try:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return  # gone since it was listed (a running container)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            if depth > 256:
                raise CopyError(f"directory tree too deep at {name!r}")
            fd = os.open(base, _DIR | os.O_NOFOLLOW, dir_fd=dir_fd)
            try:
                if name:
                    self.header(name + "/", os.fstat(fd), tarfile.DIRTYPE)
                with os.scandir(fd) as it:
                    names = sorted((e.name for e in it), key=os.fsencode)
                for child in names:
                    self.entry(fd, child, f"{name}/{child}" if name else child, depth + 1)
            finally:
                os.close(fd)
        elif stat.S_ISREG(mode):
            self.file(dir_fd, base, name)
        elif stat.S_ISLNK(mode):
            self.header(name, st, tarfile.SYMTYPE, linkname=os.readlink(base, dir_fd=dir_fd))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            self.header(name, st, tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE,
                        devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev))
        elif stat.S_ISFIFO(mode):
            self.header(name, st, tarfile.FIFOTYPE)
        # Sockets have no tar form (docker and podman leave them out too).

    def file(self, dir_fd: int, base: str, name: str) -> None:
        try:
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        try:
            st = os.fstat(fd)
            if st.st_nlink > 1:
                first = self.links.setdefault((st.st_dev, st.st_ino), name)
                if first != name:
                    self.header(name, st, tarfile.LNKTYPE, linkname=first)
                    return
            size = st.st_size
            self.header(name, st, tarfile.REGTYPE, size=size)
            left = size
            while left:
                chunk = os.read(fd, min(left, CHUNK)) or bytes(min(left, CHUNK))  # shrunk meanwhile: pad
                self.write(chunk)
                left -= len(chunk)
            if size % 512:
                self.write(bytes(512 - size % 512))
        finally:
            os.close(fd)


def write_tar(out_fd: int, parent_fd: int, leaf: str, name: str, contents: bool) -> None:
    """Write entry ``leaf`` of ``parent_fd`` as a tar to ``out_fd``: under ``name``, or with
    ``contents`` (``SRC/.`` or the root) the directory's entries alone, at the archive's top."""
    out = _TarOut(out_fd)
    try:
        if contents:
            fd = os.open(leaf, _DIR, dir_fd=parent_fd)
            try:
                root = os.fstat(fd)
                excludes = ROOT_EXCLUDES if os.path.samestat(root, os.stat("/")) else frozenset()
                with os.scandir(fd) as it:
                    for child in sorted((e.name for e in it), key=os.fsencode):
                        if child not in excludes:
                            out.entry(fd, child, child, 1)
            finally:
                os.close(fd)
        else:
            out.entry(parent_fd, leaf, name, 0)
        out.write(bytes(1024))  # the end of the archive: two zero blocks
        out.flush()
    except OSError as e:
        raise CopyError(f"reading the container's files: {e.strerror}" + (f": {e.filename}" if e.filename else "")) \
            from None


# --- in: tar → a directory ------------------------------------------------------------------------

def _reader(fd: int) -> TarReader:
    """A TarReader over ``fd``, decompressing gzip, bzip2, xz or zstd as podman's ``cp -`` does."""
    first = _read(fd)
    magic = {b"\x1f\x8b": "gzip", b"BZ": "bzip2", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
    kind = next((k for m, k in magic.items() if first.startswith(m)), None)
    if kind == "bzip2" and not first.startswith(b"BZh"):
        kind = None
    if kind is None:
        pending = [first]

        def plain() -> bytes:
            return pending.pop() if pending else _read(fd)
        return TarReader(plain, 1 << 20)
    if kind == "zstd":
        zstandard = sys.modules.get("zstandard")  # never imported here: see the module docstring
        if zstandard is None:
            raise CopyError("the tar stream is zstd-compressed and the zstandard module is missing",
                            "decompress it first: zstd -dc FILE | rootlet cp - CTR:DST")
        dec = zstandard.ZstdDecompressor().decompressobj()
    elif kind == "gzip":
        dec = zlib.decompressobj(wbits=47)
    else:
        dec = bz2.BZ2Decompressor() if kind == "bzip2" else lzma.LZMADecompressor()
    state = {"first": first}

    def decompressed() -> bytes:
        while True:
            raw = state.pop("first", None)
            if raw is None:
                raw = _read(fd)
            if not raw:
                return b""
            try:
                out = dec.decompress(raw)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as e:
                raise CopyError(f"the {kind} tar stream is corrupt: {e}") from None
            if out:
                return out
    return TarReader(decompressed, 1 << 20)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, CHUNK)
    except OSError as e:
        raise CopyError(f"reading the tar stream: {e.strerror}") from None


def clean_name(raw: str) -> str:
    """A member's path relative to the destination: leading "/" and ".." cannot climb above it."""
    return posixpath.normpath("/" + raw).lstrip("/")


class Extractor:
    """Extracts members below ``dest`` (a path in the view, a directory) as the module says."""

    def __init__(self, dest: str, owner: tuple[int, int] | None, overwrite: bool) -> None:
        self.root_fd = os.open("/", _DIR)
        self.dest = posixpath.normpath("/" + dest).lstrip("/")
        self.owner = owner
        self.overwrite = overwrite
        self.devices: list[str] = []
        self.dirs: list[tuple[str, int, int, int, int]] = []  # (path, mode, mtime_ns, uid, gid)
        try:
            os.close(self._resolve(""))
        except (FileNotFoundError, NotADirectoryError):
            os.close(self.root_fd)
            raise CopyError("destination must be a directory when copying from stdin",
                            f"{dest} is not a directory in the container: create it first") from None

    def _resolve(self, rel: str) -> int:
        """An fd of directory DEST/``rel``, resolved as in a chroot (see the module docstring)."""
        path = posixpath.join(self.dest, rel) if rel else self.dest
        try:
            return linux.openat2(self.root_fd, path or ".", _DIR, _RESOLVE)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM):
                raise
        fd = os.dup(self.root_fd)  # no openat2: walk with O_NOFOLLOW, a symlink stops the copy
        try:
            for comp in filter(None, path.split("/")):
                try:
                    nfd = os.open(comp, _DIR | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as e:
                    if e.errno == errno.ELOOP:
                        raise CopyError(f"{path} goes through the symlink {comp!r}, which this kernel cannot "
                                        "follow safely (no openat2)") from None
                    raise
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, rel: str) -> int:
        """The directory DEST/``rel``, creating what is missing of it (owned like the members)."""
        try:
            return self._resolve(rel)
        except FileNotFoundError:
            pass
        done = ""
        fd = self._resolve("")
        try:
            for comp in rel.split("/"):
                done = posixpath.join(done, comp)
                try:
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    if self.owner is not None:
                        os.chown(comp, *self.owner, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
                os.close(fd)
                fd = -1
                fd = self._resolve(done)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        return fd

    def _make_room(self, pfd: int, leaf: str, name: str, is_dir: bool) -> bool:
        """Clear the way for a new ``leaf``; True when a directory is already there to keep."""
        try:
            st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode) == is_dir:
            if is_dir:
                return True
            os.unlink(leaf, dir_fd=pfd)
            return False
        if not self.overwrite:
            what = "a directory with a non-directory" if stat.S_ISDIR(st.st_mode) else \
                "a non-directory with a directory"
            raise CopyError(f"cannot overwrite {what}: {name}",
                            "--overwrite replaces one by the other, as podman's does")
        cptree.remove_entry(pfd, leaf)
        return False

    def _chown(self, name: str, uid: int, gid: int, fd: int | None = None, at: tuple[int, str] | None = None) -> None:
        uid, gid = self.owner or (uid, gid)
        try:
            if fd is not None:
                os.fchown(fd, uid, gid)
            else:
                assert at is not None
                os.chown(at[1], uid, gid, dir_fd=at[0], follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM) or self.owner is not None:
                raise
            raise CopyError(f"cannot give {name} its owner {uid}:{gid} from the archive: the container's user "
                            "namespace has no such id", "copy without --archive=false: the files then belong to "
                            "the container's user") from None

    def member(self, m: tarstream.TarMember, reader: TarReader) -> None:
        name = clean_name(m.name)
        if not name:
            return  # "./": DEST itself keeps its owner and mode
        if m.type in (tarstream.CHRTYPE, tarstream.BLKTYPE):
            self.devices.append(name)
            return
        parent, _, leaf = name.rpartition("/")
        pfd = self._parent(parent)
        try:
            self._create(pfd, leaf, name, m, reader)
        finally:
            os.close(pfd)

    def _create(self, pfd: int, leaf: str, name: str, m: tarstream.TarMember, reader: TarReader) -> None:
        mode, mtime = m.mode & 0o7777, m.mtime_ns
        if m.type == tarstream.DIRTYPE:
            if not self._make_room(pfd, leaf, name, True):
                os.mkdir(leaf, 0o700, dir_fd=pfd)
            self.dirs.append((name, mode, mtime, m.uid, m.gid))
            return
        self._make_room(pfd, leaf, name, False)
        if m.type in tarstream.REGULAR_TYPES:
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
            try:
                left = m.size
                while left > 0:
                    view = reader.read_data(left)
                    left -= len(view)
                    while view:
                        view = view[os.write(fd, view):]
                self._chown(name, m.uid, m.gid, fd=fd)
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
            return
        if m.type == tarstream.SYMTYPE:
            os.symlink(m.linkname, leaf, dir_fd=pfd)
        elif m.type == tarstream.LNKTYPE:
            target = clean_name(m.linkname)
            tparent, _, tleaf = target.rpartition("/")
            try:
                tfd = self._resolve(tparent)
            except (FileNotFoundError, NotADirectoryError):
                raise CopyError(f"hardlink {name} -> {m.linkname}: no such file in the destination") from None
            try:
                os.link(tleaf, leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                raise CopyError(f"hardlink {name} -> {m.linkname}: no such file in the destination") from None
            finally:
                os.close(tfd)
            return  # the link shares its target's inode and metadata
        elif m.type == tarstream.FIFOTYPE:
            os.mkfifo(leaf, 0o600, dir_fd=pfd)
        else:
            raise CopyError(f"{name}: unsupported tar entry type {m.type!r}")
        self._chown(name, m.uid, m.gid, at=(pfd, leaf))
        if m.type == tarstream.FIFOTYPE:
            os.chmod(leaf, mode, dir_fd=pfd)  # a fifo just made, not a symlink: chmod follows nothing
        os.utime(leaf, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Owners, modes and mtimes of the directories, deepest first (a read-only one would
        otherwise have refused its own entries)."""
        for name, mode, mtime, uid, gid in sorted(self.dirs, key=lambda d: d[0].count("/"), reverse=True):
            parent, _, leaf = name.rpartition("/")
            try:
                pfd = self._resolve(parent)
                fd = os.open(leaf, _DIR | os.O_NOFOLLOW, dir_fd=pfd)
            except OSError:
                continue  # replaced by a non-directory later in the archive
            try:
                os.close(pfd)
                self._chown(name, uid, gid, fd=fd)
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)

    def close(self) -> None:
        os.close(self.root_fd)


def extract_tar(in_fd: int, dest: str, owner: tuple[int, int] | None, overwrite: bool) -> list[str]:
    """Extract the tar stream on ``in_fd`` into directory ``dest`` of the view; returns the device
    members skipped."""
    ex = Extractor(dest, owner, overwrite)
    name = ""
    try:
        reader = _reader(in_fd)
        while (m := reader.next()) is not None:
            name = m.name
            ex.member(m, reader)
        ex.finish()
    except TarFormatError as e:
        raise CopyError(f"the tar stream is not valid: {e}" + (f" (after {name!r})" if name else "")) from None
    except OSError as e:
        raise CopyError(f"copying to the container: {name}: {e.strerror}") from None
    finally:
        ex.close()
    return ex.devices
