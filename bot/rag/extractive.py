"""The embedded offline answerer: picks the sentences of the retrieved chunks that answer the
question and returns them verbatim with citations, or refuses.

Each sentence is scored by `DENSE_WEIGHT` x its embedding similarity to the question plus
`LEXICAL_WEIGHT` x the idf-weighted share of the question's content words it contains. A
sentence that leans on the one before it ("He also called for ...") is also scored with
that sentence as context. Questions that ask for a number, a date or an age only accept
sentences that contain one the question does not. When the best sentence scores below the
calibrated threshold the answer is a refusal. Nothing is generated: every word shown comes
from the sources, so this back-end cannot invent facts.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bot.rag.citations import span_citation
from bot.rag.embeddings import EmbeddingModel
from bot.rag.models import Answer, Chunk, Citation
from bot.rag.text import STOPWORDS, Span, content_terms, split_sentences, words

DENSE_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.4
CONTEXT_DISCOUNT = 0.9  # a sentence scored with its predecessor as context counts a bit less
SECOND_SENTENCE_MARGIN = 0.03  # a runner-up this close to the best is shown too
PERSON_PREFERENCE_MARGIN = 0.1  # "who": a sentence naming a titled person wins unless this much worse
MAX_SENTENCES = 2
FULL_COVERAGE = 0.999

_NUMBER_WORDS = set(
    """one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
    hundred hundreds thousand thousands million millions billion billions dozen dozens half
    several""".split()
)
_DATE_WORDS = set(
    """january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday
    saturday sunday yesterday today tomorrow week month year decade century""".split()
)
_AGE = re.compile(r"\b\d{1,3}[- ]years?[- ]old\b|\baged? \d{1,3}\b|\bage of \d{1,3}\b", re.I)
_ASKS_AGE = re.compile(r"\bhow old\b|\bwhat age\b|\bwhat is (his|her|their) age\b", re.I)
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|far|often|large|big)\b|\bwhat (number|percentage|proportion|share|amount)\b",
    re.I,
)
_ASKS_YEAR = re.compile(r"\b(what|which) year\b", re.I)
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_MONTHS = "january february march april may june july august september october november december jan feb mar apr jun jul aug sep sept oct nov dec"
# A day of a month ("7 october", "october 7"): a date, not a quantity.
_DAY_OF_MONTH = re.compile(rf"\b\d{{1,2}}(st|nd|rd|th)? (of )?({_MONTHS.replace(' ', '|')})\b|\b({_MONTHS.replace(' ', '|')}) \d{{1,2}}\b", re.I)
_TIME_UNIT_ASKED = re.compile(r"\bhow many (seconds|minutes|hours|days|weeks|months|years|decades)\b", re.I)
# "When will he retire?" - "once his successor is selected": an event can answer "when".
_TEMPORAL_CLAUSES = {"once", "until", "after", "before", "since", "following"}
_ASKS_DATE = re.compile(
    r"\bwhen\b|\b(what|which) (date|day|year|month|time)\b|\bin what year\b|\bwhat time\b", re.I
)
_ASKS_PERSON = re.compile(r"^\s*(who|whom|whose)\b|\b(which|what) (person|man|woman|official|minister|general)\b", re.I)
# Titles and ranks that mark a named person in text without capital letters.
_PERSON_MARKERS = set(
    """mr mrs ms dr prof sir dame lord lady gen general maj major lt lieutenant col colonel capt
    captain sgt sergeant adm admiral president minister premier chancellor senator governor mayor
    judge justice king queen prince princess rabbi imam pope bishop spokesman spokeswoman
    spokesperson ceo chairman chairwoman""".split()
)
# Words that say what kind of answer is wanted, not what it is about: not matched lexically.
_ANSWER_TYPE_WORDS = {"date", "day", "year", "month", "time", "happen", "occur", "many", "much", "number", "old", "age"}
_PRONOUN_SUBJECTS = {"he", "she", "they", "his", "her", "their"}
# A sentence starting with one of these continues the one before it.
_CONTINUES = _PRONOUN_SUBJECTS | {"it", "its", "this", "that", "these", "those", "also", "however", "but", "i", "we"}
WINDOW_MIN_DENSE = 0.35  # a sentence that does not continue its predecessor needs this to pair up


def expected_answer_type(question: str) -> str | None:
    """'age', 'year', 'number', 'date', 'person' or None when the question asks for no
    particular kind of value."""
    if _ASKS_AGE.search(question):
        return "age"
    if _ASKS_YEAR.search(question):
        return "year"
    if _ASKS_NUMBER.search(question):
        return "number"
    if _ASKS_DATE.search(question):
        return "date"
    if _ASKS_PERSON.search(question):
        return "person"
    return None


def names_someone_new(sentence: str, asked: set[str]) -> bool:
    """Whether the sentence names a titled person ("maj gen aharon haliva", "mr netanyahu")
    who is not already named in the question."""
    tokens = words(sentence)
    for i, token in enumerate(tokens):
        if token not in _PERSON_MARKERS:
            continue
        name = []
        for following in tokens[i + 1:i + 5]:
            if following in _PERSON_MARKERS:
                continue
            if following in STOPWORDS or len(name) == 3:
                break
            name.append(following)
        if name and not set(name) & asked:
            return True
    return False


def has_answer_type(kind: str | None, sentence: str, question: str) -> bool:
    """Whether `sentence` holds a value of the kind asked for that the question lacks."""
    if kind is None:
        return True
    if kind == "age":
        return bool(_AGE.search(sentence))
    if kind == "year":
        return any(year not in question for year in (m.group(0) for m in _YEAR.finditer(sentence)))
    if kind == "number":
        unit = _TIME_UNIT_ASKED.search(question)
        if unit:  # "how many years": a number of years, not of days
            return bool(re.search(rf"\b(\d+|{'|'.join(_NUMBER_WORDS)})[- ]{unit.group(1)[:-1]}s?\b", sentence, re.I))
        sentence = _DAY_OF_MONTH.sub(" ", sentence)
    asked = set(words(question))
    if kind == "person":
        return names_someone_new(sentence, asked)
    tokens = [w for w in words(sentence) if w not in asked]
    if kind == "number":
        return any(w[0].isdigit() or w in _NUMBER_WORDS for w in tokens)
    return any(w[0].isdigit() or w in _DATE_WORDS or w in _TEMPORAL_CLAUSES for w in tokens)


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved chunk; `span` offsets are into the source's text."""

    chunk: Chunk
    span: Span
    previous: Span | None  # the sentence before it in the source, if any
    position: int  # order of first appearance over the retrieved chunks


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    score: float
    dense: float
    lexical: float
    typed: bool  # holds (itself or with the sentence before) the kind of value asked for
    with_previous: bool  # the sentence before belongs in the quote

    @property
    def start(self) -> int:
        previous = self.candidate.previous
        return previous.start if self.with_previous and previous is not None else self.candidate.span.start


class VectorCache:
    """Sentence vectors by text, bounded; sentences repeat across questions and overlaps."""

    def __init__(self, embeddings: EmbeddingModel, capacity: int = 20_000) -> None:
        self._embeddings = embeddings
        self._capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            fresh = self._embeddings.encode(missing)
            with self._lock:
                for text, vector in zip(missing, fresh):
                    self._vectors[text] = vector
                while len(self._vectors) > self._capacity:
                    self._vectors.popitem(last=False)
        with self._lock:
            for text in texts:
                self._vectors.move_to_end(text)
            return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 1))


def candidates_of(chunks: Sequence[Chunk], source_text: Callable[[str], str]) -> list[Candidate]:
    """Sentences of the chunks, each once (chunks overlap), in retrieval order, each with
    the sentence before it in its source."""
    sentences: dict[str, list[Span]] = {}
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for chunk in chunks:
        if chunk.source not in sentences:
            sentences[chunk.source] = split_sentences(source_text(chunk.source))
        spans = sentences[chunk.source]
        for i, span in enumerate(spans):
            if span.start < chunk.start or span.end > chunk.end:
                continue
            if (chunk.source, span.start) not in seen:
                seen.add((chunk.source, span.start))
                out.append(Candidate(chunk, span, _context_before(spans, i, source_text(chunk.source)), len(out)))
    return out


def _context_before(spans: Sequence[Span], i: int, text: str) -> Span | None:
    """The sentence before spans[i], reaching one further back when that sentence itself
    continues its predecessor (a quote running over two sentences, "I will ...")."""
    if i == 0:
        return None
    start = spans[i - 1].start
    if i >= 2 and continues_previous(spans[i - 1].text):
        start = spans[i - 2].start
    return Span(start, spans[i - 1].end, text[start:spans[i - 1].end])


def starts_with_pronoun(sentence: str) -> bool:
    first = words(sentence[:20])
    return bool(first) and first[0] in _PRONOUN_SUBJECTS


def continues_previous(sentence: str) -> bool:
    """Whether the sentence leans on the one before ("He also ...", "However, ...", a quote)."""
    first = words(sentence[:30])
    return sentence[:1] in "\"“" or (bool(first) and (first[0] in _CONTINUES or first[1:2] == ["also"]))


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
    idf: Callable[[str], float],
) -> list[ScoredCandidate]:
    """Every candidate scored, alone and with the sentence before it as context; best first."""
    if not candidates:
        return []
    kind = expected_answer_type(question)
    q_terms = set(content_terms(question)) - _ANSWER_TYPE_WORDS
    texts = [c.span.text for c in candidates]
    windows = [f"{c.previous.text} {c.span.text}" for c in candidates if c.previous is not None]
    sims = vectors.get(texts + windows) @ question_vector
    window_sim = dict(zip(windows, sims[len(texts):]))

    def combined(dense: float, text: str) -> tuple[float, float]:
        lexical = lexical_overlap(q_terms, text, idf)
        return DENSE_WEIGHT * dense + LEXICAL_WEIGHT * lexical, lexical

    scored = []
    for cand, sim in zip(candidates, sims[: len(texts)]):
        dense = float(sim)
        score, lexical = combined(dense, cand.span.text)
        typed = has_answer_type(kind, cand.span.text, question)
        with_previous = False
        if cand.previous is not None and _pairs_with_previous(cand, dense, q_terms):
            window = f"{cand.previous.text} {cand.span.text}"
            window_score, window_lexical = combined(float(window_sim[window]), window)
            window_score *= CONTEXT_DISCOUNT
            window_typed = typed or has_answer_type(kind, cand.previous.text, question)
            if (window_typed, window_score) > (typed, score):
                score, lexical, with_previous, typed = window_score, window_lexical, True, window_typed
            elif kind == "person" and not typed and window_typed and starts_with_pronoun(cand.span.text):
                with_previous, typed = True, True  # "He said ...": show who "he" is
        scored.append(ScoredCandidate(cand, score, dense, lexical, typed, with_previous))
    scored.sort(key=lambda s: (not s.typed, -s.score, s.candidate.position))
    return scored


def select_evidence(
    scored: Sequence[ScoredCandidate], threshold: float, kind: str | None
) -> list[ScoredCandidate]:
    """The sentences to show (in source order), or [] to refuse. Numbers, dates and ages
    must be present; a person is preferred but not required (names need no title)."""
    typed = [s for s in scored if s.typed]
    if kind == "person":
        overall = sorted(scored, key=lambda s: (-s.score, s.candidate.position))
        if not typed or typed[0].score < max(threshold, overall[0].score - PERSON_PREFERENCE_MARGIN):
            # The answer may be an organisation or a name without a title; such a sentence
            # must then hold every word of the question ("Who warned against an assault on
            # Rafah?" - "The US and UN have warned an all-out assault on Rafah").
            typed = [s for s in overall if s.lexical >= FULL_COVERAGE]
    if not typed or typed[0].score < threshold:
        return []
    best = typed[0]
    chosen = [best]
    for other in typed[1:MAX_SENTENCES + 2]:
        if len(chosen) >= MAX_SENTENCES:
            break
        if other.score >= max(threshold, best.score - SECOND_SENTENCE_MARGIN):
            chosen.append(other)
    return sorted(chosen, key=lambda s: (s.candidate.chunk.source, s.candidate.span.start))


class Corpus(Protocol):
    """What the answerer needs of the live index beyond the retrieved chunks."""

    def idf(self, term: str) -> float: ...

    def source_text(self, source: str) -> str: ...


class ExtractiveAnswerer:
    """Answers made of source sentences only; no key, no network."""

    provider = "extractive"

    def __init__(self, embeddings: EmbeddingModel, threshold: float, refusal: str) -> None:
        self._vectors = VectorCache(embeddings)
        self._threshold = threshold
        self._refusal = refusal

    @property
    def vectors(self) -> VectorCache:
        return self._vectors

    def rank(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> list[ScoredCandidate]:
        question_vector = self._vectors.get([question])[0]
        candidates = candidates_of(chunks, corpus.source_text)
        return score_candidates(question, question_vector, candidates, self._vectors, corpus.idf)

    def answer(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Answer:
        kind = expected_answer_type(question)
        chosen = select_evidence(self.rank(question, chunks, corpus), self._threshold, kind)
        if not chosen:
            return Answer(question, self._refusal, False, [], self.provider)
        citations: list[Citation] = []
        for group in _contiguous_groups(chosen):
            chunk = group[0].candidate.chunk
            text = corpus.source_text(chunk.source)
            citations.append(span_citation(len(citations) + 1, chunk, group[0].start, group[-1].candidate.span.end, text))
        answer = " ".join(f"“{c.quote}” [{c.n}]" for c in citations)
        return Answer(question, answer, True, citations, self.provider)


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
