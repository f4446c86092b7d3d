"""The HTTP side of web sources: fetching pages and bounded same-site crawls (bytes, not text).

`WebFetcher.fetch` gets one page: every redirect hop checked by `url_safety`, robots.txt honoured,
size and type limits, conditional GET. `WebFetcher.crawl` walks the start URL's folder of one site,
from its sitemap when it has one, else breadth-first over `<a href>` links, within page, depth and
time limits. robots.txt (RFC 9309): a 4xx answer means no rules (all allowed); a 5xx or no answer
means the whole host counts as disallowed for the life of the fetcher."""

from __future__ import annotations

import math
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx
import lxml.etree
import lxml.html

from bot.rag.errors import SourceError
from bot.rag.ingest.http_deadline import deadline as request_deadline
from bot.rag.ingest.url_safety import CrawlScope, SafeTransport, UnsafeURLError, checked_url, display_url, normalise_url
from bot.settings import Settings

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PAGE_TYPES = HTML_TYPES | {"text/plain", "text/markdown", "text/x-markdown", "application/pdf", DOCX_TYPE}
_SUFFIX_TYPES = {".html": "text/html", ".htm": "text/html", ".xhtml": "application/xhtml+xml", ".txt": "text/plain",
                 ".md": "text/markdown", ".markdown": "text/markdown", ".pdf": "application/pdf", ".docx": DOCX_TYPE}
MAX_REDIRECTS = 5
MAX_LINKS_PER_PAGE = 5000
MAX_SITEMAPS = 20          # sitemap files read per crawl (robots.txt's or /sitemap.xml, and an index's children)
FETCH_DEADLINE_FACTOR = 4  # one whole fetch (all hops and the body) may take this many fetch_timeouts


@dataclass(frozen=True)
class FetchedPage:
    url: str                  # final URL after redirects (fragment removed)
    status: str               # "fetched" | "not_modified"
    content: bytes            # b"" when not_modified
    content_type: str | None  # e.g. "text/html"
    etag: str | None
    last_modified: str | None


@dataclass
class CrawlResult:
    pages: list[FetchedPage]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (url, reason): left out on purpose
    failed: list[tuple[str, str]] = field(default_factory=list)   # (url, reason): fetching went wrong
    stopped: str | None = None                                     # why the crawl stopped early


class WebFetchError(SourceError):
    """Not fetched: `reason` (message without URL); `skip`: on purpose (robots, type); `status`: HTTP, if any."""

    def __init__(self, url: str, reason: str, *, status: int | None = None, skip: bool = False) -> None:
        self.url, self.reason, self.status, self.skip = url, reason, status, skip
        super().__init__(f"{url}: {reason}.")


def extract_links(html: bytes, base_url: str) -> list[str]:
    """Normalised absolute http(s) targets of the page's `<a href>` links, in order, without duplicates."""
    try:
        doc = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    base = next((urljoin(base_url, b.get("href", "").strip()) for b in doc.iter("base") if b.get("href")), base_url)
    links = dict.fromkeys(link for a in doc.iter("a") if (link := normalise_url(a.get("href") or "", base)))
    return list(links)[:MAX_LINKS_PER_PAGE]


def _content_type(header: str | None, url: str, body: bytes = b"") -> str | None:
    """The MIME type from the header; else guessed from the URL's suffix or the body's first bytes."""
    mime = (header or "").split(";")[0].strip().lower()
    if mime and mime not in ("application/octet-stream", "binary/octet-stream"):
        return mime
    path = urlsplit(url).path.lower()
    if (guess := next((t for s, t in _SUFFIX_TYPES.items() if path.endswith(s)), None)) or body[:5] == b"%PDF-":
        return guess or "application/pdf"
    return "text/html" if body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html")) else None


def _parse_sitemap(content: bytes, limit: int) -> tuple[str, list[str]]:
    """("urlset" | "sitemapindex" | ..., its <loc> URLs) of a sitemap file, gzip-compressed or not."""
    if content[:2] == b"\x1f\x8b":
        content = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(content, limit)
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = lxml.etree.fromstring(content, parser=parser)
    except lxml.etree.XMLSyntaxError:
        return "", []
    locs = [(loc.text or "").strip() for entry in root for loc in entry
            if isinstance(loc.tag, str) and lxml.etree.QName(loc).localname == "loc"]
    return lxml.etree.QName(root).localname, [loc for loc in locs if loc]


class WebFetcher:
    """Fetches pages, caching robots.txt per host; not thread-safe. Without `client`, connections go direct
    (no proxy from the environment) through `SafeTransport`, which checks every address at connect time."""

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self._own_client = client is None
        self.client = client or httpx.Client(transport=SafeTransport(settings), trust_env=False)
        self._robots: dict[str, tuple[RobotFileParser, str | None]] = {}

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchedPage:
        """One page; "not_modified" when the validators still match. Raises SourceError saying why not."""
        return self._fetch(checked_url(url, self.settings), etag, last_modified, PAGE_TYPES)

    def _fetch(self, url: str, etag: str | None, last_modified: str | None, types: frozenset[str] | None,
               deadline: float | None = None, scope_check: Callable[[str], bool] | None = None,
               robots: bool = True) -> FetchedPage:
        shown = display_url(url)
        deadline = min(deadline or math.inf, time.monotonic() + FETCH_DEADLINE_FACTOR * self.settings.fetch_timeout)
        with request_deadline(deadline):  # holds even for a peer that sends its headers a byte at a time
            return self._fetch_hops(url, shown, etag, last_modified, types, deadline, scope_check, robots)

    def _fetch_hops(self, url: str, shown: str, etag: str | None, last_modified: str | None,
                    types: frozenset[str] | None, deadline: float, scope_check: Callable[[str], bool] | None,
                    robots: bool) -> FetchedPage:
        budget = deadline - time.monotonic()
        headers = {"User-Agent": self.settings.fetch_user_agent, **({"If-None-Match": etag} if etag else {}),
                   **({"If-Modified-Since": last_modified} if last_modified else {})}
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            if hop:  # the first URL was checked by the caller
                try:
                    checked_url(current, self.settings)
                except UnsafeURLError as exc:
                    rest = exc.detail[3:] if exc.detail.startswith("it ") else f"is refused: {exc.detail}"
                    raise UnsafeURLError(shown, f"it redirects to {display_url(current)}, which {rest}") from None
                if scope_check is not None and not scope_check(current):
                    raise WebFetchError(shown, f"redirects outside the crawl to {display_url(current)}", skip=True)
            if robots and (why := self._robots_refusal(current)) is not None:
                raise WebFetchError(shown, why, skip=True)
            response = self._send(current, headers, shown, deadline, budget)
            try:
                location = response.headers.get("location")
                if response.status_code in (301, 302, 303, 307, 308) and location:
                    current = normalise_url(raw := urljoin(current, location.strip())) or raw
                    continue
                return self._read(shown, current, response, types, deadline, etag, last_modified)
            finally:
                response.close()
        raise WebFetchError(shown, f"more than {MAX_REDIRECTS} redirects")

    def _send(self, url: str, headers: dict[str, str], shown: str, deadline: float, budget: float) -> httpx.Response:
        timeout = max(0.01, min(self.settings.fetch_timeout, deadline - time.monotonic()))
        try:
            request = self.client.build_request("GET", url, headers=headers, timeout=timeout)
            return self.client.send(request, stream=True, follow_redirects=False)
        except UnsafeURLError as exc:  # refused at connect time: DNS answered otherwise than before
            raise UnsafeURLError(shown, exc.detail, at_connect=True) from None
        except httpx.TimeoutException:
            if time.monotonic() >= deadline:  # each byte came in time, the whole answer did not
                raise WebFetchError(shown, f"did not send a complete answer within {round(budget, 2):g} s") from None
            raise WebFetchError(shown, f"did not answer within {round(timeout, 2):g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise WebFetchError(shown, f"could not be fetched ({exc or type(exc).__name__})") from None

    def _read(self, shown: str, url: str, response: httpx.Response, types: frozenset[str] | None,
              deadline: float, etag: str | None, last_modified: str | None) -> FetchedPage:
        status, headers = response.status_code, response.headers
        if status == 304 and (etag or last_modified):
            return FetchedPage(url, "not_modified", b"", _content_type(headers.get("content-type"), url),
                               headers.get("etag") or etag, headers.get("last-modified") or last_modified)
        if status >= 300 or status in (204, 205):
            phrase = f" ({response.reason_phrase})" if response.reason_phrase else ""
            raise WebFetchError(shown, f"returned HTTP {status}{phrase}", status=status)
        unsupported = "unsupported content type {} (web sources are HTML, text, Markdown, PDF or Word .docx)"
        kind = _content_type(headers.get("content-type"), url)
        if types is not None and kind is not None and kind not in types:
            raise WebFetchError(shown, unsupported.format(kind), skip=True)
        limit = self.settings.max_source_bytes
        too_big = f"larger than the {limit:,}-byte limit (MAX_SOURCE_BYTES)"
        if (headers.get("content-length") or "").isdigit() and int(headers["content-length"]) > limit:
            raise WebFetchError(shown, too_big)
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise WebFetchError(shown, too_big)
                if time.monotonic() > deadline:
                    raise WebFetchError(shown, "took too long to download")
        except httpx.TimeoutException:
            if time.monotonic() >= deadline:
                raise WebFetchError(shown, "took too long to download") from None
            raise WebFetchError(shown, f"stopped sending for {self.settings.fetch_timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise WebFetchError(shown, f"could not be read ({exc or type(exc).__name__})") from None
        kind = kind or _content_type(None, url, bytes(body[:1024]))
        if types is not None and kind not in types:
            raise WebFetchError(shown, unsupported.format(kind or "(none given)"), skip=True)
        return FetchedPage(url, "fetched", bytes(body), kind, headers.get("etag"), headers.get("last-modified"))

    def _robots_refusal(self, url: str) -> str | None:
        """Why robots.txt keeps `url` out, or None. Reads each host's robots.txt once (see the module doc)."""
        key = urljoin(url, "/robots.txt")
        if key not in self._robots:
            parser, problem = RobotFileParser(key), None
            try:
                text = self._fetch(key, None, None, None, robots=False).content.decode("utf-8", "replace")
                parser.parse(text.splitlines())
            except SourceError as exc:  # 5xx, timeout, no connection, refused redirect, too large
                if isinstance(exc, UnsafeURLError) and exc.at_connect:  # the host itself is refused now
                    raise UnsafeURLError(display_url(url), exc.detail, at_connect=True) from None
                if 400 <= (getattr(exc, "status", None) or 0) < 500:
                    parser.allow_all = True  # "unavailable": no rules
                else:
                    problem, parser.disallow_all = str(exc).rstrip("."), True
            self._robots[key] = (parser, problem)
        parser, problem = self._robots[key]
        if problem is not None:
            return f"not fetched — {problem}, and a site whose robots.txt cannot be read counts as disallowing all"
        return None if parser.can_fetch(self.settings.fetch_user_agent, url) else "disallowed by the site's robots.txt"

    def _sitemap_urls(self, start: str, scope: CrawlScope, deadline: float) -> list[str]:
        """In-scope page URLs of the site's sitemap (robots.txt `Sitemap:` lines, else /sitemap.xml)."""
        self._robots_refusal(start)
        parser = self._robots[urljoin(start, "/robots.txt")][0]
        pending = [(url, 0) for url in (parser.site_maps() or [urljoin(start, "/sitemap.xml")])]
        found: dict[str, None] = {}
        for _ in range(MAX_SITEMAPS):
            if not pending or time.monotonic() >= deadline:
                break
            sitemap, level = pending.pop(0)
            try:
                page = self._fetch(checked_url(sitemap, self.settings), None, None, None, deadline)
            except SourceError:
                continue
            kind, locs = _parse_sitemap(page.content, self.settings.max_source_bytes)
            if kind == "sitemapindex" and level == 0:  # an index is followed one level down
                pending.extend((loc, 1) for loc in locs)
            elif kind == "urlset":
                found.update((u, None) for loc in locs if (u := normalise_url(loc)) and scope.contains(u))
        return list(found)

    def crawl(self, url: str, *, max_pages: int | None = None, max_depth: int | None = None,
              known: Mapping[str, tuple[str | None, str | None]] | None = None,
              progress: Callable[[int, int], None] | None = None,
              stored: Callable[[str], bytes | None] | None = None) -> CrawlResult:
        """Fetch the site's pages under the start URL's folder; only a bad start URL raises.
        `known`: the last crawl's pages and their validators (conditional requests). `stored`:
        the stored copy of a page that answered 304 (None: none kept), whose links are followed
        as if fetched, so a page no longer linked is not reached. Without it, or when a page's
        links cannot be read (no stored copy, a failure other than 404/410), every known page is
        offered as linked from the start: none is lost to a passing error."""
        start = checked_url(url, self.settings)
        max_pages = self.settings.crawl_max_pages if max_pages is None else max_pages
        max_depth = self.settings.crawl_max_depth if max_depth is None else max_depth
        deadline = time.monotonic() + self.settings.crawl_timeout
        with request_deadline(deadline):  # robots.txt and sitemaps too: nothing outlasts the crawl
            return self._crawl(start, max_pages, max_depth, deadline, known, progress, stored)

    def _crawl(self, start: str, max_pages: int, max_depth: int, deadline: float,
               known: Mapping[str, tuple[str | None, str | None]] | None,
               progress: Callable[[int, int], None] | None,
               stored: Callable[[str], bytes | None] | None) -> CrawlResult:
        validators = {normalise_url(k) or k: v for k, v in (known or {}).items()}
        scope, result = CrawlScope(start, max_depth), CrawlResult(pages=[])
        queue: deque[tuple[str, int]] = deque()
        seen, fetched = set[str](), set[str]()  # URLs met (queued or skipped); pages fetched

        def offer(link: str, depth: int) -> None:
            if link not in seen:
                seen.add(link)
                if (reason := scope.refusal(link, depth)) is not None:
                    result.skipped.append((link, reason))
                else:
                    queue.append((link, depth))

        def offer_known() -> None:  # pages of the last crawl count as linked from the start
            for link in validators:
                if scope.contains(link):
                    offer(link, 1)

        offer(start, 0)
        seeds = self._sitemap_urls(start, scope, deadline)
        for link in seeds:
            offer(link, 1)
        if stored is None:
            offer_known()  # a 304 carries no links, and there is no stored copy to read them from
        done = 0
        while queue:
            if done >= max_pages or time.monotonic() >= deadline:
                result.stopped = (f"page limit {max_pages} reached" if done >= max_pages
                                  else f"crawl time limit {self.settings.crawl_timeout:g} s reached")
                break
            link, depth = queue.popleft()
            etag, last_modified = validators.get(link, (None, None))
            try:
                if (why := self._robots_refusal(link)) is not None:  # costs no request, does not count
                    result.skipped.append((link, why))
                    continue
                page = self._fetch(link, etag, last_modified, PAGE_TYPES, deadline, scope.contains if depth else None)
            except SourceError as exc:  # UnsafeURLError and WebFetchError have a `reason` without the URL
                if time.monotonic() >= deadline:  # cut short by the crawl time limit: reported as that
                    queue.appendleft((link, depth))
                    continue
                reason = getattr(exc, "reason", str(exc))
                (result.skipped if getattr(exc, "skip", False) else result.failed).append((link, reason))
                if not getattr(exc, "skip", False) and getattr(exc, "status", None) not in (404, 410):
                    offer_known()  # its links are unknown this time: what it linked to must not look gone
            else:
                if depth == 0 and page.url != start:
                    scope.add(page.url)  # the start redirected: its target's folder is in too
                if page.url in fetched:
                    result.skipped.append((link, f"same page as {page.url}"))
                else:
                    fetched.add(page.url)
                    seen.add(page.url)
                    if page.url != link:  # a redirect: its target, if queued, is fetched now
                        queue = deque(item for item in queue if item[0] != page.url)
                    result.pages.append(page)
                    body = page.content if page.status == "fetched" else stored(page.url) if stored else None
                    if body is None:
                        offer_known()
                    elif not seeds and (page.status != "fetched" or page.content_type in HTML_TYPES):
                        for target in extract_links(body, page.url) if body else ():
                            offer(target, depth + 1)
            done += 1
            if progress is not None:
                progress(done, min(done + len(queue), max_pages))
        result.skipped.extend((link, result.stopped or "") for link, _ in queue)  # empty unless stopped
        return result
