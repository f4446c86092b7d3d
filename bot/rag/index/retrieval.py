"""Retrieval: a LangChain retriever fusing Chroma's dense ranking with BM25 (reciprocal rank
fusion), over one index version. Each returned Document carries its chunk id, its rank
and its dense similarity (None for a chunk only BM25 found) in metadata."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable

import bm25s
import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein
from langchain_chroma import Chroma
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from bot.rag.errors import IndexUnavailableError, RagError
from bot.rag.index.store import IndexVersion
from bot.rag.models import Chunk
from bot.rag.text import content_terms

RRF_K = 60  # the usual reciprocal-rank-fusion constant


class LexicalIndex:
    """BM25 over the chunks' stemmed content words, plus their inverse document frequencies."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.ids = [c.id for c in chunks]
        corpus = [content_terms(c.search_text) or ["\x00"] for c in chunks]
        self._bm25 = bm25s.BM25()
        if corpus:
            self._bm25.index(corpus, show_progress=False)
        df: Counter[str] = Counter()
        for terms in corpus:
            df.update(set(terms))
        n = max(1, len(corpus))
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self._unseen_idf = math.log(1 + (n + 0.5) / 0.5)
        self._terms = sorted(self._idf)  # for prefix and fuzzy search

    def idf(self, term: str) -> float:
        return self._idf.get(term, self._unseen_idf)

    def mentions(self, term: str) -> bool:
        """Whether some chunk holds the stemmed `term`, a word of the same root (one starts
        with the other, sharing five letters or more: "direct", "director") or a word one
        typo away (two for long words; none for words of four letters or fewer)."""
        if term in self._idf:
            return True
        if len(term) >= 5:
            at = bisect.bisect_left(self._terms, term)
            if at < len(self._terms) and self._terms[at].startswith(term):
                return True
            if any(term[:n] in self._idf for n in range(max(5, len(term) - 3), len(term))):
                return True
        allowed = 0 if len(term) <= 4 else 1 if len(term) < 8 else 2
        return bool(allowed) and process.extractOne(
            term, self._terms, scorer=DamerauLevenshtein.distance, score_cutoff=allowed
        ) is not None

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        terms = content_terms(query)
        if not terms or not self.ids:
            return []
        docs, scores = self._bm25.retrieve([terms], k=min(k, len(self.ids)), show_progress=False)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


class HybridRetriever(BaseRetriever):
    """Top-k chunks of one index version: dense (Chroma) and BM25 rankings fused by RRF."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    version: IndexVersion
    vectorstore: Chroma
    lexical: LexicalIndex
    query_vector: Callable[[str], np.ndarray]  # the question's unit vector (cached: the answerer needs it too)
    k: int = 4
    hybrid: bool = True

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

    def _search(self, query: str) -> list[Document]:
        n = len(self.version.chunks)
        if n == 0:
            return []
        fetch = min(n, max(self.k * 3, 10))
        vector = np.asarray(self.query_vector(query), dtype=np.float32)
        dense = self.vectorstore.similarity_search_by_vector_with_relevance_scores(
            vector.tolist(), k=fetch
        )
        similarity = {doc.id: 1.0 - float(distance) for doc, distance in dense if doc.id}
        fused: Counter[str] = Counter()
        for rank, (doc, _) in enumerate(dense):
            fused[str(doc.id)] += 1.0 / (RRF_K + rank + 1)
        if self.hybrid:
            for rank, (chunk_id, _) in enumerate(self.lexical.search(query, fetch)):
                fused[chunk_id] += 1.0 / (RRF_K + rank + 1)
        ranked = [cid for cid, _ in fused.most_common() if cid in self.version.chunks][: self.k]
        documents = []
        for rank, cid in enumerate(ranked, start=1):
            chunk = self.version.chunks[cid]
            documents.append(
                Document(
                    id=cid,
                    page_content=chunk.text,
                    metadata={**chunk.metadata(), "chunk_id": cid, "rank": rank, "similarity": similarity.get(cid)},
                )
            )
        return documents
