"""The steps every source change of `bot.rag.library` is made of: the base's cross-process lock,
the atomic commit of a change (registry row, folder, index and audit entry, or nothing), the
recovery of an add a killed process left half done, and re-indexing the base.

An add is registered and audited as pending (marked in flight) before its files touch the
folder, then recorded as done, or undone whole when it fails. A process killed in between
leaves a row still marked in flight, which only a holder of the base's lock can see as stale:
the next change of that base (or the bot's start) removes its files and its row and audits it
as failed, so nothing is left that no listing shows and no remove can reach.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.rag.errors import RagError, ReloadInProgressError, SourceError
from bot.rag.holdings import FOLDER_KINDS
from bot.rag.index.registry import SHARED, KnowledgeBases
from bot.rag.index.store import SENTENCES
from bot.rag.ingest.sources import SIDECAR_SUFFIX
from bot.rag.library_files import Files, FolderChange, PageChanges, Progress, say
from bot.rag.models import IngestReport
from bot.settings import Settings
from bot.state import Database, SourceExistsError, SourceRegistry, SourceRow, ingest_lock
from bot.state.locks import LockTimeoutError

log = logging.getLogger(__name__)
LOCK_TIMEOUT, BUSY_WAIT = 600.0, 60.0  # waits for another change of the base / a reload the base itself runs
IN_FLIGHT = "being added: a change that stops before it finishes is undone on the next one"
Actor = tuple[str | int, str | None]


def guild_of(base: str) -> str | None:
    return base.removeprefix("guild-") if base.startswith("guild-") else None


@dataclass(frozen=True)
class SourceChange:
    """What one change did: shown to the moderator and posted to the server's log channel."""

    action: str  # "add" | "replace" | "remove" | "reload" | "refresh"
    base: str
    name: str  # the source ("" for a reload of the whole base)
    kind: str | None
    result: str  # one line saying what happened
    report: IngestReport | None  # None: stored but not indexed (the shared folder, from the CLI)
    log_channel_id: str | None
    chunks: int = 0
    notes: tuple[str, ...] = ()  # pages or sources that failed or were left out
    pages: PageChanges | None = None  # a refresh: what changed in the source's pages


class LibrarySteps:
    """The common steps, over settings, the bases' indexes and the state database."""

    def __init__(self, settings: Settings, bases: KnowledgeBases, db: Database,
                 registry: SourceRegistry | None = None) -> None:
        self.settings, self.bases, self.db, self.registry = settings, bases, db, registry or SourceRegistry(db)

    def folder(self, base: str) -> Path:
        return self.bases.get(base).folder()  # the shared base: the folder its index is built from

    def log_channel(self, base: str) -> str | None:
        return self.registry.log_channel(guild) if (guild := guild_of(base)) else None

    def recover(self, base: str, *, wait: bool = True) -> builtins.list[str]:
        """Undo the adds of `base` a killed process left half done: their files and rows go, each
        audited as failed; the index is read again when it already served one. Returns their names.
        Without `wait`, a base whose lock another change holds raises LockTimeoutError at once."""
        with self._locked(base, LOCK_TIMEOUT if wait else 0.0):
            stale = [row for row in self.registry.list(base) if row.status == "pending" and row.error == IN_FLIGHT]
            if not stale:
                return []
            change = FolderChange(self._staging())
            change.apply(self.folder(base), dict.fromkeys(row.name for row in stale))
            change.commit()
            for row in stale:
                self.registry.remove(base, row.name)
                self._audit(base, "add", row.name, (row.added_by or "?", row.added_by_name), "failed",
                            "interrupted before it finished; its files were removed")
                log.warning("%s: the add of %s was interrupted; its files were removed", base, row.name)
            served = self._served(base)
            if any(_chunks_of(served, row.name, row.kind) for row in stale):
                with contextlib.suppress(RagError):
                    self._ingest(base, None)
            return [row.name for row in stale]

    def recover_all(self) -> builtins.list[str]:
        """`recover` every base that has sources (the bot's start), waiting for none: a base
        another change holds is skipped (that change, or the next one, recovers it)."""
        undone: builtins.list[str] = []
        for base in self.registry.bases():
            try:
                undone += [f"{base}: {name}" for name in self.recover(base, wait=False)]
            except LockTimeoutError:
                log.info("%s: another change is under way; its interrupted adds are undone by the next change", base)
        return undone

    # --- one change, whole or not at all ------------------------------------------------------
    def _commit(self, base: str, action: str, name: str, kind: str, origin: str, files: Files, fields: dict[str, Any],
                actor: Actor, index: bool, progress: Progress | None,
                notes: builtins.list[str] | None = None) -> SourceChange:
        """Under the base's lock: register an add as pending, change the folder, re-index, record
        the row as done and the audit entry; on any failure undo the folder (and the index) and
        the pending row. A "replace" overwrites a source of the same kind in place."""
        with self._locked(base):
            self.recover(base)
            previous = self._existing(base, name, kind) if action == "replace" else None
            if action == "add":
                self._refuse_existing(base, name)
                self.registry.add(base, name, kind, origin, added_by=actor[0], added_by_name=actor[1],
                                  status="pending", error=IN_FLIGHT, options=fields.get("options"))
                self._audit(base, "add", name, actor, "pending", "stored, then indexed" if index else "stored")
            change, report, chunks = FolderChange(self._staging()), None, 0
            before = self._indexed_names(base) if index and action != "remove" else set()
            try:
                change.apply(self.folder(base), files)
                report = self._ingest(base, progress) if index else None
                if action == "remove":
                    self.registry.remove(base, name)
                else:
                    chunks = self._indexed(base, name, kind, report, before) if report is not None else 0
                    pages = fields.pop("crawl_pages", None)
                    who = {"added_by": actor[0], "added_by_name": actor[1]} if previous is None else {
                        "added_by": previous.added_by, "added_by_name": previous.added_by_name}
                    row = self.registry.add_or_update(base, name, kind, origin, status="ready" if index else "pending",
                                                      error=None, chunks=chunks, **who, **fields)
                    if pages:
                        self.registry.set_crawl_pages(row.id, pages)
            except BaseException:
                self._roll_back(base, change, indexed=report is not None)
                if action == "add":
                    with contextlib.suppress(Exception):  # the state database may be what failed
                        self.registry.remove(base, name)
                raise
            change.commit()
        self._audit(base, action, name, actor, "ok", "\n".join(notes or []) or None, report)
        verb = {"add": "added", "replace": "replaced", "remove": "removed"}[action]
        if report is None:
            result = f"{verb} `{name}` ({kind}) in the folder; the next ingest or reload indexes it"
        elif action != "remove":
            result = f"{verb} `{name}` ({kind}, {chunks} chunk{'' if chunks == 1 else 's'}) — index: {report}"
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

    def _served(self, base: str) -> dict[str, int]:
        """Chunks per source of the version serving now (nothing is built to find out)."""
        try:
            return {name: info.chunks for name, info in self.bases.get(base).served_sources().items()}
        except Exception:  # noqa: BLE001 - a store that is down: ingest says why
            return {}

    def _indexed_names(self, base: str) -> set[str]:
        return set(self._served(base))

    def _indexed(self, base: str, name: str, kind: str, report: IngestReport, before: set[str]) -> int:
        """Chunks the index now holds of a new (or replacing) source. SourceError (with the
        loader's or the budget's why) when it, or a page of it, failed: its previous version, if
        any, is what still serves. SourceError too when it holds none, or when the new source
        pushed out one indexed before (the loader keeps one copy of a text: the first by name)."""
        counts = {i.name: i.chunks for i in self.bases.get(base).sources()}
        for file, reason in report.failed:
            if file == name or file.startswith(f"{name}/"):
                page = f" (its page `{file}`)" if file != name else ""
                raise SourceError(f"`{name}` could not be indexed{page}: {reason}")
        why = {str(file): reason for file, reason in [*report.failed, *report.skipped]}
        for lost in sorted(before - set(counts)):
            if lost == name and why.get(name, "").startswith("same text as"):
                raise SourceError(f"`{name}` has the {why[name]}, which is already a source.")
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

    def _existing(self, base: str, name: str, kind: str) -> SourceRow | None:
        """What a replace overwrites: a source of that kind in this base (the shared folder: also
        a file the host put there), never one of the shared sources from a server's base."""
        row = self.registry.get(base, name)
        if row is not None and row.kind != kind:
            raise SourceError(f"`{name}` is a {row.kind} source, not a {kind}: remove it first to replace it.")
        if row is None and not (base == SHARED and (self.folder(base) / name).is_file()):
            raise SourceError(f"There is no source called `{name}` to replace; add it without replacing.")
        return row

    def _refuse_existing(self, base: str, name: str) -> None:
        """A name is one source in what a server's members are answered from: its own base
        and the shared one (a citation must never be read from the wrong file)."""
        path, row = self.folder(base) / name, self.registry.get(base, name)
        if row is not None and row.error == IN_FLIGHT:
            return  # being added, or left by a killed add: decided under the lock, after `recover`
        if row is not None or path.exists() or path.with_name(path.name + SIDECAR_SUFFIX).exists():
            raise SourceExistsError(name, replaceable=True)
        if base != SHARED and (self.folder(SHARED) / name).exists():
            raise SourceExistsError(name, "among the shared sources every server is answered from")

    def _name_free(self, base: str, name: str) -> bool:
        """Whether a new source may take `name` (nor one being added elsewhere holds it)."""
        try:
            self._refuse_existing(base, name)
        except SourceExistsError:
            return False
        return self.registry.get(base, name) is None

    def _refuse_same_url(self, base: str, url: str, kind: str) -> None:
        """A web source added again under a name of its own making would be a second copy (a
        reload fetches it again; an explicit name makes a second one on purpose)."""
        for row in self.registry.list(base):
            if row.kind == kind and row.origin == url:
                raise SourceExistsError(row.name, "for that URL")

    def _save(self, row: SourceRow, **changes: Any) -> None:
        keep = {k: getattr(row, k) for k in ("content_hash", "etag", "last_modified", "status", "error", "chunks", "pages")}
        self.registry.add_or_update(row.base, row.name, row.kind, row.origin, **{**keep, **changes})

    def _staging(self) -> Path:
        return self.settings.data_dir / "staging" / uuid.uuid4().hex

    @contextlib.contextmanager
    def _locked(self, base: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        with ingest_lock(self.db, base, lock_dir=self.settings.data_dir / "locks", timeout=timeout):
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
    return sum(c for n, c in counts.items() if n.startswith(f"{name}/")) if kind in FOLDER_KINDS else counts.get(name, 0)
