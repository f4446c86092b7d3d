"""One ready index version as its readers see it: a catalogue of its chunks (ids, sources,
offsets and file hashes, no text) read at start, and the chunks themselves fetched from
Chroma by id when a question needs them — the retrieved top k, the pages they are on — and
kept in small caches. Start-up and memory so grow with the number of chunks only by a few
dozen bytes each, not by their text.

The catalogue is saved beside the version in the cache folder (`derived_dir`), so a process
starting on a built version reads one file instead of every chunk's metadata from Chroma.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from chromadb.api.models.Collection import Collection

from bot.rag.models import Chunk, SourceInfo

log = logging.getLogger(__name__)

_FETCH_BATCH = 1000  # ids per Chroma `get`
_PAGE = 5000  # records per page when reading a whole collection
_CATALOGUE_FILE = "catalogue.json"


@dataclass(frozen=True)
class ChunkEntry:
    """What the catalogue keeps of a chunk."""

    id: str
    source: str
    index: int
    start: int
    end: int


@dataclass(frozen=True)
class SourceEntry:
    """What the catalogue keeps of a source: its chunks in order and what it was made from."""

    name: str
    title: str | None
    file_hash: str | None
    source_hash: str
    chunks: tuple[ChunkEntry, ...]


class Catalogue:
    """Every chunk of a version, by id and by source, without text."""

    def __init__(self, sources: Iterable[SourceEntry]) -> None:
        self.sources = {s.name: s for s in sorted(sources, key=lambda s: s.name)}
        self.entries = {c.id: c for s in self.sources.values() for c in s.chunks}

    @classmethod
    def from_records(cls, ids: Sequence[str], metadatas: Sequence[Mapping[str, Any] | None]) -> Catalogue:
        grouped: dict[str, list[ChunkEntry]] = defaultdict(list)
        about: dict[str, Mapping[str, Any]] = {}
        for chunk_id, meta in zip(ids, metadatas):
            meta = meta or {}
            source = str(meta["source"])
            grouped[source].append(ChunkEntry(chunk_id, source, int(meta["chunk_index"]), int(meta["start"]), int(meta["end"])))
            about[source] = meta
        return cls(
            SourceEntry(name, about[name].get("title"), about[name].get("file_hash"), str(about[name]["source_hash"]),
                        tuple(sorted(entries, key=lambda c: c.index)))
            for name, entries in grouped.items()
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".tmp")
        rows = [[s.name, s.title, s.file_hash, s.source_hash, [[c.id, c.index, c.start, c.end] for c in s.chunks]]
                for s in self.sources.values()]
        staging.write_text(json.dumps(rows), encoding="utf-8")
        staging.replace(path)

    @classmethod
    def load(cls, path: Path) -> Catalogue | None:
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                SourceEntry(name, title, file_hash, source_hash,
                            tuple(ChunkEntry(cid, name, index, start, end) for cid, index, start, end in chunks))
                for name, title, file_hash, source_hash, chunks in rows
            )
        except (OSError, ValueError, TypeError):
            return None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self.entries


def chunk_from_record(chunk_id: str, text: str, meta: Mapping[str, Any]) -> Chunk:
    return Chunk(
        id=chunk_id,
        source=str(meta["source"]),
        index=int(meta["chunk_index"]),
        start=int(meta["start"]),
        end=int(meta["end"]),
        text=text,
        source_hash=str(meta["source_hash"]),
        title=meta.get("title"),
        url=meta.get("url"),
        heading=meta.get("heading"),
        page=int(meta["page"]) if meta.get("page") else None,
        anchor=meta.get("anchor"),
        file_hash=meta.get("file_hash"),
    )


class ChunkMap(Mapping[str, Chunk]):
    """The version's chunks by id: fetched from the collection when asked for (many at once
    with `get_many`), the most recently used kept."""

    def __init__(self, collection: Collection, catalogue: Catalogue, capacity: int = 4096) -> None:
        self._collection = collection
        self._catalogue = catalogue
        self._cache: LRUCache[str, Chunk] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    def get_many(self, ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids (all in the catalogue), in that order."""
        with self._lock:
            found = {i: c for i in ids if (c := self._cache.get(i)) is not None}
        missing = [i for i in dict.fromkeys(ids) if i not in found]
        for lo in range(0, len(missing), _FETCH_BATCH):
            got = self._collection.get(ids=missing[lo:lo + _FETCH_BATCH], include=["documents", "metadatas"])
            for chunk_id, text, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or []):
                found[chunk_id] = chunk_from_record(chunk_id, text or "", meta or {})
        if missing:
            with self._lock:
                for chunk_id in missing[-self._cache.maxsize:]:
                    if chunk_id in found:
                        self._cache[chunk_id] = found[chunk_id]
        return [found[i] for i in ids]

    def __getitem__(self, chunk_id: str) -> Chunk:
        if chunk_id not in self._catalogue:
            raise KeyError(chunk_id)
        return self.get_many([chunk_id])[0]

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._catalogue

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalogue.entries)

    def __len__(self) -> int:
        return len(self._catalogue)

    def values(self) -> list[Chunk]:  # type: ignore[override]  # one batched fetch, not one per id
        return self.get_many(list(self._catalogue.entries))


@dataclass
class IndexVersion:
    """A read-only view of one ready collection: its catalogue, and its chunks on demand."""

    name: str
    collection: Collection
    embedding_model: str
    created_at: datetime
    catalogue: Catalogue
    origin: str | None = None  # the folder the version was built from
    derived_dir: Path | None = None  # where what is derived from it is kept (catalogue, lexical index)
    chunks: ChunkMap = field(init=False)

    def __post_init__(self) -> None:
        self.chunks = ChunkMap(self.collection, self.catalogue)
        self._texts: LRUCache[str, str] = LRUCache(maxsize=32)  # source texts rebuilt lately
        self._hidden: LRUCache[frozenset[str], frozenset[str]] = LRUCache(maxsize=32)  # chunk ids of source sets
        self._cache_lock = threading.Lock()  # over both caches

    @cached_property
    def sources(self) -> dict[str, SourceInfo]:
        return {
            name: SourceInfo(name=name, chunks=len(entry.chunks), ingested_at=self.created_at, title=entry.title)
            for name, entry in self.catalogue.sources.items()
        }

    @cached_property
    def source_names(self) -> frozenset[str]:
        return frozenset(self.catalogue.sources)

    def chunk_ids_of_source(self, source: str) -> list[str]:
        entry = self.catalogue.sources.get(source)
        return [c.id for c in entry.chunks] if entry else []

    def chunk_ids_of_sources(self, sources: frozenset[str]) -> frozenset[str]:
        """The chunk ids of several sources (kept for the sets asked lately: the sources a
        reply's readers may not see repeat from one question to the next)."""
        if not sources:
            return frozenset()
        with self._cache_lock:
            found = self._hidden.get(sources)
        if found is None:
            found = frozenset(cid for source in sources for cid in self.chunk_ids_of_source(source))
            with self._cache_lock:
                self._hidden[sources] = found
        return found

    def chunks_of_source(self, source: str) -> list[Chunk]:
        return self.chunks.get_many(self.chunk_ids_of_source(source))

    def source_text(self, source: str) -> str:
        """The source's normalised text, rebuilt from its chunks (they cover every sentence;
        what lies between two chunks is whitespace, given back as line breaks so headings
        stay on lines of their own)."""
        with self._cache_lock:
            cached = self._texts.get(source)
        if cached is None:
            pieces = sorted(self.chunks_of_source(source), key=lambda c: c.start)
            buffer = ["\n"] * (max(c.end for c in pieces) if pieces else 0)
            for chunk in pieces:
                buffer[chunk.start:chunk.end] = chunk.text
            cached = "".join(buffer)
            with self._cache_lock:
                self._texts[source] = cached
        return cached


def read_all(collection: Collection, with_metadata: bool = False,
             total: int | None = None) -> tuple[list[str], list[Mapping[str, Any] | None]]:
    """Every id (and metadata) of a collection, read in pages: a Chroma server refuses a
    single query over some 32,000 records ("too many SQL variables")."""
    ids: list[str] = []
    metadatas: list[Mapping[str, Any] | None] = []
    for offset in range(0, collection.count() if total is None else total, _PAGE):
        page = collection.get(include=["metadatas"] if with_metadata else [], limit=_PAGE, offset=offset)
        ids.extend(page["ids"])
        metadatas.extend(page["metadatas"] or [None] * len(page["ids"]))
    return ids, metadatas


def load_catalogue(collection: Collection, derived_dir: Path | None) -> Catalogue:
    """The version's catalogue: read from its derived folder, or made from the collection's
    metadata (and saved there for the next process)."""
    path = derived_dir / _CATALOGUE_FILE if derived_dir is not None else None
    total = collection.count()
    if path is not None and (saved := Catalogue.load(path)) is not None and len(saved) == total:
        return saved
    ids, metadatas = read_all(collection, with_metadata=True, total=total)
    catalogue = Catalogue.from_records(ids, metadatas)
    if path is not None:
        save_derived(lambda: catalogue.save(path), "catalogue", collection.name)
    return catalogue


def save_derived(save: Callable[[], None], what: str, version: str) -> None:
    """Keep something derived from a version for the next process; if it cannot be written,
    say so and go on (it is then rebuilt at each start)."""
    try:
        save()
    except OSError as exc:
        log.warning("the %s of %s could not be saved (%s): it is rebuilt at each start", what, version, exc)
