"""A catalogue of hostile layers: none may touch anything outside the layer directory.

Each case runs in a sandbox: ``tmp/outside/`` holds a victim file and a victim directory, and
``tmp/layer/`` is the destination. After applying the hostile tar, either LayerError was raised
or the entry was confined to (or skipped inside) the layer, and a snapshot of everything in
``tmp`` except ``layer/`` (names, types, contents, link targets, modes, owners, link counts,
mtimes, xattrs) is unchanged. Every case also runs with the openat2-less fallback resolver.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from rootlet.registry.errors import LayerError
from rootlet.runtime.image import applier
from rootlet.runtime.image.applier import ApplyOptions, apply_layer

UID, GID = os.getuid(), os.getgid()
Member = tuple[tarfile.TarInfo, "bytes | None"]


def member(name: str, kind: str = "file", data: bytes = b"", mode: int | None = None, link: str = "",
           xattrs: dict[str, str] | None = None, dev: tuple[int, int] = (0, 0)) -> Member:
    """One tar member owned by the invoking user (so the case also runs unprivileged)."""
    ti = tarfile.TarInfo(name)
    ti.uid, ti.gid, ti.mtime = UID, GID, 1_000_000_000
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
               "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE}[kind]
    ti.mode = mode if mode is not None else (0o777 if kind == "dir" else 0o666)
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    if kind == "file":
        ti.size = len(data)
        return ti, data
    return ti, None


def tar_bytes(members: list[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8") as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything observable about *root* and below, except the layer directory."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d != "layer"]
        for name in [""] + dirnames + filenames:
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(p)
            xattrs = tuple(sorted((x, os.getxattr(p, x, follow_symlinks=False))
                                  for x in os.listxattr(p, follow_symlinks=False)))
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                extra = Path(p).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                extra = tuple(sorted(os.listdir(p)))
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size,
                                             st.st_mtime_ns, xattrs, extra)
    return out


class Sandbox:
    """tmp/outside/{victim, victimdir/} and the empty destination tmp/layer/."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.outside = tmp / "outside"
        self.victimdir = self.outside / "victimdir"
        self.victimdir.mkdir(parents=True)
        self.victim = self.outside / "victim"
        self.victim.write_bytes(b"precious")
        os.chmod(self.victim, 0o600)
        os.chmod(self.victimdir, 0o700)
        os.setxattr(self.victim, "user.mark", b"1")
        os.utime(self.victim, (1000, 1000))
        os.utime(self.victimdir, (2000, 2000))
        self.layer = tmp / "layer"
        self.layer.mkdir()

    def abs(self, p: Path) -> str:
        return str(p)


Case = Callable[[Sandbox], list[Member]]


def evil_under(kind: str) -> Case:
    """symlink evil -> ../outside (dangling inside the layer), then an entry of *kind* under it."""
    def build(s: Sandbox) -> list[Member]:
        entries = {
            "file": [member("evil/victim", data=b"pwned")],
            "dir": [member("evil/victimdir/", "dir", mode=0o777)],
            "hardlink": [member("x", data=b"pwned"), member("evil/victim", "hardlink", link="x")],
            "whiteout": [member("evil/.wh.victim")],
            "opaque": [member("evil/victimdir/.wh..wh..opq")],
        }[kind]
        return [member("evil", "symlink", link="../outside")] + entries
    return build


CASES: dict[str, Case] = {
    "dotdot-file": lambda s: [member("../outside/victim", data=b"pwned")],
    "rooted-dotdot-file": lambda s: [member("/../../outside/victim", data=b"pwned")],
    "dotdot-dir": lambda s: [member("../outside", "dir", mode=0o777)],
    "inner-dotdot-file": lambda s: [member("a/../../outside/victim", data=b"pwned")],
    "abs-symlink-then-file": lambda s: [member("evil", "symlink", link=str(s.outside)),
                                        member("evil/victim", data=b"pwned")],
    "abs-symlink-then-dir-chmod": lambda s: [member("evil", "symlink", link=str(s.outside)),
                                             member("evil/victimdir/", "dir", mode=0o777)],
    **{f"rel-symlink-then-{k}": evil_under(k) for k in ("file", "dir", "hardlink", "whiteout", "opaque")},
    "rel-symlink-existing-target-then-file": lambda s: [
        member("outside/", "dir"), member("evil", "symlink", link="../../outside"),
        member("evil/victim", data=b"confined")],
    "root-symlink-then-tmp": lambda s: [member("evil", "symlink", link="/"),
                                        member("evil" + str(s.outside) + "/victim", data=b"pwned"),
                                        member("evil/tmp/x", data=b"confined")],
    "dotdot-symlink-chain": lambda s: [member("a", "symlink", link="b"), member("b", "symlink", link="c/d"),
                                       member("c", "symlink", link="../../../../.."),
                                       member("a/victim", data=b"pwned")],
    "abs-symlink-chain": lambda s: [member("a", "symlink", link="/b"), member("b", "symlink", link=str(s.tmp)),
                                    member("a/outside/victim", data=b"pwned")],
    "symlink-loop": lambda s: [member("loop", "symlink", link="loop"), member("loop/x", data=b"")],
    "hardlink-dotdot": lambda s: [member("h", "hardlink", link="../outside/victim")],
    "hardlink-abs-host-path": lambda s: [member("h", "hardlink", link=str(s.victim))],
    "hardlink-through-symlinked-parent": lambda s: [member("evil", "symlink", link=str(s.outside)),
                                                    member("h", "hardlink", link="evil/victim")],
    "hardlink-to-outside-symlink-then-file": lambda s: [
        member("s", "symlink", link=str(s.victim)), member("h", "hardlink", link="s"),
        member("h", data=b"pwned"), member("s", data=b"pwned too")],
    "symlink-then-file-same-name": lambda s: [member("victimlink", "symlink", link=str(s.victim)),
                                              member("victimlink", data=b"pwned")],
    "rel-symlink-then-file-same-name": lambda s: [member("victimlink", "symlink", link="../outside/victim"),
                                                  member("victimlink", data=b"pwned")],
    "symlink-then-dir-same-name": lambda s: [member("d", "symlink", link=str(s.victimdir)),
                                             member("d/", "dir", mode=0o777)],
    "symlink-then-root-mode-dir": lambda s: [member("d", "symlink", link=str(s.outside)),
                                             member("d/victimdir/", "dir", mode=0o777),
                                             member("./", "dir", mode=0o777)],
    "whiteout-dotdot": lambda s: [member("../outside/.wh.victim")],
    "whiteout-dotdot-name": lambda s: [member(".wh...")],
    "whiteout-dot-name": lambda s: [member("sub/.wh..")],
    "whiteout-empty-name": lambda s: [member(".wh.")],
    "opaque-in-abs-symlinked-dir": lambda s: [member("evil", "symlink", link=str(s.victimdir)),
                                              member("evil/.wh..wh..opq")],
    "whiteout-in-abs-symlinked-dir": lambda s: [member("evil", "symlink", link=str(s.outside)),
                                                member("evil/.wh.victim")],
    "smuggled-xattrs": lambda s: [member("f", data=b"x", xattrs={
        "trusted.overlay.opaque": "y", "user.overlay.redirect": "/outside", "user.overlay.origin": "x",
        "user.fuseoverlayfs.override_stat": "0:0:04755", "user.containers.override_stat": "0:0:04755"}),
        member("d/", "dir", xattrs={"trusted.overlay.opaque": "y", "user.overlay.opaque": "y"})],
    "device-nodes": lambda s: [member("dev/null", "char", dev=(1, 3)), member("dev/kmem", "char", dev=(1, 2))],
    # A whiteout of a name this layer wrote keeps the entry (OCI: it hides lower layers only) and
    # marks a directory opaque: it must neither remove a symlink nor mark its target.
    "whiteout-of-abs-symlink-to-outside-dir": lambda s: [member("evil", "symlink", link=str(s.victimdir)),
                                                         member(".wh.evil")],
    "whiteout-of-rel-symlink-to-outside-dir": lambda s: [member("evil", "symlink", link="../outside/victimdir"),
                                                         member(".wh.evil")],
    # An implied parent replaces a whiteout of this layer: never one reached through a symlink.
    "symlink-to-whiteout-then-child": lambda s: [member(".wh.w"), member("evil", "symlink", link="/w"),
                                                 member("evil/victim", data=b"pwned")],
    "whiteout-then-child-under-abs-symlinked-dir": lambda s: [
        member("evil", "symlink", link=str(s.outside)), member("evil/.wh.victimdir"),
        member("evil/victimdir/victim", data=b"pwned")],
}


def _in_layer(path: Path) -> str:
    """The in-layer name that an absolute host path resolves to under chroot semantics."""
    return str(path).lstrip("/")


def _with_target(case: Case, rel: bool) -> Case:
    """*case* with the symlink's target directories also present inside the layer, so the
    entries under the symlink resolve (to the in-layer copy) instead of dangling."""
    def build(s: Sandbox) -> list[Member]:
        if rel:
            dirs = ["outside/", "outside/victimdir/"]
        else:
            dirs = [_in_layer(s.outside) + "/", _in_layer(s.victimdir) + "/"]
        return [member(d, "dir", mode=0o755) for d in dirs] + case(s)
    return build


for _name in ["abs-symlink-then-file", "abs-symlink-then-dir-chmod", "whiteout-in-abs-symlinked-dir",
              "opaque-in-abs-symlinked-dir", "hardlink-through-symlinked-parent"]:
    CASES[_name + "+target"] = _with_target(CASES[_name], rel=False)
for _kind in ("file", "dir", "hardlink", "whiteout", "opaque"):
    CASES[f"rel-symlink-then-{_kind}+target"] = _with_target(CASES[f"rel-symlink-then-{_kind}"], rel=True)
CASES["whiteout-then-child-under-abs-symlinked-dir+target"] = _with_target(
    CASES["whiteout-then-child-under-abs-symlinked-dir"], rel=False)


@pytest.fixture(params=["openat2", "fallback"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each case with openat2 and with the component-walk fallback."""
    if request.param == "fallback":
        monkeypatch.setattr(applier, "_OPENAT2", False)
    return request.param


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_layer_is_refused_or_confined(tmp_path: Path, case: str, resolver: str) -> None:
    sb = Sandbox(tmp_path)
    blob = tmp_path / "blob.tar"
    blob.write_bytes(tar_bytes(CASES[case](sb)))
    before = snapshot(tmp_path)
    fds = set(os.listdir("/proc/self/fd"))
    try:
        res = apply_layer(str(blob), "none", str(sb.layer), ApplyOptions(single_id=True))
    except LayerError:
        res = None
    assert snapshot(tmp_path) == before, f"{case} changed something outside the layer"
    assert set(os.listdir("/proc/self/fd")) <= fds  # nothing leaked (GC may close older fds)
    if res is not None:
        check = CONFINED.get(case)
        if check is not None:
            check(sb)


def _symlink_replaced(s: Sandbox, name: str, data: bytes) -> None:
    p = s.layer / name
    assert not p.is_symlink() and p.read_bytes() == data


CONFINED: dict[str, Callable[[Sandbox], None]] = {
    "abs-symlink-then-file": lambda s: _symlink_replaced(
        s, str(s.outside).lstrip("/") + "/victim", b"pwned"),
    "rel-symlink-existing-target-then-file": lambda s: _symlink_replaced(s, "outside/victim", b"confined"),
    "root-symlink-then-tmp": lambda s: _symlink_replaced(s, "tmp/x", b"confined"),
    "abs-symlink-chain": lambda s: _symlink_replaced(s, str(s.tmp).lstrip("/") + "/outside/victim", b"pwned"),
    "hardlink-to-outside-symlink-then-file": lambda s: (_symlink_replaced(s, "h", b"pwned"),
                                                        _symlink_replaced(s, "s", b"pwned too")),
    "symlink-then-file-same-name": lambda s: _symlink_replaced(s, "victimlink", b"pwned"),
    "rel-symlink-then-file-same-name": lambda s: _symlink_replaced(s, "victimlink", b"pwned"),
    "symlink-then-dir-same-name": lambda s: (not (s.layer / "d").is_symlink() and (s.layer / "d").is_dir()) or
                                             pytest.fail("d is not a real directory"),
    "smuggled-xattrs": lambda s: (os.listxattr(s.layer / "f") == [] and os.listxattr(s.layer / "d") == []) or
                                 pytest.fail("a smuggled xattr was set"),
    "device-nodes": lambda s: os.listdir(s.layer) == [] or pytest.fail("something was created"),
    "whiteout-of-abs-symlink-to-outside-dir": lambda s: os.readlink(s.layer / "evil") == str(s.victimdir) or
                                                        pytest.fail("the symlink was not kept"),
    "whiteout-of-rel-symlink-to-outside-dir": lambda s: os.readlink(s.layer / "evil") == "../outside/victimdir" or
                                                        pytest.fail("the symlink was not kept"),
    "whiteout-in-abs-symlinked-dir": lambda s: stat.S_ISCHR(
        os.lstat(s.layer / str(s.outside).lstrip("/") / "victim").st_mode) or pytest.fail("no whiteout"),
}


def _is_file(p: Path, data: bytes) -> None:
    assert not p.is_symlink() and p.read_bytes() == data, p


def _is_dir(p: Path, mode: int) -> None:
    st = os.lstat(p)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == mode, p


def _is_whiteout(p: Path) -> None:
    st = os.lstat(p)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, p


def _is_opaque(p: Path) -> None:
    assert not p.is_symlink() and os.getxattr(p, "user.overlay.opaque") == b"y", p


CONFINED.update({
    "abs-symlink-then-file+target": lambda s: _is_file(s.layer / _in_layer(s.victim), b"pwned"),
    "abs-symlink-then-dir-chmod+target": lambda s: _is_dir(s.layer / _in_layer(s.victimdir), 0o777),
    "whiteout-in-abs-symlinked-dir+target": lambda s: _is_whiteout(s.layer / _in_layer(s.victim)),
    "opaque-in-abs-symlinked-dir+target": lambda s: _is_opaque(s.layer / _in_layer(s.victimdir)),
    "rel-symlink-then-file+target": lambda s: _is_file(s.layer / "outside/victim", b"pwned"),
    "rel-symlink-then-dir+target": lambda s: _is_dir(s.layer / "outside/victimdir", 0o777),
    "rel-symlink-then-hardlink+target": lambda s: _is_file(s.layer / "outside/victim", b"pwned"),
    "rel-symlink-then-whiteout+target": lambda s: _is_whiteout(s.layer / "outside/victim"),
    "rel-symlink-then-opaque+target": lambda s: _is_opaque(s.layer / "outside/victimdir"),
    "whiteout-then-child-under-abs-symlinked-dir+target": lambda s: (
        _is_opaque(s.layer / _in_layer(s.victimdir)),
        _is_file(s.layer / _in_layer(s.victimdir) / "victim", b"pwned")),
})


@pytest.mark.parametrize("case", sorted(c for c in CONFINED if c.endswith("+target")))
def test_confinement_cases_really_apply_with_openat2(tmp_path: Path, case: str) -> None:
    """With openat2, the "+target" cases must succeed (confined), not merely fail safely."""
    sb = Sandbox(tmp_path)
    blob = tmp_path / "blob.tar"
    blob.write_bytes(tar_bytes(CASES[case](sb)))
    apply_layer(str(blob), "none", str(sb.layer), ApplyOptions(single_id=True))
    CONFINED[case](sb)


def test_whiteout_through_symlink_lands_inside_layer(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path)
    blob = tmp_path / "blob.tar"
    blob.write_bytes(tar_bytes([member("etc/", "dir"), member("evil", "symlink", link="/etc"),
                                member("evil/.wh.x")]))
    apply_layer(str(blob), "none", str(sb.layer), ApplyOptions(single_id=True))
    assert stat.S_ISCHR(os.lstat(sb.layer / "etc/x").st_mode)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gzip layer holding one 64 MiB file of zeros (about 64 KiB compressed)."""
    size = 64 << 20
    ti = tarfile.TarInfo("zeros")
    ti.size, ti.uid, ti.gid = size, UID, GID
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [comp.compress(ti.tobuf(tarfile.PAX_FORMAT))]
    zeros = bytes(1 << 20)
    for _ in range(size >> 20):
        parts.append(comp.compress(zeros))
    parts.append(comp.compress(bytes(1024)))
    parts.append(comp.flush())
    path = tmp_path_factory.mktemp("bomb") / "bomb.tar.gz"
    path.write_bytes(b"".join(parts))
    return path


def _tree_bytes(root: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(root) for f in fs)


def test_decompression_bomb_refused_by_max_bytes(tmp_path: Path, bomb: Path) -> None:
    sb = Sandbox(tmp_path)
    limit = 4 << 20
    with pytest.raises(LayerError, match="decompression bomb"):
        apply_layer(str(bomb), "gzip", str(sb.layer), ApplyOptions(single_id=True, max_bytes=limit))
    assert _tree_bytes(sb.layer) <= limit


def test_decompression_bomb_refused_by_ratio(tmp_path: Path, bomb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applier, "_BOMB_FLOOR", 1 << 20)  # the real floor is 1 GiB: too slow for a unit test
    sb = Sandbox(tmp_path)
    csize = bomb.stat().st_size
    with pytest.raises(LayerError, match="decompression bomb"):
        apply_layer(str(bomb), "gzip", str(sb.layer), ApplyOptions(single_id=True, max_ratio=10))
    assert _tree_bytes(sb.layer) <= max(1 << 20, 10 * csize)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_oversized_name_header_refused_without_reading_it(tmp_path: Path, fmt: int) -> None:
    sb = Sandbox(tmp_path)
    blob = tmp_path / "blob.tar"
    blob.write_bytes(tar_bytes([member("a" * (2 << 20), data=b"x")], fmt))
    tracemalloc.start()
    try:
        with pytest.raises(LayerError, match="metadata record"):
            apply_layer(str(blob), "none", str(sb.layer), ApplyOptions(single_id=True))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert os.listdir(sb.layer) == []


def test_gnu_sparse_members_refused(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path)
    ti, _ = member("sparse", data=b"")
    ti.type = tarfile.GNUTYPE_SPARSE
    blob = tmp_path / "old.tar"
    blob.write_bytes(tar_bytes([(ti, None)], tarfile.GNU_FORMAT))
    with pytest.raises(LayerError, match="sparse"):
        apply_layer(str(blob), "none", str(sb.layer), ApplyOptions(single_id=True))
    ti, data = member("GNUSparseFile.0/sparse", data=b"1\n0\n4\n".ljust(512, b"\0") + b"data")
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse",
                      "GNU.sparse.realsize": "4"}
    blob.write_bytes(tar_bytes([(ti, data)]))
    with pytest.raises(LayerError, match="sparse"):
        apply_layer(str(blob), "none", str(sb.layer), ApplyOptions(single_id=True))


@pytest.mark.parametrize("cut", ["mid-data", "mid-header", "no-end-marker", "mid-padding", "empty"])
def test_truncated_tar_is_a_layer_error(tmp_path: Path, cut: str) -> None:
    sb = Sandbox(tmp_path)
    raw = tar_bytes([member("a", data=b"A" * 3000), member("dir/", "dir"), member("b", data=b"B" * 100)])
    # Layout: hdr a @0, data a @512..3512 (padded to 3584), hdr dir @3584, hdr b @4096, data b @4608
    # (padded to 5120), then the end-of-archive zero blocks.
    end = {"mid-data": 2000, "mid-header": 4096 + 200, "no-end-marker": 5120, "mid-padding": 3550,
           "empty": 0}[cut]
    blob = tmp_path / "cut.tar.gz"
    blob.write_bytes(gzip.compress(raw[:end]))
    with pytest.raises(LayerError) as info:
        apply_layer(str(blob), "gzip", str(sb.layer), ApplyOptions(single_id=True))
    if cut == "mid-data":
        assert "'a'" in info.value.message


def test_garbage_header_mid_archive_is_not_taken_as_end(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path)
    raw = bytearray(tar_bytes([member("a", data=b"A"), member("b", data=b"B")]))
    raw[1024 + 148:1024 + 156] = b"9999999\0"  # break b's header checksum
    blob = tmp_path / "bad.tar"
    blob.write_bytes(bytes(raw))
    with pytest.raises(LayerError, match="after entry 'a'"):
        apply_layer(str(blob), "none", str(sb.layer), ApplyOptions(single_id=True))
