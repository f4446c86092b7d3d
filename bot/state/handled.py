"""Which members' messages the bot has taken on, so that handling one is idempotent and a
restart knows where to resume.

A message is *claimed* before it is answered (one row per message id: a replayed gateway event,
or a second process, finds the row and stays quiet) and marked *done* once the reply went out.
A claim left undone by another run of the bot passes to this run only when that run is known
dead (its run lock is free: it crashed mid-answer, or closed) or the claim is older than
CLAIM_LEASE (longer than an answer takes: the run hangs). Two runs that overlap (a rolling
restart: the old one drains while the new one catches up) so never answer a message twice. Rows
older than the catch-up window are deleted with the retention purge.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.state.db import Database
from bot.state.models import HandledMessage, utcnow
from bot.state.runs import RunLocks

CLAIM_LEASE = timedelta(minutes=10)  # a live run's unfinished claim is taken over after this long


class HandledMessages:
    """Claims and completions of members' messages, for one run (process) of the bot."""

    def __init__(self, db: Database, run_id: str, lock_dir: Path | None = None) -> None:
        """`lock_dir` holds the run locks on SQLite (default: `locks` beside the database file)."""
        self.db = db
        self.run_id = run_id
        beside = db.sqlite_path.parent / "locks" if db.sqlite_path is not None else Path(tempfile.gettempdir())
        self.runs = RunLocks(db, lock_dir or beside)

    def start(self) -> bool:
        """Mark this run alive (its run lock) for other runs; False if that could not be done."""
        return self.runs.hold(self.run_id)

    def stop(self) -> None:
        """This run is over: its unfinished claims may pass to another run at once."""
        self.runs.release()

    def _passes_on(self, run_id: str, claimed_at: datetime, now: datetime) -> bool:
        """Whether another run's unfinished claim may be taken over: its lease ran out or its run is dead."""
        return run_id != self.run_id and (claimed_at < now - CLAIM_LEASE or self.runs.is_dead(run_id))

    def claim(self, message_id: int | str, channel_id: int | str, guild_id: int | str | None) -> bool:
        """Take the message on: True if this run may answer it (nobody had it, or a dead run
        claimed it and never finished, or a claim's lease ran out), False if it is done or a live
        run's claim holds it."""
        now = utcnow()
        try:
            with self.db.session() as session:
                session.add(HandledMessage(message_id=str(message_id), channel_id=str(channel_id),
                                           guild_id=None if guild_id is None else str(guild_id), run_id=self.run_id,
                                           claimed_at=now))
            return True
        except IntegrityError:
            pass
        with self.db.session() as session:
            held = session.execute(select(HandledMessage.run_id, HandledMessage.done, HandledMessage.claimed_at)
                                   .where(HandledMessage.message_id == str(message_id))).first()
        if held is None or held.done or not self._passes_on(held.run_id, held.claimed_at, now):
            return False
        with self.db.session() as session:  # compare and set: of two runs taking it over, one wins
            taken = session.execute(
                update(HandledMessage)
                .where(HandledMessage.message_id == str(message_id), HandledMessage.done.is_(False),
                       HandledMessage.run_id == held.run_id, HandledMessage.claimed_at == held.claimed_at)
                .values(run_id=self.run_id, claimed_at=now)
            ).rowcount
            return bool(taken)

    def finish(self, message_id: int | str) -> None:
        """The reply to the message went out."""
        with self.db.session() as session:
            session.execute(update(HandledMessage).where(HandledMessage.message_id == str(message_id)).values(done=True))

    def is_done(self, message_id: int | str) -> bool:
        """Whether the reply to the message went out."""
        with self.db.session() as session:
            return bool(session.scalar(select(HandledMessage.done).where(HandledMessage.message_id == str(message_id))))

    def resume_points(self, channel_ids: Iterable[int], since: datetime) -> dict[int, int]:
        """Per channel, the message id to read its history after: just before the oldest message
        another run left unfinished and this run may take over (see `claim`), else the newest
        message handled or being handled there (channels with nothing handled since `since` are
        left out)."""
        wanted = {str(c) for c in channel_ids}
        if not wanted:
            return {}
        with self.db.session() as session:
            rows = session.execute(
                select(HandledMessage.channel_id, HandledMessage.message_id, HandledMessage.done, HandledMessage.run_id,
                       HandledMessage.claimed_at)
                .where(HandledMessage.channel_id.in_(wanted), HandledMessage.handled_at >= since)
            ).all()
        newest: dict[int, int] = {}
        unfinished: dict[int, int] = {}
        now = utcnow()
        for channel, message, done, run, claimed_at in rows:
            cid, mid = int(channel), int(message)
            newest[cid] = max(newest.get(cid, 0), mid)
            if not done and self._passes_on(run, claimed_at, now):
                unfinished[cid] = min(unfinished.get(cid, mid), mid)
        return {cid: unfinished[cid] - 1 if cid in unfinished else mid for cid, mid in newest.items()}

    def forget_before(self, cutoff: datetime) -> int:
        """Delete the rows of messages handled before `cutoff`; returns how many."""
        with self.db.session() as session:
            return int(session.execute(delete(HandledMessage).where(HandledMessage.handled_at < cutoff)).rowcount or 0)
