"""Links between passages: what the best passages for a question point to.

A docs site says a thing in many words in its tutorial and FAQ and links the words to the
reference ("You can do a similar thing in a nested scope using the nonlocal keyword" links
to the reference's `nonlocal` section). A question worded like the tutorial finds the
tutorial; the reference it links to shares none of the question's words. So the sentences
of the best-ranked passages that hold a link and share words with the question vote for the
passage the link points to. When passages of two or more pages point to the same section of
a page the top passages do not come from, the retriever gives it the last place.

`LinkTargets` resolves a link ("reference/simple_stmts.html#nonlocal", or an absolute URL
for a fetched site) to a chunk: the first chunk of the section with that anchor; a fragment
that names no section's anchor ("#nonlocal", a marker Sphinx puts before the section
"the-nonlocal-statement") goes to the one anchor of that page holding all its words.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bot.rag.models import Chunk
from bot.rag.text import content_terms, split_sentences

MIN_SHARED = 2  # words of the question a linking sentence must hold
MIN_PAGES = 2  # pages that must link to a section for it to count


def _page_keys(chunk: Chunk) -> list[str]:
    return [chunk.source] + ([chunk.url.split("#", 1)[0]] if chunk.url else [])


def _words(fragment: str) -> frozenset[str]:
    return frozenset(w for w in re.split(r"[^a-z0-9]+", fragment.lower()) if w)


class LinkTargets:
    """The first chunk of every page and of every anchored section, by page (source name
    or URL) and anchor; `linked` says whether any chunk holds a link at all."""

    def __init__(self, pages: dict[str, str], anchors: dict[str, dict[str, str]], linked: bool = False) -> None:
        self.pages = pages
        self.anchors = anchors
        self.linked = linked

    @classmethod
    def build(cls, chunks: Iterable[Chunk]) -> LinkTargets:
        pages: dict[str, str] = {}
        anchors: dict[str, dict[str, str]] = {}
        linked = False
        for chunk in sorted(chunks, key=lambda c: (c.source, c.index)):
            linked |= bool(chunk.links)
            for key in _page_keys(chunk):
                pages.setdefault(key, chunk.id)
                if chunk.anchor:
                    anchors.setdefault(key, {}).setdefault(chunk.anchor, chunk.id)
        return cls(pages, anchors, linked)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"pages": self.pages, "anchors": self.anchors, "linked": self.linked}), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LinkTargets | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(dict(data["pages"]), dict(data["anchors"]), bool(data["linked"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def resolve(self, target: str) -> str | None:
        """The chunk a link points to, or None when it points to no known section."""
        page, _, fragment = target.partition("#")
        if page not in self.pages:
            return None
        if not fragment:
            return self.pages[page]
        anchors = self.anchors.get(page, {})
        if fragment in anchors:
            return anchors[fragment]
        wanted = _words(fragment)
        holding = [a for a in anchors if wanted and wanted <= _words(a)]
        return anchors[holding[0]] if len(holding) == 1 else None  # "#except": several sections, none sure


def cited_elsewhere(question: str, ranked: Sequence[Chunk], resolve: Callable[[str], str | None],
                    weight: Callable[[str], float]) -> list[str]:
    """Chunks that passages of two or more other pages among `ranked` (best first) link to,
    best first. A link votes when its sentence holds MIN_SHARED or more of the question's
    words: with those words' `weight` (their IDF), divided by the linking chunk's rank."""
    asked = set(content_terms(question))
    votes: Counter[str] = Counter()
    pages: dict[str, set[str]] = {}
    for rank, chunk in enumerate(ranked, start=1):
        if not chunk.links:
            continue
        own = set(_page_keys(chunk))
        sentences = split_sentences(chunk.text)
        shared_by: dict[int, set[str]] = {}  # the question's words in each linking sentence, stemmed once
        for at, target in chunk.links:
            if target.partition("#")[0] in own:
                continue
            sentence = next((i for i, s in enumerate(sentences) if s.start <= at - chunk.start < s.end), None)
            if sentence is None:
                continue
            if sentence not in shared_by:
                shared_by[sentence] = asked & set(content_terms(sentences[sentence].text))
            shared = shared_by[sentence]
            target_id = resolve(target) if len(shared) >= MIN_SHARED else None
            if target_id is None or chunk.source in pages.setdefault(target_id, set()):
                continue  # one vote per linking page
            pages[target_id].add(chunk.source)
            votes[target_id] += sum(weight(t) for t in shared) / rank
    return [chunk_id for chunk_id, _ in votes.most_common() if len(pages[chunk_id]) >= MIN_PAGES]
