"""RagService: what the CLI, the Discord bot and the tests call. It validates questions and
answers them through the live knowledge base's LCEL chain (`invoke`, `stream`, `astream`),
counts and logs each one, and makes summaries. Building the parts is `Components`' job; the
index lifecycle is `KnowledgeBase`'s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cachetools import LRUCache
from langchain_core.runnables import Runnable

from bot.rag.access import EVERYONE, UNREGISTERED, Audience, hidden_sources
from bot.rag.answer.base import Answerer, AnswerEvent
from bot.rag.answer.followup import Turn
from bot.rag.components import Components
from bot.rag.curated import CURATED, Correction, CuratedEntry, CuratedFirst
from bot.rag.embeddings import EmbeddingModel
from bot.rag.errors import QuestionError, RagError, UnknownSourceError
from bot.rag.holdings import Holding, holdings
from bot.rag.index.knowledge_base import KnowledgeBase
from bot.rag.index.live import LiveIndex
from bot.rag.index.registry import SHARED, KnowledgeBases, guild_base_name
from bot.rag.index.scope import ScopedCorpus, scoped_chain
from bot.rag.index.store import Progress
from bot.rag.models import Answer, Chunk, IngestReport, SourceInfo, Summary
from bot.rag.stats import QuestionStats
from bot.rag.text import clean_invisible
from bot.settings import Settings
from bot.state import SourceRegistry, SourceRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """What one reply may use: the chain that answers it and the names of the sources its
    readers may see."""

    chain: Runnable[str, Answer]
    readable: frozenset[str]

    def readable_history(self, history: Sequence[Turn]) -> list[Turn]:
        """The turns whose answers cite only sources the readers may see now: after a source
        is hidden, or a member loses a role, its answers no longer reach a follow-up (nor a
        model's condense step)."""
        return [turn for turn in history if self.readable.issuperset(turn.cited)]


SUMMARY_CACHE_SIZE = 64
E = TypeVar("E")


class RagService:
    """Grounded question answering over a knowledge base (default: the shared one)."""

    def __init__(
        self,
        settings: Settings,
        embeddings: EmbeddingModel | None = None,
        answerer: Answerer | None = None,
        components: Components | None = None,
    ) -> None:
        self.settings = settings
        self.components = components or Components(settings, embeddings=embeddings, answerer=answerer)
        self.bases = KnowledgeBases(self.components)
        self.stats = QuestionStats()
        self._summaries: LRUCache[tuple[object, ...], Summary] = LRUCache(maxsize=SUMMARY_CACHE_SIZE)
        self._summaries_lock = threading.Lock()

    @property
    def base(self) -> KnowledgeBase:
        return self.bases.shared

    @property
    def provider(self) -> str:
        return self.components.answerer.provider

    @property
    def last_reload(self) -> IngestReport | None:
        return self.base.last_reload

    # --- the knowledge base ------------------------------------------------------------
    def start(self) -> LiveIndex:
        return self.base.start()

    def refresh(self, wait: bool = False) -> IngestReport | None:
        """The shared base brought up to date (`KnowledgeBase.refresh`): while another process
        builds it, the version ready now serves (`updating_elsewhere`) unless `wait`."""
        return self.base.refresh(wait)

    @property
    def updating_elsewhere(self) -> bool:
        """The last `refresh` found another process building the shared base."""
        return self.base.updating_elsewhere

    def ingest(self, sources_dir: Path | None = None, progress: Progress | None = None) -> IngestReport:
        return self.base.ingest(sources_dir, progress)

    def sources(self, guild_id: int | None = None, audience: Audience = EVERYONE) -> list[SourceInfo]:
        """The shared sources, and in a server also the server's own its readers may see (first)."""
        shared = self.base.sources()
        own, hidden = self._own(guild_id, audience)
        return ([s for s in own.version.sources.values() if s.name not in hidden] if own else []) + shared

    def holdings(self, base: str = SHARED) -> list[Holding]:
        """What knowledge base `base` holds, as `source list` and /source list show it too."""
        return holdings(self.bases, self._registry(), base)

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

    def chain(self, guild_id: int | None = None, audience: Audience = EVERYONE) -> Runnable[str, Answer]:
        """The chain that answers in a server: from its own base and the shared one (the
        shared base alone in DMs, or while the server has added no sources), without the
        server's sources the reply's readers (`audience`) may not see."""
        return self.scope(guild_id, audience).chain

    def scope(self, guild_id: int | None = None, audience: Audience = EVERYONE) -> Scope:
        """What one reply may use (its chain, and the source names it may cite), from one read
        of the server's visibilities."""
        shared = self.start()
        own, hidden, rows = self._own_rows(guild_id, audience)
        if own is None:
            return Scope(shared.chain, shared.version.source_names)
        chain = scoped_chain([own, shared], self.components.answerer, self.settings.top_k, [hidden])
        curated = [CuratedEntry(row.name, correction) for row in rows if row.kind == CURATED
                   and row.name in own.version.source_names and row.name not in hidden
                   and (correction := Correction.of(row.options)) is not None]
        return Scope(CuratedFirst(chain, curated, self.components.curated, own) if curated else chain,
                     shared.version.source_names | (own.version.source_names - hidden))

    def _own(self, guild_id: int | None, audience: Audience) -> tuple[LiveIndex | None, frozenset[str]]:
        """The server's own live index (None: none, or nothing in it the readers may see) and
        the sources of it they may not see. Visibilities that cannot be read hide it all."""
        own, hidden, _ = self._own_rows(guild_id, audience)
        return own, hidden

    def _own_rows(self, guild_id: int | None,
                  audience: Audience) -> tuple[LiveIndex | None, frozenset[str], list[SourceRow]]:
        """`_own`, with the base's registry rows (the curated answers are among them)."""
        if guild_id is None:
            return None, frozenset(), []
        base = guild_base_name(guild_id)
        own = self.bases.get(base).live_if_built()
        if own is None or not own.version.chunks:  # nothing added yet, or every source removed
            return None, frozenset(), []
        try:
            registry = self._registry()
            rows = registry.list(base) if registry is not None else []
        except Exception as exc:  # noqa: BLE001 - visibilities unknown: the server's sources stay out
            log.warning("visibilities of %s could not be read; answering from the shared sources: %s",
                        base, type(exc).__name__)
            return None, frozenset(), []
        # Without a state database nothing was ever registered: the host put the files there.
        hidden = hidden_sources(rows, own.version.source_names, audience, UNREGISTERED if registry else None)
        return (None, hidden, rows) if hidden >= own.version.source_names else (own, hidden, rows)

    def _registry(self) -> SourceRegistry | None:
        """The state database's source registry; None while nothing was ever registered."""
        db = self.components.database
        unused = db.is_sqlite and db.sqlite_path is not None and not db.sqlite_path.exists()
        return None if unused else SourceRegistry(db)

    def readable_history(self, history: Sequence[Turn], guild_id: int | None, audience: Audience) -> list[Turn]:
        """`Scope.readable_history` of the reply's scope."""
        return self.scope(guild_id, audience).readable_history(history)

    def ask(self, question: str, user: int | str | None = None, guild_id: int | None = None,
            history: Sequence[Turn] = (), audience: Audience = EVERYONE) -> Answer:
        """A cited answer from the sources, or a plain refusal when they do not hold it.
        `user` (e.g. a Discord user id) only goes, hashed, into the question log; `history`
        (the conversation's earlier turns) makes a follow-up standalone first; `audience` (who
        can read the reply) keeps out the server's sources they may not see."""
        cleaned = self.validate_question(question)
        with self._recording(user) as record:
            scope, followups = self.scope(guild_id, audience), self.components.followups
            history = scope.readable_history(history)
            if history and not followups.rewrites:
                return record(followups.answer_offline(cleaned, history, scope.chain.invoke))
            return record(scope.chain.invoke(followups.standalone(cleaned, history)))

    def stream(self, question: str, user: int | str | None = None, guild_id: int | None = None,
               history: Sequence[Turn] = (), audience: Audience = EVERYONE) -> Iterator[AnswerEvent]:
        """Like `ask`, but yields the answer text as it is written (back-ends that can
        stream), always ending with the final Answer."""
        cleaned = self.validate_question(question)
        with self._recording(user) as record:
            scope, followups = self.scope(guild_id, audience), self.components.followups
            history = scope.readable_history(history)
            if history and not followups.rewrites:  # the offline answer is whole at once anyway
                yield record(followups.answer_offline(cleaned, history, scope.chain.invoke))
                return
            for event in scope.chain.stream(followups.standalone(cleaned, history)):
                yield record(event)

    async def astream(
        self, question: str, user: int | str | None = None, guild_id: int | None = None, history: Sequence[Turn] = (),
        audience: Audience = EVERYONE,
    ) -> AsyncIterator[AnswerEvent]:
        """`stream` for the event loop (the Discord bot): the same chain's `astream`."""
        cleaned = self.validate_question(question)
        with self._recording(user) as record:
            scope, followups = await asyncio.to_thread(self.scope, guild_id, audience), self.components.followups
            history = scope.readable_history(history)
            if history and not followups.rewrites:
                yield record(await asyncio.to_thread(followups.answer_offline, cleaned, history, scope.chain.invoke))
                return
            standalone = await followups.astandalone(cleaned, history)
            async for event in scope.chain.astream(standalone):
                yield record(event)

    @contextlib.contextmanager
    def _recording(self, user: int | str | None) -> Iterator[Callable[[E], E]]:
        """Counts the question and writes its log line: when the final Answer passes through
        the function this yields, or when the question fails."""
        started = time.perf_counter()

        def record(event: E) -> E:
            if isinstance(event, Answer):
                self.stats.record(
                    user=user, latency_s=time.perf_counter() - started, provider=event.provider,
                    answerable=event.answerable, citations=len(event.citations),
                )
            return event

        try:
            yield record
        except RagError as exc:
            self.stats.record(user=user, latency_s=time.perf_counter() - started, provider=self.provider,
                              answerable=None, citations=0, error=type(exc).__name__)
            raise

    def retrieve(self, question: str) -> list[Chunk]:
        live = self.start()
        return live.chunks_of(live.retriever.invoke(self.validate_question(question)))

    # --- summaries -------------------------------------------------------------------------
    def summary(self, source: str | None = None, guild_id: int | None = None, audience: Audience = EVERYONE) -> Summary:
        """Key points of one source (or all), each cited; cached per content and back-end.
        In a server, its own sources its readers may see are summarised too."""
        shared = self.start()
        own, hidden = self._own(guild_id, audience)
        lives = [own, shared] if own is not None else [shared]
        if source is not None:  # the base that holds it (the server's own first)
            lives = [next((lv for lv in lives if self._matches(source, lv.version.source_names - hidden)), shared)]
        corpus = ScopedCorpus(lives, [hidden if lv is own else frozenset() for lv in lives])
        chunks = sorted((c for lv in lives for c in lv.version.chunks.values() if lv is shared or c.source not in hidden),
                        key=lambda c: (c.source, c.index))
        if source is not None:
            source = self._source_named(source, {c.source for c in chunks})
            chunks = [c for c in chunks if c.source == source]
        answerer = self.components.answerer
        key = (source, answerer.provider, tuple(c.id for c in chunks))
        with self._summaries_lock:
            cached = self._summaries.get(key)
        if cached is None:
            cached = answerer.summarise(source, chunks, corpus)
            with self._summaries_lock:
                self._summaries[key] = cached
        return cached

    @staticmethod
    def _matches(name: str, names: Collection[str]) -> str | None:
        """The source called `name` (the file name, with or without its suffix), if any."""
        return name if name in names else next((n for n in names if n.rsplit(".", 1)[0] == name), None)

    def _source_named(self, name: str, names: set[str]) -> str:
        match = self._matches(name, names)
        if match is None:
            raise UnknownSourceError(
                f"There is no source called {name!r}. Sources: {', '.join(sorted(names)) or 'none'}."
            )
        return match
