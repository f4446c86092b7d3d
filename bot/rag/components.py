"""The parts every knowledge base shares, chosen from settings and built once on first use:
prompts, the embedding model and its vector cache, the Chroma client, the answering back-end
and the chunker. Knowledge bases and services get them injected; nothing else builds them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import cached_property

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from bot.rag.answer.base import Answerer
from bot.rag.answer.followup import FollowUps, HistoryBudget
from bot.rag.curated import CuratedMatcher
from bot.rag.embeddings import EmbeddingModel, VectorCache, build_embeddings
from bot.rag.errors import IndexUnavailableError
from bot.rag.ingest.chunking import chunk_document
from bot.rag.models import Chunk, SourceDocument
from bot.rag.prompts import Prompts
from bot.settings import Settings
from bot.state.db import Database, database_url
from bot.state.locks import ingest_lock

Chunker = Callable[[SourceDocument], list[Chunk]]


def describe_store_error(settings: Settings, exc: BaseException) -> str:
    """A user-facing line saying which vector store failed and how."""
    where = (
        f"the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
        if settings.uses_chroma_server
        else f"the vector store in {settings.vectorstore_dir}"
    )
    return f"Cannot use {where}: {type(exc).__name__}: {exc}".rstrip(": ")


def make_client(settings: Settings) -> ClientAPI:
    """A Chroma server client when CHROMA_HOST is set, else the embedded on-disk store."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    try:
        if settings.uses_chroma_server:
            headers = {}
            if settings.chroma_auth_header is not None:
                headers["Authorization"] = settings.chroma_auth_header.get_secret_value()
            return chromadb.HttpClient(
                host=settings.chroma_host or "localhost",
                port=settings.chroma_port,
                ssl=settings.chroma_ssl,
                headers=headers or None,
                settings=chroma_settings,
            )
        settings.vectorstore_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.vectorstore_dir), settings=chroma_settings)
    except Exception as exc:  # chromadb raises several types for an unreachable server
        raise IndexUnavailableError(describe_store_error(settings, exc)) from exc


class Components:
    """Built once from settings and shared by every knowledge base and service.

    `embeddings` and `answerer` may be given (tests share one loaded model; a test may put in
    its own back-end); everything else is made from settings when first needed."""

    def __init__(
        self, settings: Settings, embeddings: EmbeddingModel | None = None, answerer: Answerer | None = None
    ) -> None:
        self.settings = settings
        if embeddings is not None:
            self.embeddings = embeddings
        if answerer is not None:
            self.answerer = answerer

    @cached_property
    def prompts(self) -> Prompts:
        return Prompts.load(self.settings.prompts_dir)

    @cached_property
    def embeddings(self) -> EmbeddingModel:
        return build_embeddings(self.settings)

    @cached_property
    def vectors(self) -> VectorCache:
        """Sentence vectors (embedded at ingest, or when first read) kept on disk across
        processes and restarts; question vectors in memory only."""
        return VectorCache(self.embeddings, store_dir=self.settings.cache_dir / "sentence-vectors")

    @cached_property
    def chroma(self) -> ClientAPI:
        return make_client(self.settings)

    @cached_property
    def answerer(self) -> Answerer:
        if self.settings.provider == "openai":
            from bot.rag.answer.llm import OpenAIAnswerer

            return OpenAIAnswerer(self.settings, self.prompts, self.vectors)
        return self.extractive

    @cached_property
    def followups(self) -> FollowUps:
        """Follow-ups made standalone: rewritten by the model, or asked with the previous question."""
        budget = HistoryBudget(self.settings.history_turns, self.settings.history_tokens)
        if self.settings.provider == "openai":
            from bot.rag.answer.llm import build_chat_model

            return FollowUps.with_model(self.prompts.condense, build_chat_model(self.settings), budget)
        return FollowUps(None, budget)

    @cached_property
    def curated(self) -> CuratedMatcher:
        """Matches questions to the moderators' curated ones (the embedding model's cosine)."""
        return CuratedMatcher(self.embeddings, self.settings.curated_match_threshold)

    @cached_property
    def extractive(self) -> Answerer:
        """The offline answerer (also the baseline's answerer in `eval`)."""
        from bot.rag.answer.extractive import ExtractiveAnswerer

        bullets = (self.settings.summary_min_bullets, self.settings.summary_max_bullets)
        return ExtractiveAnswerer(
            self.vectors, self.settings.min_answer_score, self.prompts.refusal, bullets
        )

    @cached_property
    def database(self) -> Database:
        """The state database (SQLite in DATA_DIR, or DATABASE_URL); opened on first use."""
        return Database(database_url(self.settings))

    def build_lock(self, base: str, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Held while a knowledge base is built, across every process (the state database's
        lock), so two processes never build, or clean up, one base at the same time: with a
        shared Chroma server, and with embedded Chroma too (`ingest` and `ask` in two shells
        share one folder). `timeout`: seconds to wait for another build (default: the lock's);
        0 only tries, raising `LockTimeoutError` when another process is building."""
        waits = {} if timeout is None else {"timeout": timeout}
        return ingest_lock(self.database, base, lock_dir=self.settings.data_dir / "locks", **waits)

    @cached_property
    def chunker(self) -> Chunker:
        size, overlap = self.settings.chunk_size, self.settings.chunk_overlap
        return lambda document: chunk_document(document, size, overlap)
