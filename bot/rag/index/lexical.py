"""The lexical side of retrieval: BM25 over the chunks' stemmed content words (bm25s), the
knowledge base's vocabulary (does it mention a term at all?), and each page's own term
statistics (does this page name it? how rare is a word on it?).

It is built once per index version and saved beside it (`save`/`load`, memory-mapped), so a
process that starts on a built version reads it instead of re-tokenising every chunk; which
terms occur is read off bm25s's term matrix, so nothing else is stored.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
from cachetools import LRUCache
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from bot.rag.models import Chunk
from bot.rag.text import content_terms, stem

_EMPTY = "\x00"  # the one token of a chunk without content words
_IDS_FILE = "chunk_ids.json"
LEXICAL_FORMAT = "snowball"  # part of a saved index's folder name: a change of stemming rebuilds it


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
    """BM25 over the chunks' stemmed content words, and the vocabulary they make."""

    def __init__(self, ids: Sequence[str], bm25: bm25s.BM25 | None) -> None:
        self.ids = list(ids)
        self._bm25 = bm25
        vocab = bm25.vocab_dict if bm25 is not None else {}
        lengths = np.diff(np.asarray(bm25.scores["indptr"])) if bm25 is not None else np.zeros(0)
        self.vocabulary = Vocabulary(t for t, i in vocab.items() if t and t != _EMPTY and lengths[i])

    @classmethod
    def build(cls, chunks: Sequence[Chunk]) -> LexicalIndex:
        corpus = [content_terms(c.search_text) or [_EMPTY] for c in chunks]
        if not corpus:
            return cls([], None)
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        return cls([c.id for c in chunks], bm25)

    def save(self, folder: Path) -> None:
        """Write the index to `folder` whole or not at all (a temporary folder renamed)."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            if self._bm25 is not None:
                self._bm25.save(str(staging), show_progress=False)
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
        return cls(ids, bm25)

    def mentions(self, term: str) -> bool:
        """Whether some chunk holds the stemmed `term` (or a form or misspelling of it)."""
        return self.vocabulary.knows(term)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        terms = content_terms(query)
        if not terms or self._bm25 is None:
            return []
        docs, scores = self._bm25.retrieve([terms], k=min(k, len(self.ids)), show_progress=False)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


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
    """Term statistics of single sources (pages), built when first asked and kept for the
    most recently asked ones."""

    def __init__(self, chunks_of: Callable[[str], Sequence[Chunk]], source_text: Callable[[str], str],
                 capacity: int = 128) -> None:
        self._chunks_of = chunks_of
        self._source_text = source_text
        self._pages: LRUCache[str, PageTerms] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    def terms(self, source: str) -> PageTerms:
        with self._lock:
            page = self._pages.get(source)
        if page is None:
            chunks = self._chunks_of(source)
            frequencies: Counter[str] = Counter()
            for chunk in chunks:
                frequencies.update(set(content_terms(chunk.search_text)))
            page = PageTerms(Vocabulary(frequencies), dict(frequencies), max(1, len(chunks)))
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
