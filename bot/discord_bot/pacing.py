"""Keeping the bot under Discord's global rate limit (50 requests a second per bot).

discord.py follows each route's bucket from the X-RateLimit headers, but it learns of the
global limit only from a 429, after which every request in flight retries at once (and a
request refused five times is lost). So every REST request first waits for a slot of a sliding
one-second window of DISCORD_REQUESTS_PER_SECOND. Interaction responses are not bound to the
global limit on Discord and have a 3-second deadline: they never wait here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from discord.http import HTTPClient, Route

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


def exempt(route: Route) -> bool:
    """Interaction callbacks: not under the global limit, and due within 3 seconds."""
    return route.path.startswith("/interactions/")


def pace(http: HTTPClient, rate: float) -> GlobalPacer:
    """Make every REST request of this client wait for the pacer first."""
    pacer = GlobalPacer(rate)
    request: Callable[..., Awaitable[Any]] = http.request

    async def paced(route: Route, **kwargs: Any) -> Any:
        if not exempt(route):
            await pacer.acquire()
        return await request(route, **kwargs)

    http.request = paced  # type: ignore[method-assign]
    return pacer
