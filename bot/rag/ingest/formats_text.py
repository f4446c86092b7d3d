"""Plain-text formats (.txt, .md, .rst): decoding, front matter, and heading detection.

Markdown headings (ATX `#`..`######` and setext `===`/`---` underlines) and reStructuredText
titles (underlined, optionally overlined) become section marks at the start of the heading's
first line, so each section's text begins with its heading. `markdown_marks` is also used on
the markdown that markitdown produces for office files.
"""

from __future__ import annotations

import codecs
import re

from bot.rag.errors import SourceError
from bot.rag.ingest.formats_base import Boundary, ConvertedDocument, Marks, clean_input, collapse_spaces, finish

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOT_PARAGRAPH = re.compile(r"^(?: {4}|\t| {0,3}(?:[-*+][ \t]|\d+[.)][ \t]|>|\||<))")
_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+])\1+[ \t]*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~<])")


def decode_text(data: bytes, name: str) -> str:
    """Text of a file's bytes: UTF-8 (with or without BOM) or UTF-16 with a BOM."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{name}: not valid UTF-16 text ({exc.reason}).") from None
    if b"\x00" in data:
        raise SourceError(f"{name}: looks like a binary file, not text.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{name}: not UTF-8 text (invalid byte at position {exc.start}); save it as UTF-8."
        ) from None


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """`key: value` lines between `---` fences at the very top become metadata."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or " " in key.strip():
            return {}, text  # not front matter: a rule followed by prose
        meta[key.strip().lower()] = value.strip().strip("'\"")
    return meta, text[match.end():]


def heading_name(raw: str) -> str:
    """Plain name of a markdown heading: links, emphasis and escapes removed."""
    text = _LINK.sub(r"\1", raw)
    text = _ESCAPE.sub(r"\1", _EMPHASIS.sub("", text))
    return collapse_spaces(text.rstrip("¶ "))


def unescape_markdown(text: str) -> str:
    """Drop converter-added backslash escapes (`\\_`, `\\*`, `\\>`) outside code; `\\|` stays.
    Code is told by ``` fences (which may open mid-line) and `inline` spans."""
    blocks = re.split(r"(?<!\\)```", text)
    for b in range(0, len(blocks), 2):  # even blocks are outside fenced code
        parts = re.split(r"(?<!\\)`", blocks[b])
        for k in range(0, len(parts), 2):  # even parts are outside inline code
            parts[k] = _ESCAPE.sub(r"\1", parts[k])
        blocks[b] = "`".join(parts)
    return "```".join(blocks)


def markdown_marks(text: str, marks: Marks) -> tuple[str, str | None]:
    """Text with a mark before each markdown heading line; also the first level-1 (or any) heading."""
    lines = text.split("\n")
    heads: dict[int, tuple[int, str]] = {}
    fence: str | None = None
    para_start = False  # the previous line starts a paragraph (blank line or heading before it)
    prev_blank = True
    for i, line in enumerate(lines):
        fenced = _FENCE.match(line)
        if fence is not None:
            if fenced and fenced.group(1)[0] == fence[0] and len(fenced.group(1)) >= len(fence):
                fence = None
            prev_blank, para_start = False, False
            continue
        if fenced:
            fence, prev_blank, para_start = fenced.group(1), False, False
            continue
        atx = _ATX.match(line)
        if atx and heading_name(atx.group(2) or ""):
            heads[i] = (len(atx.group(1)), heading_name(atx.group(2) or ""))
            prev_blank, para_start = True, False
            continue
        setext = _SETEXT.match(line)
        if setext and para_start and heading_name(lines[i - 1]):
            heads[i - 1] = (1 if setext.group(1)[0] == "=" else 2, heading_name(lines[i - 1]))
            prev_blank, para_start = True, False
            continue
        blank = not line.strip()
        para_start = prev_blank and not blank and not _NOT_PARAGRAPH.match(line)
        prev_blank = blank
    ordered = [head for _, head in sorted(heads.items())]
    title = next((n for lvl, n in ordered if lvl == 1), ordered[0][1] if ordered else None)
    for i, (level, name) in heads.items():
        lines[i] = marks.add(Boundary(level, name)) + lines[i]
    return "\n".join(lines), title


def rst_marks(text: str, marks: Marks) -> tuple[str, str | None]:
    """Text with a mark before each reStructuredText title; also the first title."""
    lines = text.split("\n")
    styles: list[tuple[str, bool]] = []
    heads: list[tuple[int, int, str]] = []  # (first line, level, name)
    i, n = 0, len(lines)
    while i < n:
        line = lines[i].rstrip()
        after_blank = i == 0 or not lines[i - 1].strip()
        over = _RST_ADORNMENT.match(line)
        if (over and after_blank and i + 2 < n and lines[i + 1].strip()
                and not _RST_ADORNMENT.match(lines[i + 1].strip())
                and lines[i + 2].rstrip() == line and len(line) >= len(lines[i + 1].strip())):
            style, first, title_line, i = (line[0], True), i, lines[i + 1], i + 3
        elif (line and not line[0].isspace() and not over and after_blank and i + 1 < n
              and (under := _RST_ADORNMENT.match(lines[i + 1].rstrip()))
              and len(lines[i + 1].rstrip()) >= len(line)):
            style, first, title_line, i = (under.group(1), False), i, line, i + 2
        else:
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        heads.append((first, styles.index(style) + 1, collapse_spaces(title_line)))
    for first, level, name in heads:
        lines[first] = marks.add(Boundary(level, name)) + lines[first]
    return "\n".join(lines), (heads[0][2] if heads else None)


def convert_text(data: bytes, name: str, kind: str, url: str | None = None) -> ConvertedDocument:
    """A .txt, .md (markdown headings) or .rst (reST titles) file."""
    text = clean_input(decode_text(data, name))
    meta: dict[str, str] = {}
    if kind in {"text", "markdown"}:
        meta, text = split_front_matter(text)
    marks = Marks()
    if kind == "rst":
        text, first = rst_marks(text, marks)
    else:
        text, first = markdown_marks(text, marks)
    title = meta.get("title") or first
    return finish(text, marks, name=name, kind=kind, title=title, url=meta.get("url") or url)
