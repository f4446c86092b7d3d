"""Citation markers: numbering retrieved chunks, reading `[n]` markers out of model text,
dropping the ones that do not name a retrieved chunk, renumbering the rest by first
appearance, and attaching to each the exact quote (with offsets) it stands for."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from bot.rag.models import Chunk, Citation
from bot.rag.text import Span, readable_quote, split_sentences

_MARKER_GROUP = re.compile(r"\s*\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")


def format_context(chunks: Sequence[Chunk], template: str) -> str:
    """The excerpts as the model sees them: numbered 1..k in retrieval order."""
    return "\n\n".join(
        template.format(n=n, source=chunk.title or chunk.label, text=chunk.search_text)
        for n, chunk in enumerate(chunks, start=1)
    )


def span_citation(n: int, chunk: Chunk, start: int, end: int, source_text: str) -> Citation:
    """A citation of `chunk` quoting its source's text between offsets start..end, as clean
    prose (or one code block) for a member to read."""
    quote = readable_quote(source_text[start:end])
    return Citation(n=n, source=chunk.source, chunk_id=chunk.id, start=start, end=end, quote=quote,
                    label=chunk.label, link=chunk.link)


def cited_numbers(text: str) -> list[int]:
    """Every number inside `[..]` markers, in order of appearance (repeats kept)."""
    found: list[int] = []
    for match in _MARKER_GROUP.finditer(text):
        found.extend(int(part) for part in re.split(r"[,;]", match.group(1)))
    return found


def renumber_markers(text: str, valid: int) -> tuple[str, list[int]]:
    """Rewrite markers so cited chunks are numbered 1, 2, ... by first appearance.
    Markers naming no retrieved chunk (outside 1..valid) are removed. Returns the new text
    and the original numbers in their new order."""
    order: list[int] = []

    def replace(match: re.Match[str]) -> str:
        kept = []
        for part in re.split(r"[,;]", match.group(1)):
            number = int(part)
            if 1 <= number <= valid:
                if number not in order:
                    order.append(number)
                new = order.index(number) + 1
                if new not in kept:
                    kept.append(new)
        return "".join(f" [{k}]" for k in kept) if kept else ""

    rewritten = _MARKER_GROUP.sub(replace, text)
    rewritten = re.sub(r" +([.,;:!?])", r"\1", rewritten).strip()
    return re.sub(r"(\[\d+\]) (?=\[)", r"\1", rewritten), order


def best_sentence(
    chunk: Chunk, reference: np.ndarray | None, vectors_of: Callable[[Sequence[str]], np.ndarray]
) -> Span:
    """The sentence of `chunk` closest to `reference` (absolute offsets), or the whole chunk."""
    sentences = [Span(chunk.start + s.start, chunk.start + s.end, s.text) for s in split_sentences(chunk.text)]
    if reference is None or len(sentences) <= 1:
        return Span(chunk.start, chunk.end, chunk.text)
    sims = vectors_of([s.text for s in sentences]) @ reference
    return sentences[int(np.argmax(sims))]
