"""Keeping the bot under Discord's global rate limit (50 requests a second per bot).

discord.py follows each route's bucket from the X-RateLimit headers, but it learns of the
global limit only from a 429, after which every request in flight retries at once (and a
request refused five times is lost). So every REST request, as it is sent, first waits for a
slot of a sliding one-second window of DISCORD_REQUESTS_PER_SECOND. Interaction responses are
not bound to the global limit on Discord and have a 3-second deadline: they never wait here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from types import SimpleNamespace

import aiohttp
from discord.http import Route

WINDOW = 1.0  # seconds


class GlobalPacer:
    """At most `rate` acquisitions in any WINDOW seconds; waiters go in arrival order."""

    def __init__(self, rate: float) -> None:
        self.per_window = max(1, int(rate * WINDOW))
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.waited = 0  # requests that had to wait (for the logs and tests)

    async def acquire(self) -> None:
        async with self._lock:
            waited = False
            while True:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= WINDOW:
                    self._sent.popleft()
                if len(self._sent) < self.per_window:
                    self._sent.append(now)
                    self.waited += waited
                    return
                waited = True
                await asyncio.sleep(WINDOW - (now - self._sent[0]))


def paced(url: str) -> bool:
    """A request to Discord's API under the global limit: not an interaction callback (exempt
    on Discord, due within 3 seconds), not a CDN download."""
    return url.startswith(Route.BASE) and "/interactions/" not in url


def pacing_trace(rate: float) -> tuple[aiohttp.TraceConfig, GlobalPacer]:
    """An aiohttp trace (discord.py's `http_trace`) whose request-start hook waits for the pacer.
    It runs as each request is really sent, after discord.py's per-route bucket wait, and for
    each of its retries too."""
    pacer = GlobalPacer(rate)

    async def on_request_start(_session: aiohttp.ClientSession, _context: SimpleNamespace,
                               params: aiohttp.TraceRequestStartParams) -> None:
        if paced(str(params.url)):
            await pacer.acquire()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace, pacer
