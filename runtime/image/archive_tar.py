"""Archive members and JSON written as Go writes them (containers/image, podman, docker).

``save`` writes archives that are byte-identical to podman's for the same image, so the tar
headers are Go archive/tar's ustar blocks (uid/gid 0, no owner names, mtime 0, device numbers
written as zeros, no padding of the archive to a record size) and the JSON is Go's
``json.Marshal`` output (compact, UTF-8, ``<``, ``>``, ``&`` escaped). Data is copied in the
kernel where it can be (``copy_file_range`` to a file, ``sendfile`` to a pipe).
"""

from __future__ import annotations

import json
import os
import stat

from rootlet.registry.errors import StoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

CHUNK = 1 << 20
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(obj: object, sort_keys: bool = False) -> bytes:
    """*obj* as Go's ``json.Marshal`` writes it: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return "".join(_GO_ESCAPES.get(ch, ch) for ch in text).encode()


def go_compact(text: str) -> str:
    """*text* (JSON) as Go's encoder re-emits a ``json.RawMessage``: whitespace outside strings
    dropped, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, everything else kept as written."""
    out: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch in " \t\r\n":
            continue
        elif ch == '"':
            in_string = True
        out.append(_GO_ESCAPES.get(ch, ch))
    return "".join(out)


def top_level_raw(text: str) -> dict[str, str]:
    """The raw JSON text of each member of the compact JSON object *text* (the last of duplicates,
    as Go's decoder keeps); empty when *text* is not an object."""
    from json.decoder import scanstring

    decoder = json.JSONDecoder()
    out: dict[str, str] = {}
    try:
        if not text.startswith("{"):
            return out
        i = 1
        while text[i] != "}":
            key, i = scanstring(text, i + 1)
            _, end = decoder.raw_decode(text, i + 1)
            out[key] = text[i + 1:end]
            i = end + 1 if text[end] == "," else end
    except (ValueError, IndexError):
        return {}
    return out


#: The largest size a ustar header's 11 octal digits hold; a larger member gets a PAX size record.
USTAR_MAX_SIZE = 8**11 - 1


def ustar_header(name: str, size: int, type_: bytes = b"0", mode: int = 0o444, linkname: str = "") -> bytes:
    """One ustar header block as Go's archive/tar writes it (uid/gid 0, no owner names, mtime 0);
    a member of 8 GiB or more is preceded by a PAX record of its size, as Go then writes it."""
    if size > USTAR_MAX_SIZE:
        record = b" size=%d\n" % size
        record = b"%d%s" % (len(record) + len(str(len(record) + len(str(len(record))))), record)
        pax = ustar_header("PaxHeaders.0/" + name.rsplit("/", 1)[-1], len(record), b"x", 0o644)
        return pax + record + bytes(-len(record) % 512) + ustar_header(name, 0, type_, mode, linkname)
    raw = name.encode()
    prefix = b""
    if len(raw) > 100:
        cut = raw.rfind(b"/", 0, 156)
        if cut <= 0 or len(raw) - cut - 1 > 100:
            raise StoreError(f"internal: archive member name too long: {name}")
        prefix, raw = raw[:cut], raw[cut + 1:]

    def octal(value: int, width: int) -> bytes:
        return b"%0*o\0" % (width - 1, value)

    block = bytearray(512)
    block[0:len(raw)] = raw
    block[100:108] = octal(mode, 8)
    block[108:116] = octal(0, 8)
    block[116:124] = octal(0, 8)
    block[124:136] = octal(size, 12)
    block[136:148] = octal(0, 12)
    block[148:156] = b" " * 8
    block[156:157] = type_
    link = linkname.encode()
    block[157:157 + len(link)] = link
    block[257:265] = b"ustar\x0000"
    block[329:337] = octal(0, 8)
    block[337:345] = octal(0, 8)
    block[345:345 + len(prefix)] = prefix
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


class TarOut:
    """A tar stream written straight to a descriptor (a file or a pipe), member by member."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def _pad(self, size: int) -> None:
        if size % 512:
            self._write(bytes(512 - size % 512))

    def add_bytes(self, name: str, data: bytes, mode: int = 0o444) -> None:
        self._write(ustar_header(name, len(data), mode=mode) + data)
        self._pad(len(data))

    def add_dir(self, name: str) -> None:
        self._write(ustar_header(name + "/", 0, b"5", 0o755))

    def add_symlink(self, name: str, target: str) -> None:
        self._write(ustar_header(name, 0, b"2", 0, target))

    def add_file(self, name: str, fd: int, size: int, mode: int = 0o444) -> None:
        self._write(ustar_header(name, size, mode=mode))
        copy_fd(fd, self.fd, size)
        self._pad(size)

    def add_stream(self, name: str, size: int, chunks: Iterator[bytes]) -> None:
        self._write(ustar_header(name, size))
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                break
            self._write(chunk)
        if written != size:
            raise StoreError(f"layer {name} in the store is not the {size} bytes its record says",
                             "the store is damaged: remove the image and pull it again")
        self._pad(size)

    def close(self) -> None:
        self._write(bytes(1024))


def copy_fd(src: int, dst: int, size: int) -> None:
    """Copy *size* bytes from the start of file *src* to *dst* (at its position): in the kernel
    (copy_file_range to a file, sendfile to a pipe) where it can, else through a buffer."""
    offset = 0
    to_file = stat.S_ISREG(os.fstat(dst).st_mode)
    try:
        while offset < size:
            if to_file:
                n = os.copy_file_range(src, dst, size - offset, offset_src=offset)
            else:
                n = os.sendfile(dst, src, offset, min(size - offset, 1 << 30))
            if n == 0:
                break
            offset += n
    except OSError as exc:
        import errno

        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
            raise
    while offset < size:
        data = os.pread(src, min(CHUNK, size - offset), offset)
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]
        offset += len(data)
    if offset != size:
        raise StoreError(f"a blob in the store is shorter than its {size} bytes",
                         "the store is damaged: remove the image and pull it again")
