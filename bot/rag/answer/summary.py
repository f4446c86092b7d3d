"""Extractive summaries: the most central, mutually different sentences of the sources,
shown verbatim in source order, each cited.

A sentence that leans on the one before it ("He is the first ...", "It was ...") is shown
with the sentences before it that say who or what it means, as the extractive answerer
does: the bullet (and its citation's quote) then spans them, with exact offsets. One that
cannot be completed within its chunk and `MAX_CONTEXT_SENTENCES` gives way to another.
Code, markup (an XML example in a PDF) and question lines make no bullet, and a bullet reads
as clean prose. A summary of several sources gives each at least one bullet (the largest sources first
when there are more sources than bullets); the rest go to the most central sentences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bot.rag.answer.citations import span_citation
from bot.rag.answer.sentences import (
    Candidate,
    answers_something,
    candidates_of,
    continues_previous,
    is_prose,
    starts_with_pronoun,
)
from bot.rag.embeddings import VectorCache
from bot.rag.models import Chunk, Summary, SummaryBullet
from bot.rag.text import Span, split_sentences

MMR_LAMBDA = 0.7  # relevance (centrality) against novelty when picking the next sentence
LEAD_BONUS = 0.1  # news-style sources put the key facts first
MIN_SENTENCE_CHARS = 40  # fragments and quote tails make poor bullets
MAX_CONTEXT_SENTENCES = 2  # sentences a dangling one may be shown with, before it
MAX_BULLET_CHARS = 450  # a bullet with its context stays short


def bullet_count(sentences: int, low: int, high: int) -> int:
    return max(1, min(sentences, max(low, min(high, sentences // 6))))


def dangles(sentence: str) -> bool:
    """Whether a sentence cannot stand alone: it opens with a pronoun or leans on the one
    before ("He is ...", "It was ...", "However, ...", a quote continuing)."""
    return starts_with_pronoun(sentence) or continues_previous(sentence)


@dataclass(frozen=True)
class _Bullet:
    """A candidate bullet: the sentence picked, shown from `start` (its context) to its end."""

    candidate: Candidate
    start: int
    text: str
    complete: bool  # does not start with a dangling pronoun

    @property
    def source(self) -> str:
        return self.candidate.chunk.source

    @property
    def end(self) -> int:
        return self.candidate.span.end

    def overlaps(self, other: _Bullet) -> bool:
        return self.source == other.source and self.start < other.end and other.start < self.end


def _with_context(cand: Candidate, spans: Sequence[Span], index: dict[int, int], text: str) -> _Bullet:
    """The candidate with as many sentences before it as it needs to stand alone (within its
    chunk, at most MAX_CONTEXT_SENTENCES and MAX_BULLET_CHARS)."""
    i = first = index[cand.span.start]
    while (
        dangles(spans[first].text) and first > 0 and i - first < MAX_CONTEXT_SENTENCES
        and spans[first - 1].start >= cand.chunk.start and cand.span.end - spans[first - 1].start <= MAX_BULLET_CHARS
    ):
        first -= 1
    start = spans[first].start
    return _Bullet(cand, start, text[start:cand.span.end], not dangles(spans[first].text))


def _bullets_of(candidates: Sequence[Candidate], source_text: Callable[[str], str]) -> list[_Bullet]:
    sentences: dict[str, tuple[str, list[Span], dict[int, int]]] = {}
    out = []
    for cand in candidates:
        source = cand.chunk.source
        if source not in sentences:
            text = source_text(source)
            spans = split_sentences(text)
            sentences[source] = (text, spans, {span.start: i for i, span in enumerate(spans)})
        text, spans, index = sentences[source]
        out.append(_with_context(cand, spans, index, text))
    return out


def extractive_summary(
    source: str | None,
    chunks: Sequence[Chunk],
    vectors: VectorCache,
    source_text: Callable[[str], str],
    low: int,
    high: int,
) -> Summary:
    every = candidates_of(chunks, source_text)
    prose = [c for c in every if answers_something(c, code_wanted=False) and is_prose(c.span.text)] or every
    candidates = [c for c in prose if len(c.span.text) >= MIN_SENTENCE_CHARS] or prose
    if not candidates:
        return Summary(source, [], [])
    bullets = _bullets_of(candidates, source_text)
    # A dangling "he" gives way to a sentence that stands alone (unless its source has none).
    complete = {b.source for b in bullets if b.complete}
    bullets = [b for b in bullets if b.complete or b.source not in complete]
    matrix = vectors.get([b.text for b in bullets])
    sources = list(dict.fromkeys(b.source for b in bullets))
    members: dict[str, list[int]] = {}
    for i, bullet in enumerate(bullets):
        members.setdefault(bullet.source, []).append(i)
    lead = np.array([LEAD_BONUS / (1 + order) for order in _order_within_source(bullets)])
    centrality = matrix @ _unit(matrix.mean(axis=0)) + lead
    # Each source's own key points: centrality within it (the same as above for one source).
    own_centrality = np.empty(len(bullets))
    for rows in members.values():
        own_centrality[rows] = matrix[rows] @ _unit(matrix[rows].mean(axis=0)) + lead[rows]
    count = min(len(bullets), max(bullet_count(len(candidates), low, high), min(high, len(sources))))
    chosen: list[int] = []

    def pick(pool: Sequence[int], relevance: np.ndarray) -> None:
        best, best_score = -1, -np.inf
        for i in pool:
            if i in chosen or any(bullets[i].overlaps(bullets[j]) for j in chosen):
                continue
            redundancy = max((float(matrix[i] @ matrix[j]) for j in chosen), default=0.0)
            score = MMR_LAMBDA * float(relevance[i]) - (1 - MMR_LAMBDA) * redundancy
            if score > best_score:
                best, best_score = i, score
        if best >= 0:
            chosen.append(best)

    # Every source gets a bullet first: the largest, then the most central, sources first.
    ranked = sorted(sources, key=lambda name: (-len(members[name]), -float(own_centrality[members[name]].max()), name))
    for name in ranked[:count]:
        pick(members[name], own_centrality)
    everyone = range(len(bullets))
    while len(chosen) < count:
        before = len(chosen)
        pick(everyone, centrality)
        if len(chosen) == before:
            break
    chosen.sort(key=lambda i: (bullets[i].source, bullets[i].start))
    out: list[SummaryBullet] = []
    citations = []
    for n, i in enumerate(chosen, start=1):
        bullet = bullets[i]
        citations.append(span_citation(n, bullet.candidate.chunk, bullet.start, bullet.end, source_text(bullet.source)))
        out.append(SummaryBullet(citations[-1].quote, [n]))  # as a member reads it: clean prose
    return Summary(source, out, citations)


def _order_within_source(bullets: Sequence[_Bullet]) -> list[int]:
    """The position of each bullet's sentence among its own source's candidates."""
    seen: dict[str, int] = {}
    order = []
    for bullet in bullets:
        order.append(seen.get(bullet.source, 0))
        seen[bullet.source] = order[-1] + 1
    return order


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
