"""Web sources: the URL safety policy, single-page fetches and bounded crawls, against a local site.

Only 127.0.0.1 is ever contacted: `loopback_only` wraps socket.create_connection and getaddrinfo
so that any other connection or name lookup fails the test (and is recorded) instead of leaving the machine.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.rag.errors import SourceError
from bot.rag.ingest.url_safety import MAX_QUERY_VARIANTS, UnsafeURLError, check_url
from bot.rag.ingest.web import CrawlResult, FetchedPage, WebFetcher, extract_links
from bot.settings import Settings
from tests.web_site import WebSite

UA = "sourcebot-test/1.0 (+tests)"
LOCAL_NAMES = {"127.0.0.1", "localhost", "::1"}


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "allow_private_urls": "127.0.0.1/32", "fetch_user_agent": UA, "fetch_timeout": 0.5,
        "crawl_timeout": 20.0, "max_source_bytes": 10_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Addresses connection attempts went to; any other than 127.0.0.1 is refused here, never sent."""
    real_connect, real_getaddrinfo = socket.create_connection, socket.getaddrinfo
    attempts: list[str] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address[0])
        if address[0] != "127.0.0.1":
            raise OSError(f"test guard: no connection to {address[0]}")
        return real_connect(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host) not in LOCAL_NAMES:
            raise socket.gaierror(f"test guard: no name lookup for {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture
def site() -> Iterator[WebSite]:
    with WebSite() as running:
        yield running


@pytest.fixture
def fetcher() -> Iterator[WebFetcher]:
    web = WebFetcher(make_settings())
    yield web
    web.close()


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]) -> list[str]:
    """Make getaddrinfo answer `answers[name]` (one list of addresses per call, the last repeating)."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        calls = answers[host]
        addresses = calls[min(asked.count(host), len(calls)) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 80))
                for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


# --- check_url ------------------------------------------------------------------------------

REFUSED = [
    ("http://127.0.0.1/", "loopback"), ("http://localhost:8080/docs", "loopback"), ("http://10.0.0.1/", "private"),
    ("http://172.16.0.1/", "private"), ("http://192.168.1.1/", "private"), ("http://169.254.169.254/latest/", "metadata"),
    ("http://[::1]/", "loopback"), ("http://[fe80::1]/", "link-local"), ("http://0.0.0.0/", "unspecified"),
    ("http://100.64.0.1/", "carrier-grade NAT"), ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[fc00::1]/", "private"), ("http://224.0.0.1/", "multicast"), ("http://127.1/", "loopback"),
    ("file:///etc/passwd", "file: URLs"), ("ftp://example.com/f.txt", "ftp: URLs"),
    ("http://user:pw@example.com/", "user name or password"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_check_url_refuses_non_public_and_non_http(url: str, why: str, loopback_only: list[str]) -> None:
    with pytest.raises(UnsafeURLError) as caught:
        check_url(url, make_settings(allow_private_urls="false"))
    message = str(caught.value)
    assert why in message and "refused" in message
    assert ":pw@" not in message  # credentials are never echoed
    assert isinstance(caught.value, SourceError) and loopback_only == []


def test_private_addresses_message_names_the_address() -> None:
    with pytest.raises(UnsafeURLError) as caught:
        check_url("http://10.0.0.5/", make_settings(allow_private_urls="false"))
    assert str(caught.value) == (
        "http://10.0.0.5/: refused — it points to a private address (10.0.0.5). Web sources must be public."
    )


def test_allow_private_urls_true_or_a_network_list() -> None:
    check_url("http://127.0.0.1:9/", make_settings(allow_private_urls="true"))
    check_url("http://10.0.0.1/", make_settings(allow_private_urls="true"))
    listed = make_settings(allow_private_urls="127.0.0.1/32")
    check_url("http://127.0.0.1:9/", listed)
    for url in ("http://10.0.0.1/", "http://127.0.0.2/", "http://[::1]/", "http://169.254.169.254/"):
        with pytest.raises(UnsafeURLError):
            check_url(url, listed)
    with pytest.raises(SourceError, match="ALLOW_PRIVATE_URLS"):
        check_url("http://127.0.0.1/", make_settings(allow_private_urls="not-a-network"))
    for allow in ("true", "169.254.0.0/16"):  # a metadata service is never a web source
        with pytest.raises(UnsafeURLError, match="metadata"):
            check_url("http://169.254.169.254/latest/", make_settings(allow_private_urls=allow))


def test_public_literals_pass_without_any_lookup_or_connection(
        monkeypatch: pytest.MonkeyPatch, loopback_only: list[str]) -> None:
    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("check_url looked a literal address up")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    settings = make_settings(allow_private_urls="false")
    check_url("http://93.184.216.34/", settings)
    check_url("https://[2606:2800:220:1:248:1893:25c8:1946]:8443/docs/", settings)
    assert loopback_only == []


def test_every_resolved_address_must_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"mixed.test": [["93.184.216.34", "10.0.0.7"]], "public.test": [["93.184.216.34"]]})
    settings = make_settings(allow_private_urls="false")
    check_url("https://public.test/docs/", settings)
    with pytest.raises(UnsafeURLError, match=r"private address \(10\.0\.0\.7\)"):
        check_url("https://mixed.test/docs/", settings)
    assert asked == ["public.test", "mixed.test"]


def test_metadata_host_names_are_refused_before_resolving(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {})
    for settings in (make_settings(allow_private_urls="false"), make_settings(allow_private_urls="true")):
        with pytest.raises(UnsafeURLError, match="metadata"):
            check_url("http://metadata.google.internal/computeMetadata/v1/", settings)
    assert asked == []


def test_dns_rebinding_is_refused_at_connect_time(monkeypatch: pytest.MonkeyPatch, loopback_only: list[str]) -> None:
    # public when check_url asks, private when the connection resolves the name again
    asked = fake_dns(monkeypatch, {"rebind.test": [["93.184.216.34"], ["10.0.0.1"]]})
    web = WebFetcher(make_settings(allow_private_urls="false"))
    try:
        with pytest.raises(UnsafeURLError) as caught:
            web.fetch("http://rebind.test/docs/page.html")
    finally:
        web.close()
    assert str(caught.value).startswith("http://rebind.test/docs/page.html: refused — it points to a private")
    assert "10.0.0.1" in str(caught.value) and len(asked) == 2
    assert loopback_only == []  # neither address was connected to


# --- fetch ------------------------------------------------------------------------------------


def test_fetch_one_page_with_the_user_agent(site: WebSite, fetcher: WebFetcher) -> None:
    fetched = fetcher.fetch(site.url("/docs/index.html#intro"))
    assert isinstance(fetched, FetchedPage)
    assert fetched.url == site.url("/docs/index.html") and fetched.status == "fetched"
    assert fetched.content_type == "text/html" and b"<h1>Index</h1>" in fetched.content
    assert fetched.etag and fetched.last_modified
    assert site.requests["/robots.txt"] == 1 and site.requests["/docs/index.html"] == 1
    assert site.user_agents == [UA, UA]


@pytest.mark.parametrize(("path", "why"), [
    ("/docs/404.html", "returned HTTP 404 (Not Found)"),
    ("/docs/500.html", "returned HTTP 500 (Internal Server Error)"),
    ("/docs/slow.html", "did not answer within 0.5 s"),
    ("/docs/big.html", "larger than the 10,000-byte limit"),
    ("/docs/big-stream.html", "larger than the 10,000-byte limit"),
    ("/docs/photo", "unsupported content type image/png"),
    ("/docs/redirect-loop", "more than 5 redirects"),
    ("/private/hidden.html", "disallowed by the site's robots.txt"),
])
def test_fetch_failures_say_why(site: WebSite, fetcher: WebFetcher, path: str, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        fetcher.fetch(site.url(path))
    assert str(caught.value).startswith(site.url(path) + ": ") and why in str(caught.value)
    assert time.monotonic() - started < 2.0


def test_robots_disallowed_page_is_never_requested(site: WebSite, fetcher: WebFetcher) -> None:
    for path in ("/private/hidden.html", "/docs/secret.html"):
        with pytest.raises(SourceError, match="robots.txt"):
            fetcher.fetch(site.url(path))
        assert site.requests[path] == 0
    fetcher.fetch(site.url("/docs/a.html"))
    assert site.requests["/robots.txt"] == 1  # cached per host


def test_connection_refused_is_a_clear_error(fetcher: WebFetcher) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError, match="could not be fetched"):
        fetcher.fetch(f"http://127.0.0.1:{port}/docs/")


def test_robots_unavailable_disallows_all_and_missing_allows_all(site: WebSite) -> None:
    site.robots_status = 503
    web = WebFetcher(make_settings())
    with pytest.raises(SourceError, match="503.*disallowing all"):
        web.fetch(site.url("/docs/index.html"))
    assert site.requests["/docs/index.html"] == 0
    site.robots_status = 404
    web = WebFetcher(make_settings())  # a new fetcher reads robots.txt afresh
    assert web.fetch(site.url("/private/hidden.html")).status == "fetched"


def test_redirect_to_a_private_address_is_refused_without_connecting(
        site: WebSite, fetcher: WebFetcher, loopback_only: list[str]) -> None:
    with pytest.raises(UnsafeURLError) as caught:
        fetcher.fetch(site.url("/docs/redirect-private"))
    assert "redirects to http://10.0.0.1/" in str(caught.value) and "private address (10.0.0.1)" in str(caught.value)
    assert set(loopback_only) == {"127.0.0.1"}


def test_redirect_is_followed(site: WebSite, fetcher: WebFetcher) -> None:
    fetched = fetcher.fetch(site.url("/docs/redirect-ok"))
    assert fetched.url == site.url("/docs/a.html") and b"<h1>A</h1>" in fetched.content
    assert site.statuses["/docs/redirect-ok"] == [302]


def test_conditional_get_returns_not_modified(site: WebSite, fetcher: WebFetcher) -> None:
    first = fetcher.fetch(site.url("/docs/a.html"))
    again = fetcher.fetch(site.url("/docs/a.html"), etag=first.etag, last_modified=first.last_modified)
    assert again.status == "not_modified" and again.content == b""
    assert again.etag == first.etag and again.last_modified == first.last_modified
    assert site.headers["/docs/a.html"][-1]["If-None-Match"] == first.etag
    assert site.statuses["/docs/a.html"] == [200, 304]
    by_date = fetcher.fetch(site.url("/docs/a.html"), last_modified=first.last_modified)
    assert by_date.status == "not_modified"
    b = fetcher.fetch(site.url("/docs/b.html"))
    site.versions["/docs/b.html"] += 1  # the page changes: the old ETag no longer matches
    changed = fetcher.fetch(site.url("/docs/b.html"), etag=b.etag)
    assert changed.status == "fetched" and b"version 1" in changed.content and changed.etag != b.etag


# --- links --------------------------------------------------------------------------------------


def test_extract_links_resolves_and_normalises() -> None:
    html = (b'<html><head><base href="/docs/"></head><body><a href="a.html#x">a</a><a href="a.html">again</a>'
            b'<a href="sub//c.html?q=1">c</a><a href="../up.html">up</a><a href="mailto:x@y">m</a>'
            b'<a href="javascript:void(0)">j</a><a href="#top">top</a><a href="HTTP://Other.Example:80/x">o</a></html>')
    assert extract_links(html, "http://site.test/ignored/page.html") == [
        "http://site.test/docs/a.html", "http://site.test/docs/sub/c.html?q=1", "http://site.test/up.html",
        "http://site.test/docs/", "http://other.example/x",
    ]
    assert extract_links(b"", "http://site.test/") == []


# --- crawl --------------------------------------------------------------------------------------


def urls(result: CrawlResult, site: WebSite) -> set[str]:
    return {p.url.removeprefix(site.base) for p in result.pages}


def reasons(pairs: list[tuple[str, str]], site: WebSite) -> dict[str, str]:
    return {url.removeprefix(site.base): why for url, why in pairs}


def test_crawl_follows_links_within_the_folder(site: WebSite, fetcher: WebFetcher) -> None:
    result = fetcher.crawl(site.url("/docs/index.html"))
    assert urls(result, site) == {
        "/docs/index.html", "/docs/a.html", "/docs/b.html", "/docs/sub/c.html", "/docs/sub/d.html", "/docs/manual.pdf",
    }
    pdf = next(p for p in result.pages if p.url.endswith(".pdf"))
    assert pdf.content_type == "application/pdf" and pdf.content.startswith(b"%PDF")
    skipped = reasons(result.skipped, site)
    assert skipped["http://example.com/elsewhere.html"] == "off-site link"
    assert skipped["/docs/secret.html"] == "disallowed by the site's robots.txt"
    assert skipped["/private/hidden.html"] == "outside /docs/"
    assert skipped["/docs/style.css"].startswith("not a document")
    assert site.requests["/docs/secret.html"] == 0 and site.requests["/private/hidden.html"] == 0
    assert all(site.requests[p] == 1 for p in urls(result, site))  # each page once
    assert result.failed == [] and result.stopped is None
    assert "/docs/unlinked.html" not in urls(result, site)


def test_crawl_respects_max_depth_and_max_pages(site: WebSite, fetcher: WebFetcher) -> None:
    shallow = fetcher.crawl(site.url("/docs/index.html"), max_depth=1)
    assert "/docs/sub/c.html" in urls(shallow, site) and "/docs/sub/d.html" not in urls(shallow, site)
    assert reasons(shallow.skipped, site)["/docs/sub/d.html"] == "deeper than max depth 1"
    assert site.requests["/docs/sub/d.html"] == 0
    few = fetcher.crawl(site.url("/docs/index.html"), max_pages=2)
    assert len(few.pages) == 2 and few.stopped == "page limit 2 reached"
    assert any(why == "page limit 2 reached" for _, why in few.skipped)


@pytest.mark.parametrize("where", ["root", "robots"])
def test_crawl_uses_the_sitemap(site: WebSite, fetcher: WebFetcher, where: str) -> None:
    site.sitemap = where
    result = fetcher.crawl(site.url("/docs/index.html"))
    assert urls(result, site) == {"/docs/index.html", "/docs/a.html", "/docs/unlinked.html"}
    assert site.requests["/other/x.html"] == 0 and site.requests["/docs/secret.html"] == 0
    assert site.requests["/docs/b.html"] == 0  # sitemap mode: links are not followed
    if where == "robots":
        assert site.requests["/maps/index.xml"] == 1 and site.requests["/maps/docs.xml"] == 1


def test_crawl_trap_stops_at_the_page_limit(site: WebSite, fetcher: WebFetcher) -> None:
    started = time.monotonic()
    result = fetcher.crawl(site.url("/docs/trap/0.html"), max_pages=8, max_depth=20)
    assert len(result.pages) == 8 and result.stopped == "page limit 8 reached"
    assert site.count("/docs/trap/") == 8 and time.monotonic() - started < 5


def test_crawl_stops_at_the_time_limit(site: WebSite) -> None:
    site.trap_delay = 0.15
    web = WebFetcher(make_settings(crawl_timeout=0.6))
    started = time.monotonic()
    result = web.crawl(site.url("/docs/trap/0.html"), max_pages=1000, max_depth=1000)
    assert result.stopped == "crawl time limit 0.6 s reached"
    assert 1 <= len(result.pages) <= 5 and time.monotonic() - started < 2
    assert result.failed == []  # the page the limit cut short is reported as skipped, not as failed
    assert any(why == "crawl time limit 0.6 s reached" for _, why in result.skipped)


def test_crawl_caps_query_variants_and_url_length(site: WebSite, fetcher: WebFetcher) -> None:
    result = fetcher.crawl(site.url("/docs/query/list.html"))
    assert site.count("/docs/query/item.html?") == MAX_QUERY_VARIANTS
    assert len(result.pages) == 1 + MAX_QUERY_VARIANTS
    whys = [why for _, why in result.skipped]
    assert whys.count(f"more than {MAX_QUERY_VARIANTS} query-string variants of {site.url('/docs/query/item.html')}") \
        == 30 - MAX_QUERY_VARIANTS
    assert "URL longer than 2,000 characters" in whys and site.count("/docs/query/long.html") == 0


def test_refresh_crawl_sends_validators_and_gets_304s(site: WebSite, fetcher: WebFetcher) -> None:
    first = fetcher.crawl(site.url("/docs/index.html"))
    known = {p.url: (p.etag, p.last_modified) for p in first.pages}
    site.versions["/docs/b.html"] += 1
    again = WebFetcher(make_settings()).crawl(site.url("/docs/index.html"), known=known)
    status = {p.url.removeprefix(site.base): p.status for p in again.pages}
    assert status.pop("/docs/b.html") == "fetched"
    assert status.pop("/docs/manual.pdf") == "fetched"  # no validators: fetched in full
    assert set(status.values()) == {"not_modified"} and len(status) == 4
    assert site.statuses["/docs/sub/d.html"] == [200, 304]
    assert site.headers["/docs/a.html"][-1]["If-None-Match"] == known[site.url("/docs/a.html")][0]


def test_crawl_lists_failures_and_goes_on(site: WebSite, fetcher: WebFetcher, loopback_only: list[str]) -> None:
    calls: list[tuple[int, int]] = []
    result = fetcher.crawl(site.url("/docs/mixed.html"), max_depth=1, progress=lambda d, t: calls.append((d, t)))
    failed = reasons(result.failed, site)
    assert failed["/docs/404.html"] == "returned HTTP 404 (Not Found)"
    assert failed["/docs/500.html"] == "returned HTTP 500 (Internal Server Error)"
    assert failed["/docs/slow.html"] == "did not answer within 0.5 s"
    assert failed["/docs/big.html"].startswith("larger than the 10,000-byte limit")
    assert failed["/docs/redirect-private"].startswith("refused — it redirects to http://10.0.0.1/")
    assert {"/docs/mixed.html", "/docs/a.html"} <= urls(result, site)
    # redirect-ok came first and led to a.html, so the link to a.html itself is not fetched again
    assert [p.url for p in result.pages].count(site.url("/docs/a.html")) == 1 and site.requests["/docs/a.html"] == 1
    assert set(loopback_only) == {"127.0.0.1"}
    assert [d for d, _ in calls] == list(range(1, len(calls) + 1)) and calls[-1][0] == calls[-1][1]
    assert len(calls) == len(result.pages) + len(result.failed) + sum(
        1 for _, why in result.skipped if why.startswith("same page"))


def test_crawl_refuses_an_unsafe_start_but_not_unsafe_pages(site: WebSite, fetcher: WebFetcher) -> None:
    for start in ("http://10.0.0.1/docs/", "ftp://127.0.0.1/docs/", "http://[::1]/"):
        with pytest.raises(UnsafeURLError):
            fetcher.crawl(start)
    disallowed = fetcher.crawl(site.url("/private/hidden.html"))
    assert disallowed.pages == [] and reasons(disallowed.skipped, site) == {
        "/private/hidden.html": "disallowed by the site's robots.txt"}
