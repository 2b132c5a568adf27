"""The streaming tar reader (runtime/tarstream.py) and the applier's streaming path around it.

The reader is checked against :mod:`tarfile` on archives tarfile writes in every format, fed
in chunks of awkward sizes, and against hand-made malformed and hostile headers. The applier
tests cover what the reader's caller owns: the gzip decoder, the read-ahead thread, and the
diff_id of everything up to EOF.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rootlet.registry.errors import LayerError
from rootlet.runtime.image import applier
from rootlet.runtime.image.applier import ApplyOptions, apply_layer, open_layer_stream
from rootlet.runtime.image.tarstream import TarFormatError, TarMember, TarReader

UID, GID = os.getuid(), os.getgid()
LIMIT = 1 << 20


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    """*data* in pieces of *size* bytes."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def reader_of(data: bytes, size: int = 1 << 16, limit: int = LIMIT) -> TarReader:
    """A TarReader over *data* delivered in chunks of *size* bytes."""
    pieces = chunked(data, size)
    return TarReader(lambda: next(pieces, b""), limit)


def read_all(data: bytes, size: int = 1 << 16, limit: int = LIMIT) -> list[tuple[TarMember, bytes]]:
    """Every member of *data* with its data, read in views of at most 1000 bytes."""
    r = reader_of(data, size, limit)
    out = []
    for m in r:
        parts = []
        while view := r.read_data(1000):
            parts.append(bytes(view))
        out.append((m, b"".join(parts)))
    return out


def ti(name: str, type_: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    """A TarInfo with deterministic metadata."""
    info = tarfile.TarInfo(name)
    info.type = type_
    info.uid, info.gid, info.mtime, info.mode = 1000, 1000, 1_600_000_000, 0o644
    for k, v in attrs.items():
        setattr(info, k, v)
    return info


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def sample_members(fmt: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """A bit of everything a layer holds, within what format *fmt* can express."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (ti("./", tarfile.DIRTYPE, mode=0o755), None),
        (ti("etc/", tarfile.DIRTYPE, mode=0o755), None),
        (ti("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n"),
        (ti("empty"), b""),
        (ti("exact512"), b"x" * 512),
        (ti("big"), os.urandom(70_000)),
        (ti("bin/su", mode=0o4755, uid=0, gid=0), b"\x7fELF"),
        (ti("lib/" + "d" * 120 + "/" + "f" * 99), b"ustar prefix or long name"),
        (ti("sym", tarfile.SYMTYPE, linkname="/usr/bin/busybox"), None),
        (ti("hard", tarfile.LNKTYPE, linkname="etc/passwd"), None),
        (ti("fifo", tarfile.FIFOTYPE, mode=0o620), None),
        (ti("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), None),
        (ti("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0), None),
        (ti("contiguous", tarfile.CONTTYPE), b"7 is a regular file"),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        members += [
            (ti("deep/" + "n" * 300), b"long name"),
            (ti("longsym", tarfile.SYMTYPE, linkname="/" + "t" * 200), None),
            (ti("bigids", uid=3_000_000, gid=2_500_000), b"ids past the 7-digit octal fields"),
            (ti("ünïcode/naïve.txt"), b"utf-8 names"),
            (ti("old", mtime=-1_000), b"before the epoch"),
        ]
    if fmt == tarfile.PAX_FORMAT:
        members += [
            (ti("frac", mtime=1_600_000_000.25), b"fractional mtime"),
            (ti("bad\udcffname"), b"undecodable bytes in a name"),
        ]
        x = ti("xattrs")
        x.pax_headers = {"SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x01\x00"}
        members.append((x, b"with xattrs"))
    return members


def expected(data: bytes) -> list[tuple[str, str, bytes, int, int, int, int, int, bytes]]:
    """What tarfile reads from *data*, in the reader's terms (names as stored, mtime in µs:
    tarfile's float mtimes are not exact to the nanosecond; the reader's are)."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
        for info in tf:
            content = tf.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            out.append((info.name.rstrip("/"), info.linkname, info.type, info.mode, info.uid, info.gid,
                        round(info.mtime * 10**6), len(content), content))
    return out


def actual(data: bytes, size: int) -> list[tuple[str, str, bytes, int, int, int, int, int, bytes]]:
    return [(m.name.rstrip("/"), m.linkname, m.type, m.mode, m.uid, m.gid, m.mtime_ns // 1000, m.size, content)
            for m, content in read_all(data, size)]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
@pytest.mark.parametrize("size", [1, 7, 511, 512, 513, 4096, 1 << 20])
def test_reads_what_tarfile_reads(fmt: int, size: int) -> None:
    data = make_tar(sample_members(fmt), fmt)
    assert actual(data, size) == expected(data)


def test_xattrs_are_raw_bytes() -> None:
    x = ti("f")
    x.pax_headers = {"SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x01\udc80\x00"}
    [(m, content)] = read_all(make_tar([(x, b"data")]))
    assert m.xattrs == {"user.a": b"1", "security.capability": b"\x01\x80\x00"}
    assert content == b"data"


def test_members_without_pax_records_have_no_xattrs() -> None:
    [(m, _)] = read_all(make_tar([(ti("f"), b"")], tarfile.USTAR_FORMAT))
    assert m.xattrs is None and m.mtime_ns == 1_600_000_000 * 10**9


def test_unread_data_is_skipped() -> None:
    data = make_tar([(ti("a"), b"A" * 3000), (ti("b"), b"B" * 10), (ti("c"), b"C")])
    r = reader_of(data, 100)
    assert r.next().name == "a"  # type: ignore[union-attr]
    assert bytes(r.read_data(5)) == b"AAAAA"
    b = r.next()
    assert b is not None and b.name == "b"
    c = r.next()
    assert c is not None and c.name == "c" and bytes(r.read_data(10)) == b"C"
    assert r.read_data(10) == b""
    assert r.next() is None and r.next() is None


def test_stops_at_end_marker_and_leaves_the_rest_unread() -> None:
    data = make_tar([(ti("a"), b"x")], tarfile.USTAR_FORMAT)
    pieces = chunked(data + b"junk after the archive", 256)
    r = TarReader(lambda: next(pieces, b""), LIMIT)
    assert [m.name for m in r] == ["a"]
    assert r.offset == 1024 + 1024  # header, data block, two zero blocks: nothing further
    assert r.next() is None


@pytest.mark.parametrize("after", [b"", bytes(512), bytes(4096) + b"junk"])
def test_end_marker_variants_that_end_the_archive(after: bytes) -> None:
    data = make_tar([(ti("a"), b"x")], tarfile.USTAR_FORMAT)[:1024] + bytes(512)
    assert [m.name for m, _ in read_all(data + after)] == ["a"]


def test_members_hidden_after_a_lone_zero_block_are_an_error() -> None:
    hidden = make_tar([(ti("hidden"), b"x")], tarfile.USTAR_FORMAT)
    data = make_tar([(ti("a"), b"x")], tarfile.USTAR_FORMAT)[:1024] + bytes(512) + hidden
    with pytest.raises(TarFormatError, match="after the first end-of-archive block"):
        read_all(data)
    with pytest.raises(TarFormatError, match="truncated"):
        read_all(data[:1024 + 512 + 100])


def raw_header(name: bytes = b"f", type_: bytes = b"0", size: bytes = b"00000000000", mode: bytes = b"0000644",
               magic: bytes = b"ustar\x0000", prefix: bytes = b"", mtime: bytes = b"00000000000",
               signed: bool = False) -> bytes:
    """One header block with a correct checksum, fields given as raw bytes."""
    b = bytearray(512)
    b[0:len(name)] = name
    b[100:100 + len(mode)] = mode
    b[108:116] = b"0001750\0"
    b[116:124] = b"0001750\0"
    b[124:124 + len(size)] = size
    b[136:136 + len(mtime)] = mtime
    b[156:157] = type_
    b[257:257 + len(magic)] = magic
    b[345:345 + len(prefix)] = prefix
    b[148:156] = b" " * 8
    total = sum(x - 256 if signed and x >= 128 else x for x in b)
    b[148:156] = b"%06o\0 " % total
    return bytes(b)


END = bytes(1024)


def test_signed_checksums_of_old_writers_are_accepted() -> None:
    hdr = raw_header(name="é".encode(), signed=True)
    [(m, _)] = read_all(hdr + END)
    assert m.name == "é"


def test_bad_checksum_is_an_error() -> None:
    hdr = bytearray(raw_header())
    hdr[0] = ord("g")
    with pytest.raises(TarFormatError, match="bad checksum"):
        read_all(bytes(hdr) + END)


@pytest.mark.parametrize("field", [b"-0000001", b"0o00007", b"00_0007", b"0000009", b"00\t0644"])
def test_malformed_numbers_are_errors(field: bytes) -> None:
    with pytest.raises(TarFormatError, match="invalid mode"):
        read_all(raw_header(mode=field) + END)


@pytest.mark.parametrize("field,value", [(b"0000644\0", 0o644), (b" 644 \0\0\0", 0o644), (b"\x00\x000644\x00", 0o644),
                                         (b"644\0junk", 0o644), (b"\0" * 8, 0)])
def test_octal_padding_as_go_reads_it(field: bytes, value: int) -> None:
    [(m, _)] = read_all(raw_header(mode=field) + END)
    assert m.mode == value


def test_base256_numbers() -> None:
    size = b"\x80" + (5).to_bytes(11, "big")
    mtime = b"\xff" * 12  # -1
    [(m, content)] = read_all(raw_header(size=size, mtime=mtime) + b"hello".ljust(512, b"\0") + END)
    assert (m.size, m.mtime_ns, content) == (5, -10**9, b"hello")
    [(m, _)] = read_all(raw_header(mode=b"\x81\0\0\0\0\0\0\x07") + END)  # the lead byte's low bits count
    assert m.mode == (1 << 56) + 7
    with pytest.raises(TarFormatError, match="negative size"):
        read_all(raw_header(size=b"\xff" * 12) + END)
    with pytest.raises(TarFormatError, match="overflows"):
        read_all(raw_header(size=b"\x80\x01" + bytes(10)) + END)


def test_prefix_only_for_posix_ustar_headers() -> None:
    [(m, _)] = read_all(raw_header(name=b"leaf", prefix=b"some/dir") + END)
    assert m.name == "some/dir/leaf"
    # star: a 131-byte prefix, then atime and ctime, and "tar\0" at the end of the block.
    star = bytearray(raw_header(name=b"leaf", prefix=b"p".ljust(131, b"\0") + b"14713267034"))
    star[508:512] = b"tar\0"
    star[148:156] = b" " * 8
    star[148:156] = b"%06o\0 " % sum(star)
    [(m, _)] = read_all(bytes(star) + END)
    assert m.name == "p/leaf"
    # GNU headers keep atime/ctime where ustar has the prefix: never part of the name.
    [(m, _)] = read_all(raw_header(name=b"leaf", magic=b"ustar  \0", prefix=b"14713267034") + END)
    assert m.name == "leaf"


def test_v7_directory_with_trailing_slash() -> None:
    [(m, _)] = read_all(raw_header(name=b"d/", type_=b"\0", magic=b"") + END)
    assert m.type == b"5"


def test_header_only_types_have_no_data_whatever_their_size() -> None:
    data = raw_header(name=b"d", type_=b"5", size=b"00000001000") + raw_header(name=b"f") + END
    assert [m.name for m, _ in read_all(data)] == ["d", "f"]


def pax_block(records: dict[str, bytes], type_: bytes = b"x") -> bytes:
    """A PAX header (of *type_*) and its padded record data."""
    body = b""
    for key, value in records.items():
        rec = b" " + key.encode() + b"=" + value + b"\n"
        n = len(rec) + 1
        while len(str(n)) + len(rec) != n:
            n += 1
        body += str(n).encode() + rec
    hdr = raw_header(name=b"PaxHeaders/x", type_=type_, size=b"%011o" % len(body))
    return hdr + body.ljust(-(-len(body) // 512) * 512, b"\0")


def test_pax_records_override_the_header() -> None:
    data = pax_block({"path": b"real/name", "linkpath": b"target", "uid": b"123456789", "gid": b"7",
                      "mtime": b"-1.5", "size": b"3", "uname": b"ignored"})
    data += raw_header(name=b"short", size=b"00000000777") + b"abc".ljust(512, b"\0") + END
    [(m, content)] = read_all(data)
    assert (m.name, m.linkname, m.uid, m.gid, m.mtime_ns, m.size, content) == (
        "real/name", "target", 123456789, 7, -1_500_000_000, 3, b"abc")


def test_pax_mtime_is_exact_and_extra_digits_are_dropped() -> None:
    data = pax_block({"mtime": b"1600000000.123456789" + b"9" * 5000}) + raw_header() + END
    [(m, _)] = read_all(data)
    assert m.mtime_ns == 1_600_000_000_123_456_789


def test_global_records_are_checked_but_not_applied() -> None:
    """Go's archive/tar (podman, docker, scanners) keeps no global state: neither do we."""
    data = pax_block({"uid": b"42", "path": b"evil", "SCHILY.xattr.user.g": b"global"}, b"g")
    data += raw_header(name=b"a")
    data += pax_block({"uid": b"43", "SCHILY.xattr.user.l": b"local"}) + raw_header(name=b"b")
    data += raw_header(name=b"c") + END
    got = {m.name: (m.uid, m.xattrs) for m, _ in read_all(data)}
    assert got == {"a": (0o1750, None), "b": (43, {"user.l": b"local"}), "c": (0o1750, None)}
    # Like an entry of its own, a global header ends the records pending before it.
    data = pax_block({"path": b"lost"}) + pax_block({"comment": b"c"}, b"g") + raw_header(name=b"kept")
    [(m, _)] = read_all(data + END)
    assert m.name == "kept" and m.offset == 2048
    assert read_all(pax_block({"path": b"x"}) + pax_block({"comment": b"c"}, b"g") + END) == []
    bad = raw_header(name=b"g", type_=b"g", size=b"%011o" % 6) + b"9 bad\n".ljust(512, b"\0")
    with pytest.raises(TarFormatError, match="malformed PAX"):
        read_all(bad + raw_header() + END)


def test_only_the_last_pax_header_before_a_member_counts() -> None:
    data = pax_block({"path": b"first", "uid": b"5"}) + pax_block({"path": b"second"}) + raw_header()
    [(m, _)] = read_all(data + END)
    assert (m.name, m.uid) == ("second", 0o1750)


def test_empty_pax_values_keep_the_header_fields() -> None:
    data = pax_block({"path": b"", "size": b"", "uid": b"", "SCHILY.xattr.user.e": b""})
    [(m, _)] = read_all(data + raw_header(name=b"kept") + END)
    assert (m.name, m.size, m.uid, m.xattrs) == ("kept", 0, 0o1750, None)


@pytest.mark.parametrize("key,value", [(b"path", b"a\0b"), (b"linkpath", b"\0"), (b"a\0b", b"1")])
def test_nul_in_pax_names_is_an_error(key: bytes, value: bytes) -> None:
    rec = b" " + key + b"=" + value + b"\n"
    body = str(len(rec) + 2).encode() + rec
    hdr = raw_header(name=b"p", type_=b"x", size=b"%011o" % len(body))
    with pytest.raises(TarFormatError):
        read_all(hdr + body.ljust(512, b"\0") + raw_header() + END)


def test_gnu_long_names_win_over_pax_paths() -> None:
    long = b"l" * 300
    data = pax_block({"path": b"from-pax"})
    gnu = raw_header(name=b"././@LongLink", type_=b"L", size=b"%011o" % (len(long) + 1))
    data += gnu + (long + b"\0").ljust(512, b"\0") + raw_header(name=b"short") + END
    [(m, _)] = read_all(data)
    assert m.name == long.decode()


def test_libarchive_xattrs_decoded_and_schily_wins() -> None:
    data = pax_block({"LIBARCHIVE.xattr.user.a%3Db": b"dmFsdWU",  # "user.a=b" = "value", unpadded
                      "LIBARCHIVE.xattr.user.both": b"bGli",
                      "SCHILY.xattr.user.both": b"schily"}) + raw_header() + END
    [(m, _)] = read_all(data)
    assert m.xattrs == {"user.a=b": b"value", "user.both": b"schily"}
    with pytest.raises(TarFormatError, match="base64"):
        read_all(pax_block({"LIBARCHIVE.xattr.user.x": b"!!!"}) + raw_header() + END)


@pytest.mark.parametrize("body", [b"5 a=1\n", b"99 path=x\n", b"9 path=x ", b"9 pathx\n\n", b"x path=y\n",
                                  b"3 =\n", b"8 =abc\n\n", b"11 path=x\n\0\0", b"00000000000000000000000009 a=b\n"])
def test_malformed_pax_records_are_errors(body: bytes) -> None:
    hdr = raw_header(name=b"p", type_=b"x", size=b"%011o" % len(body))
    with pytest.raises(TarFormatError):
        read_all(hdr + body.ljust(512, b"\0") + raw_header() + END)


@pytest.mark.parametrize("record", [{"size": b"-1"}, {"size": b"+1"}, {"uid": b"0x10"}, {"mtime": b"1e9"},
                                    {"mtime": b".5"}, {"gid": b"9" * 5000}, {"mtime": b"9" * 5000}])
def test_malformed_pax_numbers_are_errors(record: dict[str, bytes]) -> None:
    with pytest.raises(TarFormatError, match="invalid PAX"):
        read_all(pax_block(record) + raw_header() + END)


@pytest.mark.parametrize("type_", [b"x", b"g", b"L", b"K", b"X"])
def test_oversized_metadata_record_refused_before_reading(type_: bytes) -> None:
    hdr = raw_header(name=b"m", type_=type_, size=b"%011o" % (LIMIT + 1))
    calls = []

    def source() -> bytes:
        calls.append(1)
        return hdr if len(calls) == 1 else bytes(1 << 16)

    with pytest.raises(TarFormatError, match="metadata record"):
        TarReader(source, LIMIT).next()
    assert len(calls) == 1


def test_metadata_records_of_one_member_are_bounded_together() -> None:
    one = pax_block({"comment": b"c" * 600_000})
    with pytest.raises(TarFormatError, match="metadata record"):
        read_all(one + one + raw_header() + END)
    glob = pax_block({"comment": b"c" * 600_000}, b"g")
    with pytest.raises(TarFormatError, match="metadata record"):
        read_all(one + glob + raw_header() + END)
    assert len(read_all(glob + raw_header() + glob + raw_header() + END)) == 2  # not kept: no limit


def test_metadata_record_without_a_member_is_an_error() -> None:
    with pytest.raises(TarFormatError, match="not followed by a member"):
        read_all(pax_block({"path": b"x"}) + END)


@pytest.mark.parametrize("type_,match", [(b"S", "sparse"), (b"M", "multivolume")])
def test_sparse_and_multivolume_members_refused(type_: bytes, match: str) -> None:
    with pytest.raises(TarFormatError, match=match):
        read_all(raw_header(type_=type_) + END)


@pytest.mark.parametrize("record", ["GNU.sparse.map", "GNU.sparse.size", "GNU.sparse.major"])
def test_pax_sparse_members_refused(record: str) -> None:
    with pytest.raises(TarFormatError, match="sparse"):
        read_all(pax_block({record: b"1"}) + raw_header() + END)


@pytest.mark.parametrize("cut,match", [(0, "truncated .header at offset 0"), (300, "truncated .header"),
                                       (700, "inside entry 'a'"), (1520, "truncated .header at offset 1536"),
                                       (1536, "truncated .header at offset 1536")])
def test_truncation_is_an_error_everywhere(cut: int, match: str) -> None:
    data = make_tar([(ti("a"), b"A" * 1000), (ti("b"), b"")], tarfile.USTAR_FORMAT)
    with pytest.raises(TarFormatError, match=match):
        read_all(data[:cut], 100)


def test_file_data_is_never_buffered() -> None:
    """A 32 MiB member is read as views of the source's chunks: memory stays at one chunk."""
    size = 32 << 20
    chunk = bytes(1 << 16)

    def stream() -> Iterator[bytes]:
        yield raw_header(name=b"big", size=b"%011o" % size)
        for _ in range(size // len(chunk)):
            yield chunk
        yield END

    pieces = stream()
    tracemalloc.start()
    try:
        r = TarReader(lambda: next(pieces, b""), LIMIT)
        m = r.next()
        assert m is not None and m.size == size
        total = 0
        while view := r.read_data(1 << 20):
            total += len(view)
        assert r.next() is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 4 * len(chunk)


# -- the applier's side of the stream ------------------------------------------------------


def layer_tar(n: int = 3) -> bytes:
    members = [(ti(f"f{i}", uid=UID, gid=GID), os.urandom(1000 * i)) for i in range(n)]
    return make_tar(members)


def apply_blob(tmp_path: Path, blob: bytes, compression: str, **opts: object) -> applier.ApplyResult:
    path = tmp_path / "blob"
    path.write_bytes(blob)
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    return apply_layer(str(path), compression, str(dest), ApplyOptions(single_id=True, **opts))  # type: ignore[arg-type]


def inflate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "layer-inflate"]


def test_diff_id_covers_junk_after_the_archive(tmp_path: Path) -> None:
    raw = layer_tar() + b"\0" * 10_000 + b"junk that is not tar at all"
    res = apply_blob(tmp_path, gzip.compress(raw), "gzip")
    assert res.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest() and res.size == len(raw)
    assert not inflate_threads()


def test_multi_member_gzip_with_padding(tmp_path: Path) -> None:
    raw = layer_tar(6)
    half = len(raw) // 2
    blob = gzip.compress(raw[:half]) + gzip.compress(raw[half:]) + b"\0" * 100
    res = apply_blob(tmp_path, blob, "gzip")
    assert res.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (tmp_path / "dest/f5").stat().st_size == 5000
    with open_layer_stream(str(tmp_path / "blob"), "gzip") as f:
        assert f.read() == raw


@pytest.mark.parametrize("damage", ["garbage-after", "truncated", "bad-crc", "not-gzip"])
def test_damaged_gzip_is_a_layer_error_and_the_thread_ends(tmp_path: Path, damage: str) -> None:
    good = gzip.compress(layer_tar(40))
    blob = {"garbage-after": good + b"trailing garbage",
            "truncated": good[:len(good) // 2],
            "bad-crc": good[:-8] + bytes(4) + good[-4:],
            "not-gzip": b"\x1f\x8b" + b"\xff" * 100}[damage]
    with pytest.raises(LayerError, match="corrupt compressed stream"):
        apply_blob(tmp_path, blob, "gzip")
    assert not inflate_threads()


def test_entry_error_stops_the_thread_mid_stream(tmp_path: Path) -> None:
    """An error while the read-ahead thread is blocked on a full queue still ends it."""
    members = [(ti(f"f{i}", uid=UID, gid=GID), os.urandom(200_000)) for i in range(20)]
    members.insert(1, (ti("../escape", uid=UID, gid=GID), b"x"))
    with pytest.raises(LayerError, match="escapes"):
        apply_blob(tmp_path, gzip.compress(make_tar(members), 1), "gzip")
    assert not inflate_threads()


def test_bomb_guard_in_the_thread(tmp_path: Path) -> None:
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    hdr = raw_header(name=b"zeros", size=b"%011o" % (16 << 20))
    blob = comp.compress(hdr) + b"".join(comp.compress(bytes(1 << 20)) for _ in range(16)) + comp.flush()
    with pytest.raises(LayerError, match="decompression bomb"):
        apply_blob(tmp_path, blob, "gzip", max_bytes=2 << 20)
    assert (tmp_path / "dest/zeros").stat().st_size <= 2 << 20
    assert not inflate_threads()


def test_zstd_layers_use_the_thread_path_too(tmp_path: Path) -> None:
    import zstandard

    raw = layer_tar(5)
    res = apply_blob(tmp_path, zstandard.ZstdCompressor().compress(raw), "auto")
    assert res.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest() and res.entries == 5
    assert not inflate_threads()
