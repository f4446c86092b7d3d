"""What the bot remembers of its answers: the conversations (threads) it answers in, each
question it answered or refused, members' 👍/👎 on them, the statistics and docs-gap report
made from those, and forgetting (a member on request, every text after RETENTION_DAYS).

Who asked or voted is stored only as a salted hash of the Discord user id (the salt is made
once per database and kept in it). Every method is one short transaction on the state
database and returns plain frozen dataclasses.
"""

from __future__ import annotations

import hashlib
import secrets
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from bot.rag.errors import RagError
from bot.rag.models import Answer
from bot.state.corrections import DayCounts, QueueTopic, feedback
from bot.state.db import Database
from bot.state.models import AnswerPlace, AnswerRecord, ConversationRecord, StateValue, VoteRecord, utcnow

TOP_QUESTIONS = 5


class UnknownAnswerError(RagError):
    """A vote on a message the bot has no record of (deleted, purged, or never an answer)."""


@dataclass(frozen=True)
class Conversation:
    thread_id: str
    handed_over: bool


@dataclass(frozen=True)
class Turn:
    """One question and answer of a conversation."""

    question: str
    answer: str
    answered: bool
    cited: tuple[str, ...] = ()  # the sources the answer cited


@dataclass(frozen=True)
class StatsReport:
    """A server's (or every server's) figures over one period."""

    since: datetime | None
    questions: int
    answered: int
    refused: int
    up: int
    down: int
    p50_ms: float | None
    p95_ms: float | None
    top_sources: list[tuple[str, int]] = field(default_factory=list)
    top_refused: list[tuple[str, int]] = field(default_factory=list)  # what the sources are missing
    top_down: list[tuple[str, int]] = field(default_factory=list)
    queue: list[QueueTopic] = field(default_factory=list)  # 👎 and refused, not yet resolved, by topic
    daily: list[DayCounts] = field(default_factory=list)  # what the /stats chart draws


def _percentile(values: Sequence[int], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1])


def _top(texts: Sequence[str | None]) -> list[tuple[str, int]]:
    counts = Counter(" ".join(t.split()).lower() for t in texts if t)
    return counts.most_common(TOP_QUESTIONS)


class ConversationLog:
    """Queries on the answers, votes and conversations tables of one `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @cached_property
    def _salt(self) -> str:
        with self.db.session() as session:
            row = session.get(StateValue, "user_hash_salt")
            if row is not None:
                return row.value
        try:
            with self.db.session() as session:
                session.add(StateValue(name="user_hash_salt", value=secrets.token_hex(16)))
        except IntegrityError:  # another process made it first
            pass
        with self.db.session() as session:
            found = session.get(StateValue, "user_hash_salt")
            assert found is not None
            return found.value

    def user_hash(self, user_id: int | str) -> str:
        return hashlib.sha256(f"{self._salt}:{user_id}".encode()).hexdigest()

    # --- conversations ----------------------------------------------------------------------
    def start_conversation(self, thread_id: int | str, guild_id: int | str | None, channel_id: int | str | None) -> None:
        try:
            with self.db.session() as session:
                if session.get(ConversationRecord, str(thread_id)) is None:
                    session.add(ConversationRecord(thread_id=str(thread_id), guild_id=_id(guild_id), channel_id=_id(channel_id)))
        except IntegrityError:
            pass  # started by another process at the same moment

    def conversation(self, thread_id: int | str) -> Conversation | None:
        """The bot's conversation in this thread, if it has one."""
        with self.db.session() as session:
            record = session.get(ConversationRecord, str(thread_id))
            return Conversation(record.thread_id, record.handed_over) if record is not None else None

    def hand_over(self, thread_id: int | str) -> None:
        """A moderator answered in the thread: from now on the bot answers there only when mentioned."""
        with self.db.session() as session:
            session.execute(update(ConversationRecord).where(ConversationRecord.thread_id == str(thread_id)).values(handed_over=True))

    def history(self, thread_id: int | str, turns: int) -> list[Turn]:
        """The conversation's last `turns` questions and answers, oldest first (purged ones left out)."""
        with self.db.session() as session:
            rows = session.scalars(
                select(AnswerRecord).where(AnswerRecord.thread_id == str(thread_id), AnswerRecord.question.is_not(None))
                .order_by(AnswerRecord.asked_at.desc(), AnswerRecord.id.desc()).limit(turns)
            ).all()
            return [Turn(r.question or "", r.answer or "", r.answered, tuple((r.sources or {}).get("cited", ())))
                    for r in reversed(rows)]

    # --- answers and votes ------------------------------------------------------------------
    def record_answer(self, answer: Answer, *, user_id: int | str, guild_id: int | str | None,
                      thread_id: int | str | None, message_id: int | str | None, latency_ms: float,
                      channel_id: int | str | None = None, private: bool = False) -> int:
        """Keep one answer (and where it was posted: `channel_id`, `private` for a reply only the
        asker sees); recording the same reply message again (a replayed event) keeps the first
        record and returns its id."""
        cited = list(dict.fromkeys(c.source for c in answer.citations))
        if message_id is not None:
            with self.db.session() as session:
                found = session.scalar(select(AnswerRecord.id).where(AnswerRecord.message_id == str(message_id)))
            if found is not None:
                return found
        try:
            return self._insert_answer(answer, cited, user_id, guild_id, thread_id, message_id, latency_ms,
                                       channel_id, private)
        except IntegrityError:  # recorded by someone else between the lookup and the insert
            with self.db.session() as session:
                found = session.scalar(select(AnswerRecord.id).where(AnswerRecord.message_id == str(message_id)))
            if found is None:
                raise
            return found

    def _insert_answer(self, answer: Answer, cited: list[str], user_id: int | str, guild_id: int | str | None,
                       thread_id: int | str | None, message_id: int | str | None, latency_ms: float,
                       channel_id: int | str | None, private: bool) -> int:
        with self.db.session() as session:
            record = AnswerRecord(
                guild_id=_id(guild_id), thread_id=_id(thread_id), message_id=_id(message_id),
                user_hash=self.user_hash(user_id), question=answer.question, answer=answer.answer,
                answered=answer.answerable, provider=answer.provider, sources={"cited": cited},
                latency_ms=int(latency_ms),
            )
            session.add(record)
            session.flush()
            if channel_id is not None:
                session.add(AnswerPlace(answer_id=record.id, channel_id=str(channel_id), private=private))
            return record.id

    def vote(self, message_id: int | str, user_id: int | str, value: int, reason: str | None = None) -> bool:
        """Record (or change) a member's vote on the answer in `message_id`; True when it
        replaced an earlier vote of theirs."""
        user = self.user_hash(user_id)
        for attempt in range(2):
            try:
                with self.db.session() as session:
                    answer_id = session.scalar(select(AnswerRecord.id).where(AnswerRecord.message_id == str(message_id)))
                    if answer_id is None:
                        raise UnknownAnswerError("That answer is no longer on record, so the vote cannot be saved.")
                    vote = session.scalar(select(VoteRecord).where(VoteRecord.answer_id == answer_id, VoteRecord.user_hash == user))
                    if vote is None:
                        session.add(VoteRecord(answer_id=answer_id, user_hash=user, value=value, reason=reason))
                        return False
                    vote.value, vote.at = value, utcnow()
                    if reason is not None or value > 0:
                        vote.reason = reason
                    return True
            except IntegrityError:  # the same member's two clicks raced: the second one updates
                if attempt:
                    raise
        return True

    # --- statistics -------------------------------------------------------------------------
    def stats(self, guild_id: int | str | None, since: datetime | None) -> StatsReport:
        """Figures for one server (None: every server) since a time (None: all time)."""
        with self.db.session() as session:
            query = select(AnswerRecord)
            if guild_id is not None:
                query = query.where(AnswerRecord.guild_id == str(guild_id))
            if since is not None:
                query = query.where(AnswerRecord.asked_at >= since)
            rows = session.scalars(query).all()
            ids = [r.id for r in rows]
            votes = session.execute(select(VoteRecord.answer_id, VoteRecord.value, VoteRecord.reason, VoteRecord.at)
                                    .where(VoteRecord.answer_id.in_(ids))).all() if ids else []
            down_ids = {a for a, v, _, _ in votes if v < 0}
            latencies = sorted(r.latency_ms for r in rows)
            sources = Counter(s for r in rows for s in (r.sources or {}).get("cited", []))
            queue = feedback(session, rows, [tuple(v) for v in votes], since)  # type: ignore[misc]
            return StatsReport(
                since=since, questions=len(rows), answered=sum(r.answered for r in rows),
                refused=sum(not r.answered for r in rows), up=sum(v > 0 for _, v, _, _ in votes),
                down=sum(v < 0 for _, v, _, _ in votes), p50_ms=_percentile(latencies, 50), p95_ms=_percentile(latencies, 95),
                top_sources=sources.most_common(TOP_QUESTIONS),
                top_refused=_top([r.question for r in rows if not r.answered]),
                top_down=_top([r.question for r in rows if r.id in down_ids]),
                queue=queue.queue, daily=queue.daily,
            )

    # --- forgetting -------------------------------------------------------------------------
    def forget(self, user_id: int | str) -> tuple[int, int]:
        """Delete everything stored about a member: their questions (with the votes on them)
        and their votes. Returns (questions, votes) deleted."""
        user = self.user_hash(user_id)
        with self.db.session() as session:
            mine = select(AnswerRecord.id).where(AnswerRecord.user_hash == user)
            votes = session.execute(delete(VoteRecord).where((VoteRecord.user_hash == user) | VoteRecord.answer_id.in_(mine))).rowcount
            questions = session.execute(delete(AnswerRecord).where(AnswerRecord.user_hash == user)).rowcount
            return int(questions or 0), int(votes or 0)

    def purge_texts(self, retention_days: int, now: datetime | None = None) -> int:
        """Clear question, answer and vote-reason texts older than the retention period; the
        counts stay. Returns how many answers were cleared."""
        cutoff = (now or utcnow()) - timedelta(days=retention_days)
        with self.db.session() as session:
            old = select(AnswerRecord.id).where(AnswerRecord.asked_at < cutoff)
            session.execute(update(VoteRecord).where(VoteRecord.answer_id.in_(old)).values(reason=None))
            cleared = session.execute(
                update(AnswerRecord).where(AnswerRecord.asked_at < cutoff, AnswerRecord.question.is_not(None))
                .values(question=None, answer=None)
            ).rowcount
            return int(cleared or 0)

    def stored_for(self, user_id: int | str) -> int:
        """How many rows (answers and votes) mention the member."""
        user = self.user_hash(user_id)
        with self.db.session() as session:
            answers = session.scalar(select(func.count()).select_from(AnswerRecord).where(AnswerRecord.user_hash == user))
            votes = session.scalar(select(func.count()).select_from(VoteRecord).where(VoteRecord.user_hash == user))
            return int(answers or 0) + int(votes or 0)


def _id(value: int | str | None) -> str | None:
    return None if value is None else str(value)
