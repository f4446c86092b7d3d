"""The lexical side of retrieval: BM25 over the chunks' stemmed content words (bm25s), the
knowledge base's vocabulary (does it mention a term at all?), and each page's own term
statistics (does this page name it? how rare is a word on it?).

It is built once per index version and saved beside it (`save`/`load`, memory-mapped), so a
process that starts on a built version reads it instead of re-tokenising every chunk; which
terms occur is read off bm25s's term matrix, so nothing else is stored.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
from cachetools import LRUCache
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from bot.rag.index.names import SectionNames
from bot.rag.models import Chunk
from bot.rag.text import content_terms, stem

_EMPTY = "\x00"  # the one token of a chunk without content words
_IDS_FILE = "chunk_ids.json"
LEXICAL_FORMAT = "snowball-names"  # part of a saved index's folder name: a change of format rebuilds it
_NAMES_FILE = "section_names.json"
# A ranking that must leave some chunks out reads up to this many times deeper and drops them.
EXCLUDED_OVERFETCH = 3


class Vocabulary:
    """A set of stemmed terms that knows a term when it holds it, a word of the same root
    (one starts with the other, sharing five letters or more: "direct", "director") or a
    word one typo away (two for long words; none for words of four letters or fewer)."""

    def __init__(self, terms: Iterable[str]) -> None:
        self._set = frozenset(terms)
        self._sorted = sorted(self._set)  # for prefix and fuzzy search

    def knows(self, term: str) -> bool:
        if term in self._set:
            return True
        if len(term) >= 5:
            at = bisect.bisect_left(self._sorted, term)
            if at < len(self._sorted) and self._sorted[at].startswith(term):
                return True
            if any(term[:n] in self._set for n in range(max(5, len(term) - 3), len(term))):
                return True
        allowed = 0 if len(term) <= 4 else 1 if len(term) < 8 else 2
        return bool(allowed) and process.extractOne(
            term, self._sorted, scorer=DamerauLevenshtein.distance, score_cutoff=allowed
        ) is not None


class LexicalIndex:
    """BM25 over the chunks' stemmed content words, the vocabulary they make, and the
    sections by the names they document."""

    def __init__(self, ids: Sequence[str], bm25: bm25s.BM25 | None, names: SectionNames | None = None) -> None:
        self.ids = list(ids)
        self._bm25 = bm25
        self.names = names or SectionNames({})
        vocab = bm25.vocab_dict if bm25 is not None else {}
        lengths = np.diff(np.asarray(bm25.scores["indptr"])) if bm25 is not None else np.zeros(0)
        self.vocabulary = Vocabulary(t for t, i in vocab.items() if t and t != _EMPTY and lengths[i])
        self._by_chunk: tuple[dict[str, int], np.ndarray, np.ndarray, list[str]] | None = None
        self._by_chunk_lock = threading.Lock()

    @classmethod
    def build(cls, chunks: Sequence[Chunk]) -> LexicalIndex:
        corpus = [content_terms(c.search_text) or [_EMPTY] for c in chunks]
        if not corpus:
            return cls([], None)
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        return cls([c.id for c in chunks], bm25, SectionNames.build(chunks))

    def save(self, folder: Path) -> None:
        """Write the index to `folder` whole or not at all (a temporary folder renamed)."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            if self._bm25 is not None:
                self._bm25.save(str(staging), show_progress=False)
            self.names.save(staging / _NAMES_FILE)
            (staging / _IDS_FILE).write_text(json.dumps(self.ids), encoding="utf-8")
            staging.rename(folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (folder / _IDS_FILE).is_file():  # another process may have saved it first
                raise

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        """The index saved in `folder` (its term matrix memory-mapped), or None."""
        try:
            ids = json.loads((folder / _IDS_FILE).read_text(encoding="utf-8"))
            bm25 = bm25s.BM25.load(str(folder), mmap=True, show_progress=False) if ids else None
        except (OSError, ValueError):
            return None
        names = SectionNames.load(folder / _NAMES_FILE)
        return cls(ids, bm25, names) if names is not None else None

    def mentions(self, term: str) -> bool:
        """Whether some chunk holds the stemmed `term` (or a form or misspelling of it)."""
        return self.vocabulary.knows(term)

    def term_counts(self, chunk_ids: Sequence[str]) -> tuple[dict[str, int], int]:
        """In how many of `chunk_ids` each stemmed term occurs, and how many of them are
        indexed: read off the term matrix (turned chunk-major once, on first use), so no
        text is fetched or stemmed again."""
        position, indptr, term_ids, terms = self._chunk_major()
        rows = [position[c] for c in chunk_ids if c in position]
        if not rows:
            return {}, 0
        found = np.concatenate([term_ids[indptr[r]:indptr[r + 1]] for r in rows])
        ids, counts = np.unique(found, return_counts=True)
        return {terms[i]: int(n) for i, n in zip(ids, counts) if terms[i] != _EMPTY}, len(rows)

    def _chunk_major(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, list[str]]:
        with self._by_chunk_lock:
            if self._by_chunk is None:
                if self._bm25 is None:
                    self._by_chunk = ({}, np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), [])
                else:
                    term_ptr = np.asarray(self._bm25.scores["indptr"])
                    docs = np.asarray(self._bm25.scores["indices"])
                    term_of = np.repeat(np.arange(len(term_ptr) - 1), np.diff(term_ptr))
                    order = np.argsort(docs, kind="stable")
                    indptr = np.searchsorted(docs[order], np.arange(len(self.ids) + 1))
                    vocab = self._bm25.vocab_dict
                    terms = [""] * max(len(term_ptr) - 1, max(vocab.values(), default=-1) + 1)
                    for term, i in vocab.items():
                        terms[i] = term
                    self._by_chunk = ({c: i for i, c in enumerate(self.ids)}, indptr, term_of[order], terms)
            return self._by_chunk

    def search(self, query: str, k: int, excluded: Collection[str] = ()) -> list[tuple[str, float]]:
        """The top `k` chunks by BM25, never one of `excluded` (chunk ids). They are dropped
        from a deeper ranking (BM25's weight mask scores every chunk: 7x slower at 150k
        chunks); only when they fill all of it is the ranking made again with the mask."""
        terms = content_terms(query)
        if not terms or self._bm25 is None:
            return []
        k = min(k, len(self.ids))
        if not excluded:
            return self._top(terms, k)
        deeper = min(len(self.ids), k + min(len(excluded), EXCLUDED_OVERFETCH * k))
        ranked = self._top(terms, deeper)
        kept = [(chunk_id, score) for chunk_id, score in ranked if chunk_id not in excluded]
        if len(kept) >= k or len(ranked) < deeper:  # enough, or every matching chunk was read
            return kept[:k]
        mask = np.ones(len(self.ids), dtype=np.float32)
        mask[[self._position[c] for c in excluded if c in self._position]] = 0.0
        return self._top(terms, k, mask)

    def _top(self, terms: list[str], k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        docs, scores = self._bm25.retrieve([terms], k=k, show_progress=False, weight_mask=mask)  # type: ignore[union-attr]
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]

    @functools.cached_property
    def _position(self) -> dict[str, int]:
        return {chunk_id: i for i, chunk_id in enumerate(self.ids)}


@dataclass(frozen=True)
class PageTerms:
    """One page's terms: which it holds and in how many of its chunks."""

    vocabulary: Vocabulary
    frequencies: dict[str, int]
    chunks: int

    def idf(self, term: str) -> float:
        """Inverse document frequency within the page: a word found all over it (its
        subject, "israel" in an article about Israel) tells little about where on it an
        answer is, however rare it is elsewhere in the knowledge base."""
        f = self.frequencies.get(term, 0)
        return math.log(1 + (self.chunks - f + 0.5) / (f + 0.5))


class Pages:
    """Term statistics of single sources (pages), read off the lexical index when first
    asked and kept for the most recently asked ones."""

    def __init__(self, lexical: LexicalIndex, chunk_ids_of: Callable[[str], Sequence[str]],
                 source_text: Callable[[str], str], capacity: int = 512) -> None:
        self._lexical = lexical
        self._chunk_ids_of = chunk_ids_of
        self._source_text = source_text
        self._pages: LRUCache[str, PageTerms] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    def terms(self, source: str) -> PageTerms:
        with self._lock:
            page = self._pages.get(source)
        if page is None:
            frequencies, chunks = self._lexical.term_counts(self._chunk_ids_of(source))
            page = PageTerms(Vocabulary(frequencies), frequencies, max(1, chunks))
            with self._lock:
                self._pages[source] = page
        return page

    def idf(self, source: str, term: str) -> float:
        return self.terms(source).idf(term)

    def mentions(self, source: str, name: str) -> bool:
        """`name` is a word ("pytest", matched as `Vocabulary.knows` does) or a version
        number ("3.12", matched whole: not inside "3.12.1" nor "13.12")."""
        if name[:1].isdigit():
            return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w|\.\d)", self._source_text(source)) is not None
        return self.terms(source).vocabulary.knows(stem(name))
