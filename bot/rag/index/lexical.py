"""The lexical side of retrieval: BM25 over the chunks' stemmed content words (bm25s), the
terms' inverse document frequencies, and whether the knowledge base mentions a term at all.

It is built once per index version and saved beside it (`save`/`load`, memory-mapped), so a
process that starts on a built version reads it instead of re-tokenising every chunk; the
document frequencies are the column lengths of bm25s's term matrix, so nothing else is stored.
"""

from __future__ import annotations

import bisect
import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from bot.rag.models import Chunk
from bot.rag.text import content_terms

_EMPTY = "\x00"  # the one token of a chunk without content words
_IDS_FILE = "chunk_ids.json"


class LexicalIndex:
    """BM25 over the chunks' stemmed content words, plus their inverse document frequencies."""

    def __init__(self, ids: Sequence[str], bm25: bm25s.BM25 | None) -> None:
        self.ids = list(ids)
        self._bm25 = bm25
        vocab = bm25.vocab_dict if bm25 is not None else {}
        lengths = np.diff(np.asarray(bm25.scores["indptr"])) if bm25 is not None else np.zeros(0)
        n = max(1, len(self.ids))
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, i in vocab.items() if t and (f := int(lengths[i]))}
        self._unseen_idf = math.log(1 + (n + 0.5) / 0.5)
        self._terms = sorted(self._idf)  # for prefix and fuzzy search

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
        if not terms or self._bm25 is None:
            return []
        docs, scores = self._bm25.retrieve([terms], k=min(k, len(self.ids)), show_progress=False)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
