"""COPY and ADD: files from the context, another stage or image, a heredoc or a URL, into the image.

The copy runs in a worker in the user namespace with the target image's filesystem mounted
(``runtime/container/view.py``): the sources are opened first (context files by their checked,
resolved paths; another stage's inside a chroot of its own filesystem), then the process chroots
into the target, so that neither a symlink in the image nor a ``..`` in the destination can lead
anywhere outside it. Paths are resolved there, and the files are written into a fresh tree that
becomes the step's layer as it is (``CopyJob.tree``), with the directories on the way recreated
as an overlay's copy-up records them; each file is written once. docker's rules: a directory
source copies its contents; a file goes to DEST/NAME when DEST ends in "/" or is a directory,
else to DEST; several sources need a directory DEST ending in "/"; missing parents are made
(root, 0755); copies from the context belong to root unless ``--chown`` (names looked up in the
target's /etc/passwd and /etc/group), copies from a stage keep their owners; ``--chmod`` sets
every copied entry's mode; ADD unpacks a local tar archive (plain, gzip, bzip2, xz, zstd) into
DEST, and a URL's file is saved with mode 0600. Entries the ignore file excludes are never copied.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from rootlet.registry.errors import BuildError, CopyError
from rootlet.registry.record import Record

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class Source(Record):
    """One source: ``path`` on the host (context, heredoc or download) or, with ``in_stage``, in
    the source view (resolved there); ``rel`` the context-relative path the ignore rules see (None:
    no rules); ``name`` the name a file takes under a directory DEST; ``unpack`` ADD's archive
    rule applies; ``mode`` forced for this source (a URL's 0600)."""

    path: str
    name: str
    rel: str | None = None
    in_stage: bool = False
    unpack: bool = False
    mode: int | None = None


class CopyJob(Record):
    """What the worker does: ``sources`` into ``dest`` (absolute, in the target; ``workdir`` the
    stage's, for a relative one), owned by ``chown`` (USER[:GROUP], or None: root for host
    sources, kept for stage ones), ``chmod`` (octal text or None), ``ignore`` the context's rules
    (as lines) and ``what`` for messages. ``patterns`` of a ``--from`` copy are resolved in the
    source view."""

    sources: tuple[Source, ...]
    dest: str
    workdir: str = "/"
    chown: str | None = None
    chmod: str | None = None
    ignore: tuple[str, ...] = ()
    what: str = "COPY"
    patterns: tuple[str, ...] = ()
    tree: str | None = None  # a fresh directory that becomes the layer: files are written there, not in the image


def is_archive(path: str) -> bool:
    """Whether a local ADD source is a tar archive docker unpacks (by its first bytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head.startswith(_ARCHIVE_MAGIC) or (len(head) >= 262 and head[257:262] == b"ustar")


def parse_chmod(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"{what}: invalid --chmod={value}", "give an octal mode, e.g. --chmod=755")
    return mode


def copy_job(merged: list[str], job: CopyJob) -> None:
    """Runs in the worker: the target's merged dir first, the source stage's second (if any)."""
    from rootlet.runtime.build.ignore import IgnoreRules
    from rootlet.runtime.container import cptar
    from rootlet.runtime.container.view import Chroot
    from rootlet.runtime.oci.user import resolve_user

    cptar.preload()
    rules = IgnoreRules(list(job.ignore))
    mode = parse_chmod(job.chmod, job.what)
    opened: list[tuple[Source, int, str]] = []
    tree_fd = os.open(job.tree, _DIR) if job.tree else None
    try:
        for src in job.sources:
            if not src.in_stage:
                opened.append((src, *_open_parent(src.path, job.what)))
        if job.patterns:
            with Chroot(merged[1]):
                for pattern in job.patterns:
                    for path in _stage_glob(pattern, job.what):
                        name = posixpath.basename(path) or "/"
                        opened.append((Source(path=path, name=name, in_stage=True), *_open_parent(path, job.what)))
        with Chroot(merged[0]):
            owner: tuple[int, int] | None = None
            if job.chown:
                try:
                    uid, gid, _ = resolve_user(job.chown)
                except Exception as exc:  # noqa: BLE001  (the resolver's own error, said for COPY)
                    raise BuildError(f"{job.what}: --chown={job.chown}: {getattr(exc, 'message', exc)}",
                                     "the user and group must exist in the image's /etc/passwd and /etc/group, "
                                     "or be numbers") from None
                owner = (uid, gid)
            _copy_all(opened, job, rules, owner, mode, tree_fd)
    except OSError as exc:
        raise BuildError(f"{job.what}: {exc.filename or ''}: {exc.strerror}".replace(": :", ":")) from None
    except CopyError as exc:
        raise BuildError(f"{job.what}: {exc.message}", exc.hint) from None
    finally:
        for _, fd, _ in opened:
            os.close(fd)
        if tree_fd is not None:
            os.close(tree_fd)


def _open_parent(path: str, what: str) -> tuple[int, str]:
    """The open parent directory of ``path`` and its name there ("." for "/"): every later step is
    relative to it, so nothing needs /proc (absent in the chroot) and no symlink is followed."""
    path = posixpath.normpath(path)
    parent, name = (path, ".") if path == "/" else (posixpath.dirname(path), posixpath.basename(path))
    try:
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise BuildError(f"{what}: {path}: {exc.strerror}") from None
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError as exc:
        os.close(fd)
        raise BuildError(f"{what}: {path}: {exc.strerror}") from None
    return fd, name


def _stage_glob(pattern: str, what: str) -> list[str]:
    """A ``--from`` source pattern resolved inside the source's filesystem (we are chrooted in it)."""
    import glob

    clean = posixpath.normpath("/" + pattern)
    found = sorted(glob.glob(clean)) if any(c in clean for c in "*?[") else [clean]
    found = [os.path.realpath(f) for f in found if os.path.lexists(f)]
    if not found:
        raise BuildError(f"{what}: {pattern}: no such file or directory in the source stage or image")
    return found


def _copy_all(opened: list[tuple[Source, int, str]], job: CopyJob, rules: object, owner: tuple[int, int] | None,
              mode: int | None, tree_fd: int | None) -> None:
    """Copy the opened sources to the destination. Every path is resolved through the image's
    filesystem (we are chrooted in it: its symlinks are followed, as a copy through it would
    follow them). With ``tree_fd`` (a fresh directory that becomes the step's layer) nothing is
    written to the image itself: the directories on the way are made again in the tree with
    their owners and modes (what an overlay's copy-up records), missing ones root-owned 0755, and
    each file is written there, once."""
    from rootlet.runtime.container import cptar

    dest = job.dest if job.dest.startswith("/") else posixpath.join(job.workdir or "/", job.dest)
    to_dir = job.dest.endswith("/") or job.dest in (".", "./") or job.dest.endswith("/.")
    dest = posixpath.normpath(dest)
    if not opened:  # WORKDIR: only the directory, when the image lacks it
        if not os.path.isdir(dest):
            _ensure_dirs(dest, tree_fd)
        return
    stats = [os.stat(name, dir_fd=fd, follow_symlinks=False) for _, fd, name in opened]
    existing_dir = os.path.isdir(dest)
    if len(opened) > 1 and not (to_dir or existing_dir):
        raise BuildError(f"{job.what}: with more than one source, the destination {job.dest} must be a "
                         "directory ending in /", f"write {job.dest}/")
    writes: list[tuple[Source, int, str, os.stat_result, str, str | None, tuple[int, int] | None]] = []
    for (src, fd, name), st in zip(opened, stats):
        is_dir = stat.S_ISDIR(st.st_mode)
        # Host sources belong to root unless --chown; a stage's keep their owners.
        keep = src.in_stage and owner is None
        ids = owner if owner is not None else (None if keep else (0, 0))
        if src.unpack and not src.in_stage and not is_dir:
            real = _ensure_dirs(dest, tree_fd)
            rfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                if tree_fd is None:
                    cptar.extract_tar(rfd, real, owner, True)
                else:
                    from rootlet.runtime.container.view import Chroot

                    with Chroot(tree_fd):
                        cptar.extract_tar(rfd, real, owner, True)
            finally:
                os.close(rfd)
            continue
        if is_dir:
            parent, leaf = dest, None
        elif to_dir or existing_dir:
            parent, leaf = dest, src.name
        else:
            parent, leaf = posixpath.dirname(dest) or "/", posixpath.basename(dest)
        writes.append((src, fd, name, st, _ensure_dirs(parent, tree_fd), leaf, ids))
    for src, fd, name, st, real, leaf, ids in writes:
        dfd = _open_dir(real, tree_fd)
        try:
            if leaf is None:
                sfd = os.open(name, _DIR, dir_fd=fd)
                try:
                    _copy_children(sfd, dfd, src.rel if not src.in_stage else None, rules, ids, mode)
                finally:
                    os.close(sfd)
            else:
                _copy_entry_at(fd, name, st, dfd, leaf, src.rel, rules, ids,
                               src.mode if src.mode is not None else mode, 0)
        finally:
            os.close(dfd)


def _ensure_dirs(path: str, tree_fd: int | None) -> str:
    """Directory ``path`` of the image, resolved (its symlinks followed), made where missing: in
    the image itself, or with ``tree_fd`` in the tree, every directory on the way (existing ones
    with the image's owner and mode). Returns the resolved path."""
    if tree_fd is None:
        _make_dirs(path)
        return os.path.realpath(path)
    real = os.path.realpath(path)
    cur, fd = "/", os.dup(tree_fd)
    try:
        for part in [p for p in real.split("/") if p]:
            cur = posixpath.join(cur, part)
            try:
                st: os.stat_result | None = os.lstat(cur)
            except FileNotFoundError:
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise BuildError(f"cannot make directory {cur}: a file is in the way")
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            nxt = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if made:
                os.fchown(fd, *((st.st_uid, st.st_gid) if st is not None else (0, 0)))
                os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o755)
    finally:
        os.close(fd)
    return real


def _open_dir(path: str, tree_fd: int | None) -> int:
    """Directory ``path`` (resolved, absolute) of the image, or of the tree, walked one name at a
    time with no symlink followed."""
    if tree_fd is None:
        return os.open(path, _DIR)
    fd = os.dup(tree_fd)
    try:
        for part in [p for p in path.split("/") if p]:
            nxt = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_dirs(path: str) -> None:
    """``mkdir -p`` in the target: new directories root-owned 0755 (docker's)."""
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        cur = posixpath.join(cur, part)
        try:
            os.mkdir(cur, 0o755)
            os.chmod(cur, 0o755)  # whatever the umask
        except FileExistsError:
            if not os.path.isdir(cur):
                raise BuildError(f"cannot make directory {cur}: a file is in the way") from None


def _copy_children(sfd: int, dfd: int, rel: str | None, rules: object, ids: tuple[int, int] | None,
                   mode: int | None, depth: int = 0) -> None:
    for entry in sorted(os.scandir(sfd), key=lambda e: e.name):
        child_rel = None if rel is None else (entry.name if rel == "." else f"{rel}/{entry.name}")
        st = entry.stat(follow_symlinks=False)
        _copy_entry_at(sfd, entry.name, st, dfd, entry.name, child_rel, rules, ids, mode, depth + 1)


def _excluded(rules: object, rel: str | None, is_dir: bool) -> tuple[bool, bool]:
    """(skip this entry, but walk into it): a directory excluded may still hold ``!`` exceptions."""
    if rel is None:
        return False, False
    gone = rules.excluded(rel)  # type: ignore[attr-defined]
    if gone and is_dir and rules.has_exceptions:  # type: ignore[attr-defined]
        return True, True
    return gone, False


def _copy_entry_at(src_dir: int, src_name: str, st: os.stat_result, dst_dir: int, name: str, rel: str | None,
                   rules: object, ids: tuple[int, int] | None, mode: int | None, depth: int) -> None:
    """Copy entry ``src_name`` of ``src_dir`` (``st`` its lstat) to ``name`` in ``dst_dir``."""
    if depth > 512:
        raise BuildError(f"directory tree too deep at {rel or name!r}")
    is_dir = stat.S_ISDIR(st.st_mode)
    skip, walk = _excluded(rules, rel, is_dir)
    if skip and not walk:
        return
    new_mode = mode if mode is not None else stat.S_IMODE(st.st_mode)
    own = ids if ids is not None else (st.st_uid, st.st_gid)
    try:
        existing = os.stat(name, dir_fd=dst_dir, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and (is_dir != stat.S_ISDIR(existing.st_mode) or not is_dir):
        _remove(dst_dir, name, existing)
        existing = None
    if is_dir:
        if existing is None:
            os.mkdir(name, 0o700, dir_fd=dst_dir)
        dfd = os.open(name, _DIR, dir_fd=dst_dir)
        try:
            sfd = os.open(src_name, _DIR, dir_fd=src_dir)
            try:
                _copy_children(sfd, dfd, rel, rules, ids, mode, depth)
            finally:
                os.close(sfd)
            if existing is None or not skip:
                os.fchown(dfd, *own)
                os.fchmod(dfd, new_mode)
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dfd)
        return
    if stat.S_ISREG(st.st_mode):
        from rootlet.runtime.container.cptree import copy_regular

        copy_regular(src_dir, src_name, dst_dir, name, st, new_mode, lambda fd: os.fchown(fd, *own))
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src_name, dir_fd=src_dir), name, dir_fd=dst_dir)
        os.chown(name, *own, dir_fd=dst_dir, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(name, new_mode, dir_fd=dst_dir)
        os.chown(name, *own, dir_fd=dst_dir, follow_symlinks=False)
    # Sockets and devices are not copied (docker skips sockets; a user namespace makes no devices).


def _remove(dir_fd: int, name: str, st: os.stat_result) -> None:
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    from rootlet.runtime.container.cptree import remove_entry

    try:
        remove_entry(dir_fd, name)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
