"""Section-aware, sentence-aware chunking with overlap, stable ids and character offsets."""

from __future__ import annotations

import hashlib

from bot.rag.models import HEADING_SEPARATOR, Chunk, DocumentSection, SourceDocument
from bot.rag.text import Span, split_sentences


def _pieces(sentences: list[Span], size: int) -> list[Span]:
    """Sentences, with any sentence longer than `size` cut at word boundaries."""
    out: list[Span] = []
    for sent in sentences:
        if len(sent.text) <= size:
            out.append(sent)
            continue
        start = sent.start
        while start < sent.end:
            end = min(sent.end, start + size)
            if end < sent.end:
                cut = sent.text.rfind(" ", start - sent.start, end - sent.start)
                if cut > start - sent.start:
                    end = sent.start + cut
            piece = sent.text[start - sent.start:end - sent.start]
            lead = len(piece) - len(piece.lstrip())
            if piece.strip():
                out.append(Span(start + lead, start + lead + len(piece.strip()), piece.strip()))
            start = end
    return out


def chunk_id(source: str, index: int, text: str) -> str:
    """Stable id: same source, position and text give the same id in every run."""
    digest = hashlib.sha256(f"{source}\x00{index}\x00{text}".encode()).hexdigest()[:16]
    return f"{source}#{index}-{digest}"


def chunk_document(doc: SourceDocument, size: int, overlap: int) -> list[Chunk]:
    """The document's chunks, section by section: a chunk never straddles a heading (or a
    PDF page); within a section, sentences are packed as `pack_sentences` does."""
    sections = doc.sections or (DocumentSection(0, len(doc.text)),)
    chunks: list[Chunk] = []
    for section in sections:
        sentences = [
            Span(section.start + s.start, section.start + s.end, s.text)
            for s in split_sentences(doc.text[section.start:section.end])
        ]
        heading = HEADING_SEPARATOR.join(section.heading_path) or None
        for group in pack_sentences(_pieces(sentences, size), size, overlap):
            start, end = group[0].start, group[-1].end
            text = doc.text[start:end]
            index = len(chunks)
            chunks.append(Chunk(
                id=chunk_id(doc.name, index, text), source=doc.name, index=index, start=start, end=end,
                text=text, source_hash=doc.content_hash, title=doc.title, url=doc.url,
                heading=heading, page=section.page, anchor=section.anchor, file_hash=doc.file_hash,
            ))
    return chunks


def pack_sentences(pieces: list[Span], size: int, overlap: int) -> list[list[Span]]:
    """Greedy packing of whole sentences up to `size` characters; each group after the first
    starts with the previous group's last sentence, and more of its trailing sentences while
    they total at most `overlap` characters."""
    groups: list[list[Span]] = []
    current: list[Span] = []
    for piece in pieces:
        if current and piece.end - current[0].start > size:
            groups.append(current)
            carry: list[Span] = []
            for prev in reversed(current):
                too_long = carry and current[-1].end - prev.start > overlap  # always carry one
                if too_long or len(carry) + 1 >= len(current):
                    break
                carry.insert(0, prev)
            current = carry
            # the carried sentences plus the new one must still fit
            while current and piece.end - current[0].start > size:
                current.pop(0)
        current.append(piece)
    if current:
        groups.append(current)
    return groups
