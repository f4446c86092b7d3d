"""The zip container of an Office file (.docx, .pptx, .xlsx), opened with bounded memory and time.

`open_office_zip` runs two checks before any converter sees the bytes:

1. The zip directory alone: refuses non-zips, encrypted or old binary Office files, too many
   parts, compression other than deflate or none (bzip2/LZMA parts would inflate a whole read
   at once), a missing main part, and declared sizes that are too large in total
   (`MAX_EXPANSION` times the source size limit: the converters need about ten times the
   unpacked size in memory and read a few MB a second) or compressed too far (a zip bomb).
2. The actual contents: every part is inflated here, `CHUNK` bytes at a time, counting the
   bytes as they come out. A part that holds more than its directory entry declares (a
   directory that understates sizes), less, or fails its CRC stops the read at once, so
   memory stays at one chunk whatever the archive claims.

After both checks every part holds exactly what the directory says, so the converters' own
zip reading (python-docx, openpyxl and python-pptx all use zipfile, which trusts the
directory) expands no more than was counted in step 1.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from bot.rag.errors import SourceError

MAX_EXPANSION = 4  # all parts unpacked may be at most this many times max_bytes
MAX_RATIO = 100  # ... and at most this many times the compressed size
RATIO_FLOOR = 1 << 20  # archives expanding to less than this are never refused for ratio
MAX_MEMBERS = 10_000
CHUNK = 1 << 16  # bytes inflated at a time
MAIN_PART = {".docx": "word/document.xml", ".pptx": "ppt/presentation.xml", ".xlsx": "xl/workbook.xml"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML and old .doc/.ppt/.xls
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length
_COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}


def open_office_zip(data: bytes, name: str, suffix: str, max_bytes: int) -> zipfile.ZipFile:
    """The checked archive of an office file; raises a one-line SourceError on any problem."""
    if data.startswith(_OLE_MAGIC):
        raise SourceError(
            f"{name}: is password-protected or an old binary Office file; "
            f"save it as an unprotected {suffix} file."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise SourceError(f"{name}: not a valid {suffix} file (it is not a readable zip archive).") from None
    _check_directory(infos, name, suffix, max_bytes)
    for info in infos:
        _check_contents(data, info, name, suffix)
    return archive


def _check_directory(infos: list[zipfile.ZipInfo], name: str, suffix: str, max_bytes: int) -> None:
    if len(infos) > MAX_MEMBERS:
        raise SourceError(f"{name}: the archive has {len(infos):,} parts, too many for a {suffix} file.")
    if any(info.flag_bits & 0x1 for info in infos):
        raise SourceError(f"{name}: is password-protected; save it as an unprotected {suffix} file.")
    if any(info.compress_type not in _COMPRESSIONS for info in infos):
        raise SourceError(f"{name}: not a valid {suffix} file (a part uses an unusual zip compression).")
    total = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos)
    limit = MAX_EXPANSION * max_bytes
    if total > limit:
        raise SourceError(
            f"{name}: expands to {total:,} bytes when unzipped, over the {limit:,}-byte limit "
            "(too large to read, or a zip bomb)."
        )
    if total > RATIO_FLOOR and total > MAX_RATIO * max(packed, 1):
        raise SourceError(
            f"{name}: compressed {total // max(packed, 1):,} to 1, more than a real {suffix} "
            "file (possible zip bomb)."
        )
    if MAIN_PART[suffix] not in {info.filename for info in infos}:
        raise SourceError(f"{name}: not a valid {suffix} file (no {MAIN_PART[suffix]} inside).")


def _check_contents(data: bytes, info: zipfile.ZipInfo, name: str, suffix: str) -> None:
    """Inflate one part chunk by chunk; its real size and CRC must be what the directory says."""
    damaged = SourceError(
        f"{name}: the {suffix} file is damaged (its part {_short(info.filename)} does not match "
        "the zip directory) and cannot be read."
    )
    start = info.header_offset
    header = data[start:start + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size:
        raise damaged
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise damaged
    start += _LOCAL_HEADER.size + name_length + extra_length
    raw = memoryview(data)[start:start + info.compress_size]
    size = crc = 0
    if info.compress_type == zipfile.ZIP_STORED:
        for at in range(0, min(len(raw), info.file_size + 1), CHUNK):
            piece = raw[at:at + CHUNK]
            size, crc = size + len(piece), zlib.crc32(piece, crc)
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        at, tail = 0, b""
        try:
            while not inflater.eof and size <= info.file_size:
                if not tail:
                    if at >= len(raw):
                        break
                    tail, at = raw[at:at + CHUNK], at + CHUNK
                piece = inflater.decompress(tail, CHUNK)
                tail = inflater.unconsumed_tail
                size, crc = size + len(piece), zlib.crc32(piece, crc)
        except zlib.error:
            raise damaged from None
    if size > info.file_size:
        raise SourceError(
            f"{name}: the part {_short(info.filename)} holds more than the zip directory declares "
            "(a damaged file or a zip bomb); it cannot be read."
        )
    if size != info.file_size or crc != info.CRC:
        raise damaged


def _short(part: str, limit: int = 60) -> str:
    return part if len(part) <= limit else part[: limit - 1] + "…"
