"""PDF files: text page by page, one section per page (page=N), split further where a PDF
bookmark (outline entry) title is found on its page, giving a heading path.

pypdf opens the file (encryption, metadata, bookmarks); the page text comes from PDFium
(pypdfium2), which keeps the spaces between words where pypdf's text runs them together
("thefilesystem": on a sample of the Debian Reference, 79 % of long words unreadable with
pypdf, 8 % with PDFium, which is also ~25x faster). PDFium is not thread-safe: one lock.
Running headers and footers (a line repeated at the top or bottom of most pages, page
numbers aside: "Debian Reference 3 / 233") are removed.

Encrypted PDFs are read only if they open with the empty password; damaged files, and
pypdf's own warnings, never reach the user beyond a one-line SourceError.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bot.rag.errors import SourceError
from bot.rag.ingest.formats_base import Boundary, ConvertedDocument, Marks, clean_input, collapse_spaces, finish

_log = logging.getLogger(__name__)
_MAX_OUTLINE = 5000
_PDFIUM = threading.Lock()
_EDGE_LINES = 2  # lines at the top and at the bottom of a page that may be a running header/footer
_RUNNING_SHARE = 0.5  # ... when the same (digits aside) on at least this share of the pages
_MIN_PAGES = 4
_DIGITS = re.compile(r"\d+")


def _page_texts(data: bytes, count: int) -> list[str | None]:
    """Each page's text by PDFium; None for a page it cannot read."""
    import pypdfium2 as pdfium

    texts: list[str | None] = []
    with _PDFIUM:
        document = pdfium.PdfDocument(data, password="")
        try:
            for index in range(min(count, len(document))):
                try:
                    page = document[index]
                    texts.append(page.get_textpage().get_text_range())
                except Exception:  # noqa: BLE001 - one bad page should not lose the rest
                    _log.debug("PDF page %d unreadable", index + 1, exc_info=True)
                    texts.append(None)
        finally:
            document.close()
    return texts


def _edge_keys(text: str) -> set[str]:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return {_DIGITS.sub("#", line) for line in lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]}


def drop_running_lines(pages: list[str]) -> list[str]:
    """Pages without the header and footer lines that repeat on most of them."""
    if len(pages) < _MIN_PAGES:
        return pages
    counts = Counter(key for text in pages for key in _edge_keys(text))
    running = {key for key, n in counts.items() if n >= _RUNNING_SHARE * len(pages)}
    if not running:
        return pages
    cleaned = []
    for text in pages:
        lines = text.split("\n")
        filled = [i for i, line in enumerate(lines) if line.strip()]
        edges = set(filled[:_EDGE_LINES] + filled[-_EDGE_LINES:])
        cleaned.append("\n".join(line for i, line in enumerate(lines)
                                 if not (i in edges and _DIGITS.sub("#", line.strip()) in running)))
    return cleaned


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs every recoverable oddity as a warning; keep them out of the bot's log."""
    logger = logging.getLogger("pypdf")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def _outline(reader: Any) -> dict[int, list[tuple[int, str]]]:
    """Bookmarks by 0-based page index: (level, title), in outline order."""
    by_page: dict[int, list[tuple[int, str]]] = {}
    count = 0

    def walk(items: list[Any], level: int) -> None:
        nonlocal count
        for item in items:
            if count >= _MAX_OUTLINE:
                return
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            count += 1
            try:
                page = reader.get_destination_page_number(item)
                title = collapse_spaces(str(item.title or ""))
            except Exception:  # noqa: BLE001 - a broken bookmark is just skipped
                continue
            if title and page is not None and page >= 0:
                by_page.setdefault(page, []).append((level, title))

    try:
        walk(list(reader.outline), 1)
    except Exception:  # noqa: BLE001 - an unreadable outline only loses headings
        _log.debug("PDF outline unreadable", exc_info=True)
    return by_page


def _mark_page(text: str, number: int, heads: list[tuple[int, str]], marks: Marks) -> str:
    """Page text with a page mark at its start and a heading mark where each bookmark title
    is found (at the start of its line when it begins one), else at the page start."""
    inserts: list[tuple[int, str]] = []
    at_start = [marks.add(Boundary(None, page=number))]
    pos = 0
    for level, title in heads:
        token = marks.add(Boundary(level, title, page=number))
        pattern = r"\s+".join(re.escape(word) for word in title.split())
        found = re.compile(pattern, re.IGNORECASE).search(text, pos)
        if not found:
            at_start.append(token)
            continue
        line_start = text.rfind("\n", 0, found.start()) + 1
        where = line_start if not text[line_start:found.start()].strip() else found.start()
        inserts.append((where, token))
        pos = found.end()
    for where, token in reversed(inserts):
        text = text[:where] + token + text[where:]
    return "".join(at_start) + text


def convert_pdf(data: bytes, name: str, url: str | None = None) -> ConvertedDocument:
    from pypdf import PdfReader  # imported on first use: it is only needed for PDFs

    if b"%PDF-" not in data[:1024]:
        raise SourceError(f"{name}: not a PDF file (no PDF header).")
    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    opened = reader.decrypt("")
                except Exception:  # noqa: BLE001 - unsupported cipher: same answer for the user
                    opened = 0
                if not opened:
                    raise SourceError(
                        f"{name}: the PDF is password-protected; upload a copy without a password."
                    )
            pages = list(reader.pages)
            meta = reader.metadata
            title = collapse_spaces(str(meta.title)) if meta is not None and meta.title else None
        except SourceError:
            raise
        except Exception:  # noqa: BLE001 - any parser failure is a damaged file
            _log.debug("PDF %s unreadable", name, exc_info=True)
            raise SourceError(f"{name}: the PDF is damaged or truncated and cannot be read.") from None
        outline = _outline(reader)
    try:
        raw = _page_texts(data, len(pages))
    except Exception:  # noqa: BLE001 - PDFium refuses what pypdf opened: same answer for the user
        _log.debug("PDF %s unreadable by PDFium", name, exc_info=True)
        raise SourceError(f"{name}: the PDF is damaged or truncated and cannot be read.") from None
    failures = sum(text is None for text in raw)
    plain = drop_running_lines([clean_input(text or "") for text in raw])
    marks = Marks()
    texts = [_mark_page(text, index + 1, outline.get(index, []), marks) for index, text in enumerate(plain)]
    if pages and failures == len(pages):
        raise SourceError(f"{name}: the PDF is damaged and no page could be read.")
    if not any(t.strip() for t in re.split("\ue000\\d+\ue001", "".join(texts))):
        raise SourceError(
            f"{name}: no text found in the PDF (it may be scanned images; OCR it first)."
        )
    return finish("\n\n".join(texts), marks, name=name, kind="pdf", title=title, url=url)
