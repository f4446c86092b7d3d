"""One knowledge base: the lifecycle of its index. It starts from the newest ready version
(building one from its sources when there is none), ingests and reloads one at a time with
the old version serving until the new one is ready (and after a failed reload), builds from
and lists the newest version even when another process published it, follows versions
another process published to a shared Chroma server, and keeps the live index (made by
`bot.rag.index.serving`) that answers from the active version."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bot.rag.answer.sentences import sentence_texts
from bot.rag.components import Chunker, Components, describe_store_error
from bot.rag.errors import IndexUnavailableError, RagError, ReloadInProgressError, SourceError
from bot.rag.index.budget import within_budget
from bot.rag.index.live import LiveIndex
from bot.rag.index.sentence_pass import embed_sentences, new_chunk_ids
from bot.rag.index.serving import live_index
from bot.rag.index.store import ChromaIndex, Progress
from bot.rag.index.version import IndexVersion
from bot.rag.ingest.sources import LoadedSources, NoSourcesError, load_sources
from bot.rag.models import IngestReport, SourceDocument, SourceInfo
from bot.state.locks import LockTimeoutError

log = logging.getLogger(__name__)


class KnowledgeBase:
    """The index of one set of sources (a folder), with its versions in Chroma."""

    def __init__(self, name: str, components: Components, collection_prefix: str, sources_dir: Path,
                 remember_folder: bool = False, may_become_empty: bool = False) -> None:
        self.name = name
        self.components = components
        self.settings = components.settings
        self.collection_prefix = collection_prefix
        self.sources_dir = sources_dir
        self._remember_folder = remember_folder  # follow the folder the index was last built from
        self._may_become_empty = may_become_empty  # a server's base whose last source was removed
        self.last_reload: IngestReport | None = None
        self._live: LiveIndex | None = None
        self._checked_at = time.monotonic()
        self._reload_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._absent_until = 0.0  # `live_if_built`: no index was found before this time
        self.updating_elsewhere = False  # the last `refresh` found another process building this base

    @property
    def index(self) -> ChromaIndex:
        persist_dir = None if self.settings.uses_chroma_server else self.settings.vectorstore_dir
        return ChromaIndex(self.components.chroma, self.collection_prefix, persist_dir=persist_dir,
                           cache_dir=self.settings.cache_dir / "index")

    # --- start and follow --------------------------------------------------------------
    def start(self) -> LiveIndex:
        """The live index: the newest ready version, built from the sources if none exists."""
        live = self._live
        if live is not None:
            return self._follow_other_processes(live)
        with self._start_lock:
            if self._live is None:
                try:
                    name = self.index.active_name()
                    version = self.index.load(name) if name else None
                except RagError:
                    raise
                except Exception as exc:
                    raise IndexUnavailableError(describe_store_error(self.settings, exc)) from exc
                if version is not None and version.embedding_model == self.components.embeddings.model_id:
                    self._activate(version)
                else:
                    self.ingest()
            assert self._live is not None
            return self._live

    def live_if_built(self, recheck_seconds: float = 10.0) -> LiveIndex | None:
        """The live index when this base has one, without building it (a server that has
        not added sources yet); another process's first build is seen within `recheck_seconds`."""
        if self._live is not None:
            return self.start()
        if time.monotonic() < self._absent_until:
            return None
        if not self._has_version():
            self._absent_until = time.monotonic() + recheck_seconds
            return None
        return self.start()

    def refresh(self, wait: bool = False) -> IngestReport | None:
        """Bring the index up to date with the sources folder (nothing is re-embedded when
        nothing changed). While another process builds this base, serve the version ready now
        and set `updating_elsewhere`, without waiting for it (`wait`, or no version at all:
        wait). If a source cannot be read but an index exists, keep serving it and log why;
        with no index at all, or no sources folder, raise."""
        self.updating_elsewhere = False
        folder = self.folder()
        if not folder.is_dir():
            remembered = " (the folder the index was last built from; set SOURCES_DIR or run `ingest --sources DIR`)"
            raise SourceError(
                f"The sources folder {folder} does not exist{remembered if folder != self.sources_dir else ''}."
            )
        try:
            return self.ingest(lock_timeout=None if wait or not self._has_version() else 0.0)
        except LockTimeoutError:  # only tried: another process is building; its result comes next time
            log.info("%s: another process is updating the index; serving the version ready now", self.name)
            self.updating_elsewhere = True
            self.start()
            return None
        except SourceError as exc:
            if not self._has_version():
                raise
            log.warning("sources not re-read, answering from the existing index: %s", exc)
            return None

    def _has_version(self) -> bool:
        """Whether this base serves, or has built, a version (nothing is loaded to find out)."""
        if self._live is not None:
            return True
        try:
            return self.index.active_name() is not None
        except Exception as exc:
            raise IndexUnavailableError(describe_store_error(self.settings, exc)) from exc

    def _follow_other_processes(self, live: LiveIndex) -> LiveIndex:
        """With a shared Chroma server, another process may have reloaded: switch to the
        newest ready version (checked at most every INDEX_REFRESH_SECONDS)."""
        interval = self.settings.index_refresh_seconds
        if not self.settings.uses_chroma_server or not interval or time.monotonic() - self._checked_at < interval:
            return live
        if not self._start_lock.acquire(blocking=False):
            return live  # another thread is already checking
        try:
            self._checked_at = time.monotonic()
            name = self.index.active_name()
            if name and name != live.version.name and not self._reload_lock.locked():
                version = self.index.load(name)
                if version is not None and version.embedding_model == self.components.embeddings.model_id:
                    log.info("another process published index %s: switching to it", name)
                    self._activate(version)
        except Exception as exc:  # keep serving what we have; the query reports a dead server
            log.warning("could not check for a newer index: %s", type(exc).__name__)
        finally:
            self._start_lock.release()
        return self._live or live

    # --- ingest ----------------------------------------------------------------------
    def ingest(self, sources_dir: Path | None = None, progress: Progress | None = None,
               lock_timeout: float | None = None) -> IngestReport:
        """Load the sources and make them the live index, once another process's build of this
        base is done (waiting up to `lock_timeout` seconds, default the lock's). On any error the
        live index (if any) is left as it was and a RagError says what went wrong."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgressError("A reload is already running; try again when it finishes.")
        try:
            with self.components.build_lock(self.name, lock_timeout):
                return self._ingest(sources_dir, progress)
        finally:
            self._reload_lock.release()

    def _ingest(self, sources_dir: Path | None, progress: Progress | None) -> IngestReport:
        """Read the folder and build: the caller holds the locks."""
        started = time.perf_counter()
        folder = (sources_dir or self.folder()).resolve()
        current = self._current_version()
        try:
            loaded = load_sources(folder, self.settings.max_source_bytes, self._indexed_files(current), self._chunking)
        except NoSourcesError:
            if current is None or not self._may_become_empty:
                raise
            loaded = LoadedSources()  # every source was removed: the base becomes empty
        if not loaded.documents and not loaded.unchanged and self._live is None and self.index.active_name() is None:
            raise SourceError("No source could be read: " + " ".join(why for _, why in loaded.failed))
        keep = [name for name, _ in loaded.failed] + loaded.unchanged
        held = {s.name: len(s.chunks) for s in current.catalogue.sources.values()} if current else {}
        limits = {"per_source": self.settings.max_chunks_per_source, "per_base": self.settings.max_chunks_per_base}
        budgeted = within_budget(loaded.documents, self.components.chunker, held, keep, **limits)
        loaded.failed += budgeted.over
        keep += [name for name, _ in budgeted.over]
        report = self._build(current, budgeted.documents, keep, str(folder), progress, budgeted.chunker)
        report.live_after_s = time.perf_counter() - started
        if report.rebuilt and self._live is not None and self.settings.provider != "openai":
            report.sentences_s = self._embed_sentences(self._live.version, current, progress)
        report.skipped, report.failed, report.folder = loaded.skipped, loaded.failed, str(folder)
        for name, why in loaded.failed:
            log.warning("%s: %s (its previous version, if any, keeps serving)", name, why)
        log.info("ingest of %s: %s in %.2fs", self.name, report, time.perf_counter() - started)
        self.last_reload = report
        return report

    def _embed_sentences(self, version: IndexVersion, before: IndexVersion | None, progress: Progress | None) -> float:
        """The sentence pass over the chunks this build embedded (the new version already
        serves); a failure only means those sentences are embedded when first read."""
        try:
            return embed_sentences(version, new_chunk_ids(version, before), self.components.vectors,
                                   sentence_texts, progress)
        except Exception as exc:
            log.warning("sentence vectors not made ahead (%s): they are made when first read", type(exc).__name__)
            return 0.0

    @property
    def _chunking(self) -> str:
        """Part of every file's hash: a change of chunking re-reads every file."""
        return f"{self.settings.chunk_size}/{self.settings.chunk_overlap}/sections-1"

    def _newest(self) -> IndexVersion | None:
        """The newest ready version: the live one while it is the newest, else the one another
        process (sharing the Chroma server or the embedded store) published since."""
        name, live = self.index.active_name(), self._live
        if live is not None and name == live.version.name:
            return live.version
        return self.index.load(name) if name else None

    def _current_version(self) -> IndexVersion | None:
        """What a build starts from: the newest ready version (another process may have
        published one while this one served, or waited for the lock)."""
        try:
            return self._newest()
        except Exception as exc:
            raise IndexUnavailableError(
                f"Ingest failed ({describe_store_error(self.settings, exc)}); no index is available yet."
            ) from exc

    def _indexed_files(self, version: IndexVersion | None) -> dict[str, tuple[str, str]]:
        """File hashes of the sources in the current version (none when its vectors are from
        another embedding model: then everything is read again)."""
        if version is None or version.embedding_model != self.components.embeddings.model_id:
            return {}
        return {s.name: (s.file_hash, s.source_hash) for s in version.catalogue.sources.values() if s.file_hash}

    def folder(self) -> Path:
        """The sources folder: the configured one, or (for a base that remembers) the folder
        its index was last built from, so `ingest --sources DIR` sticks."""
        if self._remember_folder:
            if self._live is not None:
                origin = self._live.version.origin
            else:
                try:
                    origin = self.index.active_origin()
                except Exception:  # the store is checked again, with a clear message, on use
                    origin = None
            if origin:
                return Path(origin)
        return self.sources_dir

    def _build(
        self, current: IndexVersion | None, documents: Sequence[SourceDocument], keep: Sequence[str],
        origin: str, progress: Progress | None, chunker: Chunker,
    ) -> IngestReport:
        index = self.index
        try:
            report, new_name = index.build(
                documents, self.components.embeddings, chunker, current, keep=keep, origin=origin, progress=progress
            )
            if new_name is not None:
                version = index.load(new_name)
                assert version is not None
                self._activate(version)
            elif current is not None and (self._live is None or self._live.version is not current):
                self._activate(current)  # nothing to build: serve the newest, another process's too
            return report
        except RagError:
            raise
        except Exception as exc:
            log.exception("ingest failed")  # what it embedded stays in the unfinished version: the next build resumes
            raise IndexUnavailableError(
                f"Ingest failed ({describe_store_error(self.settings, exc)}); "
                + ("the previous index is still serving." if self._live else "no index is available yet.")
            ) from exc

    # --- the live chain ---------------------------------------------------------------
    def _activate(self, version: IndexVersion) -> None:
        self._live = live_index(version, self.components)
        log.info("%s: serving index %s (%d chunks)", self.name, version.name, len(version.catalogue))

    def sources(self) -> list[SourceInfo]:
        return list(self.start().version.sources.values())

    def served_sources(self) -> dict[str, SourceInfo]:
        """The sources of the newest ready version, another process's included (none before a
        first build), read without building one or loading the embedding model."""
        version = self._newest()
        return dict(version.sources) if version is not None else {}

