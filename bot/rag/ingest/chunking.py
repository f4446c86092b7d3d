"""Sentence-aware chunking with overlap, stable ids and character offsets."""

from __future__ import annotations

import hashlib

from bot.rag.models import Chunk, SourceDocument
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
    """Greedy packing of whole sentences up to `size` characters; each chunk after the first
    starts with the previous chunk's last sentence, and more of its trailing sentences while
    they total at most `overlap` characters."""
    pieces = _pieces(split_sentences(doc.text), size)
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
    chunks: list[Chunk] = []
    for index, group in enumerate(groups):
        start, end = group[0].start, group[-1].end
        text = doc.text[start:end]
        chunks.append(
            Chunk(
                id=chunk_id(doc.name, index, text),
                source=doc.name,
                index=index,
                start=start,
                end=end,
                text=text,
                source_hash=doc.content_hash,
                title=doc.title,
                url=doc.url,
            )
        )
    return chunks
