"""Curated answers: what moderators correct becomes a source of its own, preferred for the
same and similar questions.

A correction (the question, the right answer, what it rests on, and a link to the place it was
made) is stored by `SourceLibrary.add_curated` as one markdown document of kind "curated" in a
server's knowledge base, with the correction itself in the source's registry options: it is
indexed, listed, removable and audited like any source, and has a visibility like any source.

On the answer side `CuratedFirst` wraps a base's answering chain: a question whose embedding is
at least `threshold` (cosine) from a curated question the reply's readers may see is answered
with that curated answer, cited as "answered by the moderators" with its link. When the words
differ, the curated question is shown under it: MiniLM rates "How do I enable debug mode?"
and "… disable …" at 0.95, paraphrases at 0.83–0.93, so the member must see what it answers.
Any other question goes down the chain as before, where a curated document retrieved like any passage is
cited under the same label. Nothing here knows about Discord.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from cachetools import LRUCache
from langchain_core.runnables import Runnable, RunnableConfig

from bot.rag.answer.base import AnswerEvent
from bot.rag.embeddings import EmbeddingModel
from bot.rag.index.live import LiveIndex
from bot.rag.models import Answer, Citation
from bot.rag.text import content_terms

CURATED = "curated"  # the source kind
MODERATORS = "answered by the moderators"  # how a curated source is cited
PROVIDER = "curated"  # Answer.provider of an answer given whole from a curated source
_OPTION = "curated"
QUESTION_LIMIT, ANSWER_LIMIT, SOURCES_LIMIT = 300, 3000, 1000


@dataclass(frozen=True)
class Correction:
    """A moderator's answer to a question, with what it rests on and where it was given."""

    question: str
    answer: str
    sources: str = ""  # free text: source names, links
    link: str | None = None  # the corrected answer message (or the moderator's reply)

    def document(self) -> bytes:
        """The curated source's text: the question as its heading, the answer, what it rests on."""
        text = f"# {self.question.strip()}\n\n{self.answer.strip()}\n"
        if self.sources.strip():
            text += f"\nSources: {self.sources.strip()}\n"
        return text.encode("utf-8")

    def as_option(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "sources": self.sources, "link": self.link}

    def with_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {**options, _OPTION: self.as_option()}

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> Correction | None:
        """The correction kept in a curated source's registry options (None: none readable)."""
        value = options.get(_OPTION)
        if not isinstance(value, Mapping) or not value.get("question") or not value.get("answer"):
            return None
        return cls(str(value["question"]), str(value["answer"]), str(value.get("sources") or ""),
                   value.get("link") or None)


@dataclass(frozen=True)
class CuratedEntry:
    """A curated source a reply may use: its indexed name and its correction."""

    name: str
    correction: Correction


class CuratedMatcher:
    """Finds the curated question closest to a question (cosine of their embeddings); the
    curated questions' vectors are cached by text, so each is embedded once."""

    def __init__(self, embeddings: EmbeddingModel, threshold: float, capacity: int = 4096) -> None:
        self.embeddings, self.threshold = embeddings, threshold
        self._vectors: LRUCache[str, np.ndarray] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    def _vector(self, text: str) -> np.ndarray:
        with self._lock:
            found = self._vectors.get(text)
        if found is None:
            found = _unit(np.asarray(self.embeddings.embed_query(text), dtype=np.float32))
            with self._lock:
                self._vectors[text] = found
        return found

    def best(self, question: str, entries: Sequence[CuratedEntry]) -> tuple[CuratedEntry, float] | None:
        """The closest curated entry at or above the threshold, with its similarity."""
        if not entries:
            return None
        asked = self._vector(" ".join(question.split()))
        scored = [(float(asked @ self._vector(" ".join(e.correction.question.split()))), i) for i, e in enumerate(entries)]
        score, i = max(scored)
        return (entries[i], score) if score >= self.threshold else None


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


class CuratedFirst(Runnable[str, Answer]):
    """question → the matching curated answer, else `inner` (the base's answering chain), whose
    citations of curated sources are labelled "answered by the moderators" with their link."""

    def __init__(self, inner: Runnable[str, Answer], entries: Sequence[CuratedEntry], matcher: CuratedMatcher,
                 live: LiveIndex) -> None:
        self.inner, self.entries, self.matcher, self.live = inner, list(entries), matcher, live
        self._by_name = {e.name: e for e in self.entries}

    def curated_answer(self, question: str) -> Answer | None:
        found = self.matcher.best(question, self.entries)
        if found is None:
            return None
        entry = found[0]
        chunks = self.live.version.chunks_of_source(entry.name)
        if not chunks:
            return None
        chunk = chunks[0]
        answer = entry.correction.answer.strip()
        at = self.live.source_text(entry.name).find(answer)  # the answer's offsets in the source's text
        start, end, quote = (at, at + len(answer), answer) if at >= 0 else (chunk.start, chunk.end, chunk.text)
        citation = Citation(n=1, source=entry.name, chunk_id=chunk.id, start=start, end=end, quote=quote,
                            label=MODERATORS, link=entry.correction.link)
        text = f"{answer} [1]"
        if set(content_terms(question)) != set(content_terms(entry.correction.question)):
            # A bi-encoder rates "enable …" and "disable …" alike: the member sees which question it answers.
            text += f"\n\n*The moderators' answer to a similar question: “{entry.correction.question.strip()}”*"
        return Answer(question=question, answer=text, answerable=True, citations=[citation], provider=PROVIDER)

    def _labelled(self, event: AnswerEvent) -> AnswerEvent:
        if not isinstance(event, Answer) or not any(c.source in self._by_name for c in event.citations):
            return event
        return replace(event, citations=[
            replace(c, label=MODERATORS, link=self._by_name[c.source].correction.link) if c.source in self._by_name else c
            for c in event.citations])

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        curated = self.curated_answer(input)
        return curated if curated is not None else self._labelled(self.inner.invoke(input, config))  # type: ignore[return-value]

    def stream(  # type: ignore[override]
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AnswerEvent]:
        curated = self.curated_answer(input)
        if curated is not None:
            yield curated
            return
        for event in self.inner.stream(input, config):
            yield self._labelled(event)

    async def astream(  # type: ignore[override]
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AnswerEvent]:
        curated = await asyncio.to_thread(self.curated_answer, input)
        if curated is not None:
            yield curated
            return
        async for event in self.inner.astream(input, config):
            yield self._labelled(event)
