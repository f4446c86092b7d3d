"""Plain data passed between the service, the CLI and the Discord layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

HEADING_SEPARATOR = " › "


@dataclass(frozen=True)
class DocumentSection:
    """A stretch of a source's text under one heading (and on one PDF page)."""

    start: int
    end: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    anchor: str | None = None  # HTML fragment to link to


@dataclass(frozen=True)
class SourceDocument:
    """One source file after conversion and normalisation."""

    name: str  # path under its folder, e.g. "library/functions.html"
    text: str  # normalised text; chunk offsets refer to it
    content_hash: str  # sha256 of the normalised text
    title: str | None = None
    url: str | None = None
    sections: tuple[DocumentSection, ...] = ()  # empty: the whole text is one section
    kind: str = "text"
    file_hash: str | None = None  # of the file's bytes (and how it is chunked): unchanged files skip conversion


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
    heading: str | None = None  # heading path, "Built-in Functions › zip()"
    page: int | None = None
    anchor: str | None = None
    file_hash: str | None = None

    @property
    def search_text(self) -> str:
        """What retrieval sees: the heading path leads the text ("## Fares" finds "how much")."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    @property
    def link(self) -> str | None:
        """Where a reader can see this passage: the source's URL (with the section's anchor)."""
        if not self.url:
            return None
        return f"{self.url.split('#', 1)[0]}#{self.anchor}" if self.anchor else self.url

    @property
    def label(self) -> str:
        """How a citation names the passage: "functions.html › zip()", "manual.pdf p. 3"."""
        label = self.source.rsplit("/", 1)[-1]
        if self.heading:
            label += HEADING_SEPARATOR + self.heading.split(HEADING_SEPARATOR)[-1] if label else self.heading
        if self.page:
            label += f" p. {self.page}"
        return label

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
        if self.heading:
            meta["heading"] = self.heading
        if self.page:
            meta["page"] = self.page
        if self.anchor:
            meta["anchor"] = self.anchor
        if self.file_hash:
            meta["file_hash"] = self.file_hash
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
    label: str | None = None  # "functions.html › zip()", "manual.pdf p. 3"
    link: str | None = None  # the source's URL, with the section's anchor

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
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): not a source
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, why): its previous version kept
    folder: str | None = None
    live_after_s: float | None = None  # from the start until the new version served
    sentences_s: float | None = None  # the sentence pass that followed (sentence vectors made ahead)

    def __str__(self) -> str:
        line = (
            f"{self.sources} source(s): {self.added} chunk(s) added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed"
        )
        if self.skipped:
            line += f"; {len(self.skipped)} file(s) skipped"
        if self.failed:
            line += f"; {len(self.failed)} file(s) failed (previous version kept)"
        return line

    def details(self, limit: int = 20) -> list[str]:
        """One line per skipped or failed file (the first `limit` of each)."""
        lines = [f"failed: {why}" if why.startswith(name) else f"failed: {name}: {why}" for name, why in self.failed[:limit]]
        lines += [f"skipped: {name}: {why}" for name, why in self.skipped[:limit]]
        for kind, items in (("failed", self.failed), ("skipped", self.skipped)):
            if len(items) > limit:
                lines.append(f"... and {len(items) - limit} more {kind}")
        return lines
