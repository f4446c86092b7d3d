"""Scheduled re-sync of web sources and crawls: each is fetched again every interval (its own,
set when it was added, else REFRESH_INTERVAL_HOURS; or never), with conditional requests, so
only changed pages are converted and embedded, and pages that are gone are retired.

Owns when a source is refreshed and what is said about it: `run_due(now)` refreshes the sources
due at `now` (each claimed in SQL first, so with several processes exactly one refreshes a
source; the refresh itself takes the base's ingest lock), `refresh_now` refreshes one at a
moderator's request, and both record the outcome in the schedule (`bot.state.refresh`). A
failed refresh changes nothing that serves (the stored copy keeps answering) and backs off:
the next try waits REFRESH_RETRY_MINUTES, doubling with each failure in a row, up to
REFRESH_MAX_BACKOFF_HOURS. The fetching and indexing are `SourceLibrary.refresh`'s. Blocks:
call it in a thread from a loop.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.rag.errors import RagError, ReloadInProgressError, SourceError, UnknownSourceError
from bot.rag.library import SourceChange, SourceLibrary
from bot.rag.library_files import Progress
from bot.state.models import utcnow
from bot.state.refresh import RefreshRow, RefreshSchedule

log = logging.getLogger(__name__)
SCHEDULER = ("refresh", "scheduled refresh")  # the actor the audit log names for scheduled refreshes
LEASE = timedelta(hours=1)  # a claim outlives any refresh (a crawl's time limit plus indexing)
MIN_INTERVAL = 15  # minutes: no site is fetched more often than this
NAMED = {"hourly": 60, "daily": 24 * 60, "weekly": 7 * 24 * 60, "never": 0, "off": 0}
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*(m|min|minutes?|h|hours?|d|days?|w|weeks?)$")
_UNIT = {"m": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}
INTERVAL_HELP = "daily, hourly, weekly, never, or a span such as 6h, 2d, 30m"


def parse_interval(text: str | None) -> int | None:
    """A refresh interval in minutes from what a moderator types ("daily", "6h", "never": 0);
    None for nothing or "default" (REFRESH_INTERVAL_HOURS). Anything else is a SourceError."""
    words = (text or "").strip().lower()
    if words in ("", "default"):
        return None
    if words in NAMED:
        return NAMED[words]
    if (match := _SPAN.match(words)) is None:
        raise SourceError(f"`{text}` is not a refresh interval: give {INTERVAL_HELP}.")
    minutes = round(float(match.group(1)) * _UNIT[match.group(2)[0]])
    if minutes < MIN_INTERVAL:
        raise SourceError(f"A source is refreshed at most every {MIN_INTERVAL} minutes; `{text}` is too often.")
    return minutes


def describe_interval(minutes: int) -> str:
    """How often, in words: "refreshed daily", "refreshed every 6 hours", "never refreshed"."""
    if minutes == 0:
        return "never refreshed"
    for name, span in NAMED.items():
        if span == minutes:
            return f"refreshed {name}"
    for unit, size in (("day", 24 * 60), ("hour", 60)):
        if minutes % size == 0:
            n = minutes // size
            return f"refreshed every {n} {unit}{'' if n == 1 else 's'}"
    return f"refreshed every {minutes} minutes"


@dataclass(frozen=True)
class Refreshed:
    """One scheduled refresh: what it changed, or why it failed (and when it is tried again)."""

    base: str
    name: str
    change: SourceChange | None  # None: it failed
    error: str | None
    failures: int  # failed tries in a row (after this one), or before it when it worked
    next_due: datetime
    log_channel_id: str | None

    @property
    def report(self) -> str | None:
        """The log channel's line: something changed, it failed (the first time in a row), or it
        works again; None when there is nothing to say."""
        if self.change is None:
            if self.failures != 1:
                return None
            when = int(self.next_due.timestamp())
            return f"⚠️ `{self.name}` could not be refreshed: {self.error} Next try <t:{when}:R>."
        pages = self.change.pages
        again = f" (fetched again after {self.failures} failed tr{'y' if self.failures == 1 else 'ies'})"
        if pages:
            return f"🔄 `{self.name}`: {pages}" + (again if self.failures else "")
        return f"🔄 `{self.name}`: no page changed{again}" if self.failures else None


class SourceRefresher:
    """The refresh schedule of every knowledge base's web sources, over one `SourceLibrary`."""

    def __init__(self, library: SourceLibrary, run_id: str | None = None) -> None:
        self.library, self.settings = library, library.settings
        self.schedule = RefreshSchedule(library.db)
        self.run_id = run_id or uuid.uuid4().hex[:16]  # this process, in its claims

    def schedules(self, base: str) -> dict[str, str]:
        """How often each web source of a base is refreshed, in words, with its next refresh
        or how many tries in a row failed (`/source list`)."""
        described = {}
        for name, row in self.schedule.of_base(base).items():
            minutes = self.interval(row.interval_minutes)
            text = describe_interval(minutes)
            if row.failures:
                text += f" · {row.failures} failed tr{'y' if row.failures == 1 else 'ies'} in a row"
            described[name] = text
        return described

    def interval(self, minutes: int | None) -> int:
        """A source's interval in minutes: its own, else the default (0: never)."""
        return round(self.settings.refresh_interval_hours * 60) if minutes is None else minutes

    def backoff(self, failures: int) -> timedelta:
        """The wait after `failures` failed tries in a row: doubling, capped."""
        wait = self.settings.refresh_retry_minutes * 2 ** min(failures - 1, 30)
        return min(timedelta(minutes=wait), timedelta(hours=self.settings.refresh_max_backoff_hours))

    def _next(self, minutes: int | None, now: datetime) -> datetime:
        return now + timedelta(minutes=self.interval(minutes) or 365 * 24 * 60)  # never: far away (not due)

    def set_interval(self, base: str, name: str, minutes: int | None, now: datetime | None = None) -> RefreshRow:
        """Give a web source its own interval (None: the default), counted from now."""
        now = now or utcnow()
        row = self.library.registry.get(base, name)
        if row is None:
            raise UnknownSourceError(f"There is no source called '{name}' in this knowledge base.")
        if row.kind not in ("url", "crawl"):
            raise SourceError(f"`{row.name}` is a {row.kind} source: only web pages and crawls are refreshed.")
        self.schedule.set_interval(row.id, minutes, self._next(minutes, now))
        found = self.schedule.get(base, row.name)
        assert found is not None
        return found

    def refresh_now(self, base: str, name: str, *, actor_id: str | int, actor_name: str | None,
                    progress: Progress | None = None, index: bool = True, now: datetime | None = None) -> SourceChange:
        """Refresh one source at once (a moderator's request); its next scheduled one counts
        from now. A failure raises, as the library says, and counts towards the back-off."""
        self.schedule.adopt(lambda changed: self._next(None, changed))
        try:
            change = self.library.refresh(base, name, actor_id=actor_id, actor_name=actor_name, progress=progress,
                                          index=index)
        except SourceError as exc:
            if (row := self.library.registry.get(base, name)) is not None and row.kind in ("url", "crawl"):
                self.schedule.failed(row.id, now or utcnow(), str(exc), self.backoff)
            raise
        self._succeeded(base, change.name, now or utcnow())
        return change

    def _succeeded(self, base: str, name: str, now: datetime, run_id: str | None = None) -> int:
        found, row = self.schedule.get(base, name), self.library.registry.get(base, name)
        assert row is not None
        return self.schedule.succeeded(row.id, now, self._next(found.interval_minutes if found else None, now), run_id)

    def run_due(self, now: datetime | None = None) -> list[Refreshed]:
        """Refresh every source due at `now` that this process claims first; what each did."""
        now, started = now or utcnow(), utcnow()
        self.schedule.adopt(lambda changed: self._next(None, changed))
        done: list[Refreshed] = []
        for due in self.schedule.due(now, self.interval(None)):
            # Each claim's lease starts when it is taken: a batch's earlier crawls take minutes.
            if not self.schedule.claim(due.source_id, self.run_id, now + (utcnow() - started), LEASE):
                continue  # another process took it
            if (outcome := self._run(due, now)) is not None:
                done.append(outcome)
        return done

    def _run(self, due: RefreshRow, now: datetime) -> Refreshed | None:
        channel = self.library.log_channel(due.base)
        try:
            change = self.library.refresh(due.base, due.name, actor_id=SCHEDULER[0], actor_name=SCHEDULER[1])
        except UnknownSourceError:
            return None  # removed meanwhile: its schedule went with it
        except ReloadInProgressError:  # the base stayed busy (its lock, or a reload of this process)
            self.schedule.release(due.source_id, self.run_id)  # the next tick tries again; no failure counted
            return None
        except Exception as exc:  # noqa: BLE001 - whatever failed, the stored copy serves and the try backs off
            if not isinstance(exc, RagError):
                log.exception("refresh of %s in %s failed", due.name, due.base)
            why = str(exc) if isinstance(exc, RagError) else f"unexpected error ({type(exc).__name__})"
            if (row := self.schedule.failed(due.source_id, now, why, self.backoff, self.run_id)) is None:
                return None
            log.warning("%s: refresh of %s failed (%d in a row): %s", due.base, due.name, row.failures, why)
            return Refreshed(due.base, due.name, None, why, row.failures, row.next_due, channel)
        failed_before = self._succeeded(due.base, change.name, now, self.run_id)
        found = self.schedule.get(due.base, change.name)
        log.info("%s: refreshed %s: %s", due.base, change.name, change.pages)
        return Refreshed(due.base, change.name, change, None, failed_before,
                         found.next_due if found else now, change.log_channel_id)
