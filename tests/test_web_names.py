"""Web sources added without a name are named after their first page's title (`libffi docs`),
not their URL (`127-0-0-1-libffi-index`): the URL's slug only for a page without a title, a
number when the knowledge base already holds that name, and the same URL twice is refused.
`source add` in a subprocess against tests/web_site.py (Discord's /source add: test_sources_discord)."""

from __future__ import annotations

import json

from bot.settings import Settings
from tests.helpers import run_cli
from tests.web_site import WebSite


def test_source_add_names_web_sources_after_their_first_page_title(settings: Settings) -> None:
    def add(url: str, *flags: str) -> tuple[int, str, str]:
        result = run_cli(settings, "source", "add", url, *flags, ALLOW_PRIVATE_URLS="true")
        return result.returncode, result.stdout, result.stderr

    with WebSite() as site:
        code, out, err = add(site.url("/libffi/index.html"), "--crawl")
        assert code == 0 and "shared: added `libffi docs` (crawl)" in out, err
        code, out, err = add(site.url("/mirror/libffi/index.html"), "--crawl")  # a different site, the same title
        assert code == 0 and "shared: added `libffi docs (2)` (crawl)" in out, err
        code, out, err = add(site.url("/libffi/index.html"), "--crawl")
        assert code == 2 and "A source called 'libffi docs' already exists for that URL" in err
        code, out, err = add(site.url("/libffi/intro.html"))
        assert code == 0 and "shared: added `Introduction.html` (url)" in out, err
        code, out, err = add(site.url("/notitle/index.html"))  # no title: the URL's slug, as before
        assert code == 0 and "shared: added `127-0-0-1-notitle-index.html` (url)" in out, err
    listing = run_cli(settings, "source", "list", "--json")
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert set(rows) == {"libffi docs", "libffi docs (2)", "Introduction.html", "127-0-0-1-notitle-index.html"}
    assert rows["libffi docs"]["pages"] == 2 and rows["libffi docs (2)"]["pages"] == 1
    assert (settings.sources_dir / "libffi docs" / "libffi-intro.html").is_file()
    indexed = run_cli(settings, "ingest")
    assert indexed.returncode == 0, indexed.stderr
    answer = run_cli(settings, "ask", "What is libffi?")  # the citations name the sources so
    assert "] libffi docs/libffi-index.html › libffi docs, characters" in answer.stdout, answer.stdout
