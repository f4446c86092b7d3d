"""Office files (.docx, .pptx, .xlsx) and .csv, converted to markdown with markitdown.

Office files are zip archives: before markitdown sees one, `check_zip` refuses archives that
are not zips, miss their main part, or would expand too far (a zip bomb), using only the
sizes in the zip directory. Python's zipfile stops reading a member at its declared size,
so a directory that lies about sizes fails the CRC check instead of expanding further.
Markdown headings become sections; each pptx slide is a section with page=slide number.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from functools import lru_cache
from typing import Any

from lxml import etree

from bot.rag.errors import SourceError
from bot.rag.ingest.formats_base import Boundary, ConvertedDocument, Marks, clean_input, collapse_spaces, finish
from bot.rag.ingest.formats_text import decode_text, markdown_marks, unescape_markdown

_log = logging.getLogger(__name__)

MAX_EXPANSION = 20  # uncompressed size may be at most this many times max_bytes
MAX_RATIO = 100  # ... and at most this many times the compressed size
RATIO_FLOOR = 1 << 20  # archives expanding to less than this are never refused for ratio
MAX_MEMBERS = 10_000
_MAIN_PART = {".docx": "word/document.xml", ".pptx": "ppt/presentation.xml", ".xlsx": "xl/workbook.xml"}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML and old .doc/.ppt/.xls
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_SLIDE = re.compile(r"^<!-- Slide number: (\d+) -->[ \t]*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_NAN_CELL = re.compile(r"(?<=\|) NaN(?= \|)")


def check_zip(data: bytes, name: str, suffix: str, max_bytes: int) -> str | None:
    """Validate an office zip without expanding it; returns the core-properties title."""
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
    if len(infos) > MAX_MEMBERS:
        raise SourceError(f"{name}: the archive has {len(infos):,} parts, too many for a {suffix} file.")
    total = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos)
    limit = MAX_EXPANSION * max_bytes
    if total > limit:
        raise SourceError(
            f"{name}: expands to {total:,} bytes when unzipped, over the {limit:,}-byte limit "
            "(possible zip bomb)."
        )
    if total > RATIO_FLOOR and total > MAX_RATIO * max(packed, 1):
        raise SourceError(
            f"{name}: compressed {total // max(packed, 1):,} to 1, more than a real {suffix} "
            "file (possible zip bomb)."
        )
    names = {info.filename for info in infos}
    if _MAIN_PART[suffix] not in names:
        raise SourceError(f"{name}: not a valid {suffix} file (no {_MAIN_PART[suffix]} inside).")
    return _core_title(archive, names)


def _core_title(archive: zipfile.ZipFile, names: set[str]) -> str | None:
    if "docProps/core.xml" not in names or archive.getinfo("docProps/core.xml").file_size > 1 << 20:
        return None
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(archive.read("docProps/core.xml"), parser)
        node = root.find(_DC_TITLE)
        return (collapse_spaces(node.text or "") or None) if node is not None else None
    except Exception:  # noqa: BLE001 - a bad core.xml only loses the title
        return None


@lru_cache(maxsize=1)
def _markitdown() -> Any:
    from markitdown import MarkItDown  # slow import (about a second): only when needed

    return MarkItDown(enable_plugins=False)


def run_markitdown(data: bytes, name: str, suffix: str, charset: str | None = None) -> str:
    """Markdown of an office/CSV file; any converter failure is a one-line SourceError."""
    from markitdown import StreamInfo

    try:
        result = _markitdown().convert_stream(
            io.BytesIO(data), stream_info=StreamInfo(extension=suffix, charset=charset)
        )
    except Exception:  # noqa: BLE001 - markitdown wraps failures with full tracebacks
        _log.debug("markitdown failed on %s", name, exc_info=True)
        raise SourceError(f"{name}: the {suffix} file is damaged or not supported and cannot be read.") from None
    return str(result.markdown or "")


def convert_office(data: bytes, name: str, suffix: str, *, max_bytes: int,
                   url: str | None = None) -> ConvertedDocument:
    """A .docx, .pptx or .xlsx file."""
    core_title = check_zip(data, name, suffix, max_bytes)
    markdown = clean_input(run_markitdown(data, name, suffix))
    markdown = unescape_markdown(_IMAGE.sub(r"\1", markdown))
    if suffix == ".xlsx":
        markdown = _NAN_CELL.sub(" ", markdown)
    marks = Marks()
    text, first_heading = markdown_marks(markdown, marks)
    if suffix == ".pptx":
        text = _SLIDE.sub(lambda m: marks.add(Boundary(0, page=int(m.group(1)))), text)
    title = core_title or (first_heading if suffix != ".xlsx" else None)
    return finish(text, marks, name=name, kind=suffix[1:], title=title, url=url)


def convert_csv(data: bytes, name: str, url: str | None = None) -> ConvertedDocument:
    """A .csv file: decoded like text, then one markdown table."""
    text = decode_text(data, name)
    markdown = clean_input(run_markitdown(text.encode("utf-8"), name, ".csv", charset="utf-8"))
    return finish(markdown, Marks(), name=name, kind="csv", title=None, url=url)
