"""Plain data passed between the service, the CLI and the Discord layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SourceDocument:
    """One source file after loading and normalisation."""

    name: str  # file name, e.g. "haliva-resignation.txt"
    text: str  # normalised text; chunk offsets refer to it
    content_hash: str  # sha256 of the normalised text
    title: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of one source, with character offsets into the source's normalised text."""

    id: str
    source: str
    index: int
    start: int
    end: int
    text: str
    source_hash: str
    title: str | None = None
    url: str | None = None

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "source": self.source,
            "chunk_index": self.index,
            "start": self.start,
            "end": self.end,
            "source_hash": self.source_hash,
        }
        if self.title:
            meta["title"] = self.title
        if self.url:
            meta["url"] = self.url
        return meta


@dataclass(frozen=True)
class Citation:
    """A cited chunk: `n` is the marker number used in the answer text."""

    n: int
    source: str
    chunk_id: str
    start: int  # offsets of `quote` in the source's normalised text
    end: int
    quote: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    answerable: bool
    citations: list[Citation] = field(default_factory=list)
    provider: str = "extractive"
    grounded: bool = True  # False when a model answered without a valid citation

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "answerable": self.answerable,
            "citations": [c.to_dict() for c in self.citations],
        }


@dataclass(frozen=True)
class SummaryBullet:
    text: str
    citations: list[int]


@dataclass(frozen=True)
class Summary:
    source: str | None  # None: all sources
    bullets: list[SummaryBullet]
    citations: list[Citation]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "bullets": [{"text": b.text, "citations": b.citations} for b in self.bullets],
            "citations": [c.to_dict() for c in self.citations],
        }


@dataclass(frozen=True)
class SourceInfo:
    name: str
    chunks: int
    ingested_at: datetime
    title: str | None = None


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    sources: int = 0
    rebuilt: bool = False  # a new index version was made (False: nothing changed)
    reason: str | None = None  # why a full re-index happened, if it did

    def __str__(self) -> str:
        return (
            f"{self.sources} source(s): {self.added} chunk(s) added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed"
        )
