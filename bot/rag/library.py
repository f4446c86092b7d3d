"""The source library: adding, replacing, removing, reloading and listing the sources of one
knowledge base (a Discord server's `guild-<id>`, or the host's `shared` one) as files in its folder.

Owns every source change end to end: validation (bytes are converted before they are stored,
so bad input never reaches the folder), naming (a source's name is its path in the folder: an
uploaded file, a fetched page plus its `<file>.source.json` sidecar, or a crawl's sub-folder),
the registry row and the audit entry; the steps every change is made of (the cross-process
lock, the atomic commit, re-indexing) are `bot.rag.library_steps`'. A change that fails leaves
folder, index and registry as they were. Every method takes the base name and touches nothing
of another base. Methods block: call them in a thread from a loop.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bot.rag.access import Visibility
from bot.rag.curated import ANSWER_LIMIT, CURATED, MODERATORS, QUESTION_LIMIT, SOURCES_LIMIT, Correction
from bot.rag.errors import SourceError, UnknownSourceError
from bot.rag.holdings import holdings
from bot.rag.index.registry import SHARED
from bot.rag.ingest.convert import convert, detect_suffix
from bot.rag.ingest.sources import SIDECAR_SUFFIX
from bot.rag.ingest.url_safety import check_url
from bot.rag.ingest.web import WebFetcher
from bot.rag.library_channels import KIND as CHANNEL_KIND
from bot.rag.library_channels import ChannelSources
from bot.rag.library_files import (
    Files,
    FolderChange,
    PageChanges,
    Progress,
    fetch_web,
    say,
    sha256,
    source_name,
)
from bot.rag.library_steps import SourceChange, _chunks_of, guild_of
from bot.rag.models import IngestReport
from bot.state import SourceExistsError, SourceRow

__all__ = ["SHARED", "SourceChange", "SourceExistsError", "SourceLibrary", "guild_of"]


@dataclass
class Refetch:
    """Web sources being fetched again: the folder change, the fetcher, the index once rebuilt."""

    change: FolderChange
    fetcher: WebFetcher
    report: IngestReport | None = None


class SourceLibrary(ChannelSources):  # Discord channel sources: bot.rag.library_channels
    """Source changes of knowledge bases, over settings, the bases' indexes and the state database."""

    def list(self, base: str) -> builtins.list[SourceRow]:
        """What the base holds, as every listing shows it (`bot.rag.holdings`)."""
        return [held.row for held in holdings(self.bases, self.registry, base)]

    def names(self, base: str, prefix: str = "") -> builtins.list[str]:
        return self.registry.names(base, prefix)

    def set_log_channel(self, base: str, channel_id: str | int | None, *, actor_id: str | int,
                        actor_name: str | None) -> None:
        if (guild := guild_of(base)) is None:
            raise SourceError("Only a server's knowledge base has a log channel.")
        self.registry.set_log_channel(guild, channel_id)
        self._audit(base, "log-channel", None if channel_id is None else str(channel_id), (actor_id, actor_name), "ok")

    # --- changes ------------------------------------------------------------------------
    def add_file(self, base: str, filename: str, data: bytes, *, actor_id: str | int, actor_name: str | None,
                 name: str | None = None, origin: str | None = None, index: bool = True, replace: bool = False,
                 progress: Progress | None = None, visibility: Visibility | None = None) -> SourceChange:
        """Validate one file, store it as a new source and re-index (`index=False`: store only).
        `replace`: put it in the place of the file source of that name; the old one serves until
        the new index is built, and stays if the new file fails (a replacement keeps the old
        one's visibility unless given one). `visibility`: who may see it (default everyone)."""
        actor, action = (actor_id, actor_name), "replace" if replace else "add"
        with self._failure_audited(base, action, name or filename, actor):
            say(progress, f"Checking {filename}…")
            convert(data, filename, max_bytes=self.settings.max_source_bytes)
            target = source_name(name or filename, detect_suffix(filename))
            files: Files = {target: (data, None)}
            if replace:
                self._existing(base, target, "file")
                if (self.folder(base) / f"{target}{SIDECAR_SUFFIX}").exists():
                    files[f"{target}{SIDECAR_SUFFIX}"] = None
            else:
                self._refuse_existing(base, target)
            fields: dict[str, Any] = {"content_hash": sha256(data)}
            previous = self.registry.get(base, target) if replace and visibility is not None else None
            if previous is not None:  # the new visibility holds before the new text serves
                self.registry.set_options(base, target, visibility.with_options(previous.options))  # type: ignore[union-attr]
            elif visibility is not None:
                fields["options"] = visibility.with_options({})
            try:
                return self._commit(base, action, target, "file", origin or filename, files, fields, actor, index,
                                    progress)
            except BaseException:
                if previous is not None:  # the old file stays: so does its visibility
                    self.registry.set_options(base, target, previous.options)
                raise

    def add_url(self, base: str, url: str, *, crawl: bool = False, max_pages: int | None = None,
                max_depth: int | None = None, name: str | None = None, actor_id: str | int, actor_name: str | None,
                index: bool = True, progress: Progress | None = None, visibility: Visibility | None = None) -> SourceChange:
        """Fetch one page (or crawl the site's folder under it), validate, store and re-index.
        Without a `name`, the source is named after the first page's title (else the URL),
        numbered when that name is taken; the same URL twice is refused."""
        actor, kind = (actor_id, actor_name), "crawl" if crawl else "url"
        with self._failure_audited(base, "add", name or url, actor):
            check_url(url, self.settings)
            if name is None:
                self._refuse_same_url(base, url, kind)
            elif crawl:
                self._refuse_existing(base, source_name(name))
            fetcher = WebFetcher(self.settings)
            try:
                options = {"max_pages": max_pages, "max_depth": max_depth} if crawl else None
                target, files, fields, notes = fetch_web(fetcher, kind, url, self.folder(base), name=name, options=options,
                                                          max_bytes=self.settings.max_source_bytes, progress=progress,
                                                          free=lambda candidate: self._name_free(base, candidate))
            finally:
                fetcher.close()
            self._refuse_existing(base, target)
            if visibility is not None:
                options = visibility.with_options(options or {})
            return self._commit(base, "add", target, kind, url, files, {**fields, "options": options}, actor, index,
                                progress, notes)

    def add_curated(self, base: str, correction: Correction, *, actor_id: str | int, actor_name: str | None,
                    visibility: Visibility, progress: Progress | None = None) -> SourceChange:
        """Store a moderators' correction as a curated source (`bot.rag.curated`) and re-index:
        one markdown document named after its question, cited as "answered by the moderators"
        with the correction's link, with the given visibility. A correction of a question
        already curated (the same name) replaces that one."""
        actor = (actor_id, actor_name)
        with self._failure_audited(base, "curate", correction.question[:QUESTION_LIMIT], actor):
            if guild_of(base) is None:
                raise SourceError("Only a server's knowledge base holds the moderators' answers.")
            question, answer = " ".join(correction.question.split()), correction.answer.strip()
            if not question or not answer:
                raise SourceError("A correction needs the question and the right answer.")
            if len(question) > QUESTION_LIMIT or len(answer) > ANSWER_LIMIT or len(correction.sources) > SOURCES_LIMIT:
                raise SourceError(f"A correction holds at most {QUESTION_LIMIT} characters of question, "
                                  f"{ANSWER_LIMIT} of answer and {SOURCES_LIMIT} of sources.")
            correction = Correction(question, answer, correction.sources.strip(), correction.link)
            # Names are cut and their symbols replaced ("C++ build?" and "C# build?" would meet):
            # a digest of the question keeps two questions apart and the same one in its place.
            digest = sha256(question.casefold().encode())[:8]
            target = source_name(f"curated - {question[:60]} {digest}", ".md")
            existing = self.registry.get(base, target)
            if existing is not None and existing.kind != CURATED:
                raise SourceExistsError(target)
            files: Files = {target: (correction.document(), {"title": MODERATORS, "url": correction.link})}
            fields = {"content_hash": sha256(correction.document()),
                      "options": correction.with_options(visibility.with_options({}))}
            action = "replace" if existing is not None else "add"
            return self._commit(base, action, target, CURATED, correction.link or "moderators", files, fields, actor,
                                True, progress)

    def set_visibility(self, base: str, name: str, visibility: Visibility, *, actor_id: str | int,
                       actor_name: str | None) -> SourceRow:
        """Who may see a source from now on; audited. The shared base's sources stay public, and
        a Discord channel's are seen where the channel is."""
        actor = (actor_id, actor_name)
        with self._failure_audited(base, "visibility", name, actor):
            if guild_of(base) is None and visibility.kind != "everyone":
                raise SourceError("The shared sources are public; only a server's own sources can be limited.")
            if (row := self.registry.get(base, name)) is None:
                raise UnknownSourceError(f"There is no source called '{name}' in this knowledge base.")
            if row.kind == CHANNEL_KIND:  # its channel's permissions decide, at every sync
                raise SourceError(f"`{row.name}` is seen where its channel is; change who may view the channel instead.")
            row = self.registry.set_options(base, row.name, visibility.with_options(row.options))
        self._audit(base, "visibility", name, actor, "ok", visibility.describe())
        return row

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
            with self._refetching(base) as work:
                for row in [r for r in self.registry.list(base) if r.kind in ("url", "crawl")]:
                    updates[row.name], more, _ = self._refetch(row, work, progress)
                    notes += [f"{row.name}: {note}" for note in more]
                work.report = report = self._ingest(base, progress)
                self._record(base, self.registry.list(base), updates)
        self._audit(base, "reload", None, actor, "ok" if report.rebuilt else "unchanged", "\n".join(notes) or None, report)
        result = f"reloaded the sources — index: {report}" + (f" ({len(notes)} problem(s))" if notes else "")
        return SourceChange("reload", base, "", None, result, report, self.log_channel(base), notes=tuple(notes))

    def refresh(self, base: str, name: str, *, actor_id: str | int, actor_name: str | None,
                progress: Progress | None = None, index: bool = True) -> SourceChange:
        """Re-fetch one web source now, as `reload` does every one: conditional requests (a page
        answering 304 is not downloaded; one whose bytes are the same is neither converted nor
        embedded again), a crawl's pages that are gone (404/410, or no longer linked) retired,
        then re-index (`index=False`: store only). A source that cannot be fetched keeps its
        stored copy serving, and SourceError says why. The change's `pages` say what changed."""
        actor = (actor_id, actor_name)
        with self._failure_audited(base, "refresh", name, actor), self._locked(base):
            if (row := self.registry.get(base, name)) is None:
                raise UnknownSourceError(f"There is no source called '{name}' in this knowledge base.")
            if row.kind not in ("url", "crawl"):
                raise SourceError(f"`{row.name}` is a {row.kind} source: only web pages and crawls are fetched again.")
            with self._refetching(base) as work:
                fields, notes, pages = self._refetch(row, work, progress)
                if fields.get("status") == "failed":
                    self._save(row, **fields)
                    raise SourceError(f"{fields['error'].rstrip('.')}. The stored copy keeps serving.")
                work.report = report = self._ingest(base, progress) if index else None
                self._record(base, [row], {row.name: fields}, indexed=index)
        chunks = self.registry.get(base, row.name).chunks if index else 0  # type: ignore[union-attr]
        detail = "\n".join([str(pages), *notes])
        self._audit(base, "refresh", row.name, actor, "ok" if pages else "unchanged", detail, report)
        result = f"refreshed `{row.name}`: {pages}" + (f" — index: {report}" if report is not None else "")
        result += f" ({len(notes)} problem(s))" if notes else ""
        return SourceChange("refresh", base, row.name, row.kind, result, report, self.log_channel(base), chunks,
                            tuple(notes), pages)

    @contextlib.contextmanager
    def _refetching(self, base: str) -> Iterator[Refetch]:
        """Web sources fetched again into one change of the base's folder: committed when the
        block ends, rolled back (the index read again if it was rebuilt) when it raises."""
        work = Refetch(FolderChange(self._staging()), WebFetcher(self.settings))
        try:
            yield work
        except BaseException:
            self._roll_back(base, work.change, indexed=work.report is not None)
            raise
        finally:
            work.fetcher.close()
        work.change.commit()

    def _refetch(self, row: SourceRow, work: Refetch,
                 progress: Progress | None) -> tuple[dict[str, Any], builtins.list[str], PageChanges]:
        """Fetch one web source again into `work`'s folder change (conditional requests): the
        registry fields to record, notes on pages that failed, and what changed. A source that
        cannot be fetched changes nothing: its fields say it failed, its stored copy serves."""
        say(progress, f"Checking {row.name} for changes…")
        folder = self.folder(row.base)
        try:
            known = self.registry.crawl_pages(row.id) if row.kind == "crawl" else None
            _, files, fields, notes = fetch_web(work.fetcher, row.kind, row.origin, folder, options=row.options,
                                                row=row, known=known, max_bytes=self.settings.max_source_bytes,
                                                progress=progress)
            pages = PageChanges.of(folder, files)
            work.change.apply(folder, files)
        except SourceError as exc:  # e.g. the site is down: the stored copy keeps serving
            return {"status": "failed", "error": str(exc)}, [f"{exc} (the stored copy keeps serving)"], PageChanges()
        return fields, notes, pages

    def _record(self, base: str, rows: builtins.list[SourceRow], updates: dict[str, dict[str, Any]],
                indexed: bool = True) -> None:
        """Each row's new fields (`updates`), with, after an ingest, its chunks as served and status."""
        counts = {info.name: info.chunks for info in self.bases.get(base).sources()} if indexed else {}
        for row in rows:
            fields = {"status": "ready", "error": None} if indexed else {}
            fields.update(updates.get(row.name, {}))
            if pages := fields.pop("crawl_pages", None):
                self.registry.set_crawl_pages(row.id, pages)
            if indexed:
                fields["chunks"] = _chunks_of(counts, row.name, row.kind)
            self._save(row, **fields)
