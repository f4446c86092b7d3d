"""A small configurable documentation site on 127.0.0.1 (a free port) for the web fetcher's tests.

It serves /docs/ pages that link to each other and off-site, a robots.txt that disallows
/private/ and /docs/secret.html, an optional sitemap (at /sitemap.xml, or announced in
robots.txt as a sitemap index), ETag/Last-Modified validators with 304 answers, a crawl trap,
slow, failing, oversized and redirecting pages. A test may edit, add and remove pages
(`set_page`, `remove_page`: a removed page answers 404, or `gone_status`) and make the whole
site fail (`down_status`: every request answers it). It counts requests per path (with query) and
records the headers of each, so tests can assert what was and was not fetched. Only the
loopback address is ever bound or linked to be fetched; off-site links are never followed.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
ROBOTS = "User-agent: *\nDisallow: /private/\nDisallow: /docs/secret.html\n\nUser-agent: otherbot\nDisallow: /\n"


def page(title: str, *links: str, body: str = "") -> bytes:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
            f"<p>{body or title + ' text.'}</p><ul>{anchors}</ul></body></html>").encode()


PAGES: dict[str, bytes] = {
    "/docs/index.html": page(
        "Index", "a.html", "b.html", "/docs/sub/c.html", "http://example.com/elsewhere.html", "secret.html",
        "/private/hidden.html", "a.html#part", "mailto:docs@example.com", "style.css", "#top",
    ),
    "/docs/a.html": page("A", "b.html", "sub/c.html", "index.html", "./a.html"),
    "/docs/sub/c.html": page("C", "d.html", "../index.html"),
    "/docs/sub/d.html": page("D", "../a.html"),
    "/docs/unlinked.html": page("Unlinked", body="Only the sitemap knows this page."),
    "/docs/secret.html": page("Secret"),
    "/private/hidden.html": page("Hidden"),
    "/other/x.html": page("Other"),
    "/docs/mixed.html": page(
        "Mixed", "404.html", "500.html", "slow.html", "redirect-private", "big.html", "redirect-ok", "a.html",
    ),
    "/docs/query/list.html": page(
        "Queries", *[f"item.html?id={i}" for i in range(30)], "long.html?q=" + "x" * 2100,
    ),
    # Outside /docs/ and the sitemap: two sites whose first pages share a title, a page without one.
    "/libffi/index.html": page("libffi docs", "intro.html", body="libffi is a portable foreign function interface library."),
    "/libffi/intro.html": page("Introduction", body="A foreign function interface calls code written in another language."),
    "/mirror/libffi/index.html": page("libffi docs", body="This mirror copies the libffi documentation."),
    "/notitle/index.html": b"<!doctype html><html><body><p>Release notes: the kiln now fires at 1200 degrees.</p></body></html>",
}
REDIRECTS = {
    "/docs/redirect-private": "http://10.0.0.1/",
    "/docs/redirect-ok": "/docs/a.html",
    "/docs/redirect-loop": "/docs/redirect-loop",
}


class WebSite:
    """The site and its knobs; `with WebSite() as site:` serves it on `site.base`."""

    def __init__(self) -> None:
        self.sitemap = "off"          # "off" | "root" (/sitemap.xml is a urlset) | "robots" (an index, via robots.txt)
        self.robots_status = 200      # 404: no robots.txt; 503: robots.txt unavailable
        self.slow_seconds = 2.0
        self.trap_delay = 0.0
        self.big_size = 20_000
        self.versions: Counter[str] = Counter()  # bump to change a page (new body and ETag)
        self.pages: dict[str, bytes] = dict(PAGES)  # this site's own copy: `set_page`/`remove_page` edit it
        self.gone_status = 404        # what a removed page answers (410: gone for good)
        self.down_status: int | None = None  # set (e.g. 500): every request answers it, as a broken server does
        self.requests: Counter[str] = Counter()
        self.statuses: dict[str, list[int]] = {}
        self.headers: dict[str, list[dict[str, str]]] = {}
        self.user_agents: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self) -> WebSite:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set_page(self, path: str, body: bytes) -> None:
        """Add a page, or edit one (its ETag changes with it)."""
        with self._lock:
            self.pages[path] = body
            self.versions[path] += 1

    def remove_page(self, path: str) -> None:
        """The page is gone: it answers `gone_status` from now on."""
        with self._lock:
            self.pages.pop(path, None)
            self.versions[path] += 1

    def count(self, prefix: str) -> int:
        """Requests whose path starts with `prefix`."""
        return sum(n for path, n in self.requests.items() if path.startswith(prefix))

    def _sitemap_xml(self, path: str) -> bytes | None:
        urlset = "".join(f"<url><loc>{self.base}{p}</loc></url>" for p in (
            "/docs/index.html", "/docs/a.html", "/docs/unlinked.html", "/other/x.html", "/docs/secret.html"))
        ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
        if (self.sitemap, path) in (("root", "/sitemap.xml"), ("robots", "/maps/docs.xml")):
            return f'<?xml version="1.0" encoding="UTF-8"?><urlset {ns}>{urlset}</urlset>'.encode()
        if (self.sitemap, path) == ("robots", "/maps/index.xml"):
            index = f"<sitemap><loc>{self.base}/maps/docs.xml</loc></sitemap>"
            return f'<?xml version="1.0"?><sitemapindex {ns}>{index}</sitemapindex>'.encode()
        return None

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes | None]:
        """(status, headers, body) for a GET of `path`; a body of None means "stream big-stream.html"."""
        if self.down_status is not None:
            return self.down_status, {"Content-Type": "text/html"}, b"<html>server error</html>"
        if path == "/robots.txt":
            if self.robots_status != 200:
                return self.robots_status, {"Content-Type": "text/plain"}, b"unavailable"
            extra = f"\nSitemap: {self.base}/maps/index.xml\n" if self.sitemap == "robots" else ""
            return 200, {"Content-Type": "text/plain"}, (ROBOTS + extra).encode()
        if (sitemap := self._sitemap_xml(path)) is not None:
            return 200, {"Content-Type": "application/xml"}, sitemap
        if path in REDIRECTS:
            return 302, {"Location": REDIRECTS[path]}, b""
        if path in ("/docs/404.html", "/docs/500.html"):
            return int(path[6:9]), {"Content-Type": "text/html"}, b"<html>error</html>"
        if path == "/docs/slow.html":
            time.sleep(self.slow_seconds)
        if path == "/docs/big.html":
            return 200, {"Content-Type": "text/html"}, b"<html>" + b"x" * self.big_size + b"</html>"
        if path == "/docs/big-stream.html":
            return 200, {"Content-Type": "text/html"}, None
        if path == "/docs/photo":
            return 200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n"
        if path == "/docs/manual.pdf":
            return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.4\n% a tiny manual\n%%EOF\n"
        body = self.pages.get(path.split("?")[0])
        if path == "/docs/slow.html":
            body = page("Slow")
        if path == "/docs/b.html":
            body = page(f"B v{self.versions[path]}", "manual.pdf", "./a.html", body=f"version {self.versions[path]}")
        if path.startswith("/docs/query/") and body is None:
            body = page(f"Query item {path}")
        if path.startswith("/docs/trap/") and path.endswith(".html"):
            time.sleep(self.trap_delay)
            n = int(path.rsplit("/", 1)[1].split(".")[0])
            body = page(f"Trap {n}", f"{n + 1}.html")
        if body is None:
            status = self.gone_status if self.versions[path] else 404  # a page `remove_page` took away
            return status, {"Content-Type": "text/html"}, b"<html>not found</html>"
        etag = f'"{zlib.crc32(path.encode()):08x}-v{self.versions[path]}"'
        validators = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
        sent = headers.get("If-None-Match")
        if (sent and etag in [t.strip() for t in sent.split(",")]) or (
                not sent and headers.get("If-Modified-Since") == LAST_MODIFIED and not self.versions[path]):
            return 304, validators, b""
        return 200, {"Content-Type": "text/html; charset=utf-8", **validators}, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                headers = {k: v for k, v in self.headers.items()}
                with site._lock:
                    site.requests[self.path] += 1
                    site.headers.setdefault(self.path, []).append(headers)
                    site.user_agents.append(headers.get("User-Agent", ""))
                status, extra, body = site._answer(self.path, headers)
                with site._lock:
                    site.statuses.setdefault(self.path, []).append(status)
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    if body is None:  # no Content-Length: the client must stop reading by itself
                        self.end_headers()
                        for _ in range(site.big_size // 1000 + 10):
                            self.wfile.write(b"<p>" + b"y" * 1000 + b"</p>")
                        return
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler
