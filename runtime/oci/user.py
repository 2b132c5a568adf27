"""Who a container's command runs as, what it runs and where: ``--user`` and ``-w`` resolved
inside the container's own root filesystem, as runc and podman resolve them.

These run in the container's PID 1 (or an exec'd process) after ``pivot_root``: ``/etc/passwd``
and ``/etc/group`` are the container's, and nothing on the host is reachable by path.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # typing costs milliseconds to import; the run path must not pay for it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import BinaryIO

from rootlet.registry.errors import ContainerStartError

#: Longest line of /etc/passwd or /etc/group considered; longer ones are skipped unread.
MAX_LINE = 1 << 16
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _records(path: str) -> Iterator[list[str]]:
    """The colon-separated records of /etc/passwd or /etc/group, streamed (a huge file costs no
    memory; over-long lines are skipped); a missing file has none."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; the generator may stop early
    except OSError:
        return
    with f:
        for raw in iter(lambda: f.readline(MAX_LINE + 1), b""):
            if len(raw) > MAX_LINE:
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(MAX_LINE + 1)
                continue
            line = raw.decode(errors="replace").rstrip("\n")
            if line and not line.startswith("#"):
                yield line.split(":")


def add_user_entries(root: str, entries: tuple[tuple[str, str, str], ...]) -> None:
    """Append ``(db, id, line)`` entries to ``root``/etc/passwd or group where no entry has that id.

    podman writes keep-id's user and a numeric ``--user``'s entry into the container's own files
    (not a bind mount over them), so ``adduser`` and ``passwd`` still work inside. Runs as the
    container's root on its rootfs before any volume is mounted (a file the user bind-mounts over
    /etc/passwd is never written). Neither /etc nor the file is followed if it is a symlink, only
    a regular file is written, and what fails is skipped: the command then runs without a name.
    """
    if not entries:
        return
    try:
        etc_fd = os.open(os.path.join(root, "etc"), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for db, wanted, line in entries:
            try:
                fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644,
                             dir_fd=etc_fd)
            except OSError:
                continue
            with open(fd, "r+b") as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode) or _has_id(f, wanted.encode()):
                    continue
                end = f.seek(0, os.SEEK_END)
                newline = end > 0 and os.pread(fd, 1, end - 1) != b"\n"
                try:  # a full disk: the command runs without the name
                    f.write((b"\n" if newline else b"") + line.encode() + b"\n")
                except OSError:
                    pass
    finally:
        os.close(etc_fd)


def _has_id(f: BinaryIO, wanted: bytes) -> bool:
    """Whether passwd/group file ``f`` has an entry whose third field is ``wanted`` (streamed, in
    bounded pieces: a huge file costs no memory)."""
    for raw in iter(lambda: f.readline(MAX_LINE + 1), b""):
        fields = raw.split(b":", 3)
        if len(fields) > 2 and fields[2].strip() == wanted:
            return True
    return False


def resolve_user(user: str, additional_gids: tuple[int | str, ...] = (), etc: str = "/etc",
                 records: Callable[[str], Iterable[list[str]]] | None = None) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for a podman ``--user`` value, from ``etc``/passwd and group
    (or from ``records``: the entries of "passwd" or "group" as field lists, e.g. an image's read
    from the host before the container exists).

    Follows runc/podman: "" is uid 0; a numeric uid needs no passwd entry (its gid is then 0); a
    name must exist. Supplementary groups are the primary group (as podman and docker set them, so
    ``id`` lists it), then the /etc/group groups listing the user's name unless a group was given
    explicitly; ``additional_gids`` (numbers, or group names looked up in ``etc``/group:
    ``--group-add``) are added in both cases.
    """
    read = records or (lambda db: _records(f"{etc}/{db}"))
    name, _, group = user.partition(":")
    uid, gid, login = 0, 0, None
    if name == "" or name.isdigit():
        uid = int(name or 0)
        for rec in read("passwd"):
            if len(rec) >= 4 and rec[2] == str(uid):
                login = rec[0]
                gid = int(rec[3]) if rec[3].isdigit() else 0
                break
    else:
        for rec in read("passwd"):
            if len(rec) >= 4 and rec[0] == name and rec[2].isdigit():
                login, uid = name, int(rec[2])
                gid = int(rec[3]) if rec[3].isdigit() else 0
                break
        else:
            raise ContainerStartError(f"unable to find user {name}: no matching entries in passwd file", None, 126)
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for rec in read("group"):
                if len(rec) >= 3 and rec[0] == group and rec[2].isdigit():
                    gid = int(rec[2])
                    break
            else:
                raise ContainerStartError(f"unable to find group {group}: no matching entries in group file",
                                          None, 126)
    supplementary = [gid]
    if not group and login:
        for rec in read("group"):
            if len(rec) >= 4 and rec[2].isdigit() and login in rec[3].split(",") and int(rec[2]) not in supplementary:
                supplementary.append(int(rec[2]))
    for extra in additional_gids:
        if isinstance(extra, str):
            if extra.isdigit():
                extra = int(extra)
            else:
                gids = [int(rec[2]) for rec in read("group")
                        if len(rec) >= 3 and rec[0] == extra and rec[2].isdigit()]
                if not gids:
                    raise ContainerStartError(f"unable to find group {extra}: no matching entries in group file",
                                              "give the group's number, or a group of the image's /etc/group", 126)
                extra = gids[0]
        if extra not in supplementary:
            supplementary.append(extra)
    return uid, gid, supplementary


def find_executable(name: str, env: tuple[str, ...]) -> str:
    """The path execve should run for argv[0] ``name``: itself when it has a "/", else the first
    executable regular file named so on the PATH of ``env`` (like Go's exec.LookPath)."""
    if "/" in name:
        return name
    path = DEFAULT_PATH
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    for d in path.split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o111:
            return candidate
    raise ContainerStartError(f"executable file `{name}` not found in $PATH: No such file or directory", None, 127)


def make_workdir(cwd: str, uid: int, gid: int) -> None:
    """Create the working directory (mkdir -p, new parts owned by the user) like podman does."""
    missing: list[str] = []
    path = os.path.normpath("/" + cwd)
    while path != "/" and not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o755)
            os.lchown(p, uid, gid)
        except FileExistsError:
            pass
        except OSError as e:
            raise ContainerStartError(f"cannot create workdir `{cwd}`: {e.strerror}", None, 126) from e
