"""HTML from docs generators other than Sphinx: each page below has the shape its generator
writes (DocBook XHTML, MkDocs Material, Docusaurus, a hand-written page), and must come out
with its heading path, its notes and its prose, and without its menus and footers."""

from __future__ import annotations

import pytest

from bot.rag.ingest.convert import ConvertedDocument, convert
from tests.test_convert import check_sections, section_with

MB = 1 << 20

DOCBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Chapter 1. Tutorials</title></head><body>
<div class="navheader"><table width="100%" summary="Navigation header"><tr><th colspan="3" align="center">
Chapter 1. Tutorials NAVHEADERTEXT</th></tr><tr><td><a accesskey="p" href="pr01.en.html">Prev</a></td></tr></table></div>
<div class="chapter"><div class="titlepage"><div><div>
<h1 class="title"><a id="_tutorials"/>Chapter 1. Tutorials</h1></div></div></div>
<div class="toc"><p><b>Table of Contents</b></p><dl class="toc"><dt><span class="section">
<a href="ch01.en.html#_console_basics">1.1. Console basics TOCTEXT</a></span></dt></dl></div>
<p>Learning a computer system is like learning a new foreign language.</p>
<div class="section"><div class="titlepage"><div><div>
<h2 class="title" style="clear: both"><a id="_console_basics"/>1.1. Console basics</h2></div></div></div>
<div class="section"><div class="titlepage"><div><div>
<h3 class="title"><a id="_the_shell_prompt"/>1.1.1. The shell prompt</h3></div></div></div>
<p>Upon starting the system, you are presented with the character based login screen.</p>
<div class="tip" style="margin-left: 0.5in; margin-right: 0.5in;"><table border="0" summary="Tip">
<tr><td rowspan="2" align="center" valign="top"><img alt="[Tip]" src="images/tip.png"/></td>
<th align="left">Tip</th></tr><tr><td align="left" valign="top">
<p>To identify the file tree of a device, execute <code class="literal">mount</code>(8) with no arguments.</p>
</td></tr></table></div>
</div></div></div>
<div class="navfooter"><table width="100%" summary="Navigation footer"><tr><td>NAVFOOTERTEXT Home</td></tr></table></div>
</body></html>"""

MKDOCS = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Configuration - Widgets</title></head>
<body><header class="md-header"><nav class="md-header__inner">HEADERTEXT Widgets</nav></header>
<div class="md-container"><main class="md-main"><div class="md-main__inner md-grid">
<div class="md-sidebar md-sidebar--primary"><div class="md-sidebar__scrollwrap"><nav class="md-nav">
<ul><li><a href="../">Home SIDEBARTEXT</a></li><li><a href="./">Configuration</a></li></ul></nav></div></div>
<div class="md-sidebar md-sidebar--secondary"><nav class="md-nav md-nav--secondary"><ul>
<li><a href="#options">Options TOCTEXT</a></li></ul></nav></div>
<div class="md-content"><article class="md-content__inner md-typeset">
<h1 id="configuration">Configuration</h1><p>Widgets read their settings from a file named widget.yml.</p>
<h2 id="options">Options</h2><h3 id="timeout">timeout</h3>
<p>The timeout option sets how many seconds a widget waits before giving up.</p>
<div class="admonition warning"><p class="admonition-title">Warning</p>
<p>A timeout of zero disables the timeout entirely.</p></div>
</article></div></div></main>
<footer class="md-footer"><div class="md-copyright">FOOTERTEXT Made with a static site generator</div></footer>
</div></body></html>"""

DOCUSAURUS = """<!doctype html><html><head><title>Deploying | Gizmo</title></head><body>
<div id="__docusaurus"><nav class="navbar navbar--fixed-top"><div class="navbar__items">NAVTEXT Docs Blog</div></nav>
<div class="main-wrapper"><div class="docPage"><aside class="theme-doc-sidebar-container">
<ul class="menu__list"><li><a href="/docs/intro">Intro SIDEBARTEXT</a></li></ul></aside>
<main class="docMainContainer"><div class="container"><div class="row"><div class="col">
<nav class="theme-doc-breadcrumbs" aria-label="Breadcrumbs"><ul><li>Docs CRUMBTEXT</li></ul></nav>
<article><div class="theme-doc-markdown markdown"><header><h1>Deploying</h1></header>
<p>Gizmo sites are static files that any web server can host.</p>
<h2 class="anchor" id="build">Build<a href="#build" class="hash-link">\u200b</a></h2>
<p>Run the build command to write the site into the build folder.</p>
<h3 class="anchor" id="base-url"><a href="#base-url">Base URL</a></h3>
<p>Set the base URL when the site is served from a sub-path.</p>
<div class="theme-admonition theme-admonition-note alert alert--secondary"><div class="admonitionHeading">note</div>
<div class="admonitionContent"><p>The base URL must start and end with a slash.</p></div></div>
</div></article>
<nav class="pagination-nav"><a href="/docs/next">Next PAGINATIONTEXT</a></nav></div>
<div class="col col--3"><div class="theme-doc-toc-desktop"><ul><li><a href="#build">Build TOCTEXT</a></li></ul></div></div>
</div></div></main></div></div>
<footer class="footer"><div>FOOTERTEXT Copyright Gizmo</div></footer></div></body></html>"""

PLAIN = """<html><head><title>Users and groups</title></head><body>
<div id="header"><a href="/">HEADERTEXT Our wiki</a></div>
<h1>Users and groups</h1>
<p>Every file belongs to one user and one group.</p>
<h2>Adding a user</h2>
<p>Use the adduser command to add a user with a home folder.</p>
<h3>System users</h3>
<p>System users have no login shell and own the files of a service.</p>
<div id="footer">FOOTERTEXT last edited yesterday</div>
</body></html>"""


def _convert(html: str, name: str) -> ConvertedDocument:
    doc = convert(html.encode("utf-8"), name, max_bytes=MB)
    check_sections(doc)
    return doc


@pytest.mark.parametrize(("html", "name", "title", "expected", "furniture"), [
    (DOCBOOK, "ch01.en.html", "Chapter 1. Tutorials", {
        "a new foreign language": ("Chapter 1. Tutorials",),
        "character based login screen": ("Chapter 1. Tutorials", "1.1. Console basics", "1.1.1. The shell prompt"),
        "with no arguments": ("Chapter 1. Tutorials", "1.1. Console basics", "1.1.1. The shell prompt"),
    }, ("NAVHEADERTEXT", "NAVFOOTERTEXT", "TOCTEXT")),
    (MKDOCS, "configuration/index.html", "Configuration", {
        "read their settings": ("Configuration",),
        "how many seconds": ("Configuration", "Options", "timeout"),
        "disables the timeout entirely": ("Configuration", "Options", "timeout"),
    }, ("HEADERTEXT", "SIDEBARTEXT", "TOCTEXT", "FOOTERTEXT")),
    (DOCUSAURUS, "deploying.html", "Deploying", {
        "any web server can host": ("Deploying",),
        "into the build folder": ("Deploying", "Build"),
        "served from a sub-path": ("Deploying", "Build", "Base URL"),
        "start and end with a slash": ("Deploying", "Build", "Base URL"),
    }, ("NAVTEXT", "SIDEBARTEXT", "CRUMBTEXT", "PAGINATIONTEXT", "TOCTEXT", "FOOTERTEXT")),
    (PLAIN, "users-and-groups.html", "Users and groups", {
        "one user and one group": ("Users and groups",),
        "adduser command": ("Users and groups", "Adding a user"),
        "no login shell": ("Users and groups", "Adding a user", "System users"),
    }, ("HEADERTEXT", "FOOTERTEXT")),
], ids=["docbook", "mkdocs", "docusaurus", "plain"])
def test_docs_site_pages_keep_headings_notes_and_prose(html: str, name: str, title: str,
                                                        expected: dict[str, tuple[str, ...]],
                                                        furniture: tuple[str, ...]) -> None:
    doc = _convert(html, name)
    assert doc.title == title
    for needle, path in expected.items():
        assert section_with(doc, needle).heading_path == path, needle
    for text in furniture:
        assert text not in doc.text, text


def test_docbook_anchors_and_tip_text() -> None:
    doc = _convert(DOCBOOK, "ch01.en.html")
    assert section_with(doc, "character based login screen").anchor == "_the_shell_prompt"
    assert "To identify the file tree of a device, execute `mount`(8) with no arguments." in doc.text
    assert "[Tip]" not in doc.text  # the icon's alt text is decoration


def test_odd_encodings_are_no_reason_to_refuse() -> None:
    latin1 = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
              '<head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"/>'
              '<title>Umlaute</title></head><body><h1>Umlaute</h1><p>Gr\xfc\xdfe aus K\xf6ln.</p></body></html>')
    doc = convert(latin1.encode("latin-1"), "umlaute.html", max_bytes=MB)
    assert "Grüße aus Köln." in doc.text


def test_sections_named_like_furniture_are_content() -> None:
    """Section ids are slugs of their headings: a GUI program's "Menu" and "Search" sections
    are text, while a menu (an element with that id and no heading) is not."""
    page = ("<html><body><div id='menu'><a href='/'>MENUTEXT Home</a></div>"
            "<h1>Editor</h1><p>The editor opens files.</p>"
            "<section id='menu'><h2>Menu</h2><p>The File menu holds Open and Save.</p></section>"
            "<section id='search'><h2>Search</h2><p>Press Ctrl+F to find text in the file.</p></section>"
            "</body></html>")
    doc = _convert(page, "editor.html")
    assert "MENUTEXT" not in doc.text
    assert section_with(doc, "holds Open and Save").heading_path == ("Editor", "Menu")
    assert section_with(doc, "Ctrl+F").heading_path == ("Editor", "Search")
