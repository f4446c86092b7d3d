"""Counters of the questions served since start, and the one structured log line per
question (user id hashed, never the question text or any secret)."""

from __future__ import annotations

import hashlib
import logging
import statistics
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger("bot.questions")
LATENCY_WINDOW = 10_000  # latencies kept for the median


def hash_user(user_id: int | str | None, salt: str) -> str | None:
    if user_id is None:
        return None
    return hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class StatsSnapshot:
    questions: int
    answered: int
    refused: int
    errors: int
    p50_latency_ms: float | None
    started_at: float

    @property
    def refusal_rate(self) -> float | None:
        done = self.answered + self.refused
        return self.refused / done if done else None


class QuestionStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._answered = self._refused = self._errors = 0
        self._started = time.time()
        self._salt = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:16]  # per process

    def record(self, *, user: int | str | None, latency_s: float, provider: str, answerable: bool | None,
               citations: int, error: str | None = None) -> None:
        with self._lock:
            self._latencies.append(latency_s)
            if error is not None:
                self._errors += 1
            elif answerable:
                self._answered += 1
            else:
                self._refused += 1
        log.info("question", extra={
            "event": "question", "user": hash_user(user, self._salt), "latency_ms": round(1000 * latency_s, 1),
            "provider": provider, "answerable": answerable, "citations": citations, "error": error,
        })

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            latencies = list(self._latencies)
            return StatsSnapshot(
                questions=self._answered + self._refused + self._errors,
                answered=self._answered, refused=self._refused, errors=self._errors,
                p50_latency_ms=1000 * statistics.median(latencies) if latencies else None,
                started_at=self._started,
            )


def question_log_formatter() -> JsonFormatter:
    """One JSON object per question: time, level and the fields above (never the text)."""
    return JsonFormatter("%(asctime)s %(levelname)s", rename_fields={"levelname": "level"})


def configure_question_log() -> None:
    """The question log goes to stderr as JSON lines, apart from the plain-text log."""
    if not any(isinstance(h.formatter, JsonFormatter) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(question_log_formatter())
        log.addHandler(handler)
    log.propagate = False
