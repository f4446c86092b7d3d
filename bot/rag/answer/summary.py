"""Extractive summaries: the most central, mutually different sentences of the sources,
shown verbatim in source order, each cited."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bot.rag.answer.citations import span_citation
from bot.rag.answer.sentences import candidates_of
from bot.rag.embeddings import VectorCache
from bot.rag.models import Chunk, Summary, SummaryBullet

MMR_LAMBDA = 0.7  # relevance (centrality) against novelty when picking the next sentence
LEAD_BONUS = 0.1  # news-style sources put the key facts first
MIN_SENTENCE_CHARS = 40  # fragments and quote tails make poor bullets


def bullet_count(sentences: int, low: int, high: int) -> int:
    return max(1, min(sentences, max(low, min(high, sentences // 6))))


def extractive_summary(
    source: str | None,
    chunks: Sequence[Chunk],
    vectors: VectorCache,
    source_text: Callable[[str], str],
    low: int,
    high: int,
) -> Summary:
    every = candidates_of(chunks, source_text)
    candidates = [c for c in every if len(c.span.text) >= MIN_SENTENCE_CHARS] or every
    if not candidates:
        return Summary(source, [], [])
    matrix = vectors.get([c.span.text for c in candidates])
    centroid = matrix.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    per_source: dict[str, int] = {}
    lead = []
    for cand in candidates:  # position of the sentence within its own source
        order = per_source.get(cand.chunk.source, 0)
        per_source[cand.chunk.source] = order + 1
        lead.append(LEAD_BONUS / (1 + order))
    centrality = matrix @ centroid + np.array(lead)
    chosen: list[int] = []
    for _ in range(bullet_count(len(candidates), low, high)):
        best, best_score = -1, -np.inf
        for i in range(len(candidates)):
            if i in chosen:
                continue
            redundancy = max((float(matrix[i] @ matrix[j]) for j in chosen), default=0.0)
            score = MMR_LAMBDA * float(centrality[i]) - (1 - MMR_LAMBDA) * redundancy
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
    chosen.sort(key=lambda i: (candidates[i].chunk.source, candidates[i].span.start))
    bullets: list[SummaryBullet] = []
    citations = []
    for n, i in enumerate(chosen, start=1):
        cand = candidates[i]
        citations.append(span_citation(n, cand.chunk, cand.span.start, cand.span.end, source_text(cand.chunk.source)))
        bullets.append(SummaryBullet(cand.span.text, [n]))
    return Summary(source, bullets, citations)
