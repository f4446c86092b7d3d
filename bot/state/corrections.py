"""The 👎 queue and what moderators' corrections resolve: the answers members voted down (with
their reasons) and the questions the bot refused, not yet resolved, grouped by topic; the
figures per day the /stats chart is drawn from; where each answer was posted; and marking
queue items resolved when a correction is made for them.

Grouping by topic is lexical and needs no model: each question's content words (stemmed, no
stopwords: `bot.rag.text.content_terms`) are compared, and two questions are one topic when
they share at least half the content words of the shorter one; topics are the connected groups
of that relation (so a chain of close questions is one topic). A topic is named by the words
most of its questions use. Questions whose texts the retention purge cleared leave the queue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.rag.text import STOPWORDS, content_terms, words
from bot.state.db import Database
from bot.state.models import AnswerPlace, AnswerRecord, ResolvedAnswer, VoteRecord

SAME_TOPIC = 0.5  # shared share of the shorter question's content words
TOPIC_WORDS = 3


@dataclass(frozen=True)
class QueueItem:
    """One answer voted 👎 (`down` > 0) or one refused question, not yet resolved."""

    answer_id: int
    question: str
    answer: str | None
    refused: bool
    down: int  # 👎 votes on it
    reasons: tuple[str, ...]  # the "what was wrong?" texts given
    asked_at: datetime
    guild_id: str | None
    message_id: str | None  # the bot's reply
    channel_id: str | None  # where it was posted (None: not known)
    private: bool = False  # an ephemeral reply only the asker saw

    @property
    def why(self) -> str:
        """Why it is in the queue, as /stats and the CLI show it."""
        return "refused" if self.refused and not self.down else f"👎 {self.down}"

    @classmethod
    def of(cls, record: AnswerRecord, place: AnswerPlace | None, down: int, reasons: Sequence[str]) -> QueueItem:
        """The item of one recorded answer, its place (None: recorded before places were) and its 👎 votes."""
        return cls(record.id, record.question or "", record.answer, not record.answered, down, tuple(reasons),
                   record.asked_at, record.guild_id, record.message_id,
                   place.channel_id if place else record.thread_id, place.private if place else False)


@dataclass(frozen=True)
class QueueTopic:
    """Queue items about one topic, newest first."""

    topic: str
    items: tuple[QueueItem, ...]

    @property
    def answer_ids(self) -> list[int]:
        return [item.answer_id for item in self.items]


QUEUE_LIMIT = 500  # the newest unresolved items grouped and shown (pairs compared: 125k at most)


@dataclass(frozen=True)
class DayCounts:
    """One day's figures (UTC): what the /stats chart draws."""

    day: date
    questions: int = 0
    refused: int = 0
    up: int = 0
    down: int = 0


@dataclass(frozen=True)
class Feedback:
    queue: list[QueueTopic] = field(default_factory=list)
    daily: list[DayCounts] = field(default_factory=list)


def feedback(session: Session, rows: Sequence[AnswerRecord], votes: Sequence[tuple[int, int, str | None, datetime]],
             since: datetime | None) -> Feedback:
    """The queue and the daily figures of `rows` (answers asked in the period) and `votes`
    ((answer id, value, reason, when) on them; votes cast before `since` do not count per day)."""
    ids = [r.id for r in rows]
    resolved = set(session.scalars(select(ResolvedAnswer.answer_id).where(ResolvedAnswer.answer_id.in_(ids)))) if ids else set()
    places = {p.answer_id: p for p in session.scalars(select(AnswerPlace).where(AnswerPlace.answer_id.in_(ids)))} if ids else {}
    down: Counter[int] = Counter(a for a, v, _, _ in votes if v < 0)
    reasons: dict[int, list[str]] = {}
    for a, v, reason, _ in votes:
        if v < 0 and reason:
            reasons.setdefault(a, []).append(reason)
    items = [QueueItem.of(r, places.get(r.id), down[r.id], reasons.get(r.id, ()))
             for r in rows if r.question and r.id not in resolved and (not r.answered or down[r.id])]
    newest = sorted(items, key=lambda it: it.asked_at, reverse=True)[:QUEUE_LIMIT]  # grouping compares pairs
    return Feedback(group_by_topic(newest), daily_counts(rows, votes, since))


def group_by_topic(items: Sequence[QueueItem]) -> list[QueueTopic]:
    """Items in topics (see the module docstring), the biggest topic first, then the newest."""
    terms = [set(content_terms(item.question)) for item in items]
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        for j in range(i):
            shared = len(terms[i] & terms[j])
            same = " ".join(items[i].question.lower().split()) == " ".join(items[j].question.lower().split())
            if same or (shared and shared >= SAME_TOPIC * min(len(terms[i]), len(terms[j]))):
                parent[root(i)] = root(j)
    groups: dict[int, list[QueueItem]] = {}
    for i, item in enumerate(items):
        groups.setdefault(root(i), []).append(item)
    topics = [QueueTopic(topic_name(group), tuple(sorted(group, key=lambda it: it.asked_at, reverse=True)))
              for group in groups.values()]
    return sorted(topics, key=lambda t: (-len(t.items), -t.items[0].asked_at.timestamp()))


def topic_name(items: Sequence[QueueItem]) -> str:
    """The content words most of the topic's questions use (each question counts a word once)."""
    counts: Counter[str] = Counter()
    for item in items:
        counts.update(dict.fromkeys((w for w in words(item.question) if w not in STOPWORDS and not w.isdigit()), 1))
    named = [w for w, _ in counts.most_common(TOPIC_WORDS)]
    return " · ".join(named) or " ".join(items[0].question.split())[:60]


def daily_counts(rows: Sequence[AnswerRecord], votes: Sequence[tuple[int, int, str | None, datetime]],
                 since: datetime | None) -> list[DayCounts]:
    """Questions and refusals per day asked, 👍/👎 per day voted: every day from the first to the last."""
    per: dict[date, Counter[str]] = {}
    for r in rows:
        per.setdefault(r.asked_at.date(), Counter()).update(questions=1, refused=int(not r.answered))
    for _, value, _, at in votes:
        if since is None or at >= since:
            per.setdefault(at.date(), Counter()).update(up=int(value > 0), down=int(value < 0))
    if not per:
        return []
    first, last = min(per), max(per)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [DayCounts(d, **per.get(d, Counter())) for d in days]


class Corrections:
    """Where answers were posted, and which queue items corrections resolved."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def item(self, message_id: int | str) -> QueueItem | None:
        """The recorded answer in the bot's reply `message_id` (None: not an answer on record)."""
        with self.db.session() as session:
            record = session.scalar(select(AnswerRecord).where(AnswerRecord.message_id == str(message_id)))
            return self._item(session, record) if record is not None else None

    def thread_item(self, thread_id: int | str, before_message_id: int | str) -> QueueItem | None:
        """The last question the bot answered (or refused) in a thread before that message."""
        with self.db.session() as session:
            records = session.scalars(select(AnswerRecord).where(
                AnswerRecord.thread_id == str(thread_id), AnswerRecord.question.is_not(None))).all()
            earlier = [r for r in records if r.message_id and int(r.message_id) < int(before_message_id)]
            last = max(earlier, key=lambda r: int(r.message_id or 0), default=None)
            return self._item(session, last) if last is not None else None

    @staticmethod
    def _item(session: Session, record: AnswerRecord) -> QueueItem:
        place = session.get(AnswerPlace, record.id)
        votes = session.execute(select(VoteRecord.value, VoteRecord.reason).where(VoteRecord.answer_id == record.id)).all()
        return QueueItem.of(record, place, sum(v < 0 for v, _ in votes), [r for v, r in votes if v < 0 and r])

    def resolve(self, answer_ids: Sequence[int], *, guild_id: int | str | None, source_name: str,
                by: int | str | None) -> int:
        """Mark these answers resolved by the curated source `source_name`; returns how many were new."""
        done = 0
        for answer_id in dict.fromkeys(answer_ids):
            try:
                with self.db.session() as session:
                    if session.get(AnswerRecord, answer_id) is None or session.get(ResolvedAnswer, answer_id) is not None:
                        continue
                    session.add(ResolvedAnswer(answer_id=answer_id, guild_id=None if guild_id is None else str(guild_id),
                                               source_name=source_name, resolved_by=None if by is None else str(by)))
                    done += 1
            except IntegrityError:  # resolved by another correction at the same moment
                continue
        return done
