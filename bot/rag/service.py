"""RagService: the one object the CLI, the Discord bot and the tests call.

It owns the live index (a Chroma version plus its retriever and LCEL chain), ingest and
reload (one at a time; the old index keeps serving until the new one is ready, and keeps
serving if the reload fails), question validation, answering and summaries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough

from bot.rag.embeddings import EmbeddingModel, build_embeddings
from bot.rag.errors import (
    IndexUnavailableError,
    QuestionError,
    RagError,
    ReloadInProgressError,
    SourceError,
    UnknownSourceError,
)
from bot.rag.extractive import Corpus, ExtractiveAnswerer
from bot.rag.models import Answer, Chunk, IngestReport, SourceInfo, Summary
from bot.rag.prompts import Prompts
from bot.rag.retrieval import HybridRetriever, LexicalIndex
from bot.rag.sources import load_sources
from bot.rag.store import ChromaIndex, IndexVersion, chunker_for, describe_store_error, make_client
from bot.rag.stats import QuestionStats
from bot.rag.summary import SummaryCache, extractive_summary
from bot.rag.text import clean_invisible
from bot.settings import Settings

log = logging.getLogger(__name__)


class Answerer(Protocol):
    """A back-end that turns retrieved chunks into a cited answer or a summary."""

    provider: str

    def answer(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Answer: ...


@dataclass(frozen=True)
class LiveIndex:
    """Everything that answers from one index version; replaced whole on reload."""

    version: IndexVersion
    lexical: LexicalIndex
    retriever: HybridRetriever
    chain: Runnable[str, Answer]

    def idf(self, term: str) -> float:
        return self.lexical.idf(term)

    def source_text(self, source: str) -> str:
        return self.version.source_text(source)

    def chunks_of(self, documents: Sequence[Document]) -> list[Chunk]:
        """The chunks behind documents the retriever returned."""
        return [self.version.chunks[str(d.metadata["chunk_id"])] for d in documents]


class RagService:
    """Grounded question answering over the sources folder."""

    def __init__(
        self,
        settings: Settings,
        embeddings: EmbeddingModel | None = None,
        answerer: Answerer | None = None,
    ) -> None:
        self.settings = settings
        self.prompts = Prompts.load(settings.prompts_dir)
        self._embeddings = embeddings
        self._answerer = answerer
        self._extractive: ExtractiveAnswerer | None = None
        self._index: ChromaIndex | None = None
        self._checked_at = time.monotonic()
        self._live: LiveIndex | None = None
        self._reload_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._summaries = SummaryCache()
        self.stats = QuestionStats()
        self.last_reload: IngestReport | None = None

    # --- parts, built on first use ---------------------------------------------------------
    @property
    def embeddings(self) -> EmbeddingModel:
        if self._embeddings is None:
            self._embeddings = build_embeddings(self.settings)
        return self._embeddings

    @property
    def extractive(self) -> ExtractiveAnswerer:
        if self._extractive is None:
            self._extractive = ExtractiveAnswerer(
                self.embeddings, self.settings.min_answer_score, self.prompts.refusal
            )
        return self._extractive

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            if self.settings.provider == "openai":
                from bot.rag.llm import OpenAIAnswerer

                self._answerer = OpenAIAnswerer(self.settings, self.prompts, self.extractive.vectors)
            else:
                self._answerer = self.extractive
        return self._answerer

    @property
    def index(self) -> ChromaIndex:
        if self._index is None:
            self._index = ChromaIndex(make_client(self.settings), self.settings.collection_prefix)
        return self._index

    @property
    def provider(self) -> str:
        return self.answerer.provider

    # --- index lifecycle -----------------------------------------------------------------
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
                if version is not None and version.embedding_model == self.embeddings.model_id:
                    self._activate(version)
                else:
                    self.ingest()
            assert self._live is not None
            return self._live

    def refresh(self) -> IngestReport | None:
        """Bring the index up to date with the sources folder (nothing is re-embedded when
        nothing changed). If the sources cannot be read but an index exists, keep serving
        it and log why; with no index at all, raise."""
        try:
            return self.ingest()
        except SourceError as exc:
            if self._live is None and self.index.active_name() is None:
                raise
            log.warning("sources not re-read, answering from the existing index: %s", exc)
            return None

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
                if version is not None and version.embedding_model == self.embeddings.model_id:
                    log.info("another process published index %s: switching to it", name)
                    self._activate(version)
        except Exception as exc:  # keep serving what we have; the query reports a dead server
            log.warning("could not check for a newer index: %s", type(exc).__name__)
        finally:
            self._start_lock.release()
        return self._live or live

    def ingest(self, sources_dir: Path | None = None) -> IngestReport:
        """Load the sources and make them the live index. On any error the live index (if
        any) is left as it was and a RagError says what went wrong."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgressError("A reload is already running; try again when it finishes.")
        try:
            started = time.perf_counter()
            documents = load_sources(sources_dir or self.settings.sources_dir, self.settings.max_source_bytes)
            current = self._live.version if self._live is not None else None
            try:
                if current is None:
                    name = self.index.active_name()
                    current = self.index.load(name) if name else None
                report, new_name = self.index.build(
                    documents, self.embeddings, chunker_for(self.settings), current
                )
                if new_name is not None:
                    version = self.index.load(new_name)
                    assert version is not None
                    self._activate(version)
                elif self._live is None and current is not None:
                    self._activate(current)
            except RagError:
                raise
            except Exception as exc:
                log.exception("ingest failed")
                self._cleanup_after_failure()
                raise IndexUnavailableError(
                    f"Ingest failed ({describe_store_error(self.settings, exc)}); "
                    + ("the previous index is still serving." if self._live else "no index is available yet.")
                ) from exc
            log.info("ingest: %s in %.2fs", report, time.perf_counter() - started)
            self.last_reload = report
            return report
        finally:
            self._reload_lock.release()

    def _cleanup_after_failure(self) -> None:
        try:
            self.index.drop_unfinished()
        except Exception:  # the store may be the thing that failed; nothing more to do
            log.warning("could not remove an unfinished index version", exc_info=True)

    def _activate(self, version: IndexVersion) -> None:
        lexical = LexicalIndex(list(version.chunks.values()))
        vectorstore = Chroma(
            client=self.index.client,
            collection_name=version.name,
            embedding_function=self.embeddings,
        )
        retriever = HybridRetriever(
            version=version,
            vectorstore=vectorstore,
            lexical=lexical,
            query_vector=lambda text: self.extractive.vectors.get([text])[0],
            k=self.settings.top_k,
            hybrid=self.settings.hybrid_search,
        )
        answerer = self.answerer

        def answer(inputs: dict[str, Any]) -> Answer:
            return answerer.answer(inputs["question"], live.chunks_of(inputs["documents"]), live)

        chain: Runnable[str, Answer] = RunnableParallel(
            question=RunnablePassthrough(), documents=retriever
        ) | RunnableLambda(answer)
        live = LiveIndex(version, lexical, retriever, chain)
        self._live = live
        log.info("serving index %s (%d chunks)", version.name, len(version.chunks))

    # --- questions -------------------------------------------------------------------------
    def validate_question(self, question: str) -> str:
        """The cleaned question, or a QuestionError saying what is wrong with it."""
        cleaned = " ".join(clean_invisible(question or "").split())
        if not cleaned:
            raise QuestionError("Please type a question: the message was empty.")
        limit = self.settings.max_question_chars
        if len(cleaned) > limit:
            raise QuestionError(
                f"That question is {len(cleaned):,} characters long; the limit is {limit:,}. "
                "Please shorten it."
            )
        return cleaned

    def ask(self, question: str, user: int | str | None = None) -> Answer:
        """A cited answer from the sources, or a plain refusal when they do not hold it.
        `user` (e.g. a Discord user id) only goes, hashed, into the question log."""
        cleaned = self.validate_question(question)
        started = time.perf_counter()
        try:
            answer = self.start().chain.invoke(cleaned)
        except RagError as exc:
            self._record(user, started, error=exc)
            raise
        self._record(user, started, answer=answer)
        return answer

    def _record(self, user: int | str | None, started: float, answer: Answer | None = None,
                error: RagError | None = None) -> None:
        """Count the question and write its log line."""
        self.stats.record(
            user=user, latency_s=time.perf_counter() - started,
            provider=answer.provider if answer else self.provider,
            answerable=answer.answerable if answer else None,
            citations=len(answer.citations) if answer else 0,
            error=type(error).__name__ if error else None,
        )

    def stream(self, question: str, user: int | str | None = None) -> Iterator[str | Answer]:
        """Like `ask`, but yields the answer text as it is written (back-ends that can
        stream), always ending with the final Answer."""
        cleaned = self.validate_question(question)
        started = time.perf_counter()
        try:
            live = self.start()
            chunks = live.chunks_of(live.retriever.invoke(cleaned))
            streamer = getattr(self.answerer, "stream", None)
            items = streamer(cleaned, chunks, live) if streamer else iter([self.answerer.answer(cleaned, chunks, live)])
            for item in items:
                if isinstance(item, Answer):
                    self._record(user, started, answer=item)
                yield item
        except RagError as exc:
            self._record(user, started, error=exc)
            raise

    def retrieve(self, question: str) -> list[Chunk]:
        live = self.start()
        return live.chunks_of(live.retriever.invoke(self.validate_question(question)))

    # --- sources and summaries -----------------------------------------------------------
    def sources(self) -> list[SourceInfo]:
        return list(self.start().version.sources.values())

    def summary(self, source: str | None = None) -> Summary:
        """Key points of one source (or all), each cited; cached per content and back-end."""
        live = self.start()
        chunks = sorted(live.version.chunks.values(), key=lambda c: (c.source, c.index))
        if source is not None:
            names = {c.source for c in chunks}
            match = source if source in names else next((n for n in names if n.rsplit(".", 1)[0] == source), None)
            if match is None:
                raise UnknownSourceError(
                    f"There is no source called {source!r}. Sources: {', '.join(sorted(names)) or 'none'}."
                )
            source = match
            chunks = [c for c in chunks if c.source == source]
        key = (source, self.answerer.provider, tuple(c.id for c in chunks))
        cached = self._summaries.get(key)
        if cached is not None:
            return cached
        summarise = getattr(self.answerer, "summarise", None)
        if summarise is not None:
            result = summarise(source, chunks, live)
        else:
            result = extractive_summary(
                source, chunks, self.extractive.vectors, live.source_text,
                self.settings.summary_min_bullets, self.settings.summary_max_bullets,
            )
        self._summaries.put(key, result)
        return result

