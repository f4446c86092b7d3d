"""The sentence pass of an ingest: once a new version serves, the sentences of every chunk
it embedded (split as the answerer splits them) are embedded into the sentence store, so a
question reads its candidates' vectors instead of waiting for them to be embedded.

It runs after the version went live, so members are answered from the new index while it
runs (a sentence not yet reached is embedded when first read, as before). Sentences the
store already holds (from an earlier version or an interrupted pass) are not embedded again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from bot.rag.embeddings import VectorCache
from bot.rag.index.store import SENTENCES, Progress
from bot.rag.index.version import IndexVersion
from bot.rag.models import Chunk

log = logging.getLogger(__name__)

SentencesOf = Callable[[Chunk, Callable[[str], str]], list[str]]
_BATCH = 64  # chunks per step


def new_chunk_ids(version: IndexVersion, before: IndexVersion | None) -> list[str]:
    """Chunks of `version` that `before` did not have, grouped by source."""
    known = before.catalogue.entries if before is not None else {}
    return [c.id for s in version.catalogue.sources.values() for c in s.chunks if c.id not in known]


def embed_sentences(version: IndexVersion, chunk_ids: Sequence[str], vectors: VectorCache,
                    sentences_of: SentencesOf, progress: Progress | None = None) -> float:
    """Embed (into `vectors`' store) the sentences of `chunk_ids`; returns the seconds taken."""
    started = time.perf_counter()
    for lo in range(0, len(chunk_ids), _BATCH):
        batch = list(chunk_ids[lo:lo + _BATCH])
        for source in dict.fromkeys(version.catalogue.entries[c].source for c in batch):
            version.source_text(source)  # fetches the page's chunks once; the batch is then read from the cache
        chunks = version.chunks.get_many(batch)
        texts = list(dict.fromkeys(t for chunk in chunks for t in sentences_of(chunk, version.source_text)))
        if texts:
            vectors.get(texts)
        if progress is not None:
            progress(min(lo + _BATCH, len(chunk_ids)), len(chunk_ids), SENTENCES)
    seconds = time.perf_counter() - started
    if chunk_ids:
        log.info("%s: sentence vectors of %d chunks ready in %.1fs", version.name, len(chunk_ids), seconds)
    return seconds
