"""REST traffic control for the Discord emulator: rate limits the way Discord applies them,
and holds (a request kept waiting, to kill the bot in the middle of an answer).

Rate limits (off by default, so other tests are not slowed; `emulator.rate_limits = RateLimits(...)`):
- a global limit per bot, `global_limit` requests per `global_window` seconds (Discord: 50 per
  second). Interaction callbacks are not bound to it, as on Discord. Over it: 429 with
  `X-RateLimit-Global: true`, `X-RateLimit-Scope: global`, `Retry-After` and the JSON body
  `{"message", "retry_after", "global": true}`.
- per-route buckets: the route (method and path with ids replaced) plus its major parameter
  (the channel, guild, or webhook id and token), `route_limit` requests per `route_window`
  seconds unless `routes` gives a path pattern its own (limit, window). Every answer of a limited
  route carries `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds), `-Reset-After`
  (seconds) and `-Bucket` (a hash per route); over it: 429 with those, `Retry-After`,
  `X-RateLimit-Scope: user` and `"global": false`.
- every 429 has `Via` (without it discord.py takes the 429 for a Cloudflare ban) and a JSON body.
A 429 is counted in `hits` (the emulator records the call as expected: it is Discord's doing,
and tests assert on `hits` themselves). Rejected requests do not use up the global limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field

from aiohttp import web

_MAJOR = re.compile(r"/(channels|guilds)/(\d+)|/webhooks/(\d+)/([\w-]+)|/interactions/(\d+)/([\w-]+)")
_GLOBAL_EXEMPT = re.compile(r"/interactions/\d+/[\w-]+/callback")


def route_of(method: str, path: str) -> tuple[str, str]:
    """(route, major parameter) of a REST call, as Discord buckets it: ids and tokens become
    placeholders; the channel, guild or webhook (id and token) is the major parameter."""
    major = ""
    if m := _MAJOR.search(path):
        major = "+".join(g for g in m.groups()[1:] if g)
    route = re.sub(r"/webhooks/\d+/[\w-]+", "/webhooks/{id}/{token}", path)
    route = re.sub(r"/interactions/\d+/[\w-]+", "/interactions/{id}/{token}", route)
    route = re.sub(r"/\d+", "/{id}", route)
    return f"{method} {route}", major


@dataclass
class _Window:
    resets: float  # time.time() when the window ends
    used: int = 0


@dataclass
class RateLimits:
    global_limit: int = 50
    global_window: float = 1.0
    route_limit: int = 5
    route_window: float = 1.0
    routes: dict[str, tuple[int, float]] = field(default_factory=dict)  # path regex (full match) -> (limit, window)
    hits: list[tuple[str, str, bool]] = field(default_factory=list)  # (method, path, global?) of every 429
    served: list[float] = field(default_factory=list)  # time.monotonic() of every request let through
    _global: _Window | None = None
    _buckets: dict[tuple[str, str], _Window] = field(default_factory=dict)

    def _limits(self, path: str) -> tuple[int, float]:
        for pattern, limits in self.routes.items():
            if re.fullmatch(pattern, path):
                return limits
        return self.route_limit, self.route_window

    @staticmethod
    def _window(current: _Window | None, now: float, length: float) -> _Window:
        return current if current is not None and now < current.resets else _Window(now + length)

    def admit(self, method: str, path: str) -> tuple[web.Response | None, dict[str, str]]:
        """(None, the rate-limit headers for its answer) if the request may go through (its
        bucket counted), else (Discord's 429, {})."""
        now = time.time()
        route, major = route_of(method, path)
        limit, length = self._limits(path)
        bucket = self._buckets[(route, major)] = self._window(self._buckets.get((route, major)), now, length)
        bucket_hash = hashlib.sha1(route.encode()).hexdigest()[:16]
        counted_globally = not _GLOBAL_EXEMPT.fullmatch(path)
        if counted_globally:
            self._global = self._window(self._global, now, self.global_window)
            if self._global.used >= self.global_limit:
                self.hits.append((method, path, True))
                return self._too_many(self._global.resets - now, is_global=True), {}
        if bucket.used >= limit:
            self.hits.append((method, path, False))
            return self._too_many(bucket.resets - now, headers=self._headers(limit, 0, bucket, now, bucket_hash)), {}
        bucket.used += 1
        if counted_globally:
            assert self._global is not None
            self._global.used += 1
        self.served.append(time.monotonic())
        return None, self._headers(limit, limit - bucket.used, bucket, now, bucket_hash)

    @staticmethod
    def _headers(limit: int, remaining: int, bucket: _Window, now: float, bucket_hash: str) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{bucket.resets:.3f}", "X-RateLimit-Reset-After": f"{max(0.0, bucket.resets - now):.3f}",
                "X-RateLimit-Bucket": bucket_hash}

    @staticmethod
    def _too_many(retry_after: float, *, is_global: bool = False, headers: dict[str, str] | None = None) -> web.Response:
        retry_after = max(0.001, round(retry_after, 3))
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        extra = {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"} if is_global else {"X-RateLimit-Scope": "user"}
        return web.Response(status=429, body=json.dumps(body).encode(), headers={
            "Content-Type": "application/json", "Retry-After": str(math.ceil(retry_after)), "Via": "1.1 google",
            **(headers or {}), **extra})

    def peak_per_second(self) -> int:
        """The most requests let through in any one second (a sliding window)."""
        times, peak, start = sorted(self.served), 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= 1.0:
                start += 1
            peak = max(peak, end - start + 1)
        return peak


@dataclass
class Hold:
    """Requests matching `method` and `path` (regex, full match) wait until release(). One whose
    client went away meanwhile (the bot was killed) is dropped, never carried out."""

    method: str
    path: str
    released: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path, path) is not None

    def release(self) -> None:
        self.released.set()

    async def arrived(self, timeout: float = 30.0) -> None:
        """Wait until a request is being held."""
        deadline = time.monotonic() + timeout
        while not self.waiting:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {self.method} {self.path} arrived within {timeout}s")
            await asyncio.sleep(0.02)
