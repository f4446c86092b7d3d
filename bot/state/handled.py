"""Which members' messages the bot has taken on, so that handling one is idempotent and a
restart knows where to resume.

A message is *claimed* before it is answered (one row per message id: a replayed gateway event,
or a second process, finds the row and stays quiet) and marked *done* once the reply went out.
A claim left undone by an earlier run of the bot (it crashed mid-answer) may be claimed again
by the next run, which is how the catch-up on start redoes it. Rows older than the catch-up
window are deleted with the retention purge.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.state.db import Database
from bot.state.models import HandledMessage


class HandledMessages:
    """Claims and completions of members' messages, for one run (process) of the bot."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id

    def claim(self, message_id: int | str, channel_id: int | str, guild_id: int | str | None) -> bool:
        """Take the message on: True if this run may answer it (nobody had it, or an earlier run
        claimed it and never finished), False if it is done or another live claim holds it."""
        try:
            with self.db.session() as session:
                session.add(HandledMessage(message_id=str(message_id), channel_id=str(channel_id),
                                           guild_id=None if guild_id is None else str(guild_id), run_id=self.run_id))
            return True
        except IntegrityError:
            pass
        with self.db.session() as session:  # an earlier run's unfinished claim passes to this run
            taken = session.execute(
                update(HandledMessage)
                .where(HandledMessage.message_id == str(message_id), HandledMessage.done.is_(False),
                       HandledMessage.run_id != self.run_id)
                .values(run_id=self.run_id)
            ).rowcount
            return bool(taken)

    def finish(self, message_id: int | str) -> None:
        """The reply to the message went out."""
        with self.db.session() as session:
            session.execute(update(HandledMessage).where(HandledMessage.message_id == str(message_id)).values(done=True))

    def is_done(self, message_id: int | str) -> bool:
        with self.db.session() as session:
            return bool(session.scalar(select(HandledMessage.done).where(HandledMessage.message_id == str(message_id))))

    def resume_points(self, channel_ids: Iterable[int], since: datetime) -> dict[int, int]:
        """Per channel, the message id to read its history after: just before the oldest message
        an earlier run left unfinished, else the newest message handled there (channels with
        nothing handled since `since` are left out)."""
        wanted = {str(c) for c in channel_ids}
        if not wanted:
            return {}
        with self.db.session() as session:
            rows = session.execute(
                select(HandledMessage.channel_id, HandledMessage.message_id, HandledMessage.done, HandledMessage.run_id)
                .where(HandledMessage.channel_id.in_(wanted), HandledMessage.handled_at >= since)
            ).all()
        newest: dict[int, int] = {}
        unfinished: dict[int, int] = {}
        for channel, message, done, run in rows:
            cid, mid = int(channel), int(message)
            newest[cid] = max(newest.get(cid, 0), mid)
            if not done and run != self.run_id:
                unfinished[cid] = min(unfinished.get(cid, mid), mid)
        return {cid: unfinished[cid] - 1 if cid in unfinished else mid for cid, mid in newest.items()}

    def forget_before(self, cutoff: datetime) -> int:
        """Delete the rows of messages handled before `cutoff`; returns how many."""
        with self.db.session() as session:
            return int(session.execute(delete(HandledMessage).where(HandledMessage.handled_at < cutoff)).rowcount or 0)
