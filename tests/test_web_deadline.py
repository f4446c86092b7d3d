"""Every web request and every crawl ends by its overall deadline, whatever the peer does: a real
raw-socket server on 127.0.0.1 sends its response headers one byte at a time, each byte well
within the per-read timeout, forever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bot.rag.ingest.web import FETCH_DEADLINE_FACTOR, WebFetcher, WebFetchError
from tests.test_web import make_settings

FETCH_TIMEOUT = 0.5  # per read; one whole fetch may take FETCH_DEADLINE_FACTOR times this


class DribblingServer:
    """Answers /robots.txt with a quick 404 (unless `robots_too`) and every other request with
    headers sent one byte every `gap` seconds, never ending them."""

    def __init__(self, gap: float = 0.1, robots_too: bool = False) -> None:
        self.gap, self.robots_too = gap, robots_too
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self.requests: list[str] = []

    def __enter__(self) -> DribblingServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = conn.recv(65536).decode("latin-1")
                path = request.split(" ", 2)[1] if request.count(" ") >= 2 else "/"
                self.requests.append(path)
                if path == "/robots.txt" and not self.robots_too:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: "
                while not self._stop.is_set():
                    for byte in head:
                        conn.sendall(bytes([byte]))
                        time.sleep(self.gap)
                    head = b"a" * 1000
            except OSError:  # the client gave up and closed the connection
                return


@pytest.fixture
def dribbler() -> Iterator[DribblingServer]:
    with DribblingServer() as server:
        yield server


def test_a_page_whose_headers_trickle_in_fails_by_the_fetch_deadline(dribbler: DribblingServer) -> None:
    fetcher = WebFetcher(make_settings(fetch_timeout=FETCH_TIMEOUT))
    started = time.monotonic()
    with pytest.raises(WebFetchError) as info:
        fetcher.fetch(f"{dribbler.base}/docs/page.html")
    elapsed = time.monotonic() - started
    whole = FETCH_DEADLINE_FACTOR * FETCH_TIMEOUT
    assert str(info.value) == f"{dribbler.base}/docs/page.html: did not send a complete answer within {whole:g} s."
    assert whole - 0.2 < elapsed < whole + 1
    assert dribbler.requests == ["/robots.txt", "/docs/page.html"]
    fetcher.close()


def test_a_crawl_of_trickling_pages_ends_by_the_crawl_deadline(dribbler: DribblingServer) -> None:
    fetcher = WebFetcher(make_settings(fetch_timeout=FETCH_TIMEOUT, crawl_timeout=1.2))
    started = time.monotonic()
    result = fetcher.crawl(f"{dribbler.base}/docs/index.html")
    assert time.monotonic() - started < 1.2 + 1
    assert result.pages == [] and result.stopped == "crawl time limit 1.2 s reached"
    fetcher.close()


def test_a_crawl_whose_robots_txt_trickles_ends_by_the_crawl_deadline() -> None:
    with DribblingServer(robots_too=True) as server:
        fetcher = WebFetcher(make_settings(fetch_timeout=FETCH_TIMEOUT, crawl_timeout=1.0))
        started = time.monotonic()
        result = fetcher.crawl(f"{server.base}/docs/index.html")
        assert time.monotonic() - started < 1.0 + 1
        assert result.pages == [] and result.stopped == "crawl time limit 1 s reached"
        fetcher.close()
