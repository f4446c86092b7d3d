"""Shared pieces of the format converters: the result types, light text clean-up, and
turning section marks into `Section`s.

A converter builds its text with marks in it: `Marks.add(Boundary(...))` returns a short
private-use token to put where a section starts (a heading line, a PDF page). `finish()`
then normalises the text, removes the tokens and records their offsets in the final text,
so offsets are always exact for the text the chunker sees.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.rag.errors import SourceError

_OPEN, _CLOSE = "\ue000", "\ue001"
_MARK = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
# Lines holding only marks: the marks move to the next non-blank line.
_LONE_MARKS = re.compile(f"^((?:{_OPEN}\\d+{_CLOSE})+)[ \\t]*\\n(?:[ \\t]*\\n)*", re.MULTILINE)
# Control and zero-width characters (tab and newline are kept), soft hyphens, stray marks.
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000e-\u001f\u007f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
    f"{_OPEN}{_CLOSE}]"
)
_LINE_BREAKS = re.compile("\r\n?|[\u000b\u000c\u0085\u2028\u2029]")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Section:
    """A part of `ConvertedDocument.text` under one heading path."""

    start: int  # character offsets into ConvertedDocument.text
    end: int
    heading_path: tuple[str, ...]  # () before the first heading
    page: int | None = None  # 1-based PDF page or pptx slide number
    anchor: str | None = None  # HTML fragment id of the section


@dataclass(frozen=True)
class ConvertedDocument:
    """Readable text of a source plus its structure."""

    text: str
    title: str | None
    sections: tuple[Section, ...]  # in order, non-overlapping, covering all non-blank text
    kind: str  # "text", "markdown", "rst", "html", "pdf", "docx", "pptx", "xlsx", "csv"
    url: str | None = None


@dataclass(frozen=True)
class Boundary:
    """Where a section starts. `level` 1.. pushes `name` on the heading path (replacing
    levels >= it); 0 clears the path (a new slide); None keeps it (a new PDF page).
    `page` and `anchor` carry on until changed; a heading starts without an anchor."""

    level: int | None
    name: str = ""
    page: int | None = None
    anchor: str | None = None


class Marks:
    """Boundaries of one document, referenced from its text by tokens."""

    def __init__(self) -> None:
        self.items: list[Boundary] = []

    def add(self, boundary: Boundary) -> str:
        self.items.append(boundary)
        return f"{_OPEN}{len(self.items) - 1}{_CLOSE}"


def clean_input(text: str) -> str:
    """NFC-normalise, unify line breaks, drop invisible characters (and stray mark chars)."""
    text = _LINE_BREAKS.sub("\n", unicodedata.normalize("NFC", text))
    return _INVISIBLE.sub("", text).replace("\u00a0", " ")


def collapse_spaces(text: str) -> str:
    """One-line form of a heading or title."""
    return " ".join(clean_input(text).split())


def finish(raw: str, marks: Marks, *, name: str, kind: str, title: str | None,
           url: str | None = None) -> ConvertedDocument:
    """Normalise `raw` (already cleaned with `clean_input`, plus mark tokens) into a document."""
    text = _TRAILING_SPACE.sub("", raw.replace("\r", ""))
    text = _LONE_MARKS.sub(r"\1", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    pieces: list[str] = []
    found: list[tuple[int, int]] = []  # (offset in final text, boundary index)
    length = last = 0
    for match in _MARK.finditer(text):
        pieces.append(text[last:match.start()])
        length += match.start() - last
        found.append((length, int(match.group(1))))
        last = match.end()
    pieces.append(text[last:])
    joined = "".join(pieces)
    lead = len(joined) - len(joined.lstrip())
    final = joined.strip()
    if not any(ch.isalnum() for ch in final):  # nothing but table rules and punctuation
        raise SourceError(f"{name}: no text could be extracted from this file.")
    offsets = [(min(max(pos - lead, 0), len(final)), marks.items[idx]) for pos, idx in found]
    sections = build_sections(final, offsets)
    return ConvertedDocument(text=final, title=title or None, sections=sections, kind=kind, url=url)


def build_sections(text: str, bounds: list[tuple[int, Boundary]]) -> tuple[Section, ...]:
    """Sections between consecutive boundary offsets, trimmed of surrounding whitespace."""
    stack: list[tuple[int, str]] = []
    page: int | None = None
    anchor: str | None = None
    starts: list[tuple[int, tuple[str, ...], int | None, str | None]] = []
    i = 0
    cuts = sorted({0, *(pos for pos, _ in bounds)})
    for cut in cuts:
        while i < len(bounds) and bounds[i][0] <= cut:
            b = bounds[i][1]
            if b.level == 0:
                stack, anchor = [], None
            elif b.level is not None:
                while stack and stack[-1][0] >= b.level:
                    stack.pop()
                stack.append((b.level, b.name))
                anchor = None
            if b.page is not None:
                page = b.page
            if b.anchor is not None:
                anchor = b.anchor
            i += 1
        starts.append((cut, tuple(n for _, n in stack), page, anchor))
    sections: list[Section] = []
    for k, (start, path, pg, anc) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        piece = text[start:end]
        s = start + len(piece) - len(piece.lstrip())
        e = end - (len(piece) - len(piece.rstrip()))
        if s < e:
            sections.append(Section(s, e, path, pg, anc))
    return tuple(sections)
