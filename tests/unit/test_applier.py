"""Behaviour of the layer applier on real small layer tars built with tarfile.TarInfo.

Every tar is written to a temporary file and applied with the real code; owners default to the
invoking user so the suite runs both as root and as an unprivileged user (CI runs it as one).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from rootlet.registry.errors import LayerError
from rootlet.runtime.container.imagefiles import resolve_layered
from rootlet.runtime.image import applier
from rootlet.runtime.image.applier import ApplyOptions, ApplyResult, apply_layer, open_layer_stream

IS_ROOT = os.geteuid() == 0
UID, GID = os.getuid(), os.getgid()
MTIME = 1_600_000_000


def member(name: str, kind: str = "file", data: bytes = b"", mode: int | None = None,
           uid: int = UID, gid: int = GID, mtime: float = MTIME, link: str = "",
           xattrs: dict[str, str] | None = None, dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes | None]:
    """One tar member (header plus data) of the given kind."""
    ti = tarfile.TarInfo(name)
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE,
             "block": tarfile.BLKTYPE}
    ti.type = types[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    if kind == "file":
        ti.size = len(data)
        return ti, data
    return ti, None


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """The uncompressed PAX tar of *members*."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def write_layer(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
                compression: str = "none", name: str = "layer.tar") -> Path:
    """Write the tar of *members* (optionally compressed) to a file; return its path."""
    raw = tar_bytes(members)
    if compression == "gzip":
        raw = gzip.compress(raw)
    elif compression == "zstd":
        import zstandard

        raw = zstandard.ZstdCompressor().compress(raw)
    blob = tmp_path / name
    blob.write_bytes(raw)
    return blob


def apply(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
          opts: ApplyOptions = ApplyOptions(), dest: str = "dest") -> tuple[Path, ApplyResult]:
    """Write and apply a layer into a fresh directory tmp_path/dest."""
    blob = write_layer(tmp_path, members, name=f"{dest}.tar")
    target = tmp_path / dest
    target.mkdir()
    return target, apply_layer(str(blob), "none", str(target), opts)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_regular_file_mode_owner_and_mtime_applied(tmp_path: Path) -> None:
    dest, res = apply(tmp_path, [member("etc/", "dir"), member("etc/conf", data=b"x=1\n", mode=0o640, mtime=MTIME + 0.5)])
    st = os.lstat(dest / "etc/conf")
    assert (dest / "etc/conf").read_bytes() == b"x=1\n"
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (UID, GID)
    assert st.st_mtime_ns == (MTIME * 10**9 + 5 * 10**8)
    assert res.entries == 2


def test_large_file_is_streamed_intact(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    dest, _ = apply(tmp_path, [member("big", data=data)])
    assert (dest / "big").read_bytes() == data


def test_setuid_bit_survives_chown(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("bin/", "dir"), member("bin/su", data=b"\x7fELF", mode=0o6755),
                               member("tmp/", "dir", mode=0o1777)])
    assert stat.S_IMODE(os.lstat(dest / "bin/su").st_mode) == 0o6755
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777


def test_file_capability_set_after_chown(tmp_path: Path) -> None:
    cap = b"\x01\x00\x00\x02" + b"\x00\x04\x00\x00" + b"\x00" * 12  # v2, effective, cap_net_bind_service
    dest, res = apply(tmp_path, [member("ping", data=b"x", mode=0o755,
                                        xattrs={"security.capability": cap.decode("utf-8", "surrogateescape")})])
    if IS_ROOT:
        assert os.getxattr(dest / "ping", "security.capability") == cap
        assert res.failed_xattrs == 0
    else:
        assert res.failed_xattrs == 1  # needs CAP_SETFCAP; counted, not fatal


def test_user_xattrs_applied_to_files_and_dirs(tmp_path: Path) -> None:
    dest, res = apply(tmp_path, [member("d/", "dir", xattrs={"user.a": "1"}),
                                 member("d/f", data=b"", mode=0o444, xattrs={"user.b": "two"})])
    assert os.getxattr(dest / "d", "user.a") == b"1"
    assert os.getxattr(dest / "d/f", "user.b") == b"two"
    assert res.dropped_xattrs == 0


def test_overlay_steering_xattrs_dropped_and_counted(tmp_path: Path) -> None:
    bad = {"trusted.overlay.opaque": "y", "user.overlay.redirect": "/x", "user.overlay.origin": "o",
           "user.fuseoverlayfs.override_stat": "0:0:0755", "user.containers.override_stat": "0:0:0755",
           "security.selinux": "system_u:object_r:bin_t:s0", "user.ok": "1"}
    dest, res = apply(tmp_path, [member("f", data=b"x", xattrs=bad)])
    assert os.listxattr(dest / "f", follow_symlinks=False) == ["user.ok"]
    assert res.dropped_xattrs == 6


def test_hardlink_shares_inode(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("a", data=b"same", mode=0o4755), member("sub/", "dir"),
                               member("sub/b", "hardlink", link="a"),
                               member("c", "hardlink", link="./sub/b")])
    ino = os.lstat(dest / "a").st_ino
    assert os.lstat(dest / "sub/b").st_ino == ino == os.lstat(dest / "c").st_ino
    assert os.lstat(dest / "a").st_nlink == 3
    assert stat.S_IMODE(os.lstat(dest / "c").st_mode) == 0o4755


def test_hardlink_to_symlink_links_the_symlink_itself(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("s", "symlink", link="/etc/passwd"), member("h", "hardlink", link="s")])
    assert os.path.islink(dest / "h") and os.readlink(dest / "h") == "/etc/passwd"
    assert os.lstat(dest / "h").st_ino == os.lstat(dest / "s").st_ino


def test_hardlink_to_missing_target_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="not in this layer"):
        apply(tmp_path, [member("h", "hardlink", link="nowhere")])


def test_symlink_created_verbatim(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("abs", "symlink", link="/usr/bin/busybox", mtime=MTIME),
                               member("rel", "symlink", link="../../x/./y"),
                               member("bin/", "dir")])
    assert os.readlink(dest / "abs") == "/usr/bin/busybox"
    assert os.readlink(dest / "rel") == "../../x/./y"
    st = os.lstat(dest / "abs")
    assert st.st_mtime == MTIME and (st.st_uid, st.st_gid) == (UID, GID)


def test_whiteout_becomes_char_0_0_device(tmp_path: Path) -> None:
    dest, res = apply(tmp_path, [member("etc/", "dir"), member("etc/.wh.motd", data=b"")])
    st = os.lstat(dest / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not (dest / "etc/.wh.motd").exists()
    assert res.skipped_devices == 0


def test_whiteout_after_directory_of_same_layer_keeps_it_and_makes_it_opaque(tmp_path: Path) -> None:
    """A whiteout hides only lower layers' entries (OCI layer.md): the directory this layer wrote
    before its whiteout stays with its contents, and turns opaque so the lower ``d/x`` is hidden."""
    dest, _ = apply(tmp_path, [member("d/", "dir"), member("d/x/", "dir"), member("d/x/f", data=b"1"),
                               member("d/.wh.x")])
    assert (dest / "d/x/f").read_bytes() == b"1"
    assert os.getxattr(dest / "d/x", "user.overlay.opaque") == b"y"


# -- whiteouts and entries of the same layer (OCI layer.md "Whiteouts") ----------------------------
#
# "Whiteout files MUST only apply to resources in lower/parent layers. Files that are present in the
# same layer as a whiteout file can only be hidden by whiteout files in subsequent layers." Each
# layer is its own overlay layer directory, so these tests check both what the layer directory
# holds (the overlay's input) and the merged view that rootlet's own layered reader computes from it.

Members = list[tuple[tarfile.TarInfo, bytes | None]]


def apply_stack(tmp_path: Path, lower: Members, upper: Members) -> tuple[Path, Path]:
    """Apply *lower*, then *upper* on top of it (as a pull does); return both layer directories.

    Single-id mode: implied parents default to 0:0, which an unprivileged run cannot chown to."""
    low, _ = apply(tmp_path, lower, ApplyOptions(single_id=True), dest="lower")
    up, _ = apply(tmp_path, upper, ApplyOptions(lower_dirs=(str(low),), single_id=True), dest="upper")
    return low, up


def merged(layers: tuple[Path, ...], path: str) -> bytes | None:
    """Contents of regular file *path* in the merged view of *layers* (topmost first), None if absent."""
    host = resolve_layered(tuple(str(p) for p in layers), path)
    return None if host is None else Path(host).read_bytes()


def in_order(order: str, first: Members, second: Members) -> Members:
    """*first* then *second*, or the other way round when *order* is "reversed"."""
    return first + second if order == "as-listed" else second + first


ORDERS = ("as-listed", "reversed")


@pytest.mark.parametrize("order", ORDERS)
def test_file_and_its_whiteout_in_one_layer_keep_the_file(tmp_path: Path, order: str) -> None:
    """A layer holding both etc/motd and etc/.wh.motd keeps its own etc/motd, whatever the tar order
    (the whiteout coming after the file used to delete it)."""
    lower, upper = apply_stack(
        tmp_path, [member("etc/", "dir"), member("etc/motd", data=b"lower\n")],
        [member("etc/", "dir")] + in_order(order, [member("etc/motd", data=b"mine\n")], [member("etc/.wh.motd")]))
    st = os.lstat(upper / "etc/motd")
    assert stat.S_ISREG(st.st_mode) and (upper / "etc/motd").read_bytes() == b"mine\n"
    assert merged((upper, lower), "etc/motd") == b"mine\n"


@pytest.mark.parametrize("explicit_dir", [False, True], ids=["implied-dir", "dir-entry"])
@pytest.mark.parametrize("order", ORDERS)
def test_directory_whited_out_and_recreated_in_one_layer_holds_only_new_entries(
        tmp_path: Path, order: str, explicit_dir: bool) -> None:
    """``.wh.home`` plus ``home/fresh`` in one layer: /home holds only this layer's entries. The
    whiteout first used to fail the pull (``home/fresh``: Not a directory); after, it deleted
    the new file. The layer directory must hold an opaque ``home`` dir, not a whiteout."""
    recreate = ([member("home/", "dir", mode=0o750)] if explicit_dir else []) + [member("home/fresh", data=b"new")]
    lower, upper = apply_stack(
        tmp_path, [member("home/", "dir"), member("home/old", data=b"old")],
        in_order(order, [member(".wh.home")], recreate))
    st = os.lstat(upper / "home")
    assert stat.S_ISDIR(st.st_mode)
    assert os.getxattr(upper / "home", "user.overlay.opaque") == b"y"
    assert os.listdir(upper / "home") == ["fresh"]
    if explicit_dir:
        assert stat.S_IMODE(st.st_mode) == 0o750
    assert merged((upper, lower), "home/fresh") == b"new"
    assert merged((upper, lower), "home/old") is None


@pytest.mark.parametrize("order", ORDERS)
def test_opaque_whiteout_hides_only_lower_entries_of_the_directory(tmp_path: Path, order: str) -> None:
    """``home/.wh..wh..opq`` hides the lower layers' entries of home, never this layer's, in
    either order."""
    lower, upper = apply_stack(
        tmp_path, [member("home/", "dir"), member("home/old", data=b"old")],
        [member("home/", "dir")] + in_order(order, [member("home/.wh..wh..opq")],
                                            [member("home/fresh", data=b"new")]))
    assert os.getxattr(upper / "home", "user.overlay.opaque") == b"y"
    assert merged((upper, lower), "home/fresh") == b"new"
    assert merged((upper, lower), "home/old") is None


@pytest.mark.parametrize("order", ORDERS)
def test_whiteout_and_opaque_whiteout_of_one_directory_in_one_layer(tmp_path: Path, order: str) -> None:
    """``.wh.home`` with ``home/.wh..wh..opq`` and ``home/fresh``: both markers speak of the lower
    layers only, so /home is this layer's opaque directory holding fresh."""
    lower, upper = apply_stack(
        tmp_path, [member("home/", "dir"), member("home/old", data=b"old")],
        in_order(order, [member(".wh.home")], [member("home/.wh..wh..opq"), member("home/fresh", data=b"new")]))
    assert os.getxattr(upper / "home", "user.overlay.opaque") == b"y"
    assert os.listdir(upper / "home") == ["fresh"]
    assert merged((upper, lower), "home/old") is None
    assert merged((upper, lower), "home/fresh") == b"new"


def test_whiteout_of_lower_layer_file_still_hides_it(tmp_path: Path) -> None:
    """The plain case across layers is unchanged: the upper layer stores a char 0/0 whiteout and
    the lower file is gone from the merged view, while its siblings stay."""
    lower, upper = apply_stack(
        tmp_path, [member("etc/", "dir"), member("etc/motd", data=b"hi"), member("etc/issue", data=b"i")],
        [member("etc/.wh.motd")])
    st = os.lstat(upper / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert merged((upper, lower), "etc/motd") is None
    assert merged((upper, lower), "etc/issue") == b"i"


def test_directory_replacing_a_file_of_the_same_layer_hides_the_lower_directory(tmp_path: Path) -> None:
    """Entries apply in order: a file ``d`` replaces the lower directory d entirely, so the
    directory ``d/`` that replaces that file later in the layer starts empty (opaque)."""
    lower, upper = apply_stack(tmp_path, [member("d/", "dir"), member("d/old", data=b"old")],
                               [member("d", data=b"file"), member("d/", "dir"), member("d/new", data=b"new")])
    assert os.getxattr(upper / "d", "user.overlay.opaque") == b"y"
    assert merged((upper, lower), "d/old") is None
    assert merged((upper, lower), "d/new") == b"new"


def test_implied_parent_below_recreated_directory_ignores_hidden_lower(tmp_path: Path) -> None:
    """Parents implied below a directory this layer whited out and recreated take the defaults, not
    the owner and mode of the lower layer's directory the whiteout hid."""
    lower, upper = apply_stack(tmp_path, [member("home/", "dir"), member("home/a/", "dir", mode=0o700)],
                               [member(".wh.home"), member("home/a/f", data=b"x")])
    assert stat.S_IMODE(os.lstat(upper / "home").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(upper / "home/a").st_mode) == 0o755
    assert merged((upper, lower), "home/a/f") == b"x"


def test_openat2_fallback_recreates_a_whited_out_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without openat2 the component walk reports the whiteout in the way as ENOTDIR too, and the
    implied parent replaces it the same way."""
    monkeypatch.setattr(applier, "_OPENAT2", False)
    dest, _ = apply(tmp_path, [member(".wh.home"), member("home/a/fresh", data=b"new")], ApplyOptions(single_id=True))
    assert os.getxattr(dest / "home", "user.overlay.opaque") == b"y"
    assert (dest / "home/a/fresh").read_bytes() == b"new"


def test_file_in_the_way_of_a_parent_is_still_an_error(tmp_path: Path) -> None:
    """Only a whiteout is replaced by an implied parent: a file of the layer under which it puts
    entries is a broken layer, as before."""
    with pytest.raises(LayerError, match="Not a directory"):
        apply(tmp_path, [member("f", data=b"x"), member("f/g", data=b"y")])


def test_whiteout_of_same_layer_symlink_neither_removes_nor_follows_it(tmp_path: Path) -> None:
    """The symlink this layer wrote already hides the lower name; the whiteout must not mark the
    directory it points to opaque (nothing is ever done through a symlink)."""
    dest, _ = apply(tmp_path, [member("real/", "dir"), member("link", "symlink", link="/real"),
                               member(".wh.link")])
    assert os.readlink(dest / "link") == "/real"
    assert os.listxattr(dest / "real") == []


def test_opaque_dir_gets_user_overlay_opaque_xattr(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("var/", "dir"), member("var/keep", data=b"k"),
                               member("var/.wh..wh..opq")])
    assert os.getxattr(dest / "var", "user.overlay.opaque") == b"y"
    assert (dest / "var/keep").read_bytes() == b"k"  # same-layer entries stay
    assert not (dest / "var/.wh..wh..opq").exists()


@pytest.mark.root_only
def test_privileged_opaque_also_sets_trusted_xattr(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("var/", "dir"), member("var/.wh..wh..opq")],
                    ApplyOptions(privileged_xattrs=True))
    assert os.getxattr(dest / "var", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(dest / "var", "user.overlay.opaque") == b"y"


def test_aufs_meta_whiteouts_skipped(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member(".wh..wh.plnk/", "dir"), member(".wh..wh.aufs", data=b"")])
    assert os.listdir(dest) == []


def test_implied_parent_takes_mode_from_lower_layer(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "tmp").mkdir(parents=True)
    os.chmod(lower / "tmp", 0o1777)
    os.utime(lower / "tmp", (MTIME, MTIME))
    dest, _ = apply(tmp_path, [member("tmp/x", data=b"x")], ApplyOptions(lower_dirs=(str(lower),)))
    st = os.lstat(dest / "tmp")
    assert stat.S_IMODE(st.st_mode) == 0o1777
    assert (st.st_uid, st.st_gid) == (UID, GID)
    assert st.st_mtime == MTIME


def test_implied_parent_uses_topmost_lower_that_has_it(tmp_path: Path) -> None:
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    (top / "a").mkdir(parents=True)
    (bottom / "a/b").mkdir(parents=True)
    os.chmod(bottom / "a/b", 0o750)
    (top / "c").mkdir()
    os.mknod(top / "c/d", stat.S_IFCHR, os.makedev(0, 0))  # a whiteout in the upper lower
    (bottom / "c/d").mkdir(parents=True)
    os.chmod(bottom / "c/d", 0o700)
    dest, _ = apply(tmp_path, [member("a/b/f", data=b""), member("c/d/f", data=b"")],
                    ApplyOptions(lower_dirs=(str(top), str(bottom)), single_id=True))
    assert stat.S_IMODE(os.lstat(dest / "a/b").st_mode) == 0o750
    assert stat.S_IMODE(os.lstat(dest / "c/d").st_mode) == 0o755  # whited out above: default


def test_implied_parent_without_lower_is_0755_root(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("usr/local/bin/tool", data=b"#!")], ApplyOptions(single_id=True))
    for d in ("usr", "usr/local", "usr/local/bin"):
        st = os.lstat(dest / d)
        assert stat.S_IMODE(st.st_mode) == 0o755
        if IS_ROOT:
            assert (st.st_uid, st.st_gid) == (0, 0)


def test_implied_parent_does_not_follow_lower_symlink_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "secret"
    outside.mkdir(parents=True)
    os.chmod(outside, 0o1770)
    lower = tmp_path / "lower"
    lower.mkdir()
    os.symlink(str(tmp_path / "outside"), lower / "a")
    dest, _ = apply(tmp_path, [member("a/secret/f", data=b"")],
                    ApplyOptions(lower_dirs=(str(lower),), single_id=True))
    assert stat.S_IMODE(os.lstat(dest / "a/secret").st_mode) == 0o755


def test_directory_mode_and_mtime_applied_after_children(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("ro/", "dir", mode=0o555, mtime=MTIME), member("ro/sub/", "dir", mode=0o500),
                               member("ro/sub/f", data=b"x"), member("ro/g", data=b"y")])
    assert stat.S_IMODE(os.lstat(dest / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(dest / "ro/sub").st_mode) == 0o500
    assert os.lstat(dest / "ro").st_mtime == MTIME
    assert (dest / "ro/sub/f").read_bytes() == b"x"
    os.chmod(dest / "ro", 0o755)
    os.chmod(dest / "ro/sub", 0o755)


def test_root_entry_metadata_applied(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("./", "dir", mode=0o750, mtime=MTIME), member("./f", data=b"")])
    st = os.lstat(dest)
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_mtime == MTIME


def test_diff_id_is_hash_of_uncompressed_stream(tmp_path: Path) -> None:
    raw = tar_bytes([member("a", data=b"hello"), member("d/", "dir")]) + b"\0" * 4096  # trailing padding too
    blob = tmp_path / "l.tar.gz"
    blob.write_bytes(gzip.compress(raw))
    (tmp_path / "d").mkdir()
    res = apply_layer(str(blob), "gzip", str(tmp_path / "d"))
    assert res.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert res.size == len(raw) and res.entries == 2


@pytest.mark.parametrize("compression", ["gzip", "zstd-multiframe", "none", "auto-gzip", "auto-zstd", "auto-none"])
def test_gzip_zstd_multiframe_and_plain_all_apply(tmp_path: Path, compression: str) -> None:
    import zstandard

    raw = tar_bytes([member("a", data=b"A" * 5000), member("b/", "dir"), member("b/c", data=os.urandom(70000))])
    kind = compression.removeprefix("auto-")
    if kind == "gzip":
        blob = gzip.compress(raw)
    elif kind.startswith("zstd"):
        half = len(raw) // 2
        blob = zstandard.ZstdCompressor().compress(raw[:half]) + zstandard.ZstdCompressor().compress(raw[half:])
    else:
        blob = raw
    path = tmp_path / "blob"
    path.write_bytes(blob)
    (tmp_path / "d").mkdir()
    mode = "auto" if compression.startswith("auto") else ("zstd" if kind.startswith("zstd") else kind)
    res = apply_layer(str(path), mode, str(tmp_path / "d"))
    assert res.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (tmp_path / "d/a").read_bytes() == b"A" * 5000
    assert res.size == len(raw)


def test_open_layer_stream_reads_across_zstd_frames(tmp_path: Path) -> None:
    import zstandard

    path = tmp_path / "z"
    path.write_bytes(zstandard.compress(b"one ") + zstandard.compress(b"two"))
    with open_layer_stream(str(path), "zstd") as f:
        assert f.read() == b"one two"


def test_corrupt_gzip_is_a_layer_error(tmp_path: Path) -> None:
    good = gzip.compress(tar_bytes([member("a", data=b"x" * 1000)]))
    path = tmp_path / "bad.gz"
    path.write_bytes(good[:-12] + bytes(b ^ 0xFF for b in good[-12:]))
    (tmp_path / "d").mkdir()
    with pytest.raises(LayerError):
        apply_layer(str(path), "gzip", str(tmp_path / "d"))


def test_device_nodes_skipped(tmp_path: Path) -> None:
    dest, res = apply(tmp_path, [member("dev/", "dir"), member("dev/null", "char", dev=(1, 3)),
                                 member("dev/sda", "block", dev=(8, 0)), member("etc/x", data=b"")],
                      ApplyOptions(single_id=True))
    assert os.listdir(dest / "dev") == []
    assert res.skipped_devices == 2 and res.entries == 4


def test_fifo_created_with_mode(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("p", "fifo", mode=0o620)])
    st = os.lstat(dest / "p")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620


def test_later_entry_replaces_earlier(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [
        member("f2d", data=b"file"), member("f2d/", "dir"),
        member("d2f/", "dir"), member("d2f/child", data=b"c"), member("d2f", data=b"now a file"),
        member("f2l", data=b"file"), member("f2l", "symlink", link="/x"),
        member("l2f", "symlink", link="/x"), member("l2f", data=b"now a file"),
        member("same", data=b"old"), member("same", data=b"new", mode=0o600),
        member("dd/", "dir", mode=0o700), member("dd/keep", data=b"k"), member("dd/", "dir", mode=0o751),
    ])
    assert (dest / "f2d").is_dir()
    assert (dest / "d2f").read_bytes() == b"now a file"
    assert os.readlink(dest / "f2l") == "/x"
    assert not os.path.islink(dest / "l2f") and (dest / "l2f").read_bytes() == b"now a file"
    assert (dest / "same").read_bytes() == b"new" and stat.S_IMODE(os.lstat(dest / "same").st_mode) == 0o600
    assert (dest / "dd/keep").exists() and stat.S_IMODE(os.lstat(dest / "dd").st_mode) == 0o751


def test_symlinked_parent_followed_inside_layer(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("real/", "dir"), member("alias", "symlink", link="/real"),
                               member("alias/f", data=b"via link"), member("up", "symlink", link="../../../real"),
                               member("up/g", data=b"clamped")])
    assert (dest / "real/f").read_bytes() == b"via link"
    assert (dest / "real/g").read_bytes() == b"clamped"


def test_name_escaping_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r"a/\.\./\.\./x"):
        apply(tmp_path, [member("a/../../x", data=b"")])


@pytest.mark.skipif(IS_ROOT, reason="root can chown to any id; the failure only happens unprivileged")
def test_single_id_mode_ignores_chown_failure(tmp_path: Path) -> None:
    dest, _ = apply(tmp_path, [member("d/", "dir", uid=0, gid=0), member("d/f", data=b"x", uid=1000, gid=1000, mode=0o640),
                               member("l", "symlink", link="d", uid=0, gid=0)],
                    ApplyOptions(single_id=True))
    st = os.lstat(dest / "d/f")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (UID, 0o640)


@pytest.mark.skipif(IS_ROOT, reason="root can chown to any id; the failure only happens unprivileged")
def test_chown_failure_is_an_error_without_single_id(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="owner 0:0"):
        apply(tmp_path, [member("f", data=b"x", uid=0, gid=0)])


def test_openat2_fallback_applies_plain_layers_and_refuses_symlinked_parents(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applier, "_OPENAT2", False)
    dest, _ = apply(tmp_path, [member("a/", "dir"), member("a/b/c", data=b"x"), member("a/.wh.z")],
                    ApplyOptions(single_id=True))
    assert (dest / "a/b/c").read_bytes() == b"x"
    with pytest.raises(LayerError, match="symlink"):
        apply(tmp_path, [member("real/", "dir"), member("s", "symlink", link="real"), member("s/f", data=b"")],
              dest="dest2")


def test_no_fd_left_open_on_success_or_error(tmp_path: Path) -> None:
    before = open_fds()
    apply(tmp_path, [member(f"d{i}/f{j}", data=b"x") for i in range(80) for j in range(2)],
          ApplyOptions(single_id=True))
    with pytest.raises(LayerError):
        apply(tmp_path, [member("a/", "dir"), member("a/b", data=b""), member("../x", data=b"")], dest="d2")
    assert open_fds() == before


def test_many_entries_apply(tmp_path: Path) -> None:
    members = [member(f"usr/share/d{i}/", "dir") for i in range(50)]
    members += [member(f"usr/share/d{i}/f{j}", data=b"content") for i in range(50) for j in range(40)]
    dest, res = apply(tmp_path, [member("usr/", "dir"), member("usr/share/", "dir")] + members)
    assert res.entries == 2 + 50 + 2000
    assert len(os.listdir(dest / "usr/share/d49")) == 40


def test_unknown_compression_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        open_layer_stream(str(write_layer(tmp_path, [])), "lz4")


@pytest.mark.root_only
def test_owner_applied_even_in_setgid_destination(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    os.chown(dest, 0, 4321)
    os.chmod(dest, 0o2755)  # new entries would inherit group 4321 if we skipped chown
    blob = write_layer(tmp_path, [member("f", data=b"x", uid=0, gid=0), member("d/", "dir", uid=0, gid=0)])
    apply_layer(str(blob), "none", str(dest))
    assert os.lstat(dest / "f").st_gid == 0 and os.lstat(dest / "d").st_gid == 0
