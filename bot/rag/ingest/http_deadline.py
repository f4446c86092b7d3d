"""An overall deadline for web requests, whatever the peer does.

httpx's timeouts apply to each network operation: a server that sends its headers (or a TLS
handshake) one byte a second never trips them. `deadline(at)` sets, for the code inside it, a
time (`time.monotonic()`) by which every request must be done; deadlines nest, the earliest
wins (a page's fetch inside a crawl). `DeadlineBackend` is an httpcore network backend whose
streams cut each connect, TLS handshake, read and write to the time left, and raise httpcore's
timeout error once none is left, so a whole request, header reading included, ends by the
deadline. Pooled connections read the deadline of the request using them at that moment.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import time
import typing
from collections.abc import Iterator
from contextvars import ContextVar

import httpcore

_DEADLINE: ContextVar[float] = ContextVar("request_deadline", default=math.inf)


@contextlib.contextmanager
def deadline(at: float) -> Iterator[None]:
    """Requests made inside end by `at` (time.monotonic()), or by an earlier enclosing deadline."""
    token = _DEADLINE.set(min(at, _DEADLINE.get()))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _time_left(timeout: float | None, error: type[Exception]) -> float | None:
    at = _DEADLINE.get()
    if at == math.inf:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's overall deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the current deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(
            ssl_context, server_hostname, _time_left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.SyncBackend):
    """httpcore's own sync backend, its connections bound by the current deadline."""

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(super().connect_tcp(host, port, timeout, local_address, socket_options))
