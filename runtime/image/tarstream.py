"""A small, bounded, streaming tar reader for layer blobs we do not trust.

:mod:`tarfile` was the applier's hottest code: per member it builds a TarInfo through several
layers of generic machinery (``frombuf``, ``_proc_member``, PAX decoding of every field, its
own ``_Stream`` buffering), most of it for features a layer applier never uses. This reader
parses only what the applier needs and works on the decompressed chunks as they arrive:

* ustar, star, GNU and v7 headers: 512-byte blocks, octal and base-256 numbers, the checksum
  (the unsigned sum, or the signed one some old writers used);
* PAX extended headers (``x``, and Solaris ``X``): ``path``, ``linkpath``, ``size``, ``uid``,
  ``gid``, ``mtime`` and the xattr records ``SCHILY.xattr.*`` and ``LIBARCHIVE.xattr.*``;
* PAX global headers (``g``): read, checked and bounded like the others, then ignored;
* GNU long names and long link targets (``L``, ``K``).

Where tar readers disagree, this one reads a layer the way Go's ``archive/tar`` does, because
that is what podman, docker, containerd and most image scanners use: two readers that see
different files in one layer are a way to smuggle content past a scanner. So global records do
not apply to later members (Go keeps no global state), of several ``x`` headers before a member
only the last counts, an empty PAX value leaves the header's field alone, GNU long names win
over PAX paths, and a name prefix is read only from POSIX ustar and star headers. The one
addition is ``LIBARCHIVE.xattr.*``, honoured for an xattr that has no ``SCHILY.xattr.*`` form.

Every metadata record is read into memory only after its size has been checked against a
limit, and the records before one member may not add up to more than that limit either, so a
hostile stream cannot make us buffer more than about one chunk plus that limit. GNU sparse
members (``S`` and the PAX ``GNU.sparse.*`` forms) and multivolume continuations (``M``) are
refused: images do not use them. File data is never buffered: :meth:`TarReader.read_data`
returns slices of the chunk that holds them, without copying.

The reader knows nothing of compression or hashing: it pulls decompressed chunks from a
callable, and whoever provides that callable sees every byte of the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

__all__ = ["BLOCKSIZE", "TarFormatError", "TarMember", "TarReader"]

BLOCKSIZE = 512

REGTYPE = b"0"
AREGTYPE = b"\0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
CONTTYPE = b"7"
PAX_LOCAL = b"x"
PAX_GLOBAL = b"g"
PAX_SOLARIS = b"X"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"
GNU_SPARSE = b"S"
GNU_MULTIVOL = b"M"

REGULAR_TYPES = frozenset({REGTYPE, AREGTYPE, CONTTYPE})
"""Types whose data is file content (CONTTYPE is a regular file with a hint we ignore)."""

_HEADER_ONLY_TYPES = frozenset({LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE})
"""Types that never have data blocks, whatever their size field says (tarfile and Go agree)."""

_META_TYPES = frozenset({PAX_LOCAL, PAX_GLOBAL, PAX_SOLARIS, GNU_LONGNAME, GNU_LONGLINK})

_ZERO_BLOCK = bytes(BLOCKSIZE)
_USTAR_MAGIC = b"ustar\0"
"""POSIX ustar (and PAX, and star) magic: only these headers have a name prefix field. GNU
headers ("ustar  \\0") keep atime/ctime there, and v7 headers have nothing."""
_STAR_TRAILER = b"tar\0"
"""star headers end with this; their prefix is shorter (131 bytes, then atime and ctime)."""
_PATH_KEYS = frozenset({"path", "linkpath", "uname", "gname"})
"""PAX keywords whose values are names: a NUL in them is an error (as in Go)."""

_OCTAL_DIGITS = b"01234567"
_MAX_DIGITS = 20
_SCHILY_XATTR = "SCHILY.xattr."
_LIBARCHIVE_XATTR = "LIBARCHIVE.xattr."


class TarFormatError(Exception):
    """The stream is not a well-formed tar archive (or uses a feature we refuse)."""


class TarMember:
    """One archive member, after its PAX and GNU metadata records have been applied.

    name, linkname: as stored (decoded UTF-8, undecodable bytes kept as surrogates), not
        normalised: the applier decides what a name means. type: the one-byte type flag.
    mode: the mode field as stored (callers mask it). uid, gid: numeric owner.
    size: bytes of data that follow the header (0 for types that have none).
    mtime_ns: modification time in nanoseconds (PAX mtimes may be fractional).
    xattrs: extended attributes from PAX records, name -> raw value, or None.
    offset: stream offset of the member's first header block (its first metadata record).
    """

    __slots__ = ("name", "linkname", "type", "mode", "uid", "gid", "size", "mtime_ns", "xattrs",
                 "offset")

    def __init__(self, name: str, linkname: str, type_: bytes, mode: int, uid: int, gid: int,
                 size: int, mtime_ns: int, xattrs: dict[str, bytes] | None, offset: int) -> None:
        self.name = name
        self.linkname = linkname
        self.type = type_
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime_ns = mtime_ns
        self.xattrs = xattrs
        self.offset = offset

    def __repr__(self) -> str:
        return f"<TarMember {self.name!r} type={self.type!r} size={self.size}>"


def _number(field: bytes, what: str) -> int:
    """A header number: octal text padded with spaces or NULs, or GNU base-256 (high bit of
    the first byte set; the next bit is the sign, two's complement), read as Go reads them.

    Stricter than ``int(x, 8)``: no sign, no ``0o`` prefix, no underscores.
    """
    lead = field[0]
    if lead & 0x80:
        negative = lead & 0x40
        if negative:
            field = bytes(b ^ 0xFF for b in field)
        value = int.from_bytes(field, "big") & ((1 << (8 * len(field) - 1)) - 1)
        if value >> 63:
            raise TarFormatError(f"{what} field overflows 64 bits")
        return ~value if negative else value
    field = field.strip(b" \0")
    nul = field.find(b"\0")
    if nul >= 0:
        field = field[:nul]
    if not field:
        return 0
    if field.translate(None, _OCTAL_DIGITS):
        raise TarFormatError(f"invalid {what} field {field!r}")
    return int(field, 8)


def _text(field: bytes) -> str:
    """A NUL-terminated text field (tarfile's rule: everything up to the first NUL)."""
    nul = field.find(b"\0")
    if nul >= 0:
        field = field[:nul]
    return field.decode("utf-8", "surrogateescape")


def _checksum_ok(block: bytes) -> bool:
    """Whether the stored checksum matches the unsigned or (old writers) signed byte sum."""
    stored = _number(block[148:156], "checksum")
    # The checksum field itself counts as eight spaces.
    unsigned = sum(block) - sum(block[148:156]) + 8 * 0x20
    if stored == unsigned:
        return True
    high = sum(1 for b in block[:148] if b & 0x80) + sum(1 for b in block[156:] if b & 0x80)
    return stored == unsigned - 256 * high


def _pax_decimal(value: bytes, key: str) -> int:
    """A non-negative decimal PAX value (size, uid, gid) of at most 20 digits (2**64 has 20;
    longer ones are nonsense, and past 4300 digits int() itself would refuse them)."""
    if not value.isdigit() or len(value) > _MAX_DIGITS:
        raise TarFormatError(f"invalid PAX {key} value {value[:40]!r}")
    return int(value)


def _pax_mtime_ns(value: bytes) -> int:
    """A PAX time ("-?SECONDS[.FRACTION]") in nanoseconds, exactly (digits past 9 dropped)."""
    negative = value[:1] == b"-"
    sec, _, frac = (value[1:] if negative else value).partition(b".")
    if not sec.isdigit() or len(sec) > _MAX_DIGITS or (frac and not frac.isdigit()):
        raise TarFormatError(f"invalid PAX mtime value {value[:40]!r}")
    ns = int(sec) * 1_000_000_000 + int(frac[:9].ljust(9, b"0"))
    return -ns if negative else ns


def _parse_pax(data: bytes, offset: int) -> dict[str, bytes]:
    """The records of a PAX header: ``"%d %s=%s\\n" % (length, keyword, value)``, to its end.

    Keywords are decoded (UTF-8, surrogates for undecodable bytes); values stay raw bytes. A
    later record for a keyword replaces an earlier one. Framing is checked as Go checks it:
    no NUL padding, no NUL in a keyword or in a name value.
    """
    records: dict[str, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise TarFormatError(f"malformed PAX record at offset {offset + pos}")
        length = int(digits)
        last = pos + length - 1
        if length < 5 or last >= end or last <= space or data[last] != 0x0A:
            raise TarFormatError(f"malformed PAX record at offset {offset + pos}")
        raw_key, eq, value = data[space + 1:last].partition(b"=")
        if not raw_key or not eq or b"\0" in raw_key:
            raise TarFormatError(f"malformed PAX record at offset {offset + pos}")
        key = raw_key.decode("utf-8", "surrogateescape")
        if key in _PATH_KEYS and b"\0" in value:
            raise TarFormatError(f"PAX {key} record at offset {offset + pos} contains a NUL")
        records[key] = value
        pos += length
    return records


def _libarchive_xattr(key: str, value: bytes) -> tuple[str, bytes]:
    """Decode a ``LIBARCHIVE.xattr.<%-encoded name>=<base64 value>`` record."""
    import binascii
    from urllib.parse import unquote_to_bytes

    name = unquote_to_bytes(key[len(_LIBARCHIVE_XATTR):]).decode("utf-8", "surrogateescape")
    try:
        # libarchive writes base64 without "=" padding.
        raw = binascii.a2b_base64(value + b"=" * (-len(value) % 4), strict_mode=True)
    except binascii.Error:
        raise TarFormatError(f"invalid base64 in PAX record {key!r}") from None
    return name, raw


class TarReader:
    """Reads members from a tar stream delivered as chunks of bytes.

    *read_chunk* returns the next chunk of the uncompressed stream (any size, never empty
    before the end) and ``b""`` at its end. Call :meth:`next` for each member; read the data
    of a member with :meth:`read_data` before the next call, or leave it and it is skipped.
    After the end-of-archive marker (two zero blocks, or one at the very end), :meth:`next`
    returns None and the rest of the stream (padding, anything else) is left unread for the
    caller to drain.
    """

    def __init__(self, read_chunk: Callable[[], bytes], max_meta: int) -> None:
        self._read_chunk = read_chunk
        self._max_meta = max_meta
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0
        self._base = 0  # stream offset of self._buf[0]
        self._data_left = 0  # unread data bytes of the current member
        self._pad = 0  # padding after the current member's data
        self._current = ""  # the current member's name, for error messages
        self._done = False

    @property
    def offset(self) -> int:
        """Stream offset of the next byte the reader will consume."""
        return self._base + self._pos

    def __iter__(self) -> Iterator[TarMember]:
        while (member := self.next()) is not None:
            yield member

    # -- buffer ----------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Replace the exhausted buffer with the next chunk; False at the end of the stream."""
        self._base += len(self._buf)
        self._buf = self._read_chunk()
        self._view = memoryview(self._buf)
        self._pos = 0
        return bool(self._buf)

    def _take(self, n: int) -> bytes:
        """Exactly *n* bytes (fewer only at the end of the stream)."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            return self._buf[pos:end]
        parts = [self._buf[pos:]]
        need = n - len(parts[0])
        self._pos = len(self._buf)
        while need > 0 and self._fill():
            piece = self._buf[:need]
            parts.append(piece)
            self._pos = len(piece)
            need -= len(piece)
        return b"".join(parts)

    def _skip(self, n: int) -> bool:
        """Consume *n* bytes without keeping them; False if the stream ended first."""
        while True:
            avail = len(self._buf) - self._pos
            if n <= avail:
                self._pos += n
                return True
            n -= avail
            self._pos = len(self._buf)
            if not self._fill():
                return False

    def _truncated(self, offset: int) -> TarFormatError:
        return TarFormatError(f"tar stream is truncated (header at offset {offset})")

    def _end(self, offset: int) -> None:
        """After the first zero block at *offset*: the second must be zeros too, or absent.

        Go's reader refuses a zero block followed by anything else, so members hidden after a
        lone zero block (which ``tar --ignore-zeros`` would extract) are an error here too.
        """
        block = self._take(BLOCKSIZE)
        if block and block != _ZERO_BLOCK:
            if len(block) < BLOCKSIZE:
                raise self._truncated(offset + BLOCKSIZE)
            raise TarFormatError(f"bad tar header at offset {offset + BLOCKSIZE}: data after the "
                                 "first end-of-archive block")
        self._done = True

    # -- members ---------------------------------------------------------------------------

    def read_data(self, n: int) -> memoryview:
        """Up to *n* bytes of the current member's data: a view into the current chunk.

        Returns an empty view once the member's data is exhausted; raises TarFormatError
        if the stream ends inside it.
        """
        if n > self._data_left:
            n = self._data_left
        if n <= 0:
            return self._view[:0]
        pos = self._pos
        avail = len(self._buf) - pos
        if avail <= 0:
            if not self._fill():
                raise TarFormatError(f"tar stream is truncated inside entry {self._current!r}")
            pos, avail = 0, len(self._buf)
        if n > avail:
            n = avail
        self._pos = pos + n
        self._data_left -= n
        return self._view[pos:pos + n]

    def next(self) -> TarMember | None:
        """The next member (skipping what is left of the current one), or None at the end."""
        if self._done:
            return None
        if self._data_left or self._pad:
            data_end = self.offset + self._data_left
            header = data_end + self._pad
            if not self._skip(header - self.offset):
                if self.offset < data_end:
                    raise TarFormatError(f"tar stream is truncated inside entry {self._current!r}")
                raise self._truncated(header)
            self._data_left = self._pad = 0
        pax: dict[str, bytes] | None = None
        longname: bytes | None = None
        longlink: bytes | None = None
        meta_bytes = 0
        first = self.offset
        while True:
            offset = self.offset
            block = self._take(BLOCKSIZE)
            if len(block) < BLOCKSIZE:
                raise self._truncated(offset)
            if block == _ZERO_BLOCK:
                if offset != first:
                    raise TarFormatError(f"tar metadata record at offset {first} is not followed "
                                         "by a member")
                self._end(offset)
                return None
            try:
                if not _checksum_ok(block):
                    raise TarFormatError("bad checksum")
                size = _number(block[124:136], "size")
                if size < 0:
                    raise TarFormatError("negative size")
            except TarFormatError as e:
                raise TarFormatError(f"bad tar header at offset {offset}: {e}") from None
            type_ = block[156:157]
            if type_ in _META_TYPES:
                meta_bytes += size
                if size > self._max_meta or meta_bytes > self._max_meta:
                    raise TarFormatError(
                        f"tar metadata record of type {type_!r} at offset {offset} is {size} "
                        f"bytes (limit {self._max_meta} for the records of one member)")
                data = self._take(size)
                if len(data) < size or not self._skip(-size % BLOCKSIZE):
                    raise self._truncated(offset)
                if type_ == GNU_LONGNAME:
                    longname = data.split(b"\0", 1)[0]
                elif type_ == GNU_LONGLINK:
                    longlink = data.split(b"\0", 1)[0]
                elif type_ == PAX_GLOBAL:
                    # Checked, then ignored. Go returns it as an entry of its own, which drops
                    # the records pending before it: so do we.
                    _parse_pax(data, offset + BLOCKSIZE)
                    pax = longname = longlink = None
                    meta_bytes = 0
                    first = self.offset
                else:
                    pax = _parse_pax(data, offset + BLOCKSIZE)  # the last one counts (as in Go)
                continue
            if type_ == GNU_SPARSE:
                raise TarFormatError(f"GNU sparse member {_text(block[0:100])!r} is not supported "
                                     "in layers")
            if type_ == GNU_MULTIVOL:
                raise TarFormatError(f"GNU multivolume member {_text(block[0:100])!r} is not "
                                     "supported in layers")
            try:
                mode = _number(block[100:108], "mode")
                uid = _number(block[108:116], "uid")
                gid = _number(block[116:124], "gid")
                mtime = _number(block[136:148], "mtime")
            except TarFormatError as e:
                raise TarFormatError(f"bad tar header at offset {offset}: {e}") from None
            return self._member(block, type_, size, mode, uid, gid, mtime, first, pax, longname,
                                longlink)

    def _member(self, block: bytes, type_: bytes, size: int, mode: int, uid: int, gid: int,
                mtime: int, offset: int, pax: dict[str, bytes] | None, longname: bytes | None,
                longlink: bytes | None) -> TarMember:
        """Build the member of header *block*, apply its metadata records, set up its data."""
        name = _text(block[0:100])
        if block[257:263] == _USTAR_MAGIC:
            prefix = _text(block[345:476] if block[508:512] == _STAR_TRAILER else block[345:500])
            if prefix:
                name = prefix + "/" + name
        linkname = _text(block[157:257])
        mtime_ns = mtime * 1_000_000_000
        xattrs: dict[str, bytes] | None = None
        if pax:
            for key, value in pax.items():
                if key.startswith("GNU.sparse."):
                    raise TarFormatError(f"GNU sparse member {name!r} (PAX GNU.sparse headers) is "
                                         "not supported in layers")
                if not value:
                    continue  # an empty value keeps the header's field (as in Go)
                if key == "path":
                    name = value.decode("utf-8", "surrogateescape")
                elif key == "linkpath":
                    linkname = value.decode("utf-8", "surrogateescape")
                elif key == "size":
                    size = _pax_decimal(value, key)
                elif key == "uid":
                    uid = _pax_decimal(value, key)
                elif key == "gid":
                    gid = _pax_decimal(value, key)
                elif key == "mtime":
                    mtime_ns = _pax_mtime_ns(value)
                elif key.startswith(_SCHILY_XATTR):
                    if xattrs is None:
                        xattrs = {}
                    xattrs[key[len(_SCHILY_XATTR):]] = value
            # libarchive writes each xattr twice (SCHILY and LIBARCHIVE forms); the SCHILY one
            # wins, and a LIBARCHIVE-only one is honoured like it.
            for key, value in pax.items():
                if value and key.startswith(_LIBARCHIVE_XATTR):
                    xname, raw = _libarchive_xattr(key, value)
                    if xattrs is None:
                        xattrs = {}
                    xattrs.setdefault(xname, raw)
        # GNU long names win over PAX ones, and empty ones are ignored (as in Go).
        if longname:
            name = longname.decode("utf-8", "surrogateescape")
        if longlink:
            linkname = longlink.decode("utf-8", "surrogateescape")
        if type_ == AREGTYPE and name.endswith("/"):
            type_ = DIRTYPE  # v7 archives mark directories with a trailing slash only
        if type_ in _HEADER_ONLY_TYPES:
            size = 0
        self._data_left = size
        self._pad = -size % BLOCKSIZE
        self._current = name
        return TarMember(name, linkname, type_, mode, uid, gid, size, mtime_ns, xattrs, offset)
