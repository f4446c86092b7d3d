"""Links between passages: HTML prose links are kept with the text (where they start and
what they point to), resolved to the section they name, and the sections the best passages
for a question link to are retrieved too — the reference a tutorial sentence points at."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.index.links import LinkTargets
from bot.rag.ingest.formats_base import link_target
from bot.rag.ingest.formats_html import convert_html
from bot.rag.models import Chunk
from bot.rag.service import RagService
from bot.settings import Settings


@pytest.mark.parametrize(
    ("href", "url", "target"),
    [
        ("../reference/simple_stmts.html#nonlocal", None, "reference/simple_stmts.html#nonlocal"),
        ("classes.html", None, "tutorial/classes.html"),
        ("#scopes", None, "tutorial/index.html#scopes"),
        ("https://example.com/x.html", None, None),  # leaves the folder
        ("../../etc/passwd", None, None),
        ("mailto:someone@example.com", None, None),
        ("../api/x.html#y", "https://docs.example.com/guide/index.html", "https://docs.example.com/api/x.html#y"),
        ("https://elsewhere.example.org/", "https://docs.example.com/guide/index.html", None),  # another site
    ],
)
def test_where_a_link_points(href: str, url: str | None, target: str | None) -> None:
    assert link_target(href, "tutorial/index.html", url) == target


def test_prose_links_are_kept_with_their_offsets() -> None:
    page = b"""<html><head><title>Scopes</title></head><body><main><h1>Scopes</h1>
    <p>To rebind a variable of the enclosing function, use the
    <a href="../reference/statements.html#nonlocal"><code>nonlocal</code></a> statement; a
    <a href="https://example.com/blog">blog post</a> explains why.</p></main></body></html>"""
    doc = convert_html(page, "tutorial/scopes.html")
    assert "zq" not in doc.text and "use the" in doc.text
    assert len(doc.links) == 1  # the external link is text only
    at, target = doc.links[0]
    assert target == "reference/statements.html#nonlocal" and doc.text[at:].lstrip().startswith("`nonlocal`")


def _chunk(n: int, source: str, anchor: str | None) -> Chunk:
    return Chunk(f"{source}#{n}", source, n, 0, 1, "text", "", anchor=anchor)


def test_a_link_resolves_to_its_section() -> None:
    targets = LinkTargets.build([
        _chunk(0, "ref.html", None), _chunk(1, "ref.html", "the-global-statement"),
        _chunk(2, "ref.html", "the-nonlocal-statement"), _chunk(3, "ref.html", "the-nonlocal-statement"),
        _chunk(4, "ref.html", "index-3"),
    ])
    assert targets.resolve("ref.html#the-nonlocal-statement") == "ref.html#2"  # the section's first chunk
    assert targets.resolve("ref.html#nonlocal") == "ref.html#2"  # a marker before the section
    assert targets.resolve("ref.html") == "ref.html#0"
    assert targets.resolve("ref.html#no-such-thing") is None
    assert targets.resolve("other.html#nonlocal") is None


def _docs(folder: Path, linked: bool) -> Path:
    """A tutorial and a FAQ page that say how in their own words, linking to the reference
    section (or not)."""
    keyword = ('<a class="reference internal" href="../reference/statements.html#nonlocal"><code>nonlocal</code></a>'
               if linked else "<code>nonlocal</code>")
    pages = {
        "faq/scopes.html": f"""<h1>Why can't I assign to a variable of the outer function?</h1>
<p>Assigning to a variable inside a nested function makes it local to the nested function. Declare the variable with the {keyword} keyword to assign to the variable of the outer function.</p>""",
        "tutorial/functions.html": f"""<h1>Defining functions</h1>
<p>A function body runs in a new local scope. Functions can be nested: an inner function sees the variables of the outer function it is defined in.</p>
<p>Assigning to a name inside the nested function makes a new local variable of the inner function. To rebind a variable of the outer function instead, declare it with the {keyword} keyword in the nested function.</p>
<p>Inner functions that use variables of the outer function are called closures; they keep those variables alive after the outer function returns.</p>""",
        "tutorial/closures.html": """<h1>Closures</h1>
<p>A nested function that reads a variable from the outer function forms a closure. The variable is looked up when the nested function runs, not when it is defined.</p>
<p>A common surprise: nested functions made in a loop all see the last value of the loop variable of the outer function. Pass the variable as a default argument to keep each value.</p>""",
        "reference/statements.html": """<section id="simple-statements"><h1>Simple statements</h1>
<section id="the-pass-statement"><span id="pass"></span><h2>The pass statement</h2>
<p><code>pass</code> is a null operation: when it is executed, nothing happens. It is useful as a placeholder when a statement is required syntactically.</p></section>
<section id="the-global-statement"><span id="global"></span><h2>The global statement</h2>
<p>The <code>global</code> statement is a declaration which holds for the entire current code block. It means that the listed identifiers are to be interpreted as globals.</p></section>
<section id="the-nonlocal-statement"><span id="nonlocal"></span><h2>The nonlocal statement</h2>
<p>The <code>nonlocal</code> statement causes the listed identifiers to refer to previously bound names in the nearest enclosing scope excluding globals. This is important because the default behaviour for binding is to search the local namespace first.</p></section>
<section id="the-del-statement"><span id="del"></span><h2>The del statement</h2>
<p>Deletion of a name removes the binding of that name from the local or global namespace.</p></section>
</section>""",
    }
    for name, body in pages.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<html><head><title>{name}</title></head><body><main>{body}</main></body></html>", encoding="utf-8")
    return folder


@pytest.mark.parametrize("linked", [True, False])
def test_the_section_two_pages_link_to_is_retrieved(
    linked: bool, make_settings: Callable[..., Settings], tmp_path: Path, embeddings: MiniLMEmbeddings
) -> None:
    service = RagService(make_settings(sources_dir=_docs(tmp_path / "docs", linked), top_k=2), embeddings=embeddings)
    found = service.retrieve("my nested function needs to reassign a variable from the outer function. which keyword do I use?")
    headings = [c.heading or "" for c in found]
    # The reference section shares no word with the question but "variable": only the links bring it.
    assert any(h.endswith("The nonlocal statement") for h in headings) == linked
