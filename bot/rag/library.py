"""The source library: adding, removing, reloading and listing the sources of one knowledge
base (a Discord server's `guild-<id>`, or the host's `shared` one) as files in its folder.

Owns every source change end to end: validation (bytes are converted before they are stored,
so bad input never reaches the folder), naming (a source's name is its path in the folder: an
uploaded file, a fetched page plus its `<file>.source.json` sidecar, or a crawl's sub-folder),
the cross-process ingest lock, re-indexing the base, the registry row and the audit entry. A
change that fails leaves folder, index and registry as they were. Every method takes the base
name and touches nothing of another base. Methods block: call them in a thread from a loop.
"""

from __future__ import annotations

import builtins
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.rag.errors import RagError, ReloadInProgressError, SourceError, UnknownSourceError
from bot.rag.holdings import holdings
from bot.rag.index.registry import SHARED, KnowledgeBases
from bot.rag.index.store import SENTENCES
from bot.rag.ingest.convert import convert, detect_suffix
from bot.rag.ingest.sources import SIDECAR_SUFFIX
from bot.rag.ingest.url_safety import check_url
from bot.rag.ingest.web import WebFetcher
from bot.rag.library_files import Files, FolderChange, Progress, fetch_web, say, sha256, source_name, url_slug
from bot.rag.models import IngestReport
from bot.settings import Settings
from bot.state import Database, SourceExistsError, SourceRegistry, SourceRow, ingest_lock

__all__ = ["SHARED", "SourceChange", "SourceExistsError", "SourceLibrary", "guild_of"]
LOCK_TIMEOUT, BUSY_WAIT = 600.0, 60.0  # waits for another change of the base / a reload the base itself runs


def guild_of(base: str) -> str | None:
    return base.removeprefix("guild-") if base.startswith("guild-") else None


@dataclass(frozen=True)
class SourceChange:
    """What one change did: shown to the moderator and posted to the server's log channel."""

    action: str  # "add" | "remove" | "reload"
    base: str
    name: str  # the source ("" for a reload of the whole base)
    kind: str | None
    result: str  # one line saying what happened
    report: IngestReport | None  # None: stored but not indexed (the shared folder, from the CLI)
    log_channel_id: str | None
    chunks: int = 0
    notes: tuple[str, ...] = ()  # pages or sources that failed or were left out


class SourceLibrary:
    """Source changes of knowledge bases, over settings, the bases' indexes and the state database."""

    def __init__(self, settings: Settings, bases: KnowledgeBases, db: Database,
                 registry: SourceRegistry | None = None) -> None:
        self.settings, self.bases, self.db, self.registry = settings, bases, db, registry or SourceRegistry(db)

    def folder(self, base: str) -> Path:
        return self.bases.get(base).folder()  # the shared base: the folder its index is built from

    def list(self, base: str) -> builtins.list[SourceRow]:
        """What the base holds, as every listing shows it (`bot.rag.holdings`)."""
        return [held.row for held in holdings(self.bases, self.registry, base)]

    def names(self, base: str, prefix: str = "") -> builtins.list[str]:
        return self.registry.names(base, prefix)

    def log_channel(self, base: str) -> str | None:
        return self.registry.log_channel(guild) if (guild := guild_of(base)) else None

    def set_log_channel(self, base: str, channel_id: str | int | None, *, actor_id: str | int,
                        actor_name: str | None) -> None:
        if (guild := guild_of(base)) is None:
            raise SourceError("Only a server's knowledge base has a log channel.")
        self.registry.set_log_channel(guild, channel_id)
        self._audit(base, "log-channel", None if channel_id is None else str(channel_id), (actor_id, actor_name), "ok")

    # --- changes ------------------------------------------------------------------------
    def add_file(self, base: str, filename: str, data: bytes, *, actor_id: str | int, actor_name: str | None,
                 name: str | None = None, origin: str | None = None, index: bool = True,
                 progress: Progress | None = None) -> SourceChange:
        """Validate one file, store it as a new source and re-index (`index=False`: store only)."""
        actor = (actor_id, actor_name)
        with self._failure_audited(base, "add", name or filename, actor):
            say(progress, f"Checking {filename}…")
            convert(data, filename, max_bytes=self.settings.max_source_bytes)
            target = source_name(name or filename, detect_suffix(filename))
            self._refuse_existing(base, target)
            return self._commit(base, "add", target, "file", origin or filename, {target: (data, None)},
                                {"content_hash": sha256(data)}, actor, index, progress)

    def add_url(self, base: str, url: str, *, crawl: bool = False, max_pages: int | None = None,
                max_depth: int | None = None, name: str | None = None, actor_id: str | int, actor_name: str | None,
                index: bool = True, progress: Progress | None = None) -> SourceChange:
        """Fetch one page (or crawl the site's folder under it), validate, store and re-index."""
        actor, kind = (actor_id, actor_name), "crawl" if crawl else "url"
        with self._failure_audited(base, "add", name or url, actor):
            check_url(url, self.settings)
            if crawl:
                self._refuse_existing(base, source_name(name or url_slug(url)))
            fetcher = WebFetcher(self.settings)
            try:
                options = {"max_pages": max_pages, "max_depth": max_depth} if crawl else None
                target, files, fields, notes = fetch_web(fetcher, kind, url, self.folder(base), name=name, options=options,
                                                          max_bytes=self.settings.max_source_bytes, progress=progress)
            finally:
                fetcher.close()
            self._refuse_existing(base, target)
            return self._commit(base, "add", target, kind, url, files, {**fields, "options": options}, actor, index,
                                progress, notes)

    def remove(self, base: str, name: str, *, actor_id: str | int, actor_name: str | None,
               index: bool = True) -> SourceChange:
        """Delete a source's files and re-index the base."""
        actor = (actor_id, actor_name)
        with self._failure_audited(base, "remove", name, actor):
            if (row := self.registry.get(base, name)) is None:
                raise UnknownSourceError(f"There is no source called '{name}' in this knowledge base.")
            return self._commit(base, "remove", row.name, row.kind, row.origin, {row.name: None}, {}, actor, index, None)

    def reload(self, base: str, *, actor_id: str | int, actor_name: str | None,
               progress: Progress | None = None) -> SourceChange:
        """Re-fetch web sources (conditional GET: unchanged pages are not downloaded again),
        re-read every file and re-index; a page that cannot be fetched keeps its stored copy."""
        actor, notes, updates = (actor_id, actor_name), builtins.list[str](), dict[str, dict[str, Any]]()
        with self._failure_audited(base, "reload", None, actor), self._locked(base):
            if not self.registry.list(base) and not self.folder(base).is_dir():
                raise SourceError("This knowledge base has no sources yet; add one first.")
            change, fetcher, report = FolderChange(self._staging()), WebFetcher(self.settings), None
            try:
                for row in [r for r in self.registry.list(base) if r.kind in ("url", "crawl")]:
                    say(progress, f"Checking {row.name} for changes…")
                    try:
                        known = self.registry.crawl_pages(row.id) if row.kind == "crawl" else None
                        _, files, updates[row.name], more = fetch_web(
                            fetcher, row.kind, row.origin, self.folder(base), options=row.options, row=row,
                            known=known, max_bytes=self.settings.max_source_bytes, progress=progress)
                        change.apply(self.folder(base), files)
                    except SourceError as exc:  # e.g. the site is down: the stored copy keeps serving
                        more, updates[row.name] = [f"{exc} (the stored copy keeps serving)"], {"status": "failed",
                                                                                               "error": str(exc)}
                    notes += [f"{row.name}: {note}" for note in more]
                report = self._ingest(base, progress)
                counts = {info.name: info.chunks for info in self.bases.get(base).sources()}
                for row in self.registry.list(base):
                    fields = {"status": "ready", "error": None, **updates.get(row.name, {})}
                    if pages := fields.pop("crawl_pages", None):
                        self.registry.set_crawl_pages(row.id, pages)
                    self._save(row, chunks=_chunks_of(counts, row.name, row.kind), **fields)
            except BaseException:
                self._roll_back(base, change, indexed=report is not None)
                raise
            finally:
                fetcher.close()
            change.commit()
        self._audit(base, "reload", None, actor, "ok" if report.rebuilt else "unchanged", "\n".join(notes) or None, report)
        result = f"reloaded the sources — index: {report}" + (f" ({len(notes)} problem(s))" if notes else "")
        return SourceChange("reload", base, "", None, result, report, self.log_channel(base), notes=tuple(notes))

    # --- the common steps -----------------------------------------------------------------
    def _commit(self, base: str, action: str, name: str, kind: str, origin: str, files: Files, fields: dict[str, Any],
                actor: tuple[str | int, str | None], index: bool, progress: Progress | None,
                notes: builtins.list[str] | None = None) -> SourceChange:
        """Under the base's lock: change the folder, re-index, record the row and the audit entry;
        on any failure, undo the folder (and the index) and record nothing."""
        with self._locked(base):
            if action == "add":
                self._refuse_existing(base, name)
            change, report, chunks = FolderChange(self._staging()), None, 0
            before = self._indexed_names(base) if index and action == "add" else set()
            try:
                change.apply(self.folder(base), files)
                report = self._ingest(base, progress) if index else None
                if action == "remove":
                    self.registry.remove(base, name)
                else:
                    chunks = self._indexed(base, name, kind, report, before) if report is not None else 0
                    pages = fields.pop("crawl_pages", None)
                    row = self.registry.add(base, name, kind, origin, added_by=actor[0], added_by_name=actor[1],
                                            status="ready" if index else "pending", chunks=chunks, **fields)
                    if pages:
                        self.registry.set_crawl_pages(row.id, pages)
            except BaseException:
                self._roll_back(base, change, indexed=report is not None)
                raise
            change.commit()
        self._audit(base, action, name, actor, "ok", "\n".join(notes or []) or None, report)
        if report is None:
            verb = "added" if action == "add" else "removed"
            result = f"{verb} `{name}` ({kind}) in the folder; the next ingest or reload indexes it"
        elif action == "add":
            result = f"added `{name}` ({kind}, {chunks} chunk{'' if chunks == 1 else 's'}) — index: {report}"
        else:
            result = f"removed `{name}` ({kind}) — index: {report}"
        return SourceChange(action, base, name, kind, result, report, self.log_channel(base), chunks, tuple(notes or []))

    def _ingest(self, base: str, progress: Progress | None) -> IngestReport:
        say(progress, "Indexing… (I keep answering from the current index meanwhile)")

        def embedded(done: int, total: int, what: str) -> None:
            if what == SENTENCES:  # the new index serves; its sentence pass follows
                say(progress, f"Indexed: answering from the new index. Preparing its sentences: {done}/{total} chunk(s)…")
            else:
                say(progress, f"Indexing: {done}/{total} new chunk(s) embedded…")

        deadline = time.monotonic() + BUSY_WAIT
        while True:
            try:
                return self.bases.get(base).ingest(progress=embedded if progress else None)
            except ReloadInProgressError:  # e.g. the first question's start-up ingest of this base
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def _indexed_names(self, base: str) -> set[str]:
        try:
            return {info.name for info in self.bases.get(base).sources()}
        except RagError:  # a new base (nothing indexed yet), or a store that is down: ingest says why
            return set()

    def _indexed(self, base: str, name: str, kind: str, report: IngestReport, before: set[str]) -> int:
        """Chunks the index now holds of a new source. SourceError (with the loader's why) when it
        holds none, or when the new source pushed out one indexed before (the loader keeps one
        copy of a text: the first by name)."""
        counts = {i.name: i.chunks for i in self.bases.get(base).sources()}
        problems = [item for key in ("failed", "skipped") if isinstance(item := getattr(report, key, None), list)]
        why = {str(file): reason for file, reason in sum(problems, [])}
        for lost in sorted(before - set(counts)):
            if why.get(lost, "").startswith("same text as"):
                raise SourceError(f"`{name}` has the same text as `{lost}`, which is already a source.")
            raise SourceError(f"adding `{name}` would drop `{lost}` from the index ({why.get(lost, 'not loaded')}).")
        if chunks := _chunks_of(counts, name, kind):
            return chunks
        mine = [reason for file, reason in why.items() if file == name or file.startswith(f"{name}/")]
        raise SourceError(f"`{name}` could not be indexed" + (f": {mine[0]}" if mine else "."))

    def _roll_back(self, base: str, change: FolderChange, indexed: bool) -> None:
        """Put the folder back; when the index already holds the change, read the folder again."""
        change.rollback()
        if indexed:
            with contextlib.suppress(RagError):
                self.bases.get(base).ingest()

    def _refuse_existing(self, base: str, name: str) -> None:
        """A name is one source in what a server's members are answered from: its own base
        and the shared one (a citation must never be read from the wrong file)."""
        path = self.folder(base) / name
        if self.registry.get(base, name) is not None or path.exists() or path.with_name(path.name + SIDECAR_SUFFIX).exists():
            raise SourceExistsError(name)
        if base != SHARED and (self.folder(SHARED) / name).exists():
            raise SourceExistsError(name, "among the shared sources every server is answered from")

    def _save(self, row: SourceRow, **changes: Any) -> None:
        keep = {k: getattr(row, k) for k in ("content_hash", "etag", "last_modified", "status", "error", "chunks", "pages")}
        self.registry.add_or_update(row.base, row.name, row.kind, row.origin, **{**keep, **changes})

    def _staging(self) -> Path:
        return self.settings.data_dir / "staging" / uuid.uuid4().hex

    @contextlib.contextmanager
    def _locked(self, base: str) -> Iterator[None]:
        with ingest_lock(self.db, base, lock_dir=self.settings.data_dir / "locks", timeout=LOCK_TIMEOUT):
            yield

    def _audit(self, base: str, action: str, target: str | None, actor: tuple[str | int, str | None], result: str,
               detail: str | None = None, report: IngestReport | None = None) -> None:
        counts = {k: (len(v) if isinstance(v := getattr(report, k, 0), list | tuple) else int(v or 0))
                  for k in ("added", "updated", "unchanged", "removed", "skipped", "failed")}
        self.registry.audit(base=base, guild_id=guild_of(base), actor_id=actor[0], actor_name=actor[1], action=action,
                            target=target, result=result, detail=detail, **counts)

    @contextlib.contextmanager
    def _failure_audited(self, base: str, action: str, target: str | None,
                         actor: tuple[str | int, str | None]) -> Iterator[None]:
        try:
            yield
        except RagError as exc:
            with contextlib.suppress(Exception):  # the state database may be what failed
                self._audit(base, action, target, actor, "failed", str(exc))
            raise


def _chunks_of(counts: dict[str, int], name: str, kind: str) -> int:
    return sum(c for n, c in counts.items() if n.startswith(f"{name}/")) if kind == "crawl" else counts.get(name, 0)
