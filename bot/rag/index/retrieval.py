"""Retrieval: a LangChain retriever fusing Chroma's dense ranking (the version's collection),
BM25 and the sections the question names (reciprocal rank fusion), then the best of those
ranked again by their best sentence, over one index version. Each returned Document carries its chunk id, its rank and
its dense similarity (None for a chunk only BM25 or a name found) in metadata."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from bot.rag.errors import IndexUnavailableError, RagError
from bot.rag.index.lexical import EXCLUDED_OVERFETCH, LexicalIndex
from bot.rag.index.version import IndexVersion
from bot.rag.models import Chunk

RRF_K = 60  # the usual reciprocal-rank-fusion constant
# The sections a question names ("math.isclose", "-O") count as two rankings: a name written
# out is surer evidence than word statistics (pydocs_dev: evidence in the top 4 for 6 -> 7 of
# 11 questions, MRR .44 -> .52).
NAME_WEIGHT = 2.0
# A chunk's closest sentence to the question is a surer sign than the whole chunk's vector,
# which its other sentences dilute. The top 2k fused chunks are ranked again by it.
SENTENCE_WEIGHT = 2.0


class HybridRetriever(BaseRetriever):
    """Top-k chunks of one index version: dense (Chroma) and BM25 rankings fused by RRF."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    version: IndexVersion  # its Chroma collection gives the dense ranking
    lexical: LexicalIndex
    query_vector: Callable[[str], np.ndarray]  # the question's unit vector (cached: the answerer needs it too)
    k: int = 4
    hybrid: bool = True
    # Unit vectors of a chunk's sentences (those the ingest's sentence pass embeds), or None.
    sentence_vectors: Callable[[Chunk], np.ndarray] | None = None
    hidden: frozenset[str] = frozenset()  # sources this retrieval must not return (`bot.rag.access`)

    def hiding(self, hidden: frozenset[str]) -> HybridRetriever:
        """This retriever for one reply that must not see `hidden` sources."""
        return self if hidden == self.hidden else self.model_copy(update={"hidden": hidden})

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        try:
            return self._search(query)
        except RagError:
            raise
        except Exception as exc:  # chromadb raises many types when its server is unreachable
            raise IndexUnavailableError(
                f"The vector store cannot be reached right now ({type(exc).__name__}). Please try again shortly."
            ) from exc

    def _by_best_sentence(self, ranked: list[str], fused: Counter[str], vector: np.ndarray) -> list[str]:
        """`ranked` with its top 2k also ranked by each chunk's sentence closest to the question."""
        if self.sentence_vectors is None or not SENTENCE_WEIGHT:
            return ranked
        pool = ranked[: 2 * self.k]
        best = {cid: float(np.max(self.sentence_vectors(chunk) @ vector, initial=-1.0))
                for cid, chunk in zip(pool, self.version.chunks.get_many(pool))}
        for rank, cid in enumerate(sorted(pool, key=lambda c: -best[c])):
            fused[cid] += SENTENCE_WEIGHT / (RRF_K + rank + 1)
        allowed = set(ranked)
        return [cid for cid, _ in fused.most_common() if cid in allowed]

    def _search(self, query: str) -> list[Document]:
        n = len(self.version.chunks)
        if n == 0:
            return []
        fetch = min(n, max(self.k * 3, 10))
        vector = np.asarray(self.query_vector(query), dtype=np.float32)
        hidden_chunks = self.version.chunk_ids_of_sources(self.hidden)
        # Hidden chunks are dropped from a deeper dense ranking: a metadata filter would make
        # Chroma scan every record's metadata (6x slower on the Python docs, worse at scale).
        deeper = min(n, fetch + min(len(hidden_chunks), EXCLUDED_OVERFETCH * fetch))
        # Only ids and distances: the chunks are read from the catalogue, so Chroma sends no text.
        found = self.version.collection.query(query_embeddings=[vector], n_results=deeper, include=["distances"])
        distances = found["distances"][0] if found["distances"] else []
        dense = [(cid, d) for cid, d in zip(found["ids"][0], distances) if cid not in hidden_chunks][:fetch]
        similarity = {cid: 1.0 - float(distance) for cid, distance in dense}
        fused: Counter[str] = Counter()
        for rank, (cid, _) in enumerate(dense):
            fused[cid] += 1.0 / (RRF_K + rank + 1)
        if self.hybrid:
            for rank, (chunk_id, _) in enumerate(self.lexical.search(query, fetch, hidden_chunks)):
                fused[chunk_id] += 1.0 / (RRF_K + rank + 1)
            named = [cid for cid in self.lexical.names.named(query) if cid not in hidden_chunks]
            for rank, chunk_id in enumerate(named):
                fused[chunk_id] += NAME_WEIGHT / (RRF_K + rank + 1)
        visible = [cid for cid, _ in fused.most_common() if cid in self.version.chunks and cid not in hidden_chunks]
        ranked = self._by_best_sentence(visible, fused, vector)
        ranked = ranked[: self.k]
        documents = []
        for rank, (cid, chunk) in enumerate(zip(ranked, self.version.chunks.get_many(ranked)), start=1):
            documents.append(
                Document(
                    id=cid,
                    page_content=chunk.text,
                    metadata={**chunk.metadata(), "chunk_id": cid, "rank": rank, "similarity": similarity.get(cid)},
                )
            )
        return documents
