"""The SQL schema of the bot's state: which sources each knowledge base holds, per-page crawl
validators, the audit log of changes, per-server settings, the answers the bot gave (with
their conversations and members' votes), the members' messages it took on (for idempotent
handling and the catch-up on start) and the schema version.

Owns table and column definitions (SQLAlchemy 2 declarative) and the frozen snapshots
(`SourceRow`, `AuditRow`) that queries return instead of live ORM objects. Sessions and
engines live in `bot.state.db`; queries in `bot.state.registry`. Every timestamp is stored and returned as a
timezone-aware UTC `datetime`, on SQLite too (see `UTCDateTime`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 2  # 2: answers, votes, conversations, state values
"""Bump together with a migration step in `Database.create_schema` when the schema changes."""

# curated: a moderators' correction; discord: a channel's or forum's messages
SOURCE_KINDS = frozenset({"file", "url", "crawl", "folder", "curated", "discord"})
SOURCE_STATUSES = frozenset({"ready", "failed", "pending"})
AUDIT_RESULTS = frozenset({"ok", "failed", "unchanged", "pending"})  # pending: an add under way


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A `DateTime` that always comes back timezone-aware in UTC.

    PostgreSQL keeps the offset (`timestamptz`); SQLite has no time zones, so values are stored as
    naive UTC there and given `tzinfo=UTC` again when read. Naive input is taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDict = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base; `Base.metadata` is the whole schema."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONDict}


class SchemaVersion(Base):
    """One row (id 1): the schema version the tables were last created or migrated to."""

    __tablename__ = "schema_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeBaseRecord(Base):
    """A knowledge base ("shared", "guild-123"), remembering the folder it was built from."""

    __tablename__ = "knowledge_bases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    origin: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceRecord(Base):
    """One source of one knowledge base: an uploaded file, a URL, a crawl or a folder."""

    __tablename__ = "sources"
    __table_args__ = (
        UniqueConstraint("base", "name", name="uq_sources_base_name"),
        Index("ix_sources_base", "base"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    base: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))
    origin: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(128))
    added_by: Mapped[str | None] = mapped_column(String(64))
    added_by_name: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    error: Mapped[str | None] = mapped_column(Text)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)

    crawl_pages: Mapped[list[CrawlPage]] = relationship(
        back_populates="source", cascade="all, delete-orphan", passive_deletes=True
    )


class CrawlPage(Base):
    """One page fetched by a crawl source, with the validators for a conditional GET next time."""

    __tablename__ = "crawl_pages"
    __table_args__ = (UniqueConstraint("source_id", "url", name="uq_crawl_pages_source_url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(String(100))
    content_hash: Mapped[str | None] = mapped_column(String(128))

    source: Mapped[SourceRecord] = relationship(back_populates="crawl_pages")


class AuditEntry(Base):
    """One change to a knowledge base: who did what, when, with which result and chunk counts."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_base_at", "base", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    base: Mapped[str] = mapped_column(String(200))
    guild_id: Mapped[str | None] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(300))
    result: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class GuildConfig(Base):
    """Per-server settings: the log channel now, anything later in `extra`."""

    __tablename__ = "guild_config"

    guild_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    log_channel_id: Mapped[str | None] = mapped_column(String(32))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class StateValue(Base):
    """Named values the bot keeps for itself (the salt that user ids are hashed with)."""

    __tablename__ = "state_values"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ConversationRecord(Base):
    """A thread the bot answers in: follow-ups there need no mention."""

    __tablename__ = "conversations"

    thread_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    guild_id: Mapped[str | None] = mapped_column(String(32), index=True)
    channel_id: Mapped[str | None] = mapped_column(String(32))  # the channel or forum it is in
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    handed_over: Mapped[bool] = mapped_column(default=False)  # a moderator answered: the bot waits for a mention


class HandledMessage(Base):
    """A member's message the bot took on (a question addressed to it): by which run of the bot,
    and whether its reply went out. A replayed event finds it here and gets no second answer; on
    start the bot resumes each channel after what it handled and redoes what a crash left undone."""

    __tablename__ = "handled_messages"
    __table_args__ = (Index("ix_handled_messages_channel", "channel_id", "handled_at"),)

    message_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    guild_id: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(String(32))  # the bot process that took it on
    done: Mapped[bool] = mapped_column(default=False)  # the reply (answer, refusal, "ask again") went out
    handled_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)  # when `run_id` took it on (its lease starts)


class AnswerRecord(Base):
    """One question the bot answered or refused. Who asked is a salted hash; the texts are
    cleared after RETENTION_DAYS (the figures stay for the statistics)."""

    __tablename__ = "answers"
    __table_args__ = (Index("ix_answers_guild_asked", "guild_id", "asked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    guild_id: Mapped[str | None] = mapped_column(String(32))
    thread_id: Mapped[str | None] = mapped_column(String(32), index=True)  # its conversation, if any
    message_id: Mapped[str | None] = mapped_column(String(32), unique=True)  # the bot's reply
    user_hash: Mapped[str] = mapped_column(String(64), index=True)
    question: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    answered: Mapped[bool] = mapped_column(default=False)
    provider: Mapped[str] = mapped_column(String(32), default="")
    sources: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"cited": [source names]}
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    votes: Mapped[list[VoteRecord]] = relationship(back_populates="answer", cascade="all, delete-orphan")


class VoteRecord(Base):
    """A member's 👍 (+1) or 👎 (-1) on an answer, one per member per answer."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("answer_id", "user_hash", name="uq_vote_member"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), index=True)
    user_hash: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)  # "what was wrong?", cleared with the texts
    at: Mapped[datetime] = mapped_column(default=utcnow)
    answer: Mapped[AnswerRecord] = relationship(back_populates="votes")


# --- moderators' corrections and the 👎 queue (bot.state.corrections) -------------------------


class AnswerPlace(Base):
    """Where an answer was posted: its channel or thread, and whether only the asker saw it
    (an ephemeral reply). A correction made from the queue takes its visibility from there."""

    __tablename__ = "answer_places"

    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    channel_id: Mapped[str | None] = mapped_column(String(32))
    private: Mapped[bool] = mapped_column(default=False)


class ResolvedAnswer(Base):
    """An answer voted 👎 or a refused question that a moderator's correction resolved: it
    leaves the queue. `source_name` is the curated source the correction became."""

    __tablename__ = "resolved_answers"

    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True)
    guild_id: Mapped[str | None] = mapped_column(String(32), index=True)
    source_name: Mapped[str] = mapped_column(String(300))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Discord channels as sources (issue 21) ---------------------------------------------------
class ForgottenAuthor(Base):
    """A member who ran /forget-me: their messages are never taken into a channel source again.
    Kept as the same salted hash of the user id as the answers' `user_hash`."""

    __tablename__ = "forgotten_authors"

    user_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    forgotten_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- scheduled refresh of web sources (issue 21) ----------------------------------------------


class SourceRefreshRecord(Base):
    """When a web source or crawl is fetched again: its interval, when it is next due, which
    process has claimed the refresh (until when), and how the last tries went."""

    __tablename__ = "source_refresh"
    __table_args__ = (Index("ix_source_refresh_next_due", "next_due"),)

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    interval_minutes: Mapped[int | None] = mapped_column(Integer)  # None: REFRESH_INTERVAL_HOURS; 0: never
    next_due: Mapped[datetime] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the process refreshing it now
    claimed_until: Mapped[datetime | None] = mapped_column()  # its claim passes on after this (a dead process)
    last_ok: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # failed tries in a row


# --- detached snapshots handed to callers (never live ORM objects) ---------------------------


@dataclass(frozen=True)
class SourceRow:
    """A snapshot of one `SourceRecord`."""

    id: int
    base: str
    name: str
    kind: str
    origin: str
    content_hash: str | None
    added_by: str | None
    added_by_name: str | None
    added_at: datetime
    updated_at: datetime
    etag: str | None
    last_modified: str | None
    status: str
    error: str | None
    chunks: int
    pages: int
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def of(cls, record: SourceRecord) -> SourceRow:
        return cls(
            id=record.id, base=record.base, name=record.name, kind=record.kind, origin=record.origin,
            content_hash=record.content_hash, added_by=record.added_by, added_by_name=record.added_by_name,
            added_at=record.added_at, updated_at=record.updated_at, etag=record.etag,
            last_modified=record.last_modified, status=record.status, error=record.error,
            chunks=record.chunks, pages=record.pages, options=dict(record.options or {}),
        )  # fmt: skip


@dataclass(frozen=True)
class AuditRow:
    """A snapshot of one `AuditEntry`."""

    id: int
    base: str
    guild_id: str | None
    actor_id: str
    actor_name: str | None
    action: str
    target: str | None
    result: str
    detail: str | None
    added: int
    updated: int
    unchanged: int
    removed: int
    skipped: int
    failed: int
    at: datetime

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditRow:
        return cls(**{name: getattr(entry, name) for name in cls.__dataclass_fields__})
