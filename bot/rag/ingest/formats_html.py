"""HTML pages: the content without the page furniture, as light markdown, with headings as sections.

Works for any docs generator (Sphinx, DocBook, MkDocs, Docusaurus-like, hand-written pages),
not one theme: the lxml DOM is cleaned of what a reader never sees (script, style, template,
noscript, comments, `hidden`/`display:none`) and of page furniture (nav, the site's header
and footer, sidebars, asides, tables of contents, breadcrumbs, cookie banners, DocBook's
navigation bars), found by HTML5 element, ARIA role or a class naming it. Footnotes, notes and
sidebars of the text stay. XHTML (an `<?xml?>` declaration, `<a id="x"/>`) is read as such.
Sphinx `¶` header links go, Sphinx API entries (`<dl class="py function"><dt id="zip">`)
become headings named after the entry ("zip()"), and lists holding code or several blocks
become plain blocks. markdownify then writes everything that is left as markdown, so no
section is dropped by a guess about what is "main". Every heading gets a unique ASCII token
that survives conversion and tells where its section starts, its heading path (`<h1>`…`<h6>`)
and its anchor. Links become their text.
"""

from __future__ import annotations

import codecs
import re
import secrets
from typing import Any

import lxml.html
import markdownify
from lxml import etree

from bot.rag.errors import SourceError
from bot.rag.ingest.formats_base import (
    Boundary,
    ConvertedDocument,
    Marks,
    clean_input,
    collapse_spaces,
    finish,
)
from bot.rag.ingest.formats_text import unescape_markdown
from bot.rag.ingest.html_page import as_html, drop_furniture

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_DROP_TAGS = ["script", "style", "template", "noscript", "iframe", "object", "embed", "svg",
              "canvas", "map", "head", "button", "select", "textarea", "input", "dialog"]
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_HIDDEN_CLASSES = {"hidden", "d-none", "sr-only", "visually-hidden", "screen-reader-text", "is-hidden"}
_CALLABLE = {"function", "method", "classmethod", "staticmethod", "decorator",
             "decoratormethod", "coroutinefunction", "coroutinemethod", "abstractmethod"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_BLOCKS = ("pre", "p", "div", "table", "ul", "ol", "dl", "blockquote")
# <aside> blocks that belong to the text (footnotes, notes, sidebars of an article) become
# text; other asides (site sidebars) stay asides, which are dropped as page furniture.
_NOTE_ROLES = {"note", "doc-footnote", "doc-endnote", "doc-endnotes", "doc-footnotes"}
_NOTE_CLASSES = {"footnote", "footnote-list", "footnotes", "endnotes", "note", "topic", "sidebar"}


def decode_html(data: bytes, name: str, content_type: str | None) -> str:
    """Text of HTML bytes: BOM, then the HTTP charset, then <meta charset>, then UTF-8."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    if b"\x00" in data:
        raise SourceError(f"{name}: looks like a binary file, not an HTML page.")
    declared = None
    if content_type and "charset=" in content_type.lower():
        declared = content_type.lower().split("charset=", 1)[1].split(";")[0].strip(" \"'")
    elif match := _META_CHARSET.search(data[:4096]):
        declared = match.group(1).decode("ascii", "ignore").lower()
    for codec in filter(None, (declared, "utf-8")):
        try:
            return data.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    raise SourceError(f"{name}: the page is not valid {declared or 'UTF-8'} text.")


def _is_hidden(el: etree._Element) -> bool:
    return (el.get("hidden") is not None or (el.get("aria-hidden") or "").lower() == "true"
            or bool(_HIDDEN_STYLE.search(el.get("style") or ""))
            or not _HIDDEN_CLASSES.isdisjoint((el.get("class") or "").split()))


def _clean_dom(root: lxml.html.HtmlElement) -> None:
    """Remove what a reader never sees, and Sphinx permalink pilcrows; footnotes stay text."""
    etree.strip_elements(root, etree.Comment, etree.ProcessingInstruction, *_DROP_TAGS, with_tail=False)
    doomed = [el for el in root.iter() if isinstance(el.tag, str) and (
        _is_hidden(el) or (el.tag == "a" and "headerlink" in (el.get("class") or "").split()))]
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()  # keeps the tail text
    for aside in list(root.iter("aside")):
        if (aside.get("role") or "").lower() in _NOTE_ROLES or not _NOTE_CLASSES.isdisjoint(
                (aside.get("class") or "").split()):
            aside.tag = "div"


def _text(el: etree._Element) -> str:
    return collapse_spaces(el.text_content()).rstrip("¶ ").strip()


def _entry_name(dl: etree._Element, dt: etree._Element) -> str:
    """"zip()", "math.isclose()", "str" from a Sphinx signature."""
    def part(cls: str) -> str:
        found = dt.find_class(cls)
        return collapse_spaces(found[0].text_content()) if found else ""

    prefix = part("sig-prename")
    name = prefix + part("sig-name")
    ident = dt.get("id") or ""
    if name and not prefix and ident.endswith("." + name):  # a method inside its class: "dict.get"
        name = ident
    if not name:
        name = dt.get("id") or _text(dt).split("(")[0]
    kinds = set((dl.get("class") or "").split())
    if prefix == "@":  # a decorator: "@classmethod"
        return name
    if kinds & _CALLABLE or (not kinds - {"py", "c", "cpp", "js"} and dt.find_class("sig-paren")):
        name += "()"
    return name


def _is_entry(dl: etree._Element) -> bool:
    first = next((c for c in dl if c.tag == "dt"), None)
    return first is not None and "sig-object" in (first.get("class") or "").split()


def _anchor(el: etree._Element) -> str | None:
    if el.get("id"):
        return el.get("id")
    for child in el.iter("a"):
        if (child.get("id") or child.get("name")) and not child.text_content().strip():
            return child.get("id") or child.get("name")
    parent = el.getparent()
    if parent is not None and parent.get("id") and (parent.tag == "section" or "section" in (
            parent.get("class") or "").split()):
        first = next((c for c in parent if isinstance(c.tag, str) and c.tag in _HEADINGS), None)
        if first is el:
            return parent.get("id")
    return None


def _target_before(el: etree._Element) -> str | None:
    """Sphinx puts some entries' link target in an empty element just before them."""
    prev = el.getprevious()
    if prev is not None and prev.get("id") and not prev.text_content().strip():
        return prev.get("id")
    return None


def _replace_with_heading(el: etree._Element, level: int, text: str) -> etree._Element:
    heading = etree.Element(f"h{min(level, 6)}")
    heading.text, heading.tail = text, el.tail
    el.getparent().replace(el, heading)
    return heading


class _Tokens(dict[str, str]):
    """ASCII tokens put in the DOM, which survive conversion to markdown unescaped, each mapped to the mark (of `marks`) it stands for."""

    def __init__(self, marks: Marks) -> None:
        super().__init__()
        self.marks = marks
        self.nonce = secrets.token_hex(4)
        self.pattern = re.compile(f"zq{self.nonce}k\\d+qz")

    def add(self, boundary: Boundary) -> str:
        token = f"zq{self.nonce}k{len(self)}qz"
        self[token] = self.marks.add(boundary)
        return token


def _mark_headings(root: lxml.html.HtmlElement, tokens: _Tokens) -> None:
    """Turn Sphinx entries into headings and put a token in every heading."""
    current = 0  # level of the last real heading, in document order
    todo: list[tuple[etree._Element, int, str, str | None, str]] = []
    for el in root.iter("h1", "h2", "h3", "h4", "h5", "h6", "dl"):
        if el.tag in _HEADINGS:
            current = int(el.tag[1])
            if _text(el):
                todo.append((el, current, _text(el), _anchor(el), _text(el)))
        elif _is_entry(el):
            depth = sum(1 for a in el.iterancestors("dl") if _is_entry(a)) + 1
            dts = [c for c in el if c.tag == "dt"]
            anchor = next((dt.get("id") for dt in dts if dt.get("id")), None) or _target_before(el)
            todo.append((dts[0], current + depth, _entry_name(el, dts[0]), anchor, _text(dts[0])))
            for dt in dts[1:]:  # further signatures: plain text lines
                shown = _text(dt)
                for child in list(dt):
                    dt.remove(child)
                dt.tag, dt.text = "p", shown
            for dd in (c for c in el if c.tag == "dd"):
                dd.tag = "div"
    for el, level, name, anchor, shown in todo:
        token = tokens.add(Boundary(level, name, anchor=anchor))
        if el.tag == "dt":
            el = _replace_with_heading(el, level, shown)
        el.text = f"{token} " + (el.text or "")
    for dl in list(root.iter("dl")):
        if _is_entry(dl):
            dl.tag = "div"


def _needs_unlisting(el: etree._Element) -> bool:
    """Does a list/quote hold code, or an item with several blocks, that would be glued into one line?"""
    if el.find(".//pre") is not None:
        return True
    items = [c for c in el if c.tag == "li"] if el.tag in {"ul", "ol"} else [el]
    return any(sum(1 for c in item if c.tag in _BLOCKS) > 1 for item in items)


def _unlist_blocks(root: lxml.html.HtmlElement) -> None:
    """Lists and quotes holding code or several paragraphs become plain blocks (a list item's
    blocks would be glued into one line); definition lists become term + text blocks."""
    for dl in list(root.iter("dl")):
        dl.tag = "div"
        for child in dl:
            if child.tag == "dt":
                strong = etree.Element("strong")
                strong.text, child.text = child.text, None
                for sub in list(child):
                    strong.append(sub)
                child.tag = "p"
                child.append(strong)
            elif child.tag == "dd":
                child.tag = "div"
    for cell in list(root.iter("td", "th")):  # blocks in a table cell: lines, not glued words
        for block in [b for b in cell.iter("p", "div", "li") if b is not cell]:
            block.addnext(etree.Element("br"))
            block.drop_tag()
    for el in list(root.iter("ul", "ol", "blockquote")):
        if not _needs_unlisting(el):
            continue
        kind, el.tag = el.tag, "div"
        if kind == "blockquote":
            continue
        for number, li in enumerate((c for c in el if c.tag == "li"), start=1):
            li.tag = "div"
            bullet = f"{number}. " if kind == "ol" else "- "
            first = li if (li.text or "").strip() or not len(li) or li[0].tag != "p" else li[0]
            first.text = bullet + (first.text or "").lstrip()


def _unlink_prose(root: lxml.html.HtmlElement) -> None:
    """Links inside prose become plain text (Sphinx prose cross-references everything),
    while pure link lists stay links, which the markdown writer shows as their text."""
    for block in list(root.iter("p", "li", "td", "dt")):
        links = list(block.iter("a"))
        if not links:
            continue
        linked = "".join(a.text_content() for a in links)
        own = sum(ch.isalnum() for ch in block.text_content()) - sum(ch.isalnum() for ch in linked)
        if own >= 3:
            for a in links:
                if a.getparent() is not None:
                    a.drop_tag()


def _title(root: lxml.html.HtmlElement) -> str | None:
    node = root.find(".//title")
    title = collapse_spaces(node.text_content()) if node is not None else ""
    h1 = next((t for t in (_text(h) for h in root.iter("h1")) if t), "")
    if h1 and (not title or h1.lower() in title.lower()):
        return h1
    return title or None


class _Markdown(markdownify.MarkdownConverter):
    """Markdown of the content: ATX headings, fenced code, links and images as their text."""

    def __init__(self) -> None:
        super().__init__(heading_style="ATX", bullets="-", strip=["a", "img"], escape_asterisks=False,
                         escape_underscores=False, escape_misc=False, code_language="")

    def convert_img(self, el: Any, text: str, parent_tags: set[str]) -> str:
        return ""  # DocBook's "[Tip]" icons and decorative images carry no text


def convert_html(data: bytes, name: str, *, url: str | None = None,
                 content_type: str | None = None) -> ConvertedDocument:
    html = as_html(clean_input(decode_html(data, name, content_type)))
    if not html.strip():
        raise SourceError(f"{name}: the page is empty.")
    try:
        root = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        raise SourceError(f"{name}: not a readable HTML page.") from None
    title = _title(root)
    _clean_dom(root)
    drop_furniture(root)
    marks = Marks()
    tokens = _Tokens(marks)
    _mark_headings(root, tokens)
    _unlist_blocks(root)
    _unlink_prose(root)
    body = root.find("body")
    markdown = _Markdown().convert(lxml.html.tostring(body if body is not None else root, encoding="unicode"))
    if not markdown.strip():
        raise SourceError(f"{name}: no readable text found on the page.")
    markdown = unescape_markdown(clean_input(markdown))
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        for token in tokens.pattern.findall(line):
            before, _, after = line.partition(token)
            if before.strip("#>*- \t"):  # not at a line start: the mark stays where it is
                line = before + tokens[token] + after.lstrip(" ")
            else:  # the section starts at the heading line: the mark goes before "## "
                line = tokens[token] + before + after.lstrip(" ")
        lines[i] = line
    return finish("\n".join(lines), marks, name=name, kind="html", title=title, url=url)
