"""Office files (.docx, .pptx, .xlsx) and .csv, converted to text with sections.

Office files are zip archives, checked by office_zip (declared and actual sizes, CRCs) before
anything else reads them. Then .docx is read with python-docx (formats_docx), .xlsx with
openpyxl in read-only mode, which streams each sheet's rows (`MAX_CELLS` bounds the time a
sheet of sparse, far-apart cells could take), .pptx and .csv with markitdown. Markdown
headings become sections; each sheet is a section named after it, each pptx slide a section
with page=slide number.
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
from bot.rag.ingest.office_zip import open_office_zip

_log = logging.getLogger(__name__)

MAX_CELLS = 2_000_000  # cells (empty ones inside a row included) read from a workbook
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_SLIDE = re.compile(r"^<!-- Slide number: (\d+) -->[ \t]*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")


def _core_title(archive: zipfile.ZipFile) -> str | None:
    try:
        if archive.getinfo("docProps/core.xml").file_size > 1 << 20:
            return None
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(archive.read("docProps/core.xml"), parser)
        node = root.find(_DC_TITLE)
        return (collapse_spaces(node.text or "") or None) if node is not None else None
    except Exception:  # noqa: BLE001 - a missing or bad core.xml only loses the title
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
    core_title = _core_title(open_office_zip(data, name, suffix, max_bytes))
    if suffix == ".docx":
        from bot.rag.ingest.formats_docx import convert_docx

        return convert_docx(data, name, core_title, url=url)
    if suffix == ".xlsx":
        return _convert_xlsx(data, name, core_title, url=url)
    markdown = clean_input(run_markitdown(data, name, suffix))
    markdown = unescape_markdown(_IMAGE.sub(r"\1", markdown))
    marks = Marks()
    text, first_heading = markdown_marks(markdown, marks)
    text = _SLIDE.sub(lambda m: marks.add(Boundary(0, page=int(m.group(1)))), text)
    return finish(text, marks, name=name, kind="pptx", title=core_title or first_heading, url=url)


def _convert_xlsx(data: bytes, name: str, core_title: str | None, url: str | None = None) -> ConvertedDocument:
    """Each sheet a section: its name as a heading, then its non-empty rows as table lines."""
    import openpyxl

    marks = Marks()
    pieces: list[str] = []
    cells = 0
    book = None
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
        for sheet in book.worksheets:
            sheet.reset_dimensions()  # the declared size may lie: read the rows that are there
            heading = collapse_spaces(sheet.title) or "Sheet"
            lines = [marks.add(Boundary(1, heading)) + "## " + heading]
            for row in sheet.iter_rows(values_only=True):
                cells += max(len(row), 1)
                if cells > MAX_CELLS:
                    raise SourceError(f"{name}: the workbook has over {MAX_CELLS:,} cells, too many to read.")
                values = [collapse_spaces(str(v)).replace("|", "\\|") if v is not None else "" for v in row]
                while values and not values[-1]:
                    values.pop()
                if values:
                    lines.append("| " + " | ".join(values) + " |")
                    if len(lines) == 2:
                        lines.append("|" + " --- |" * len(values))
            pieces.append("\n".join(lines))
    except SourceError:
        raise
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds on a broken workbook
        _log.debug("openpyxl failed on %s", name, exc_info=True)
        raise SourceError(f"{name}: the .xlsx file is damaged or not supported and cannot be read.") from None
    finally:
        if book is not None:
            book.close()  # a read-only workbook holds its archive open
    return finish("\n\n".join(pieces), marks, name=name, kind="xlsx", title=core_title, url=url)


def convert_csv(data: bytes, name: str, url: str | None = None) -> ConvertedDocument:
    """A .csv file: decoded like text, then one markdown table."""
    text = decode_text(data, name)
    markdown = clean_input(run_markitdown(text.encode("utf-8"), name, ".csv", charset="utf-8"))
    return finish(markdown, Marks(), name=name, kind="csv", title=None, url=url)
