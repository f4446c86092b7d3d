"""What every answering back-end is: the `Answerer` protocol (answer, stream, astream,
summarise), the `Corpus` it reads source text and term weights from, and the LCEL step that
puts an answerer at the end of a retrieval chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Protocol, TypedDict

from langchain_core.runnables import Runnable, RunnableConfig

from bot.rag.models import Answer, Chunk, Summary

AnswerEvent = str | Answer  # a stream yields the text written so far, then the final Answer


class Corpus(Protocol):
    """What an answerer needs of the live index beyond the retrieved chunks."""

    def page_idf(self, source: str, term: str) -> float: ...  # how rare the term is on that source

    def mentions(self, term: str) -> bool: ...  # whether any source holds the stemmed term

    def page_mentions(self, source: str, name: str) -> bool: ...  # whether that source names it

    def source_text(self, source: str) -> str: ...


class Answerer(Protocol):
    """A back-end that turns retrieved chunks into a cited answer or a summary."""

    provider: str

    def answer(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Answer: ...

    def stream(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Iterator[AnswerEvent]: ...

    def astream(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> AsyncIterator[AnswerEvent]: ...

    def summarise(self, source: str | None, chunks: Sequence[Chunk], corpus: Corpus) -> Summary: ...


class WholeAnswerStreams:
    """`stream`/`astream` for back-ends that produce their answer in one piece."""

    def answer(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Answer:
        raise NotImplementedError

    def stream(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Iterator[AnswerEvent]:
        yield self.answer(question, chunks, corpus)

    async def astream(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> AsyncIterator[AnswerEvent]:
        yield await asyncio.to_thread(self.answer, question, chunks, corpus)  # CPU work off the event loop


class AnswerInput(TypedDict):
    question: str
    chunks: list[Chunk]


class AnswerStep(Runnable[AnswerInput, Answer]):
    """The last link of the chain: `invoke` gives the Answer; `stream`/`astream` give the
    text as it is written and end with the Answer (what the sequence's stream passes on)."""

    def __init__(self, answerer: Answerer, corpus: Corpus) -> None:
        self.answerer = answerer
        self.corpus = corpus

    def invoke(self, input: AnswerInput, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        return self.answerer.answer(input["question"], input["chunks"], self.corpus)

    def stream(  # type: ignore[override]
        self, input: AnswerInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AnswerEvent]:
        yield from self.answerer.stream(input["question"], input["chunks"], self.corpus)

    async def astream(  # type: ignore[override]
        self, input: AnswerInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AnswerEvent]:
        async for event in self.answerer.astream(input["question"], input["chunks"], self.corpus):
            yield event
