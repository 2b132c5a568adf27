"""Subordinate id ranges and the user-namespace id maps built from them.

Rootless containers need more than one uid: image files belong to root, daemon users, nobody.
``/etc/subuid`` and ``/etc/subgid`` grant each user ranges of host ids that ``newuidmap`` and
``newgidmap`` (setuid helpers) may map into that user's namespaces. rootlet uses podman's
default layout so stores and habits carry over: container id 0 is the invoking user's own id,
container ids 1..N are the first subordinate range, further ranges follow contiguously.

Without a range a namespace can still map the user's own id alone ("single-id" mode): enough
to run many images, but files owned by other ids cannot be created. Real root needs no
namespace at all ("rootful").
"""

from __future__ import annotations

import os
import pwd

from rootlet.registry.errors import UsernsError
from rootlet.registry.record import Record

# The largest id count a map line may cover (the kernel's full 32-bit range minus the -1 id).
FULL_RANGE = 4294967295
# The range podman and useradd hand out by default, used in fix-it hints.
SUGGESTED_START = 100000
SUGGESTED_COUNT = 65536


class IdRange(Record):
    """One subordinate id range: host ids ``start`` .. ``start + count - 1``."""

    start: int
    count: int


class IdMapping(Record):
    """One line of a ``uid_map``/``gid_map``: ``count`` ids from ``inner`` map to ``outer`` on the host."""

    inner: int
    outer: int
    count: int


class UsernsPlan(Record):
    """How the ids of a container map to the host, and why.

    ``single_id`` means only the user's own id is mapped (no subordinate range), with ``reason``
    saying why and ``hint`` how to fix it. ``rootful`` means rootlet runs as real root and needs
    no user namespace; the maps are then the identity.
    """

    uid_map: tuple[IdMapping, ...]
    gid_map: tuple[IdMapping, ...]
    single_id: bool
    reason: str | None
    hint: str | None
    rootful: bool

    def host_uid(self, inner: int) -> int | None:
        """The host uid that container uid ``inner`` maps to, or None if it is unmapped."""
        return _to_outer(self.uid_map, inner)

    def host_gid(self, inner: int) -> int | None:
        """The host gid that container gid ``inner`` maps to, or None if it is unmapped."""
        return _to_outer(self.gid_map, inner)

    @property
    def uid_count(self) -> int:
        """How many container uids are mapped (1 in single-id mode, 65537 with a default range)."""
        return sum(m.count for m in self.uid_map)

    @property
    def gid_count(self) -> int:
        """How many container gids are mapped."""
        return sum(m.count for m in self.gid_map)


def _to_outer(mapping: tuple[IdMapping, ...], inner: int) -> int | None:
    """Translate one inner id through a map."""
    for m in mapping:
        if m.inner <= inner < m.inner + m.count:
            return m.outer + (inner - m.inner)
    return None


def map_text(mapping: tuple[IdMapping, ...]) -> str:
    """A map in the format of ``/proc/PID/uid_map`` (``inner outer count`` per line)."""
    return "".join(f"{m.inner} {m.outer} {m.count}\n" for m in mapping)


def read_subids(path: str, user: str, uid: int) -> list[IdRange]:
    """The ranges granted to ``user`` (by name or numeric uid) in a subuid/subgid file, in file order.

    Lines are ``name:start:count`` or ``uid:start:count``; comments, blank and malformed lines
    (non-numeric fields, a zero count, ranges past the 32-bit id space) are skipped like
    shadow-utils does. A missing file means no ranges; an unreadable one raises UsernsError.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise UsernsError(f"cannot read {path}: {e.strerror}", f"make {path} readable (chmod 644 {path})") from e
    wanted = {user, str(uid)}
    ranges: list[IdRange] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3 or fields[0] not in wanted:
            continue
        start_s, count_s = fields[1].strip(), fields[2].strip()
        if not (start_s.isdigit() and count_s.isdigit()):
            continue
        start, count = int(start_s), int(count_s)
        if count <= 0 or start + count > FULL_RANGE:
            continue
        ranges.append(IdRange(start, count))
    return ranges


def _user_name(uid: int) -> str:
    """The login name of ``uid`` from the passwd database, else $USER, else the number."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return os.environ.get("USER") or str(uid)


def _build_map(own: int, ranges: list[IdRange]) -> tuple[IdMapping, ...]:
    """podman's default map: 0 → own id, then each range in order starting at inner id 1."""
    mapping = [IdMapping(0, own, 1)]
    inner = 1
    for r in ranges:
        count = min(r.count, FULL_RANGE - inner)
        if count <= 0:
            break
        mapping.append(IdMapping(inner, r.start, count))
        inner += count
    return tuple(mapping)


def plan_userns(uid: int | None = None, gid: int | None = None, user: str | None = None,
                subuid_path: str = "/etc/subuid", subgid_path: str = "/etc/subgid") -> UsernsPlan:
    """Plan the id maps for ``user`` (default: the calling process's user).

    Uses the subordinate ranges when both files grant one; otherwise plans single-id mode and
    says why and how to fix it. uid 0 plans rootful mode (identity maps, no namespace).
    """
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    if uid == 0:
        identity = (IdMapping(0, 0, FULL_RANGE),)
        return UsernsPlan(identity, identity, single_id=False, reason=None, hint=None, rootful=True)
    user = _user_name(uid) if user is None else user
    problems: list[str] = []
    ranges = []
    for path in (subuid_path, subgid_path):
        try:
            found = read_subids(path, user, uid)
            if not found:
                problems.append(f"no range for {user} in {path}")
        except UsernsError as e:
            found = []
            problems.append(e.message)
        ranges.append(found)
    subuids, subgids = ranges
    if problems:
        end = SUGGESTED_START + SUGGESTED_COUNT - 1
        hint = (f"grant subordinate ids: sudo usermod --add-subuids {SUGGESTED_START}-{end} "
                f"--add-subgids {SUGGESTED_START}-{end} {user}")
        return UsernsPlan((IdMapping(0, uid, 1),), (IdMapping(0, gid, 1),), single_id=True,
                          reason="; ".join(problems), hint=hint, rootful=False)
    return UsernsPlan(_build_map(uid, subuids), _build_map(gid, subgids), single_id=False,
                      reason=None, hint=None, rootful=False)


def _subordinate(mapping: tuple[IdMapping, ...]) -> list[tuple[int, int]]:
    """The (host start, count) runs a default map gives to inner ids 1, 2, … in order."""
    return [(m.outer, m.count) for m in mapping if m.inner >= 1]


def _keep_id_map(mapping: tuple[IdMapping, ...], own: int, keep: int) -> tuple[IdMapping, ...]:
    """Inner ``keep`` → host ``own``; inner 0 … keep-1 and keep+1 … → the subordinate ids in order."""
    out: list[IdMapping] = []
    inner = 0
    placed = False
    for start, count in _subordinate(mapping):
        while count:
            if not placed and inner == keep:
                out.append(IdMapping(keep, own, 1))
                inner += 1
                placed = True
            take = count if placed else min(count, keep - inner)
            out.append(IdMapping(inner, start, take))
            inner += take
            start += take
            count -= take
    if not placed:
        out.append(IdMapping(keep, own, 1))
    return tuple(out)


def keep_id_plan(plan: UsernsPlan, uid: int, gid: int) -> UsernsPlan:
    """``--userns keep-id``: the same host ids, arranged so that container uid/gid = our own.

    Container root and every other id come from the subordinate ranges; the layers keep the
    ownership they were unpacked with (under the default map), which fuse-overlayfs translates
    with ``keep_id_fuse_options``.
    """
    if plan.rootful:
        raise UsernsError("--userns keep-id has no meaning when rootlet runs as root", "run without it")
    if plan.single_id:
        raise UsernsError("--userns keep-id needs subordinate id ranges (" + (plan.reason or "none") + ")",
                          plan.hint)
    for what, mapping, own in (("uid", plan.uid_map, uid), ("gid", plan.gid_map, gid)):
        if sum(c for _, c in _subordinate(mapping)) < own:
            raise UsernsError(f"--userns keep-id needs at least {own} subordinate {what}s to map ids below "
                              f"your own {what} {own}", "grant a larger range in /etc/sub" + what)
    return UsernsPlan(_keep_id_map(plan.uid_map, uid, uid), _keep_id_map(plan.gid_map, gid, gid),
                      single_id=False, reason=None, hint=None, rootful=False)


def _fuse_mapping(mapping: tuple[IdMapping, ...], keep: int) -> str:
    """fuse-overlayfs ``STORED:SHOWN:COUNT`` triplets for one id kind (see keep_id_fuse_options).

    Under the default map image id 0 is our own host id, image id i ≥ 1 the i-th subordinate id.
    Under the keep-id map our own id is inner ``keep`` and the i-th subordinate id is inner i-1
    below ``keep`` and i above it. So image id 0 is stored as ``keep``, ids 1 … keep as one
    less, and higher ids unchanged. (fuse-overlayfs reads each triplet as: ``COUNT`` ids from
    ``STORED``, as its own user namespace sees the files, are shown from ``SHOWN`` on; checked
    by the keep-id system test, which expects the image's root-owned files to show as root.)
    """
    total = sum(c for _, c in _subordinate(mapping))
    parts = [(keep, 0, 1)]
    if keep:
        parts.append((0, 1, keep))
    if total > keep:
        parts.append((keep + 1, keep + 1, total - keep))
    return ":".join(f"{a}:{b}:{c}" for a, b, c in parts)


def keep_id_fuse_options(plan: UsernsPlan, uid: int, gid: int) -> str:
    """The fuse-overlayfs options that show keep-id containers the image's ownership unchanged."""
    return f"uidmapping={_fuse_mapping(plan.uid_map, uid)},gidmapping={_fuse_mapping(plan.gid_map, gid)}"


def become_root(plan: UsernsPlan) -> None:
    """In a process that has just entered a user namespace whose maps are written: take id 0 (and,
    with subordinate gids, drop the supplementary groups inherited from the host). Rootful plans
    are already root."""
    if plan.rootful:
        return
    os.setresgid(0, 0, 0)
    if not plan.single_id:
        os.setgroups([])
    os.setresuid(0, 0, 0)
