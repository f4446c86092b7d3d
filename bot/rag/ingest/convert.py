"""Turn uploaded or fetched bytes of a supported format into text with structure.

`convert()` is the one entry point: it picks the format from the file name's suffix (or,
for names without a supported suffix, from the HTTP content type), checks size limits and
hands the bytes to the format module:

- formats_text: .txt / .md (markdown headings, front matter) and .rst (reST titles)
- formats_html: .html / .htm via lxml clean-up + markdownify (page furniture dropped)
- formats_pdf: .pdf page by page (pypdf opens it, PDFium reads the text)
- formats_office: .docx (formats_docx, python-docx), .xlsx (openpyxl), .pptx and .csv
  (markitdown); office zips are checked first by office_zip (declared and actual sizes)

Every failure is a `SourceError` whose message names the file and fits on one line.
"""

from __future__ import annotations

import logging

from bot.rag.errors import SourceError
from bot.rag.ingest.formats_base import ConvertedDocument, Section

__all__ = ["SUPPORTED_SUFFIXES", "ConvertedDocument", "Section", "convert"]

_log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".txt", ".md", ".rst", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".csv"}
)
_TEXT_KINDS = {".txt": "text", ".md": "markdown", ".rst": "rst"}
_CONTENT_TYPES = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/x-rst": ".rst",
    "text/prs.fallenstein.rst": ".rst",
    "text/csv": ".csv",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
}


def _suffix(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 else ""


def detect_suffix(name: str, content_type: str | None = None) -> str:
    """The format's suffix: the name's own if supported, else the content type's."""
    suffix = _suffix(name)
    if suffix in SUPPORTED_SUFFIXES:
        return suffix
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _CONTENT_TYPES:
        return _CONTENT_TYPES[mime]
    shown = suffix or "(none)"
    if mime:
        shown += f" ({mime})"
    raise SourceError(
        f"{name}: unsupported file type {shown}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}."
    )


def convert(data: bytes, name: str, *, max_bytes: int, url: str | None = None,
            content_type: str | None = None) -> ConvertedDocument:
    """Readable text, title and sections of one file; raises SourceError on any problem."""
    suffix = detect_suffix(name, content_type)
    if len(data) > max_bytes:
        raise SourceError(f"{name}: {len(data):,} bytes is over the {max_bytes:,}-byte limit.")
    if not data.strip():
        raise SourceError(f"{name}: the file is empty.")
    try:
        if suffix in _TEXT_KINDS:
            from bot.rag.ingest.formats_text import convert_text

            return convert_text(data, name, _TEXT_KINDS[suffix], url=url)
        if suffix in {".html", ".htm"}:
            from bot.rag.ingest.formats_html import convert_html

            return convert_html(data, name, url=url, content_type=content_type)
        if suffix == ".pdf":
            from bot.rag.ingest.formats_pdf import convert_pdf

            return convert_pdf(data, name, url=url)
        from bot.rag.ingest.formats_office import convert_csv, convert_office

        if suffix == ".csv":
            return convert_csv(data, name, url=url)
        return convert_office(data, name, suffix, max_bytes=max_bytes, url=url)
    except SourceError:
        raise
    except RecursionError:
        raise SourceError(f"{name}: the file is nested too deeply to read.") from None
    except Exception:  # noqa: BLE001 - never show a traceback to the user
        _log.warning("converting %s failed", name, exc_info=True)
        raise SourceError(f"{name}: the file could not be read (unexpected error in conversion).") from None
