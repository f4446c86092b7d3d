"""The chunk budget of a build: how many chunks one source, and one knowledge base, may hold
(MAX_CHUNKS_PER_SOURCE, MAX_CHUNKS_PER_BASE; 0 for no limit), checked after chunking and before
anything is embedded, so one upload cannot keep the bot embedding for minutes.

A source over its limit is left out like a file that failed to load (its previous version, if
any, keeps serving); a base over its limit is not built at all: the current version keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from bot.rag.errors import SourceError
from bot.rag.models import Chunk, SourceDocument


@dataclass
class Budgeted:
    """The documents within budget, their chunks (made once, reused by the build) and those left out."""

    documents: list[SourceDocument] = field(default_factory=list)
    chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    over: list[tuple[str, str]] = field(default_factory=list)  # (source, why)

    def chunker(self, doc: SourceDocument) -> list[Chunk]:
        return self.chunks[doc.name]


def within_budget(documents: Sequence[SourceDocument], chunker: Callable[[SourceDocument], list[Chunk]],
                  held: Mapping[str, int], keep: Collection[str], *, per_source: int, per_base: int) -> Budgeted:
    """Chunk `documents` and check the budget. `held`: chunks per source of the current version;
    `keep`: the sources the new version takes from it as they are (unchanged, or failed to load).
    A source over its own limit is kept too, so its current chunks count against the base's.
    SourceError when the base would be over its limit."""
    out = Budgeted()
    for doc in documents:
        chunks = chunker(doc)
        if per_source and len(chunks) > per_source:
            out.over.append((doc.name, f"{len(chunks):,} chunks is over the limit of {per_source:,} chunks per "
                                       "source (MAX_CHUNKS_PER_SOURCE); split it or raise the limit"))
            continue
        out.documents.append(doc)
        out.chunks[doc.name] = chunks
    kept = (set(keep) | {name for name, _ in out.over}) - set(out.chunks)
    total = sum(len(c) for c in out.chunks.values()) + sum(held.get(name, 0) for name in kept)
    if per_base and total > per_base:
        raise SourceError(f"The knowledge base would hold {total:,} chunks, over its limit of {per_base:,} "
                          "(MAX_CHUNKS_PER_BASE); nothing was changed and the current index keeps serving. "
                          "Remove a source or raise the limit.")
    return out
