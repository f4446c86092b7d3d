"""What an HTML page is made of before its content is converted: XHTML read as such, and the
page furniture that is not content.

- XHTML (an `<?xml?>` declaration or the XHTML namespace, as DocBook writes) has empty
  elements such as `<a id="x"/>` that an HTML parser takes for unclosed ones, swallowing the
  heading after them; they are written out as `<a id="x"></a>` first, and the declaration,
  which lxml refuses in a decoded string, is dropped.
- Furniture is what a reader skips on any docs generator's page: menus (`<nav>`, ARIA
  navigation/search/menu roles), the site's header and footer (not an article's own),
  sidebars and asides (notes and footnotes have been made text before), tables of contents,
  breadcrumbs, pagination, cookie banners and DocBook's navigation bars, told by element,
  role, or a class naming them. An id counts only on an element that holds no heading: ids
  of sections are slugs of their headings, and a section titled "Menu" is content.
"""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_XHTML = re.compile(r"<html[^>]+xmlns\s*=\s*[\"']http://www\.w3\.org/1999/xhtml", re.IGNORECASE)
# an empty non-void element: "<a id="x"/>"; one unambiguous attribute run, so matching stays linear
_SELF_CLOSED = re.compile(
    r"<(?!(?:area|base|br|col|embed|hr|img|input|link|meta|source|track|wbr)\b)([a-zA-Z][\w:-]*)(\s[^<>]*?)?/>")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_FURNITURE_ROLES = {"navigation", "banner", "contentinfo", "search", "menu", "menubar", "toolbar"}
_FURNITURE_IDS = {"toc", "nav", "navbar", "sidebar", "header", "footer", "breadcrumbs", "menu", "search"}
# class tokens of furniture: "sphinxsidebar", "md-sidebar", "navheader", "theme-doc-toc-desktop",
# "cookie-banner"; a bare "sidebar" is an rST sidebar, part of the text
_FURNITURE_CLASS = re.compile(
    r"^(?:sphinxsidebar\w*|related|navheader|navfooter|footer|toc|"
    r"(?:\w+[-_])*(?:sidebar|navbar|breadcrumbs?|toc|pagination|footer|cookie|consent|skip-?link)(?:[-_][\w-]*)?)$",
    re.IGNORECASE,
)


def as_html(text: str) -> str:
    """The page's text as an HTML parser should read it (XHTML's empty elements closed)."""
    if _XML_DECLARATION.match(text) or _XHTML.search(text[:4096]):
        return _SELF_CLOSED.sub(r"<\1\2></\1>", _XML_DECLARATION.sub("", text, count=1))
    return text


def _holds_heading(el: etree._Element) -> bool:
    return el.tag in _HEADINGS or el.tag in {"section", "article", "main"} or next(el.iter(*_HEADINGS), None) is not None


def is_furniture(el: etree._Element) -> bool:
    if el.tag in {"nav", "aside"} or (el.get("role") or "").lower() in _FURNITURE_ROLES:
        return True
    if el.tag in {"header", "footer"}:  # the site's, not an article's own header
        return not any(a.tag in {"article", "main"} for a in el.iterancestors())
    if (el.get("id") or "").lower() in _FURNITURE_IDS and not _holds_heading(el):
        return True
    return any(_FURNITURE_CLASS.match(n) and n.lower() != "sidebar" for n in (el.get("class") or "").split())


def drop_furniture(root: lxml.html.HtmlElement) -> None:
    for el in [el for el in root.iter() if isinstance(el.tag, str) and is_furniture(el)]:
        if el.getparent() is not None and el.tag not in {"html", "body"}:
            el.drop_tree()
