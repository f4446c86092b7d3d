"""What a knowledge base holds: the one listing behind `source list`, `sources` and /source
list, so they never disagree (/sources lists the indexed ones, from the same served version).

The served index version is the truth about what is indexed (chunk counts, when); the source
registry adds who added a source, from where, and a failure it recorded. A registered source the
serving version does not hold yet is "pending"; a file the serving version holds that nobody
registered (the host's own files in the shared sources folder, such as the seed article) is
listed as added by the host. Reads never build an index nor load the embedding model.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.rag.index.registry import KnowledgeBases
from bot.rag.models import SourceInfo
from bot.state import SourceRegistry, SourceRow

log = logging.getLogger(__name__)
FOLDER_KINDS = frozenset({"crawl", "discord"})  # sources kept as a folder of files, one per page or message
HOST = "host"  # who "added" a file found in the folder and indexed, with no registry row


@dataclass(frozen=True)
class Holding:
    """One source of a base as every listing shows it."""

    row: SourceRow  # the registry's row with the served status and chunk count (made up for a host file)
    ingested_at: datetime | None  # when the serving version was built (None: not indexed)
    title: str | None = None


def covered_names(row: SourceRow, indexed: Iterable[str]) -> list[str]:
    """The indexed source names a registered source stands for: its own, or the files of its
    folder (a crawl's pages, a Discord channel's messages)."""
    return [n for n in indexed if n == row.name or (row.kind in FOLDER_KINDS and n.startswith(f"{row.name}/"))]


def merge(base: str, rows: list[SourceRow], indexed: Mapping[str, SourceInfo] | None) -> list[Holding]:
    """Registered sources with the serving version's status and chunks, then the indexed files
    nobody registered. `indexed` None: the index could not be read; the registry's word stands."""
    if indexed is None:
        return [Holding(row, None) for row in rows]
    held: list[Holding] = []
    covered: set[str] = set()
    for row in rows:
        names = covered_names(row, indexed)
        covered.update(names)
        chunks = sum(indexed[n].chunks for n in names)
        status = "failed" if row.status == "failed" else "ready" if chunks else "pending"
        fixed = dataclasses.replace(row, chunks=chunks, status=status, error=row.error if status == "failed" else None)
        first = indexed[names[0]] if names else None
        held.append(Holding(fixed, first.ingested_at if first else None, first.title if first and len(names) == 1 else None))
    for name in sorted(set(indexed) - covered):
        info = indexed[name]
        row = SourceRow(id=0, base=base, name=name, kind="file", origin=name, content_hash=None, added_by=HOST,
                        added_by_name=None, added_at=info.ingested_at, updated_at=info.ingested_at, etag=None,
                        last_modified=None, status="ready", error=None, chunks=info.chunks, pages=0)
        held.append(Holding(row, info.ingested_at, info.title))
    return sorted(held, key=lambda h: (h.row.name.casefold(), h.row.name))


def holdings(bases: KnowledgeBases, registry: SourceRegistry | None, base: str) -> list[Holding]:
    """What `base` holds now. A store that cannot be read leaves the registry's word; a state
    database that cannot be read leaves the index's (a listing never fails for want of one)."""
    try:
        indexed: dict[str, SourceInfo] | None = bases.get(base).served_sources()
    except Exception as exc:  # noqa: BLE001 - the listing says what it knows
        log.warning("the index of %s could not be read for its listing: %s", base, type(exc).__name__)
        indexed = None
    rows: list[SourceRow] = []
    if registry is not None:
        try:
            rows = registry.list(base)
        except Exception as exc:  # noqa: BLE001
            if indexed is None:
                raise
            log.warning("the sources of %s could not be read from the state database: %s", base, type(exc).__name__)
    return merge(base, rows, indexed)
