"""The source registry: which sources each knowledge base holds, crawl validators, the audit log,
per-server log channels and the folder each base was built from.

Owns every query on the state tables. Each method runs in its own short transaction and returns
plain frozen dataclasses (`SourceRow`, `AuditRow`), never live ORM objects. Isolation: every query
on sources or audit entries filters by knowledge base; only `bases()` looks across them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.rag.errors import RagError, UnknownSourceError
from bot.state.db import Database
from bot.state.models import (
    AUDIT_RESULTS,
    SOURCE_KINDS,
    SOURCE_STATUSES,
    AuditEntry,
    AuditRow,
    CrawlPage,
    GuildConfig,
    KnowledgeBaseRecord,
    SourceRecord,
    SourceRow,
    utcnow,
)

T = TypeVar("T")
PageValidators = tuple[str | None, str | None]
"""(etag, last_modified) of one crawled page."""
MAX_DETAIL_CHARS = 4000


class SourceExistsError(RagError):
    """A source of that name already exists in the knowledge base."""

    def __init__(self, name: str, where: str = "in this server", replaceable: bool = False) -> None:
        hint = "remove it first or choose another name" if where == "in this server" else "choose another name"
        if replaceable:
            hint = "add it with `replace` (`--replace` on the command line) to put the new version in its place, " + hint
        super().__init__(f"A source called '{name}' already exists {where}; {hint}.")
        self.name = name


def _id(value: str | int | None) -> str | None:
    """Discord ids arrive as ints or strings; they are stored as strings."""
    return None if value is None else str(value)


class SourceRegistry:
    """Queries on the state tables of one `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _retrying(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a transaction; once more if a concurrent insert won a unique-key race."""
        return self.db.retrying(work)

    @staticmethod
    def _find(session: Session, base: str, name: str) -> SourceRecord | None:
        query = select(SourceRecord).where(SourceRecord.base == base, SourceRecord.name == name)
        return session.scalars(query).one_or_none()

    # --- sources ----------------------------------------------------------------------------

    def add(
        self, base: str, name: str, kind: str, origin: str, *, replace: bool = False,
        added_by: str | int | None = None, added_by_name: str | None = None, content_hash: str | None = None,
        etag: str | None = None, last_modified: str | None = None, status: str = "ready",
        error: str | None = None, chunks: int = 0, pages: int = 0, options: Mapping[str, Any] | None = None,
    ) -> SourceRow:  # fmt: skip
        """Register a new source. An existing one of that name raises `SourceExistsError`, unless
        `replace`: then it is dropped (with its crawl pages) and this one takes its place."""
        _check(kind, status)
        values = dict(
            kind=kind, origin=origin, added_by=_id(added_by), added_by_name=added_by_name,
            content_hash=content_hash, etag=etag, last_modified=last_modified, status=status,
            error=error, chunks=chunks, pages=pages, options=dict(options or {}),
        )  # fmt: skip
        try:
            with self.db.session() as session:
                existing = self._find(session, base, name)
                if existing is not None:
                    if not replace:
                        raise SourceExistsError(name)
                    session.delete(existing)
                    session.flush()
                record = SourceRecord(base=base, name=name, **values)
                session.add(record)
                session.flush()
                return SourceRow.of(record)
        except IntegrityError:  # another process added the same name between our check and insert
            if not replace:
                raise SourceExistsError(name) from None
            return self.add(base, name, replace=True, **values)

    def add_or_update(
        self, base: str, name: str, kind: str, origin: str, *,
        added_by: str | int | None = None, added_by_name: str | None = None, content_hash: str | None = None,
        etag: str | None = None, last_modified: str | None = None, status: str = "ready",
        error: str | None = None, chunks: int = 0, pages: int = 0, options: Mapping[str, Any] | None = None,
    ) -> SourceRow:  # fmt: skip
        """Create the source, or update it in place (same id, crawl pages kept). On update the
        original `added_by`/`added_by_name`/`added_at` stay (the audit log says who updated), and
        `options=None` keeps the stored options; every other field takes the given value."""
        _check(kind, status)

        def work(session: Session) -> SourceRow:
            record = self._find(session, base, name)
            if record is None:
                record = SourceRecord(
                    base=base, name=name, added_by=_id(added_by), added_by_name=added_by_name, options={}
                )
                session.add(record)
            record.kind, record.origin, record.content_hash = kind, origin, content_hash
            record.etag, record.last_modified = etag, last_modified
            record.status, record.error, record.chunks, record.pages = status, error, chunks, pages
            if options is not None:
                record.options = dict(options)
            record.updated_at = utcnow()
            session.flush()
            return SourceRow.of(record)

        return self._retrying(work)

    def set_options(self, base: str, name: str, options: Mapping[str, Any]) -> SourceRow:
        """Replace a source's options (its row must exist)."""

        def work(session: Session) -> SourceRow:
            record = self._find(session, base, name)
            if record is None:
                raise KeyError(name)
            record.options, record.updated_at = dict(options), utcnow()
            session.flush()
            return SourceRow.of(record)

        return self._retrying(work)

    def get(self, base: str, name: str) -> SourceRow | None:
        with self.db.session() as session:
            record = self._find(session, base, name)
            return None if record is None else SourceRow.of(record)

    def list(self, base: str) -> builtins.list[SourceRow]:
        """The sources of `base`, sorted by name (case-insensitively, then exactly)."""
        with self.db.session() as session:
            rows = [SourceRow.of(r) for r in session.scalars(select(SourceRecord).where(SourceRecord.base == base))]
        return sorted(rows, key=lambda row: (row.name.casefold(), row.name))

    def remove(self, base: str, name: str) -> bool:
        """Drop a source and its crawl pages; False when there was none of that name."""
        with self.db.session() as session:
            record = self._find(session, base, name)
            if record is None:
                return False
            session.execute(delete(CrawlPage).where(CrawlPage.source_id == record.id))
            session.execute(delete(SourceRecord).where(SourceRecord.id == record.id))
            return True

    def names(self, base: str, prefix: str = "", limit: int = 25) -> builtins.list[str]:
        """Names for Discord autocomplete: case-insensitive, names starting with `prefix` first,
        then names containing it, each group alphabetical; at most `limit`."""
        if limit <= 0:
            return []
        with self.db.session() as session:
            all_names = session.scalars(select(SourceRecord.name).where(SourceRecord.base == base)).all()
        needle = prefix.strip().casefold()
        ordered = sorted(all_names, key=lambda n: (n.casefold(), n))
        starts = [n for n in ordered if n.casefold().startswith(needle)]
        contains = [n for n in ordered if needle in n.casefold() and not n.casefold().startswith(needle)]
        return (starts + contains)[:limit]

    def bases(self) -> builtins.list[str]:
        """Every knowledge base that has sources or a recorded origin (the one cross-base query)."""
        with self.db.session() as session:
            names = set(session.scalars(select(SourceRecord.base).distinct()))
            names.update(session.scalars(select(KnowledgeBaseRecord.name)))
        return sorted(names)

    # --- crawl pages ------------------------------------------------------------------------

    def crawl_pages(self, source_id: int) -> dict[str, PageValidators]:
        """url -> (etag, last_modified) of every page the crawl source fetched last time."""
        with self.db.session() as session:
            pages = session.scalars(select(CrawlPage).where(CrawlPage.source_id == source_id))
            return {page.url: (page.etag, page.last_modified) for page in pages}

    def crawl_page_hashes(self, source_id: int) -> dict[str, str | None]:
        """url -> content hash of every page the crawl source fetched last time."""
        with self.db.session() as session:
            pages = session.scalars(select(CrawlPage).where(CrawlPage.source_id == source_id))
            return {page.url: page.content_hash for page in pages}

    def set_crawl_pages(self, source_id: int, pages: Mapping[str, tuple[str | None, ...]]) -> None:
        """Replace the source's pages: url -> (etag, last_modified) or (etag, last_modified, hash)."""
        with self.db.session() as session:
            if session.get(SourceRecord, source_id) is None:
                raise UnknownSourceError(f"There is no source with id {source_id}.")
            session.execute(delete(CrawlPage).where(CrawlPage.source_id == source_id))
            for url, validators in pages.items():
                etag, last_modified, content_hash, *_ = (*validators, None, None, None)
                session.add(
                    CrawlPage(
                        source_id=source_id, url=url, etag=etag,
                        last_modified=last_modified, content_hash=content_hash,
                    )
                )  # fmt: skip

    # --- audit log --------------------------------------------------------------------------

    def audit(
        self, *, base: str, actor_id: str | int, action: str, target: str | None = None,
        result: str = "ok", guild_id: str | int | None = None, actor_name: str | None = None,
        detail: str | None = None, added: int = 0, updated: int = 0, unchanged: int = 0,
        removed: int = 0, skipped: int = 0, failed: int = 0, at: datetime | None = None,
    ) -> None:  # fmt: skip
        """Record one change (`actor_id` is a Discord user id or "cli")."""
        if result not in AUDIT_RESULTS:
            raise ValueError(f"audit result must be one of {sorted(AUDIT_RESULTS)}, not {result!r}")
        with self.db.session() as session:
            session.add(
                AuditEntry(
                    base=base, guild_id=_id(guild_id), actor_id=str(actor_id), actor_name=actor_name,
                    action=action, target=target, result=result,
                    detail=None if detail is None else detail[:MAX_DETAIL_CHARS],
                    added=added, updated=updated, unchanged=unchanged, removed=removed,
                    skipped=skipped, failed=failed, at=at or utcnow(),
                )
            )  # fmt: skip

    def audit_log(self, base: str, limit: int = 20) -> builtins.list[AuditRow]:
        """The latest `limit` entries of `base`, newest first."""
        query = (
            select(AuditEntry)
            .where(AuditEntry.base == base)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(max(0, limit))
        )
        with self.db.session() as session:
            return [AuditRow.of(entry) for entry in session.scalars(query)]

    # --- per-server settings and bases ------------------------------------------------------

    def set_log_channel(self, guild_id: str | int, channel_id: str | int | None) -> None:
        """Set (or, with None, unset) the channel where a server's changes are announced."""

        def work(session: Session) -> None:
            config = session.get(GuildConfig, str(guild_id))
            if config is None:
                config = GuildConfig(guild_id=str(guild_id), extra={})
                session.add(config)
            config.log_channel_id = _id(channel_id)

        self._retrying(work)

    def log_channel(self, guild_id: str | int) -> str | None:
        with self.db.session() as session:
            config = session.get(GuildConfig, str(guild_id))
            return None if config is None else config.log_channel_id

    def set_base_origin(self, name: str, origin: str | None) -> None:
        """Remember the folder knowledge base `name` is built from (None: none)."""

        def work(session: Session) -> None:
            record = session.get(KnowledgeBaseRecord, name)
            if record is None:
                session.add(KnowledgeBaseRecord(name=name, origin=origin))
            else:
                record.origin = origin

        self._retrying(work)

    def base_origin(self, name: str) -> str | None:
        with self.db.session() as session:
            record = session.get(KnowledgeBaseRecord, name)
            return None if record is None else record.origin


def _check(kind: str, status: str) -> None:
    if kind not in SOURCE_KINDS:
        raise ValueError(f"source kind must be one of {sorted(SOURCE_KINDS)}, not {kind!r}")
    if status not in SOURCE_STATUSES:
        raise ValueError(f"source status must be one of {sorted(SOURCE_STATUSES)}, not {status!r}")
