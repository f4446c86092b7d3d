"""The schedule of web sources' refreshes in SQL (`source_refresh`), so it survives restarts and
is shared by every process of the bot.

Owns the queries on that table: a source's interval (None: the default; 0: never), which
sources are due, the atomic claim that lets exactly one process refresh a due source (a
compare-and-set UPDATE: of several processes, one changes the row; a claim passes on when its
lease ends, so a process that died mid-refresh holds nothing for long), and the outcome of a
try (next due time, last success, last error, failures in a row). When to refresh is
`bot.rag.refresh`'s decision; this module only stores it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from bot.state.db import Database
from bot.state.models import SourceRecord, SourceRefreshRecord

WEB_KINDS = ("url", "crawl")


@dataclass(frozen=True)
class RefreshRow:
    """A snapshot of one source's schedule."""

    source_id: int
    base: str
    name: str
    interval_minutes: int | None
    next_due: datetime
    last_ok: datetime | None
    last_error: str | None
    failures: int


class RefreshSchedule:
    """Queries on `source_refresh` of one `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _row(record: SourceRefreshRecord, source: SourceRecord) -> RefreshRow:
        return RefreshRow(source.id, source.base, source.name, record.interval_minutes, record.next_due,
                          record.last_ok, record.last_error, record.failures)

    @staticmethod
    def _record(session: Session, source_id: int, next_due: datetime) -> SourceRefreshRecord:
        record = session.get(SourceRefreshRecord, source_id)
        if record is None:
            record = SourceRefreshRecord(source_id=source_id, next_due=next_due, failures=0)
            session.add(record)
        return record

    def get(self, base: str, name: str) -> RefreshRow | None:
        with self.db.session() as session:
            found = session.execute(
                select(SourceRefreshRecord, SourceRecord).join(SourceRecord)
                .where(SourceRecord.base == base, SourceRecord.name == name)).first()
            return None if found is None else self._row(*found)

    def of_base(self, base: str) -> dict[str, RefreshRow]:
        """Every scheduled source of a base, by name."""
        with self.db.session() as session:
            found = session.execute(select(SourceRefreshRecord, SourceRecord).join(SourceRecord)
                                    .where(SourceRecord.base == base)).all()
            return {source.name: self._row(record, source) for record, source in found}

    def set_interval(self, source_id: int, minutes: int | None, next_due: datetime) -> None:
        """A source's own interval (None: the default), counted from `next_due`'s choice of now."""
        def work(session: Session) -> None:
            record = self._record(session, source_id, next_due)
            record.interval_minutes, record.next_due = minutes, next_due

        self.db.retrying(work)

    def adopt(self, due: Callable[[datetime], datetime]) -> int:
        """Give every web source without a schedule one on the default interval, due `due(last
        change of the source)`: sources added before scheduling existed, or by the command line."""
        def work(session: Session) -> int:
            orphans = session.execute(
                select(SourceRecord.id, SourceRecord.updated_at).outerjoin(SourceRefreshRecord)
                .where(SourceRecord.kind.in_(WEB_KINDS), SourceRefreshRecord.source_id.is_(None))).all()
            for source_id, updated_at in orphans:
                session.add(SourceRefreshRecord(source_id=source_id, next_due=due(updated_at), failures=0))
            return len(orphans)

        return self.db.retrying(work)  # another process adopting at once: its rows stand

    def due(self, now: datetime, default_minutes: int, limit: int = 20) -> builtins.list[RefreshRow]:
        """Web sources due at `now` (oldest first) that no live claim holds and whose interval is not "never"."""
        interval = SourceRefreshRecord.interval_minutes
        enabled = or_(interval.is_(None), interval != 0) if default_minutes else interval > 0
        query = (select(SourceRefreshRecord, SourceRecord).join(SourceRecord)
                 .where(SourceRecord.kind.in_(WEB_KINDS), SourceRefreshRecord.next_due <= now, enabled,
                        or_(SourceRefreshRecord.claimed_until.is_(None), SourceRefreshRecord.claimed_until < now))
                 .order_by(SourceRefreshRecord.next_due, SourceRefreshRecord.source_id).limit(limit))
        with self.db.session() as session:
            return [self._row(*found) for found in session.execute(query).all()]

    def claim(self, source_id: int, run_id: str, now: datetime, lease: timedelta) -> bool:
        """Take a due source's refresh for `run_id` until `now + lease`: True for exactly one of
        the processes that try at once (the row changes for one of them only)."""
        with self.db.session() as session:
            taken = session.execute(
                update(SourceRefreshRecord)
                .where(SourceRefreshRecord.source_id == source_id, SourceRefreshRecord.next_due <= now,
                       or_(SourceRefreshRecord.claimed_until.is_(None), SourceRefreshRecord.claimed_until < now))
                .values(claimed_by=run_id, claimed_until=now + lease)).rowcount
        return bool(taken)

    def release(self, source_id: int, run_id: str) -> None:
        """Give a claim back without a try (the next tick takes it again)."""
        with self.db.session() as session:
            session.execute(update(SourceRefreshRecord)
                            .where(and_(SourceRefreshRecord.source_id == source_id,
                                        SourceRefreshRecord.claimed_by == run_id))
                            .values(claimed_by=None, claimed_until=None))

    def succeeded(self, source_id: int, now: datetime, next_due: datetime, run_id: str | None = None) -> int:
        """A refresh worked: due again at `next_due`, failures cleared (returns how many there
        were), and `run_id`'s claim ended."""
        def work(session: Session) -> int:
            record = self._record(session, source_id, next_due)
            failed_before = record.failures or 0
            record.next_due, record.last_ok, record.last_error, record.failures = next_due, now, None, 0
            if run_id is not None and record.claimed_by == run_id:
                record.claimed_by, record.claimed_until = None, None
            return failed_before

        return self.db.retrying(work)

    def failed(self, source_id: int, now: datetime, error: str, backoff: Callable[[int], timedelta],
               run_id: str | None = None) -> RefreshRow | None:
        """A refresh failed: one more failure in a row, next try after `backoff(failures)`, and
        `run_id`'s claim ended. None when the source is gone."""
        def work(session: Session) -> RefreshRow | None:
            source = session.get(SourceRecord, source_id)
            if source is None:
                return None
            record = self._record(session, source_id, now)
            record.failures = (record.failures or 0) + 1
            record.next_due, record.last_error = now + backoff(record.failures), error[:2000]
            if run_id is not None and record.claimed_by == run_id:
                record.claimed_by, record.claimed_until = None, None
            session.flush()
            return self._row(record, source)

        return self.db.retrying(work)
