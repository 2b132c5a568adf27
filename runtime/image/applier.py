"""Apply one OCI layer tar to a directory, treating every byte of it as hostile.

A layer blob is untrusted input: its names may climb out with ``..``, its symlinks may point
anywhere on the host, its hardlinks may name host files, its headers may be gigantic and its
compressed stream may be a decompression bomb. ``tarfile.extractall`` (with or without filters)
is not used: filters reject the absolute symlinks real images need, and they have been bypassed
several times. Instead this module reads headers with the bounded streaming parser of
:mod:`rootlet.runtime.image.tarstream` (tarfile's generic machinery was most of the applier's time) and
performs every file operation itself, relative to directory file descriptors:

* the parent directory of each entry is resolved with ``openat2(RESOLVE_IN_ROOT)``, so symlinks
  inside the layer are followed the way a chroot would follow them (docker applies layers in a
  chroot) and can never lead outside the layer directory;
* the leaf is only ever touched with no-follow semantics (``O_EXCL|O_NOFOLLOW`` creation,
  ``AT_SYMLINK_NOFOLLOW`` chown/utime, chmod through an fd opened ``O_NOFOLLOW``), so nothing
  is ever written, chmodded or chowned through a symlink.

Whiteouts are stored the way both the kernel overlay (``userxattr``) and fuse-overlayfs read
them: a char 0/0 device per deleted name and ``user.overlay.opaque=y`` on opaque directories.

A whiteout hides only entries of LOWER layers (OCI image-spec layer.md, "Whiteouts"); an entry of
the same layer stays, whether it comes before or after the whiteout in the tar. The layer is
applied in one pass with no list of names: the layer directory starts empty, so whatever a
whiteout finds at its name was written by this layer (device members are skipped, so every char
0/0 in it is a whiteout). Hence:

* ``.wh.NAME`` with nothing at NAME becomes a char 0/0; over a directory of this layer it marks
  that directory opaque (its entries stay, the lower layers' are hidden); over any other entry,
  or an earlier whiteout, it does nothing, as that entry already hides the lower NAME;
* an entry that comes after a whiteout replaces the char 0/0; a directory that replaces a
  non-directory (a whiteout, or a file of this layer, which replaced the lower directory) is
  made opaque, and so is a parent directory implied in place of a whiteout;
* ``.wh..wh..opq`` marks its directory opaque, which hides only the lower layers' entries.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass

from rootlet.registry.errors import LayerError, StoreError
from rootlet.runtime.image import tarstream
from rootlet.runtime.image.decompress import LayerSource, PrefetchingSource, open_layer, open_layer_stream
from rootlet.runtime.image.tarstream import TarFormatError, TarMember, TarReader
from rootlet.runtime.linux import syscalls as linux

__all__ = ["ApplyOptions", "ApplyResult", "apply_layer", "fix_implied", "open_layer_stream"]

_MAX_META_HEADER = 1 << 20
"""Largest PAX or GNU longname/longlink record we read into memory (real ones are < 4 KiB);
also the limit for all the records before one member, and for all global PAX records."""

_BOMB_FLOOR = 1 << 30
"""Below this many uncompressed bytes the ratio guard never fires (small, well-compressed
layers such as a tar of zeros are legitimate)."""

_MAX_FD_CACHE = 64
"""Parent directory fds kept open between entries (entries arrive grouped by directory)."""

_RESOLVE = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS | linux.RESOLVE_NO_XDEV
_O_DIRPATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC

_OPENAT2: bool | None = None
"""Whether openat2 works here; probed on first use (None). Tests may force False to exercise
the component-walk fallback."""

# Errnos that say the machine, not the layer, is at fault: reported as StoreError.
_ENV_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EMFILE,
                         errno.ENFILE, errno.ENOMEM})

# xattr names a layer may not set: they steer the overlay (whiteouts, redirects, origin) or the
# ownership reported by fuse-overlayfs/containers-storage.
_DROP_XATTR_PREFIXES = ("trusted.", "user.overlay.", "user.fuseoverlayfs.")
_DROP_XATTR_NAMES = frozenset({"user.containers.override_stat"})
_CAPABILITY_XATTR = "security.capability"
_XATTR_NOT_PERMITTED = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP})

_WH_PREFIX = ".wh."
_WH_META_PREFIX = ".wh..wh."
_WH_OPAQUE = ".wh..wh..opq"

_REGULAR_TYPES = tarstream.REGULAR_TYPES
_DEVICE_TYPES = frozenset({tarstream.CHRTYPE, tarstream.BLKTYPE})


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply a layer.

    single_id: only one id is mapped (no subuid range, or a non-root user outside any user
        namespace); chown failures (EPERM/EINVAL) are then ignored, otherwise they are errors.
    privileged_xattrs: running as real root on the host; opaque directories also get
        ``trusted.overlay.opaque=y`` (the kernel overlay without ``userxattr`` reads that one).
    lower_dirs: diff directories of the layers below, topmost first; parent directories this
        layer implies without listing them take their mode and owner from there.
    lowers_pending: the layer has lower layers that are not unpacked yet (a pull unpacks layers
        in parallel): implied parent directories get the defaults now and are listed in
        ``ApplyResult.implied``; ``fix_implied`` gives them the lower layers' metadata once those
        are in place, with the same result as applying on top of them.
    max_ratio: decompression-bomb guard: abort when the uncompressed stream exceeds 1 GiB
        and max_ratio times the compressed size.
    max_bytes: absolute cap on uncompressed bytes (None: only the ratio guard).
    """

    single_id: bool = False
    privileged_xattrs: bool = False
    lower_dirs: tuple[str, ...] = ()
    lowers_pending: bool = False
    max_ratio: int = 1000
    max_bytes: int | None = None


@dataclass(frozen=True)
class ApplyResult:
    """What applying a layer produced.

    diff_id: ``sha256:<hex>`` of the whole uncompressed tar stream (every byte to EOF).
    size: uncompressed bytes. entries: tar members processed. skipped_devices: char/block
    device members not created (a user namespace cannot). dropped_xattrs: xattrs refused
    because they would steer the overlay or ownership. failed_xattrs: security.capability
    xattrs the kernel did not let us set (unprivileged). implied: with ``lowers_pending``, the
    implied parent directories whose metadata must come from the lower layers (``fix_implied``).
    """

    diff_id: str
    size: int
    entries: int
    skipped_devices: int
    dropped_xattrs: int = 0
    failed_xattrs: int = 0
    implied: tuple[str, ...] = ()


def _have_openat2(probe_fd: int) -> bool:
    """Whether openat2 works (kernel ≥ 5.6 and no seccomp filter refusing it); probed once."""
    global _OPENAT2
    if _OPENAT2 is None:
        try:
            os.close(linux.openat2(probe_fd, ".", _O_DIRPATH, _RESOLVE))
            _OPENAT2 = True
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            _OPENAT2 = False
    return _OPENAT2


def _open_dir_in_root(root_fd: int, rel: str) -> int:
    """An O_PATH fd of directory *rel* resolved as if *root_fd* were ``/`` (chroot semantics).

    Without openat2, walks component by component with O_NOFOLLOW and refuses any symlink.
    Raises OSError (ENOENT, ENOTDIR, ELOOP, …) like os.open.
    """
    if _have_openat2(root_fd):
        return linux.openat2(root_fd, rel, _O_DIRPATH, _RESOLVE)
    fd = os.open(".", _O_DIRPATH, dir_fd=root_fd)
    try:
        for comp in rel.split("/"):
            try:
                nfd = os.open(comp, _O_DIRPATH | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    try:
                        st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        raise e from None
                    if stat.S_ISLNK(st.st_mode):
                        raise LayerError(
                            f"path {rel!r} goes through a symlink ({comp!r}) and openat2 is "
                            "unavailable to follow it safely") from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _normalize(raw: str, what: str) -> str:
    """The in-layer path of a tar name: no leading "/" or "./"; "" is the layer root.

    A name that climbs out of the root with ".." is refused, not clamped.
    """
    name = raw.lstrip("/")
    if not name:
        return ""
    name = posixpath.normpath(name)
    if name == ".":
        return ""
    if name == ".." or name.startswith("../"):
        raise LayerError(f"{what} {raw!r} escapes the layer root")
    return name


class _Applier:
    """The state of one layer application: the root fd, cached parent fds, deferred metadata."""

    def __init__(self, dest: str, opts: ApplyOptions) -> None:
        self.opts = opts
        self.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # Directory modes are deferred, so no directory we create is setgid while we extract
        # unless the root is: then everything we create is owned by our own ids and chown
        # can be skipped for fresh entries that want exactly those (the common case: 0:0 as
        # root or as container root).
        self._own_ids: tuple[int, int] | None = (
            None if os.fstat(self.root_fd).st_mode & stat.S_ISGID else (os.geteuid(), os.getegid()))
        self._cache: dict[str, int] = {}
        self._stale = False
        # path -> (mode, mtime_ns or None): directory modes and mtimes, applied at the end so
        # restrictive modes do not block extraction and later entries do not bump mtimes.
        self._dirs: dict[str, tuple[int, int | None]] = {}
        self._lower_fds: dict[str, int | None] = {}
        # With lowers_pending: implied parents still to take the lower layers' metadata.
        self.implied: dict[str, None] = {}
        self.skipped_devices = 0
        self.dropped_xattrs = 0
        self.failed_xattrs = 0

    def close(self) -> None:
        """Close every fd this applier opened."""
        self._drop_cache()
        for fd in self._lower_fds.values():
            if fd is not None:
                os.close(fd)
        self._lower_fds.clear()
        os.close(self.root_fd)

    def _drop_cache(self) -> None:
        """Close the cached parent fds (after a removal they may name stale directories)."""
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()
        self._stale = False

    # -- entries ---------------------------------------------------------------------------

    def apply(self, m: TarMember, reader: TarReader) -> None:
        """Apply one tar member; *reader* is positioned at its data."""
        if self._stale or len(self._cache) >= _MAX_FD_CACHE:
            self._drop_cache()
        type_ = m.type
        if type_ in _DEVICE_TYPES:
            self.skipped_devices += 1
            return
        name = _normalize(m.name, "entry")
        if name == "":
            if type_ != tarstream.DIRTYPE:
                raise LayerError(f"entry {m.name!r} names the layer root but is not a directory")
            self._root_metadata(m)
            return
        parent, _, leaf = name.rpartition("/")
        if leaf.startswith(_WH_PREFIX):
            self._whiteout(parent, leaf, name)
            return
        if type_ in _REGULAR_TYPES:
            self._regular(self._parent(parent), leaf, name, m, reader)
        elif type_ == tarstream.DIRTYPE:
            self._directory(self._parent(parent), leaf, name, m)
        elif type_ == tarstream.SYMTYPE:
            self._symlink(self._parent(parent), leaf, name, m)
        elif type_ == tarstream.LNKTYPE:
            self._hardlink(parent, leaf, name, m)
        elif type_ == tarstream.FIFOTYPE:
            self._fifo(self._parent(parent), leaf, name, m)
        else:
            raise LayerError(f"entry {m.name!r} has unsupported tar type {type_!r}")

    def _root_metadata(self, m: TarMember) -> None:
        """The "./" entry: owner and xattrs now, mode and mtime at the end."""
        self._chown_fd(self.root_fd, m, "/")
        self._set_xattrs(self.root_fd, m)
        self._dirs[""] = (m.mode & 0o7777, m.mtime_ns)

    def _directory(self, pfd: int, leaf: str, name: str, m: TarMember) -> None:
        """mkdir, or keep an existing directory (dir over dir updates metadata only).

        A directory that replaces a non-directory of this layer is opaque: that entry (a whiteout,
        or a file, symlink, … that replaced the lower layers' NAME) hid whatever lower layers hold
        at NAME, so the new directory must not merge with their directory of that name.
        """
        fresh = True
        replaced = False
        try:
            os.mkdir(leaf, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                fresh = False
                self.implied.pop(name, None)  # the entry's own metadata, not the lower layer's
            else:
                self._remove(pfd, leaf, name)
                os.mkdir(leaf, 0o700, dir_fd=pfd)
                replaced = True
        if not (fresh and (m.uid, m.gid) == self._own_ids):
            self._chown_at(pfd, leaf, m, name)
        if replaced:
            self._mark_opaque(pfd, leaf)
        xattrs = self._xattrs(m)
        if xattrs:
            fd = os.open(leaf, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                self._apply_xattrs(fd, xattrs, name)
            finally:
                os.close(fd)
        self._dirs[name] = (m.mode & 0o7777, m.mtime_ns)

    def _regular(self, pfd: int, leaf: str, name: str, m: TarMember, reader: TarReader) -> None:
        """Create with O_EXCL|O_NOFOLLOW (replacing whatever was there), stream the data in."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(leaf, flags, 0o600, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, leaf, name)
            fd = os.open(leaf, flags, 0o600, dir_fd=pfd)
        try:
            remaining = m.size
            read, write = reader.read_data, os.write
            while remaining > 0:
                view = read(remaining)  # a slice of the current chunk, no copy; never empty
                remaining -= len(view)
                done = write(fd, view)
                while done < len(view):  # short writes: only on odd filesystems
                    view = view[done:]
                    done = write(fd, view)
            # Order matters: chown clears setuid/setgid and security.capability; user.* xattrs
            # need write permission, which the final mode may not grant.
            if (m.uid, m.gid) != self._own_ids:
                self._chown_fd(fd, m, name)
            self._set_xattrs(fd, m)
            os.fchmod(fd, m.mode & 0o7777)
            mt = m.mtime_ns
            os.utime(fd, ns=(mt, mt))
        finally:
            os.close(fd)

    def _symlink(self, pfd: int, leaf: str, name: str, m: TarMember) -> None:
        """Create the link verbatim (absolute targets are fine: we never follow them)."""
        try:
            os.symlink(m.linkname, leaf, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, leaf, name)
            os.symlink(m.linkname, leaf, dir_fd=pfd)
        if (m.uid, m.gid) != self._own_ids:
            self._chown_at(pfd, leaf, m, name)
        mt = m.mtime_ns
        os.utime(leaf, ns=(mt, mt), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, parent: str, leaf: str, name: str, m: TarMember) -> None:
        """Link the inode of an entry already extracted in this layer (never a host file).

        The link's own header metadata is not applied: it would rewrite the shared inode,
        and the target entry already carried it.
        """
        target = _normalize(m.linkname, f"hardlink {m.name!r} ->")
        if target == "":
            raise LayerError(f"hardlink {m.name!r} points at the layer root")
        tparent, _, tleaf = target.rpartition("/")
        if tleaf.startswith(_WH_PREFIX):
            raise LayerError(f"hardlink {m.name!r} points at whiteout {m.linkname!r}")
        try:
            tpfd = self._parent(tparent, create=False)
        except FileNotFoundError:
            raise LayerError(f"hardlink {m.name!r} -> {m.linkname!r}: target is not in this layer") from None
        if target == name:
            return
        pfd = self._parent(parent)
        try:
            os.link(tleaf, leaf, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            self._remove(pfd, leaf, name)
            try:
                os.link(tleaf, leaf, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(f"hardlink {m.name!r} -> {m.linkname!r}: target is not in this layer") from None
        except FileNotFoundError:
            raise LayerError(f"hardlink {m.name!r} -> {m.linkname!r}: target is not in this layer") from None

    def _fifo(self, pfd: int, leaf: str, name: str, m: TarMember) -> None:
        """mkfifo, then owner, mode and mtime through a non-blocking O_NOFOLLOW fd."""
        try:
            os.mknod(leaf, stat.S_IFIFO | 0o600, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, leaf, name)
            os.mknod(leaf, stat.S_IFIFO | 0o600, dir_fd=pfd)
        fd = os.open(leaf, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            self._chown_fd(fd, m, name)
            os.fchmod(fd, m.mode & 0o7777)
            mt = m.mtime_ns
            os.utime(fd, ns=(mt, mt))
        finally:
            os.close(fd)

    def _whiteout(self, parent: str, leaf: str, name: str) -> None:
        """Hide NAME (``.wh.NAME``) or the parent's entries (``.wh..wh..opq``) of LOWER layers.

        ``.wh..wh..opq`` marks the parent opaque. ``.wh.NAME`` becomes a char 0/0 at NAME, unless
        this layer already wrote NAME (see the module docstring): a directory of this layer is
        made opaque and kept, anything else is kept as it is. Entries of this layer are never
        removed by a whiteout, so the result does not depend on the order of the tar.
        """
        if leaf == _WH_OPAQUE:
            self._mark_opaque(self._parent(parent), ".")
            return
        if leaf.startswith(_WH_META_PREFIX):
            return  # .wh..wh.plnk and friends: aufs bookkeeping, meaningless here
        target = leaf[len(_WH_PREFIX):]
        if target in ("", ".", ".."):
            raise LayerError(f"whiteout {name!r} does not name an entry")
        pfd = self._parent(parent)
        try:
            st = os.stat(target, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            # NAME is this layer's: a directory keeps its entries and hides the lower ones; any
            # other entry (or an earlier whiteout) hides the lower NAME already. lstat: a
            # symlink is kept as it is, never followed.
            if stat.S_ISDIR(st.st_mode):
                self._mark_opaque(pfd, target)
            return
        try:
            os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        except PermissionError as e:
            raise LayerError(
                f"cannot create whiteout for {name!r}: {e.strerror}",
                hint="char 0/0 whiteouts need Linux 5.8 or later for unprivileged users") from None

    def _mark_opaque(self, pfd: int, leaf: str) -> None:
        """Mark directory *leaf* of *pfd* ("." for *pfd* itself) opaque: the overlay then hides
        the lower layers' entries of it. Opened O_NOFOLLOW: never a symlink's target."""
        fd = os.open(leaf, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            os.setxattr(fd, "user.overlay.opaque", b"y")
            if self.opts.privileged_xattrs:
                os.setxattr(fd, "trusted.overlay.opaque", b"y")
        finally:
            os.close(fd)

    # -- helpers ---------------------------------------------------------------------------

    def _parent(self, parent: str, create: bool = True) -> int:
        """An O_PATH fd of in-layer directory *parent*, creating implied parents if asked.

        The fd belongs to the cache: callers must not close it.
        """
        if parent == "":
            return self.root_fd
        fd = self._cache.get(parent)
        if fd is not None:
            return fd
        try:
            fd = _open_dir_in_root(self.root_fd, parent)
        except (FileNotFoundError, NotADirectoryError):
            # ENOTDIR: a component may be a whiteout of this layer, which an implied parent
            # replaces; _make_parents raises it again for anything else in the way.
            if not create:
                raise
            fd = self._make_parents(parent)
        self._cache[parent] = fd
        return fd

    def _make_parents(self, parent: str) -> int:
        """Create the missing directories of *parent* (implied parents); return its fd.

        A component that is a whiteout of this layer is replaced by an opaque directory: the
        layer hid the lower NAME and then put entries under NAME (OCI: those stay). Below an
        opaque directory of this layer, implied parents take the defaults, not the metadata of
        lower directories the layer hides.
        """
        comps = parent.split("/")
        fd = os.open(".", _O_DIRPATH, dir_fd=self.root_fd)
        lower_visible = bool(self.opts.lower_dirs) or self.opts.lowers_pending
        try:
            for i, comp in enumerate(comps):
                prefix = "/".join(comps[: i + 1])
                try:
                    nfd = _open_dir_in_root(self.root_fd, prefix)
                except FileNotFoundError:
                    try:
                        os.mkdir(comp, 0o700, dir_fd=fd)
                    except FileExistsError:
                        raise LayerError(
                            f"parent directory {prefix!r} is a dangling symlink") from None
                    self._implied_metadata(fd, comp, prefix, lower_visible)
                    nfd = os.open(comp, _O_DIRPATH | os.O_NOFOLLOW, dir_fd=fd)
                except NotADirectoryError:
                    if not self._is_whiteout(fd, comp):
                        raise  # a file, or a symlink to one, is in the way: the layer is wrong
                    os.unlink(comp, dir_fd=fd)
                    os.mkdir(comp, 0o700, dir_fd=fd)
                    lower_visible = False
                    self._implied_metadata(fd, comp, prefix, lower_visible)
                    self._mark_opaque(fd, comp)
                    nfd = os.open(comp, _O_DIRPATH | os.O_NOFOLLOW, dir_fd=fd)
                else:
                    if lower_visible and self._is_opaque(nfd):
                        lower_visible = False
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _is_whiteout(pfd: int, leaf: str) -> bool:
        """Whether *leaf* in *pfd* is a char 0/0, which in a layer directory is always a whiteout
        this layer wrote (device members are never created)."""
        try:
            st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0

    def _implied_metadata(self, pfd: int, leaf: str, path: str, lower_visible: bool) -> None:
        """Give implied parent *path* the lower layer's owner/mode/mtime, else root:root 0755.

        *lower_visible* False: this layer hides the lower *path* (a whiteout or opaque directory
        of this layer above or at it), so its metadata must not leak into the new directory.
        """
        mode, uid, gid, mtime = 0o755, 0, 0, None
        if lower_visible and self.opts.lowers_pending:
            self.implied[path] = None  # the defaults for now; fix_implied looks below later
            lower_visible = False
        found = self._lower_dir_stat(path) if lower_visible else None
        if found is not None:
            mode, uid, gid, mtime = stat.S_IMODE(found.st_mode), found.st_uid, found.st_gid, found.st_mtime_ns
        if (uid, gid) != self._own_ids:
            self._chown(lambda: os.chown(leaf, uid, gid, dir_fd=pfd, follow_symlinks=False), uid, gid, path)
        self._dirs[path] = (mode, mtime)

    def _lower_dir_stat(self, path: str) -> os.stat_result | None:
        """lstat of *path* in the topmost lower layer that has it, if it is a directory there.

        Each lower is resolved in-root, like the layer itself, so a symlink in a lower layer
        cannot lead outside it. A lower that has the path as a non-directory (or a whiteout),
        or whose parent of it is opaque, hides the layers below: None then.
        """
        parent, _, leaf = path.rpartition("/")
        for lower in self.opts.lower_dirs:
            lfd = self._lower_fd(lower)
            if lfd is None:
                continue
            try:
                pfd = lfd if parent == "" else _open_dir_in_root(lfd, parent)
            except (OSError, LayerError):
                continue
            try:
                try:
                    st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    if self._is_opaque(pfd):
                        return None
                    continue
                except OSError:
                    continue
                return st if stat.S_ISDIR(st.st_mode) else None
            finally:
                if pfd != lfd:
                    os.close(pfd)
        return None

    @staticmethod
    def _is_opaque(pfd: int) -> bool:
        """Whether the directory at O_PATH fd *pfd* carries an overlay opaque xattr."""
        try:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        except OSError:
            return False
        try:
            for xname in ("user.overlay.opaque", "trusted.overlay.opaque"):
                try:
                    if os.getxattr(fd, xname) == b"y":
                        return True
                except OSError:
                    pass
            return False
        finally:
            os.close(fd)

    def _lower_fd(self, lower: str) -> int | None:
        """A cached O_PATH fd of lower diff dir *lower* (None if it cannot be opened)."""
        if lower not in self._lower_fds:
            try:
                self._lower_fds[lower] = os.open(lower, _O_DIRPATH)
            except OSError:
                self._lower_fds[lower] = None
        return self._lower_fds[lower]

    def _remove(self, pfd: int, leaf: str, name: str) -> None:
        """Remove whatever is at *leaf* (a whole subtree for a directory), never following."""
        st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(leaf, dir_fd=pfd)
            prefix = name + "/"
            for key in [k for k in self._dirs if k == name or k.startswith(prefix)]:
                del self._dirs[key]
            for key in [k for k in self.implied if k == name or k.startswith(prefix)]:
                del self.implied[key]
            self._stale = True
        else:
            os.unlink(leaf, dir_fd=pfd)
            if stat.S_ISLNK(st.st_mode):
                self._stale = True

    def _chown(self, op: object, uid: int, gid: int, name: str) -> None:
        """Run chown operation *op*; in single-id mode EPERM/EINVAL are expected and ignored."""
        try:
            op()  # type: ignore[operator]
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EINVAL):
                raise
            if not self.opts.single_id:
                raise LayerError(
                    f"cannot give entry {name!r} owner {uid}:{gid}: {e.strerror}",
                    hint="apply layers inside a user namespace with a subuid range, "
                         "or in single-id mode") from None

    def _chown_fd(self, fd: int, m: TarMember, name: str) -> None:
        """fchown an fd we opened ourselves to the member's uid:gid."""
        self._chown(lambda: os.fchown(fd, m.uid, m.gid), m.uid, m.gid, name)

    def _chown_at(self, pfd: int, leaf: str, m: TarMember, name: str) -> None:
        """lchown *leaf* in *pfd* (symlinks themselves, never their targets)."""
        self._chown(lambda: os.chown(leaf, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False),
                    m.uid, m.gid, name)

    def _xattrs(self, m: TarMember) -> list[tuple[str, bytes]]:
        """The member's xattr records a layer may set (others are dropped and counted)."""
        if not m.xattrs:
            return []
        out: list[tuple[str, bytes]] = []
        for xname, value in m.xattrs.items():
            if (xname.startswith(_DROP_XATTR_PREFIXES) or xname in _DROP_XATTR_NAMES
                    or (xname.startswith("security.") and xname != _CAPABILITY_XATTR)):
                self.dropped_xattrs += 1
                continue
            out.append((xname, value))
        return out

    def _set_xattrs(self, fd: int, m: TarMember) -> None:
        """Set the member's permitted xattrs on *fd*."""
        xattrs = self._xattrs(m)
        if xattrs:
            self._apply_xattrs(fd, xattrs, m.name)

    def _apply_xattrs(self, fd: int, xattrs: list[tuple[str, bytes]], name: str) -> None:
        """Set xattrs on an fd we opened O_NOFOLLOW; an unsettable file capability is counted."""
        for xname, value in xattrs:
            try:
                os.setxattr(fd, xname, value)
            except OSError as e:
                if xname == _CAPABILITY_XATTR and e.errno in _XATTR_NOT_PERMITTED:
                    self.failed_xattrs += 1
                    continue
                raise LayerError(f"entry {name!r}: cannot set xattr {xname!r}: {e.strerror}") from None

    def finish(self) -> None:
        """Apply deferred directory modes and mtimes, deepest first."""
        self._drop_cache()
        for path in sorted(self._dirs, key=lambda p: p.count("/") + (p != ""), reverse=True):
            mode, mtime = self._dirs[path]
            if path == "":
                self._finish_dir(self.root_fd, mode, mtime)
                continue
            fd = self.open_dir(path)
            if fd is None:
                continue  # replaced later in the layer by a non-directory
            try:
                self._finish_dir(fd, mode, mtime)
            finally:
                os.close(fd)
            if len(self._cache) >= _MAX_FD_CACHE:
                self._drop_cache()
        self._drop_cache()

    def open_dir(self, path: str) -> int | None:
        """A read fd of the layer's directory *path* (parents resolved in the layer's root, the
        leaf opened O_NOFOLLOW), or None when there is no directory at *path* any more."""
        parent, _, leaf = path.rpartition("/")
        try:
            pfd = self._parent(parent, create=False)
            return os.open(leaf, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise

    @staticmethod
    def _finish_dir(fd: int, mode: int, mtime: int | None) -> None:
        """Final mode (after chown, so setgid sticks) and mtime of one directory."""
        os.fchmod(fd, mode)
        if mtime is not None:
            os.utime(fd, ns=(mtime, mtime))


def fix_implied(dest: str, implied: tuple[str, ...], opts: ApplyOptions) -> None:
    """Give the implied parent directories *implied* of the layer in *dest* (applied with
    ``lowers_pending``) the owner, mode and mtime of the same directory in ``opts.lower_dirs``,
    now that those are in place: the result is what applying on top of them gives.

    Each path is resolved in the layer's root and opened ``O_NOFOLLOW``, so nothing outside the
    layer is touched; a path that is no directory any more is skipped.
    """
    applier = _Applier(dest, opts)
    try:
        for path in sorted(implied, key=lambda p: p.count("/"), reverse=True):
            found = applier._lower_dir_stat(path)
            if found is None:
                continue  # no lower directory: the defaults it has are right
            try:
                fd = applier.open_dir(path)
            except OSError as e:
                raise _fs_error(e, f"layer directory {path!r}") from None
            if fd is None:
                continue
            try:
                uid, gid = found.st_uid, found.st_gid
                applier._chown(lambda: os.fchown(fd, uid, gid), uid, gid, path)  # noqa: B023
                _Applier._finish_dir(fd, stat.S_IMODE(found.st_mode), found.st_mtime_ns)
            except OSError as e:
                raise _fs_error(e, f"layer directory {path!r}") from None
            finally:
                os.close(fd)
    finally:
        applier.close()


def _fs_error(e: OSError | ValueError | OverflowError, what: str) -> Exception:
    """Translate a failure into LayerError (bad layer) or StoreError (bad machine)."""
    if isinstance(e, OSError):
        msg = f"{what}: {e.strerror or e}"
        if e.errno in _ENV_ERRNOS:
            return StoreError(msg)
        return LayerError(msg)
    return LayerError(f"{what}: {e}")


def _header_error(e: Exception, path: str, last: str) -> LayerError:
    """A LayerError for a failure while reading a tar header, naming the entry before it."""
    if isinstance(e, LayerError):
        if "decompression bomb" in e.message or "corrupt compressed" in e.message:
            return e
        return LayerError(f"layer {path}: {e.message} (after entry {last!r})", e.hint)
    return LayerError(f"layer {path}: {e} (after entry {last!r})")


def _apply_entries(path: str, source: LayerSource, applier: _Applier) -> int:
    """Apply every member of the stream, finish directory metadata, drain the tail.

    Returns the number of members.
    """
    entries = 0
    last = "(none)"
    reader = TarReader(source.read_chunk, _MAX_META_HEADER)
    while True:
        try:
            m = reader.next()
        except (TarFormatError, LayerError) as e:
            raise _header_error(e, path, last) from None
        if m is None:
            break
        entries += 1
        try:
            applier.apply(m, reader)
        except (OSError, ValueError, OverflowError) as e:
            raise _fs_error(e, f"layer entry {m.name!r}") from None
        except TarFormatError as e:
            raise LayerError(f"layer entry {m.name!r}: {e}") from None
        last = m.name
    try:
        applier.finish()
    except (OSError, ValueError, OverflowError) as e:
        raise _fs_error(e, "layer directory metadata") from None
    source.drain()
    return entries


def apply_layer(path: str, compression: str, dest: str, opts: ApplyOptions = ApplyOptions(),
                compressed_size: int | None = None) -> ApplyResult:
    """Unpack the layer blob at *path* into the existing empty directory *dest*.

    Raises LayerError for anything malformed or hostile (names escaping the root, hardlinks to
    files outside the layer, truncated or corrupt streams, oversized headers, decompression
    bombs) and StoreError when the machine fails us (disk full, I/O error). On error *dest* is
    left partially filled; the caller discards it.
    """
    try:
        if compressed_size is None:
            compressed_size = os.stat(path).st_size
        raw, compression = open_layer(path, compression)
    except OSError as e:
        raise StoreError(f"cannot open layer {path}: {e.strerror or e}") from None
    try:
        cap = max(_BOMB_FLOOR, opts.max_ratio * compressed_size)
        if opts.max_bytes is not None:
            cap = min(cap, opts.max_bytes)
        try:
            applier = _Applier(dest, opts)
        except OSError as e:
            raise StoreError(f"cannot open layer directory {dest}: {e.strerror or e}") from None
        try:
            # Uncompressed layers have only hashing to overlap: not worth a thread.
            source_type = LayerSource if compression == "none" else PrefetchingSource
            source = source_type(raw, path, cap)
            try:
                entries = _apply_entries(path, source, applier)
            finally:
                source.close()  # joins the thread that reads raw, before raw is closed
        finally:
            applier.close()
    finally:
        raw.close()
    return ApplyResult(
        diff_id=f"sha256:{source.hexdigest()}",
        size=source.size,
        entries=entries,
        skipped_devices=applier.skipped_devices,
        dropped_xattrs=applier.dropped_xattrs,
        failed_xattrs=applier.failed_xattrs,
        implied=tuple(applier.implied),
    )
