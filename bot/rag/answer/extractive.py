"""The embedded offline answerer: picks the sentences of the retrieved chunks that answer the
question and returns them verbatim with citations, or refuses.

Each sentence is scored by `DENSE_WEIGHT` x its embedding similarity to the question plus
`LEXICAL_WEIGHT` x the idf-weighted share of the question's content words it contains. A
sentence that leans on the one before it ("He also called for ...") is also scored with
that sentence as context. Words weigh by their rarity on the sentence's own page; among
sentences that pass the threshold, those of higher-ranked chunks come first (`RANK_WEIGHT`).
Questions that ask for a number, a date or an age only accept sentences that contain one
the question does not. A question using key terms (names, tools, rare words) the sources
never mention needs stronger evidence (`UNKNOWN_TERM_MARGIN`), and one that names something
("pytest", "3.12") is answered only from a page that names it too. When the best sentence
scores below the calibrated threshold the answer is a refusal. Nothing is generated: every
word shown comes from the sources, so this back-end cannot invent facts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bot.rag.answer.answer_types import (
    ANSWER_TYPE_WORDS,
    WINDOW_MIN_DENSE,
    expected_answer_type,
    has_answer_type,
)
from bot.rag.answer.base import Corpus, WholeAnswerStreams
from bot.rag.answer.citations import span_citation
from bot.rag.answer.key_terms import missing_key_terms, named_things
from bot.rag.answer.sentences import (
    Candidate,
    answers_something,
    asks_for_code,
    candidates_of,
    continues_previous,
    passage_end,
    starts_with_pronoun,
)
from bot.rag.answer.summary import extractive_summary
from bot.rag.embeddings import VectorCache
from bot.rag.index.names import asked_names, asks_what_it_is, names_section, section_name, section_title
from bot.rag.models import Answer, Chunk, Citation, Summary
from bot.rag.text import content_terms, is_code_block, match_key, stem

DENSE_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.4
CONTEXT_DISCOUNT = 0.9  # a sentence scored with its predecessor as context counts a bit less
SECOND_SENTENCE_MARGIN = 0.03  # a runner-up this close to the best is shown too
PERSON_PREFERENCE_MARGIN = 0.1  # "who": a sentence naming a titled person wins unless this much worse
MAX_SENTENCES = 2
RANK_WEIGHT = 0.04  # the top chunk's sentences outrank equal ones from the fourth by this much
FULL_COVERAGE = 0.999
# A question using a word the sources never do may be about something they do not cover:
# its evidence must score this much more than the threshold.
UNKNOWN_TERM_MARGIN = 0.05

@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    score: float
    dense: float
    lexical: float
    typed: bool  # holds (itself or with the sentence before) the kind of value asked for
    with_previous: bool  # the sentence before belongs in the quote
    prior: float = 0.0  # a little for being in a higher-ranked chunk: orders, never passes the threshold

    @property
    def ranking(self) -> float:
        return self.score + self.prior

    @property
    def start(self) -> int:
        previous = self.candidate.previous
        return previous.start if self.with_previous and previous is not None else self.candidate.span.start


def lexical_overlap(question_terms: set[str], text: str, idf: Callable[[str], float]) -> float:
    """Idf-weighted share of the question's content terms present in `text`."""
    if not question_terms:
        return 0.0
    present = set(content_terms(text))
    total = sum(idf(t) for t in question_terms)
    return sum(idf(t) for t in question_terms if t in present) / total if total else 0.0


def _pairs_with_previous(cand: Candidate, dense: float, q_terms: set[str]) -> bool:
    """Whether the sentence may be read together with the one before it. It may when it
    continues it ("He also ...") or when it adds no question words of its own that the one
    before lacks (the sentence before sets the scene, this one holds the answer). Two
    sentences about different subjects are not glued into one answer."""
    assert cand.previous is not None
    if continues_previous(cand.span.text):
        return True
    if dense < WINDOW_MIN_DENSE:
        return False
    own = set(content_terms(cand.span.text)) & q_terms
    return own <= set(content_terms(cand.previous.text))


def score_candidates(
    question: str,
    question_vector: np.ndarray,
    candidates: Sequence[Candidate],
    vectors: VectorCache,
    page_idf: Callable[[str, str], float],
    referents: Callable[[str], str] = lambda source: "",
) -> list[ScoredCandidate]:
    """Every candidate scored, alone and with the sentence before it as context; best first.
    Words weigh by how rare they are on the candidate's own page (`page_idf(source, term)`),
    so a page's subject does not count as evidence and a knowledge base that grows does not
    move the scores of the pages already in it."""
    if not candidates:
        return []
    kind = expected_answer_type(question)
    q_terms = set(content_terms(question)) - ANSWER_TYPE_WORDS
    sims = vectors.get([c.span.text for c in candidates]) @ question_vector
    # Only sentences that may be read with the one before are embedded together with it.
    paired = [
        c.previous is not None and _pairs_with_previous(c, float(sim), q_terms) for c, sim in zip(candidates, sims)
    ]
    windows = [f"{c.previous.text} {c.span.text}" for c, pair in zip(candidates, paired) if pair and c.previous]
    window_sim = dict(zip(windows, vectors.get(windows) @ question_vector)) if windows else {}

    def combined(dense: float, text: str, idf: Callable[[str], float]) -> tuple[float, float]:
        lexical = lexical_overlap(q_terms, text, idf)
        return DENSE_WEIGHT * dense + LEXICAL_WEIGHT * lexical, lexical

    ranks: dict[str, int] = {}
    for cand in candidates:
        ranks.setdefault(cand.chunk.id, len(ranks))
    scored = []
    for cand, sim, pair in zip(candidates, sims, paired):
        dense = float(sim)
        idf = functools.partial(page_idf, cand.chunk.source)
        # A section's title counts as said by each of its sentences: an API entry's never
        # repeat its name ("Return True if ..."), a "Set-Cookie options" section's its subject.
        named = f"{section_title(cand.chunk.heading)} "
        # "He also called for ...": a sentence whose subject is a pronoun may be about whom
        # the question names, when its page names them (`referents`); it counts as saying them.
        if starts_with_pronoun(cand.span.text):
            named += referents(cand.chunk.source)
        score, lexical = combined(dense, named + cand.span.text, idf)
        typed = has_answer_type(kind, cand.span.text, question)
        with_previous = False
        if pair and cand.previous is not None:
            window = f"{cand.previous.text} {cand.span.text}"
            window_score, window_lexical = combined(float(window_sim[window]), named + window, idf)
            window_score *= CONTEXT_DISCOUNT
            window_typed = typed or has_answer_type(kind, cand.previous.text, question)
            if (window_typed, window_score) > (typed, score):
                score, lexical, with_previous, typed = window_score, window_lexical, True, window_typed
            elif kind == "person" and not typed and window_typed and starts_with_pronoun(cand.span.text):
                with_previous, typed = True, True  # "He said ...": show who "he" is
        prior = RANK_WEIGHT * (1 - ranks[cand.chunk.id] / len(ranks))
        scored.append(ScoredCandidate(cand, score, dense, lexical, typed, with_previous, prior))
    scored.sort(key=lambda s: (not s.typed, -s.ranking, s.candidate.position))
    return scored


def select_evidence(
    scored: Sequence[ScoredCandidate], threshold: float, kind: str | None
) -> list[ScoredCandidate]:
    """The sentences to show (in source order), or [] to refuse. Numbers, dates and ages
    must be present; a person or a default is preferred but not required (names need no
    title, and "if omitted" says "default" without the word)."""
    if not scored:
        return []
    typed = [s for s in scored if s.typed]
    overall = sorted(scored, key=lambda s: (-s.ranking, s.candidate.position))
    if kind == "default" and (not typed or typed[0].score < threshold):
        typed = overall  # "if omitted ..." may be worded otherwise: saying "default" is preferred, not required
    if kind == "person":
        if not typed or typed[0].score < max(threshold, overall[0].score - PERSON_PREFERENCE_MARGIN):
            # The answer may be an organisation or a name without a title; such a sentence
            # must then hold every word of the question ("Who warned against an assault on
            # Rafah?" - "The US and UN have warned an all-out assault on Rafah").
            typed = [s for s in overall if s.lexical >= FULL_COVERAGE]
    passing = [s for s in typed if s.score >= threshold]  # in ranking order
    if not passing:
        return []
    best = passing[0]
    chosen = [best]
    for other in passing[1:MAX_SENTENCES + 2]:
        if len(chosen) >= MAX_SENTENCES:
            break
        repeated = any(match_key(other.candidate.span.text) == match_key(c.candidate.span.text) for c in chosen)
        if other.ranking >= best.ranking - SECOND_SENTENCE_MARGIN and not repeated:  # a page quoting another: once
            chosen.append(other)
    return sorted(chosen, key=lambda s: (s.candidate.chunk.source, s.candidate.span.start))


class ExtractiveAnswerer(WholeAnswerStreams):
    """Answers made of source sentences only; no key, no network."""

    provider = "extractive"

    def __init__(self, vectors: VectorCache, threshold: float, refusal: str,
                 summary_bullets: tuple[int, int] = (3, 6)) -> None:
        self._vectors = vectors
        self._threshold = threshold
        self._refusal = refusal
        self._summary_bullets = summary_bullets

    def rank(self, question: str, chunks: Sequence[Chunk], corpus: Corpus,
             code_wanted: bool | None = None) -> list[ScoredCandidate]:
        question_vector = self._vectors.get([question], store=False)[0]
        if code_wanted is None:
            code_wanted = asks_for_code(question)
        candidates = [c for c in candidates_of(chunks, corpus.source_text) if answers_something(c, code_wanted)]
        return score_candidates(question, question_vector, candidates, self._vectors, corpus.page_idf,
                                pronoun_referents(question, corpus))

    def answer(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Answer:
        threshold = self._threshold + (UNKNOWN_TERM_MARGIN if missing_key_terms(question, corpus.mentions) else 0.0)
        kind = expected_answer_type(question)
        code_wanted = asks_for_code(question)
        scored = self.rank(question, chunks, corpus, code_wanted)
        scored = on_pages_naming(question, scored, corpus)
        chosen = _opening_of_named_entry(question, scored) or select_evidence(scored, threshold, kind)
        if not chosen:
            return Answer(question, self._refusal, False, [], self.provider)
        citations: list[Citation] = []
        for group in _contiguous_groups(chosen):
            chunk = group[0].candidate.chunk
            text = corpus.source_text(chunk.source)
            last = group[-1].candidate.span
            end = passage_end(text, last.end, code_wanted)
            citations.append(span_citation(len(citations) + 1, chunk, group[0].start, end, text))
        answer = " ".join(f"\n{c.quote} [{c.n}]\n" if is_code_block(c.quote) else f"“{c.quote}” [{c.n}]"
                          for c in citations).strip()
        return Answer(question, answer, True, citations, self.provider)

    def summarise(self, source: str | None, chunks: Sequence[Chunk], corpus: Corpus) -> Summary:
        low, high = self._summary_bullets
        return extractive_summary(source, chunks, self._vectors, corpus.source_text, low, high)


_ERROR_NAME = re.compile(r"(error|exception)$")  # "KeyError", "ZoneInfoNotFoundError": lower-cased names


def on_pages_naming(question: str, scored: list[ScoredCandidate], corpus: Corpus) -> list[ScoredCandidate]:
    """Only pages that name what the question names can answer it: a page about unittest
    fixtures does not answer a pytest question. An error's name is the symptom the asker
    pasted, not the subject: the page that explains it seldom names it ("FileNotFoundError"
    for a path over 260 characters). (Requiring only the names the sources use somewhere
    answered 2 more unanswerable questions and 1 more answerable one, of 184.)"""
    names = [n for n in named_things(question) if not _ERROR_NAME.search(n)]
    if not names:
        return scored
    return [s for s in scored if all(corpus.page_mentions(s.candidate.chunk.source, n) for n in names)]


def pronoun_referents(question: str, corpus: Corpus) -> Callable[[str], str]:
    """Whom a leading "he"/"she"/"they" on a page may stand for: what the question names
    that the page names too (a page about someone else's "he" is not them)."""
    names = [n for n in named_things(question) if corpus.mentions(stem(n))]

    @functools.cache
    def on_page(source: str) -> str:
        return "".join(f"{n} " for n in names if corpus.page_mentions(source, n))

    return on_page


def _opening_of_named_entry(question: str, scored: Sequence[ScoredCandidate]) -> list[ScoredCandidate]:
    """"What does -O do?" asked of docs with an entry called "-O": the entry's opening
    sentence, which says what it is (its later sentences qualify it). [] otherwise."""
    if not asks_what_it_is(question):
        return []
    keys = asked_names(question)
    entry = [s for s in scored if any(names_section(k, section_name(s.candidate.chunk.heading)) for k in keys)]
    if not entry:
        return []
    page = min(entry, key=lambda s: s.candidate.position).candidate.chunk.source  # the best-ranked entry's page
    first = min((s for s in entry if s.candidate.chunk.source == page), key=lambda s: s.candidate.span.start)
    return [replace(first, with_previous=False)]


def _contiguous_groups(chosen: Sequence[ScoredCandidate]) -> list[list[ScoredCandidate]]:
    """Chosen sentences (in source order) merged where they overlap or follow each other."""
    groups: list[list[ScoredCandidate]] = []
    for item in chosen:
        if groups:
            last = groups[-1][-1].candidate
            if last.chunk.source == item.candidate.chunk.source and item.start - last.span.end <= 2:
                groups[-1].append(item)
                continue
        groups.append([item])
    return groups
