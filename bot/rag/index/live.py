"""The live index of one knowledge base: one ready version with its lexical index, its
retriever and the chain that answers from it, replaced whole on reload."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.documents import Document
from langchain_core.runnables import Runnable

from bot.rag.index.lexical import LexicalIndex, Pages
from bot.rag.index.retrieval import HybridRetriever
from bot.rag.index.version import IndexVersion
from bot.rag.models import Answer, Chunk


@dataclass
class LiveIndex:
    """Everything that answers from one index version; replaced whole on reload. It is the
    corpus its own chain's answerer reads, so one question never mixes two versions."""

    version: IndexVersion
    lexical: LexicalIndex
    retriever: HybridRetriever
    chain: Runnable[str, Answer] = field(init=False)
    pages: Pages = field(init=False)

    def __post_init__(self) -> None:
        self.pages = Pages(self.lexical, self.version.chunk_ids_of_source, self.version.source_text)

    def page_idf(self, source: str, term: str) -> float:
        return self.pages.idf(source, term)

    def mentions(self, term: str) -> bool:
        return self.lexical.mentions(term)

    def page_mentions(self, source: str, name: str) -> bool:
        return self.pages.mentions(source, name)

    def source_text(self, source: str) -> str:
        return self.version.source_text(source)

    def chunks_of(self, documents: Sequence[Document]) -> list[Chunk]:
        """The chunks behind documents the retriever returned."""
        return [self.version.chunks[str(d.metadata["chunk_id"])] for d in documents]
