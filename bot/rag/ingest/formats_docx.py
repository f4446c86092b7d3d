"""Word files (.docx), read with python-docx: paragraphs, headings, lists and tables in order.

Why not markitdown here: its .docx path first round-trips word/document.xml through
BeautifulSoup's "xml" parser, which drops namespace prefixes with lxml 6.2, so mammoth then
finds no `w:body` and every file fails ("Could not find the body element"); mammoth is also
pure Python and needs about 2 s and 55 MB per MB of XML. python-docx parses the package
with lxml itself, namespace-aware, and is several times faster. It also reads a minimal but
valid document (only `[Content_Types].xml`, `_rels/.rels` and `word/document.xml`): without a
styles part it falls back to its default styles, whose ids (`Heading1`...) are the ones Word
writes, so headings are still found.

Headings are paragraphs whose style is, or is based on, "Heading N" (or "Title", level 1):
they become section marks with a `#` line, as markdown headings do in the other formats.
List paragraphs start with "- ", table rows become `| a | b |` lines. The archive has been
checked by office_zip before python-docx opens it.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from bot.rag.errors import SourceError
from bot.rag.ingest.formats_base import Boundary, ConvertedDocument, Marks, clean_input, collapse_spaces, finish

_log = logging.getLogger(__name__)

_HEADING_STYLE = re.compile(r"^heading ?(\d)$", re.IGNORECASE)
_MAX_BASES = 10  # style inheritance followed this far


def convert_docx(data: bytes, name: str, core_title: str | None, url: str | None = None) -> ConvertedDocument:
    """A .docx file whose zip container has been checked."""
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
        styles = _StyleLevels(document)
    except Exception:  # noqa: BLE001 - python-docx raises many kinds on a broken package
        _log.debug("python-docx failed on %s", name, exc_info=True)
        raise SourceError(f"{name}: the .docx file is damaged or not supported and cannot be read.") from None
    marks = Marks()
    pieces: list[str] = []
    first_heading: str | None = None
    for block in blocks:
        if isinstance(block, Table):
            pieces.append(_table(block))
            continue
        text = clean_input(block.text).strip()
        if not text:
            continue
        style_id = block._p.style  # Paragraph.style would look the style up again each time
        level = styles.level(style_id)
        if level:
            heading = collapse_spaces(text)
            first_heading = first_heading or heading
            pieces.append(marks.add(Boundary(level, heading)) + "#" * level + " " + heading)
        elif styles.is_list(style_id) or _is_list_item(block):
            pieces.append("- " + text)
        else:
            pieces.append(text)
    return finish("\n\n".join(pieces), marks, name=name, kind="docx", title=core_title or first_heading, url=url)


class _StyleLevels:
    """What each paragraph style id makes a paragraph: a heading of level 1-6 (`level`), a
    list item (`is_list`), or body text; cached per id. A style is found by its name ("heading 1"
    in every language), or the style it is based on; a style the document does not define
    (a minimal file has no styles part) by its id, which Word writes as "Heading1"."""

    def __init__(self, document: Any) -> None:
        from docx.enum.style import WD_STYLE_TYPE

        self._styles = {s.style_id: s for s in document.styles if s.type == WD_STYLE_TYPE.PARAGRAPH}
        self._kinds: dict[str | None, tuple[int, bool]] = {None: (0, False)}

    def level(self, style_id: str | None) -> int:
        return self._kind(style_id)[0]

    def is_list(self, style_id: str | None) -> bool:
        return self._kind(style_id)[1]

    def _kind(self, style_id: str | None) -> tuple[int, bool]:
        if style_id not in self._kinds:
            style = self._styles.get(style_id)
            names = [style_id or ""] if style is None else []
            for _ in range(_MAX_BASES):
                if style is None:
                    break
                names.append(style.name or "")
                style = style.base_style
            kind = (0, False)
            for name in names:
                if match := _HEADING_STYLE.match(name):
                    kind = (min(int(match.group(1)), 6), False)
                elif name.lower() == "title":
                    kind = (1, False)
                elif name.lower().startswith("list"):
                    kind = (0, True)
                else:
                    continue
                break
            self._kinds[style_id] = kind
        return self._kinds[style_id]


def _is_list_item(paragraph: Any) -> bool:
    properties = paragraph._p.pPr
    return properties is not None and properties.numPr is not None


def _table(table: Any) -> str:
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:  # a merged cell is listed once per grid column it spans
                continue
            previous = cell._tc
            cells.append(collapse_spaces(cell.text).replace("|", "\\|"))
        if any(cells):
            lines.append("| " + " | ".join(cells) + " |")
            if len(lines) == 1:
                lines.append("|" + " --- |" * len(cells))
    return "\n".join(lines)
