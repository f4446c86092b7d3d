"""The Chroma index of one knowledge base: its versioned collections, loading and building them.

Every build writes a new collection `<prefix>_v<n>` marked `state=building`, then flips it to
`state=ready` in one metadata update: that flip is the atomic switch. Readers use the newest
ready version; a crash or Ctrl-C mid-build leaves an ignored `building` collection, and the
next build with the same model goes on from it (what was embedded is not embedded again);
any other unfinished version is removed. The previous ready version is kept until the next build so that a question that
started on it can finish. Unchanged chunks are copied with their stored vectors, never
re-embedded; the collection records which embedding model made its vectors.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from collections.abc import Collection as Collection_
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from bot.rag.embeddings import EmbeddingModel
from bot.rag.index.reclaim import reclaim_space
from bot.rag.index.version import ChunkEntry, IndexVersion, load_catalogue, read_all
from bot.rag.models import Chunk, IngestReport, SourceDocument

log = logging.getLogger(__name__)

_WRITE_BATCH = 128  # chunks embedded and written per step: what an interrupted build keeps
# (done so far, to do, what: CHUNKS while the new version is built, then SENTENCES for the
# sentence pass that follows once it serves)
Progress = Callable[[int, int, str], None]
CHUNKS, SENTENCES = "chunks", "sentences"


def _version_number(name: str, prefix: str) -> int | None:
    head, sep, tail = name.rpartition("_v")
    if head != prefix or not sep or not tail.isdigit():
        return None
    return int(tail)


def _restate(collection: Collection, chunks: Sequence[Chunk]) -> None:
    """Give chunks an interrupted build already holds the metadata they have now (a title
    may have changed since). Chroma merges metadata, so a key a chunk no longer has is set
    to None."""
    for lo in range(0, len(chunks), _WRITE_BATCH):
        batch = chunks[lo:lo + _WRITE_BATCH]
        got = collection.get(ids=[c.id for c in batch], include=["metadatas"])
        before = dict(zip(got["ids"], got["metadatas"] or []))
        collection.update(ids=[c.id for c in batch],
                          metadatas=[{**dict.fromkeys(before.get(c.id) or {}), **c.metadata()} for c in batch])


class ChromaIndex:
    """Finds, loads and builds index versions in one Chroma database."""

    def __init__(self, client: ClientAPI, prefix: str, keep_previous: bool = True,
                 persist_dir: Path | None = None, cache_dir: Path | None = None) -> None:
        self._client = client
        self._prefix = prefix
        self._keep_previous = keep_previous
        self._persist_dir = persist_dir  # embedded store: where deleted versions leave folders
        self._cache_dir = cache_dir  # where each version's derived data is kept

    @property
    def client(self) -> ClientAPI:
        return self._client

    def _versions(self) -> list[tuple[int, Collection]]:
        found = []
        for collection in self._client.list_collections():
            number = _version_number(collection.name, self._prefix)
            if number is not None:
                found.append((number, collection))
        return sorted(found, key=lambda item: item[0])

    def active_name(self) -> str | None:
        """Name of the newest ready version, or None when nothing has been built."""
        ready = [c for _, c in self._versions() if (c.metadata or {}).get("state") == "ready"]
        return ready[-1].name if ready else None

    def active_origin(self) -> str | None:
        """The folder the newest ready version was built from (its metadata only)."""
        ready = [c for _, c in self._versions() if (c.metadata or {}).get("state") == "ready"]
        return str(ready[-1].metadata.get("origin") or "") or None if ready else None

    def load(self, name: str | None = None) -> IndexVersion | None:
        """The named (default: newest ready) version, its catalogue read (chunks come on demand)."""
        name = name or self.active_name()
        if name is None:
            return None
        collection = self._client.get_collection(name, embedding_function=None)
        meta = collection.metadata or {}
        derived = self._cache_dir / f"{name}-{collection.id}" if self._cache_dir is not None else None
        return IndexVersion(
            name=name,
            collection=collection,
            embedding_model=str(meta.get("embedding_model", "")),
            created_at=datetime.fromisoformat(str(meta.get("created_at", "1970-01-01T00:00:00+00:00"))),
            catalogue=load_catalogue(collection, derived),
            origin=meta.get("origin"),
            derived_dir=derived,
        )

    def build(
        self,
        documents: Sequence[SourceDocument],
        embeddings: EmbeddingModel,
        chunker: Callable[[SourceDocument], list[Chunk]],
        current: IndexVersion | None,
        keep: Collection_[str] = (),
        origin: str | None = None,
        progress: Progress | None = None,
    ) -> tuple[IngestReport, str | None]:
        """Make a new version from `documents`, reusing `current`'s vectors where possible;
        the sources named in `keep` (files that failed to load) stay as `current` has them.
        Returns the report and the new version's name (None when nothing changed)."""
        report = IngestReport(sources=len(documents))
        reusable = current
        if current is not None and current.embedding_model != embeddings.model_id:
            report.reason = (
                f"the index was built with {current.embedding_model or 'an unknown model'} "
                f"and the bot now uses {embeddings.model_id}: re-indexing everything"
            )
            log.warning("%s", report.reason)
            reusable = None
        old_by_source: dict[str, dict[int, ChunkEntry]] = defaultdict(dict)
        if reusable is not None:
            for entry in reusable.catalogue.entries.values():
                old_by_source[entry.source][entry.index] = entry
        new_chunks: list[Chunk | ChunkEntry] = []  # entries: sources kept as they are, copied by id
        restated = False  # a source re-read whose chunks are the same but whose metadata is not
        for doc in documents:
            chunks = chunker(doc)
            old = old_by_source.get(doc.name, {})
            entry = reusable.catalogue.sources.get(doc.name) if reusable is not None else None
            restated |= entry is not None and (entry.file_hash, entry.title) != (doc.file_hash, doc.title)
            for chunk in chunks:
                previous = old.get(chunk.index)
                if previous is None:
                    report.added += 1
                elif previous.id == chunk.id:
                    report.unchanged += 1
                else:
                    report.updated += 1
            report.removed += max(0, len(old) - len(chunks))
            new_chunks.extend(chunks)
        names = {doc.name for doc in documents}
        for source in keep:
            if source not in names and source in old_by_source:  # its previous version goes on serving
                new_chunks.extend(old_by_source[source].values())
                report.unchanged += len(old_by_source[source])
                report.sources += 1
                names.add(source)
        report.removed += sum(len(c) for s, c in old_by_source.items() if s not in names)
        if (current is not None and reusable is not None and report.unchanged == len(new_chunks)
                and not report.removed and not restated):
            if origin is None or origin == current.origin:
                return report, None  # nothing to do: the live version already is this index
        if current is not None and reusable is None:
            report.removed += len(current.catalogue)  # old-model chunks all go
        name = self._write_version(new_chunks, embeddings, reusable, origin, progress)
        report.rebuilt = True
        return report, name

    def _write_version(
        self, chunks: Sequence[Chunk | ChunkEntry], embeddings: EmbeddingModel, reusable: IndexVersion | None, origin: str | None,
        progress: Progress | None = None,
    ) -> str:
        created = datetime.now(UTC).isoformat()
        about = {"embedding_model": embeddings.model_id, "created_at": created, **({"origin": origin} if origin else {})}
        collection = self._resumable(embeddings.model_id)
        if collection is not None:
            name = collection.name
            wanted = {c.id for c in chunks}
            done = set(read_all(collection)[0])
            stale = sorted(done - wanted)
            for lo in range(0, len(stale), _WRITE_BATCH):
                collection.delete(ids=stale[lo:lo + _WRITE_BATCH])
            done &= wanted
            _restate(collection, [c for c in chunks if isinstance(c, Chunk) and c.id in done])
            log.info("resuming the unfinished build %s: %d chunks already in it", name, len(done))
        else:
            self.drop_unfinished()
            versions = self._versions()
            name = f"{self._prefix}_v{(versions[-1][0] + 1) if versions else 1}"
            collection = self._client.create_collection(
                name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"state": "building", **about},
                embedding_function=None,
            )
            done = set()
        chunks = [c for c in chunks if c.id not in done]
        reuse_ids = [c.id for c in chunks if reusable is not None and c.id in reusable.chunks]
        fresh = [c for c in chunks if isinstance(c, Chunk) and (reusable is None or c.id not in reusable.chunks)]
        fresh.sort(key=lambda c: len(c.search_text))  # batches of like lengths pad little, as one big encode does
        reread = {c.id: c for c in chunks if isinstance(c, Chunk)}  # re-read sources: their metadata is the new one
        started = time.perf_counter()
        for lo in range(0, len(reuse_ids), _WRITE_BATCH):
            batch = reuse_ids[lo:lo + _WRITE_BATCH]
            assert reusable is not None
            got = reusable.collection.get(ids=batch, include=["embeddings", "documents", "metadatas"])
            collection.add(
                ids=got["ids"], embeddings=got["embeddings"], documents=got["documents"],
                metadatas=[reread[i].metadata() if i in reread else meta
                           for i, meta in zip(got["ids"], got["metadatas"])],
            )
        # Each batch is written while the next one is embedded; a crash loses at most the
        # batch being written, which a resumed build embeds again.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chroma-write") as writer:
            written: Future[None] | None = None
            for lo in range(0, len(fresh), _WRITE_BATCH):
                batch_chunks = fresh[lo:lo + _WRITE_BATCH]
                vectors = embeddings.encode([c.search_text for c in batch_chunks])
                if written is not None:
                    written.result()
                    if progress is not None:
                        progress(lo, len(fresh), CHUNKS)
                written = writer.submit(
                    collection.add,
                    ids=[c.id for c in batch_chunks],
                    embeddings=vectors,
                    documents=[c.text for c in batch_chunks],
                    metadatas=[c.metadata() for c in batch_chunks],
                )
            if written is not None:
                written.result()
                if progress is not None:
                    progress(len(fresh), len(fresh), CHUNKS)
        collection.modify(
            metadata={"state": "ready", **about}
        )
        log.info(
            "index %s ready: %d chunks (%d embedded, %d copied, %d from an interrupted build) in %.2fs",
            name, len(chunks) + len(done), len(fresh), len(reuse_ids), len(done), time.perf_counter() - started,
        )
        self._prune(keep=name)
        return name

    def _resumable(self, model_id: str) -> Collection | None:
        """The build a crash or Ctrl-C left unfinished, when it is the newest version and its
        vectors are from this model: the next build goes on from what it holds."""
        versions = self._versions()
        if not versions:
            return None
        newest = versions[-1][1]
        meta = newest.metadata or {}
        if meta.get("state") == "building" and meta.get("embedding_model") == model_id:
            return newest
        return None

    def drop_unfinished(self) -> None:
        """Remove versions left `building` by a crash or a failed build."""
        for _, collection in self._versions():
            if (collection.metadata or {}).get("state") != "ready":
                log.info("removing unfinished index version %s", collection.name)
                self._client.delete_collection(collection.name)

    def _prune(self, keep: str) -> None:
        """Delete all but the newest version and (if kept) the one before it."""
        names = [c.name for _, c in self._versions()]
        keep_set = {keep}
        if self._keep_previous:
            older = [n for n in names if n != keep]
            if older:
                keep_set.add(older[-1])
        retired = [name for name in names if name not in keep_set]
        for name in retired:
            self._client.delete_collection(name)
        if retired and self._persist_dir is not None:
            reclaim_space(self._persist_dir)
        self._drop_derived_of_retired()

    def _drop_derived_of_retired(self) -> None:
        """Remove the derived folders of versions that no longer exist."""
        if self._cache_dir is None or not self._cache_dir.is_dir():
            return
        live = {f"{c.name}-{c.id}" for _, c in self._versions()}
        for folder in self._cache_dir.glob(f"{self._prefix}_v*"):
            if folder.name not in live:
                shutil.rmtree(folder, ignore_errors=True)

