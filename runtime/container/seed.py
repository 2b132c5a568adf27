"""Copy-up: an empty volume seeded with the image's content at its mount point, on first use.

docker and podman fill a new, empty volume with what the image has at the destination, owned as
the image has it, so ``-v data:/var/lib/app`` starts with the image's files. rootlet does it at
``create``, from the image's layers (nothing is mounted yet): the merged view is computed the way
the overlay shows it (the topmost layer that has a name wins, whiteouts and opaque directories
hide what lies below), and the destination is resolved inside the image by
``rootlet.runtime.container.imagefiles`` (symlinks read and resolved from the image's root, never
followed by the kernel), so a hostile image cannot make the copy read from the host.

The copy runs as root of a user namespace (``seed_job`` in a ``UsernsWorker``): the layers hold
files of subordinate ids that the user cannot read, and the copy must give each file its owner.
Symlinks are copied as symlinks, hardlinks as hardlinks, setuid bits, modes, times and user
xattrs kept; device nodes (which a user namespace cannot create) are skipped.
"""

from __future__ import annotations

import contextlib
import os
import stat

from rootlet.runtime.container.imagefiles import is_opaque, lookup_layered, resolve_image_dir
from rootlet.runtime.container.record import Mount
from rootlet.runtime.container.volumes import VolumeStore

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def merged_entries(lowers: tuple[str, ...], parts: list[str]) -> list[tuple[str, str, os.stat_result]]:
    """(name, host path, lstat) of each entry of merged directory ``parts`` (a directory of the
    merged view), as the overlay lists it."""
    seen: dict[str, tuple[str, os.stat_result] | None] = {}
    for layer in lowers:
        current = layer
        present = True
        hidden_below = False
        for comp in parts:
            current = os.path.join(current, comp)
            try:
                st = os.lstat(current)
            except (FileNotFoundError, NotADirectoryError):
                present = False
                break
            if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                return _listed(seen)  # hides this path in every layer below
            if is_opaque(current):
                hidden_below = True
        if present:
            with os.scandir(current) as it:
                for entry in it:
                    if entry.name not in seen:
                        st = entry.stat(follow_symlinks=False)
                        seen[entry.name] = None if _is_whiteout(st) else (entry.path, st)
        if hidden_below:
            break
    return _listed(seen)


def _listed(seen: dict[str, tuple[str, os.stat_result] | None]) -> list[tuple[str, str, os.stat_result]]:
    return [(name, v[0], v[1]) for name, v in sorted(seen.items()) if v is not None]


def seed_job(lowers: tuple[str, ...], parts: list[str] | None, data: str, owner: tuple[int, int] | None) -> int:
    """In the user namespace: fill the empty volume directory ``data`` with merged image directory
    ``parts`` and give ``data`` that directory's owner and mode; with ``parts`` None (the image has
    nothing there) give ``data`` to ``owner`` (the container's user). Returns the entries copied; a
    volume that is no longer empty is left alone (0)."""
    top = os.open(data, _DIR)
    try:
        if os.listdir(top):
            return 0
        if not parts:  # nothing there (or the destination is the image's root: nothing to seed)
            if owner is not None:
                os.fchown(top, *owner)
            return 0
        found = lookup_layered(lowers, parts)
        src_st = found[1] if found is not None else None
        copied = _copy_tree(lowers, parts, top)
        if src_st is not None:
            os.fchown(top, src_st.st_uid, src_st.st_gid)
            os.fchmod(top, stat.S_IMODE(src_st.st_mode))
            os.utime(top, ns=(src_st.st_atime_ns, src_st.st_mtime_ns))
        return copied
    finally:
        os.close(top)


def _copy_tree(lowers: tuple[str, ...], parts: list[str], top: int) -> int:
    """Copy merged directory ``parts`` into the open directory ``top``, depth first, one open
    descriptor per level; directories get their owner, mode and times once their entries are in."""
    links: dict[tuple[int, int], str] = {}
    copied = 0
    stack: list[tuple[list[str], int, str, list[tuple[str, str, os.stat_result]]]] = [
        (parts, top, "", merged_entries(lowers, parts))]
    finish: list[tuple[str, os.stat_result]] = []
    try:
        while stack:
            where, dfd, rel, todo = stack[-1]
            if not todo:
                stack.pop()
                if dfd != top:
                    os.close(dfd)
                continue
            name, host, st = todo.pop(0)
            child_rel = f"{rel}/{name}" if rel else name
            copied += 1
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(name, 0o700, dir_fd=dfd)
                finish.append((child_rel, st))
                cfd = os.open(name, _DIR, dir_fd=dfd)
                stack.append(([*where, name], cfd, child_rel, merged_entries(lowers, [*where, name])))
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    os.link(links[key], name, src_dir_fd=top, dst_dir_fd=dfd, follow_symlinks=False)
                    continue
                _copy_file(host, name, dfd, st)
                if st.st_nlink > 1:
                    links[key] = child_rel
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(host), name, dir_fd=dfd)
                _owner_and_times(name, dfd, st)
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(name, 0o600, dir_fd=dfd)
                _owner_and_times(name, dfd, st)
                os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dfd)
            else:
                copied -= 1  # devices and sockets: a user namespace cannot make them
        for child_rel, st in reversed(finish):  # deepest first: a directory's times once its entries are in
            os.chown(child_rel, st.st_uid, st.st_gid, dir_fd=top, follow_symlinks=False)
            _chmod_dir(child_rel, top, st)
    finally:
        for _, dfd, _, _ in stack:
            if dfd != top:
                os.close(dfd)
    return copied


def _chmod_dir(rel: str, top: int, st: os.stat_result) -> None:
    fd = os.open(rel, _DIR, dir_fd=top)
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)


def _owner_and_times(name: str, dfd: int, st: os.stat_result) -> None:
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)


def _copy_file(host: str, name: str, dfd: int, st: os.stat_result) -> None:
    """One regular file: contents, xattrs, owner, then mode (a chown clears setuid bits), times."""
    src = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            left = st.st_size
            while left > 0:
                try:
                    n = os.copy_file_range(src, dst, min(left, 1 << 30))
                except OSError:
                    n = os.sendfile(dst, src, None, min(left, 1 << 30))
                if n <= 0:
                    break
                left -= n
            for attr in os.listxattr(src):
                if (attr.startswith("user.") and not attr.startswith("user.overlay.")) or attr == "security.capability":
                    with contextlib.suppress(OSError):
                        os.setxattr(dst, attr, os.getxattr(src, attr))
            os.fchown(dst, st.st_uid, st.st_gid)
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


# --- the caller's side -------------------------------------------------------------------------------

_ROOT_USERS = ("", "root", "0", "0:0", "root:root", "root:0", "0:root")


def seed_volumes(volumes: VolumeStore, lowers: tuple[str, ...], user: str, mounts: list[Mount]) -> None:
    """Seed each plain volume of a new container that still needs copy-up (podman's NeedsCopyUp),
    then mark it done: only a volume's first user seeds it, and only while it is empty. A user
    namespace worker is started only when there are files to copy or owners to set."""
    from rootlet.registry.fsutil import flocked

    with contextlib.ExitStack() as stack:
        worker = None
        for m in mounts:
            if m.type != "volume" or not m.name or m.source != volumes.data(m.name):
                continue  # not a volume, or a bind/tmpfs volume: nothing of the image goes there
            with flocked(os.path.join(volumes.dir(m.name), "seed.lock")):
                cfg = volumes.config(m.name)
                if not cfg.needs_copy_up:
                    continue
                parts = resolve_image_dir(lowers, m.destination)
                owner = None if parts else _owner_of(lowers, user)
                if _needs_worker(lowers, parts, m.source, owner):
                    if worker is None:
                        from rootlet.runtime.oci.idmap import plan_userns
                        from rootlet.runtime.oci.userns import UsernsWorker

                        worker = stack.enter_context(UsernsWorker(plan_userns()))
                    worker.call(seed_job, lowers, parts, m.source, owner)
                volumes.write(cfg.replace(needs_copy_up=False, needs_chown=False))


def _owner_of(lowers: tuple[str, ...], user: str) -> tuple[int, int] | None:
    """The container user's ids (None for root: the volume is already its own)."""
    if user in _ROOT_USERS:
        return None
    from rootlet.runtime.container.imagefiles import image_ids

    ids = image_ids(lowers, user)
    return None if ids == (0, 0) else ids


def _needs_worker(lowers: tuple[str, ...], parts: list[str] | None, data: str, owner: tuple[int, int] | None) -> bool:
    """Whether seeding needs the user namespace; what it does not need is done here (a mode)."""
    try:
        if os.listdir(data):
            return False  # not empty: never seeded (the user put files there)
        if not parts:
            return owner is not None
        found = lookup_layered(lowers, parts)
        if found is None or merged_entries(lowers, parts):
            return True
        st = found[1]
        if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            return True
        os.chmod(data, stat.S_IMODE(st.st_mode))
        return False
    except OSError:
        return True  # a directory of a subordinate id: look from inside
