"""The answering chain over one or several live indexes — a base alone, or a server's own
base with the shared one: each retriever runs, their rankings are fused (reciprocal rank,
ties by similarity), and the answerer reads one corpus over them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough

from bot.rag.answer.base import Answerer, AnswerInput, AnswerStep
from bot.rag.index.live import LiveIndex
from bot.rag.index.retrieval import RRF_K
from bot.rag.models import Answer, Chunk


class ScopedCorpus:
    """Source texts and term weights over several live indexes, the most specific first
    (a source name present in two bases is read from the first that does not hide it:
    `hidden[i]`, the sources of `lives[i]` the readers may not see)."""

    def __init__(self, lives: Sequence[LiveIndex], hidden: Sequence[frozenset[str]] = ()) -> None:
        self.lives = list(lives)
        self.hidden = list(hidden) + [frozenset()] * (len(self.lives) - len(hidden))

    def _owner(self, source: str) -> LiveIndex:
        return next((live for live, hidden in zip(self.lives, self.hidden)
                     if source in live.version.source_names and source not in hidden), self.lives[-1])

    def source_text(self, source: str) -> str:
        return self._owner(source).source_text(source)

    def page_idf(self, source: str, term: str) -> float:
        return self._owner(source).page_idf(source, term)

    def mentions(self, term: str) -> bool:
        """Whether a source the readers may see holds the stemmed term: a word only hidden
        sources use must not make a question likelier to be answered (nor refused)."""
        return any(_mentions(live, hidden, term) for live, hidden in zip(self.lives, self.hidden))

    def page_mentions(self, source: str, name: str) -> bool:
        return self._owner(source).page_mentions(source, name)

    def chunks_of(self, documents: Sequence[Document]) -> list[Chunk]:
        return [self.lives[int(d.metadata["scope"])].version.chunks[str(d.metadata["chunk_id"])] for d in documents]


def _mentions(live: LiveIndex, hidden: frozenset[str], term: str) -> bool:
    if not live.mentions(term):
        return False
    return not hidden or any(live.pages.terms(s).vocabulary.knows(term) for s in live.version.source_names - hidden)


def fuse(rankings: dict[str, list[Document]], k: int) -> list[Document]:
    """The top k of several rankings: reciprocal-rank fusion, ties broken by similarity."""
    scored: list[tuple[float, float, Document]] = []
    for scope, documents in rankings.items():
        for rank, doc in enumerate(documents, start=1):
            doc.metadata["scope"] = scope
            scored.append((1.0 / (RRF_K + rank), float(doc.metadata.get("similarity") or 0.0), doc))
    scored.sort(key=lambda item: (-item[0], -item[1]))
    return [doc for _, _, doc in scored[:k]]


def scoped_chain(lives: Sequence[LiveIndex], answerer: Answerer, k: int,
                 hidden: Sequence[frozenset[str]] = ()) -> Runnable[str, Answer]:
    """question → every base's retriever → fused top k → answer (invoke, stream, astream).
    `hidden[i]`: the sources of `lives[i]` this chain's readers may not see."""
    corpus = ScopedCorpus(lives, hidden)
    retrievers = RunnableParallel({str(i): live.retriever.hiding(h) for i, (live, h) in enumerate(zip(lives, corpus.hidden))})

    def answer_input(inputs: dict[str, Any]) -> AnswerInput:
        return {"question": inputs["question"], "chunks": corpus.chunks_of(inputs["documents"])}

    return (
        RunnableParallel(question=RunnablePassthrough(), documents=retrievers | RunnableLambda(lambda r: fuse(r, k)))
        | RunnableLambda(answer_input)
        | AnswerStep(answerer, corpus=corpus)
    )
