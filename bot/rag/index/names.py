"""Sections by the name they document: an API entry ("math.isclose()"), a command-line
option ("-O"), a setting ("PYTHONOPTIMIZE"). A question that writes such a name
("`math.isclose`", "python with -O", "`.lstrip(`") points at its section more surely than
any word statistics can: BM25 loses "-O" (one letter) and dense vectors blur it. The
retriever fuses these sections in as one more ranking.

Names are the last part of a chunk's heading path without its argument list; a method's
own name ("lstrip") is kept too, and asked for only when the question calls it (".lstrip(").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from bot.rag.models import HEADING_SEPARATOR, Chunk

_ARGUMENTS = re.compile(r"\s*\(.*\)\s*$")
_NAME = re.compile(r"^(-{1,2}[A-Za-z][\w-]*|[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)$")
# In a question: an option, a dotted name, or a called method.
_ASKED = re.compile(
    r"(?<![\w.])(?P<option>-{1,2}[A-Za-z][\w-]*)|(?<![\w.])(?P<dotted>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)"
    r"|\.(?P<method>[A-Za-z_]\w*)\("
)
# "What does -O do?", "what is math.isclose", "what does X actually change?"
_ASKS_WHAT_IT_IS = re.compile(r"^\s*(what|whats|what's)\s+(is|are|does|do)\b", re.IGNORECASE)
PER_NAME = 3  # chunks of one named section taken (its first ones)
LIMIT = 10


def section_title(heading: str | None) -> str:
    """"math › math.isclose()" -> "math.isclose()": the innermost heading ("" for none)."""
    return heading.split(HEADING_SEPARATOR)[-1].strip() if heading else ""


def section_name(heading: str | None) -> str | None:
    """"math › math.isclose()" -> "math.isclose"; None unless the heading is a name: an
    option, a dotted or snake_case name, a call ("zip()") or an ALLCAPS setting, not a
    one-word title ("Background")."""
    last = section_title(heading)
    if not last:
        return None
    name = _ARGUMENTS.sub("", last).strip()
    if not _NAME.match(name):
        return None
    code_like = name != last or name.startswith("-") or "." in name or "_" in name or (name.isupper() and len(name) > 2)
    return name if code_like else None


def section_keys(name: str) -> list[str]:
    """The keys a section called `name` is found by: its name, and a method's own name
    (".lstrip" for "str.lstrip"), which a question asks for only by calling it."""
    return [name] + ([f".{name.rsplit('.', 1)[1]}"] if "." in name[1:] else [])


def asked_names(question: str) -> list[str]:
    """The names a question writes out, as keys of `SectionNames` ("-O", "math.isclose", ".lstrip")."""
    return [m.group("option") or m.group("dotted") or f".{m.group('method')}" for m in _ASKED.finditer(question)]


def names_section(key: str, name: str | None) -> bool:
    """Whether the section called `name` is the one an asked `key` means."""
    return name is not None and key in section_keys(name)


def asks_what_it_is(question: str) -> bool:
    """"What does -O do?": a question a named entry's opening sentence answers."""
    return bool(_ASKS_WHAT_IT_IS.match(question)) and bool(asked_names(question))


class SectionNames:
    """Chunk ids (in document order) by the name of their section."""

    def __init__(self, by_name: dict[str, list[str]]) -> None:
        self.by_name = by_name

    @classmethod
    def build(cls, chunks: Iterable[Chunk]) -> SectionNames:
        by_name: dict[str, list[str]] = {}
        for chunk in sorted(chunks, key=lambda c: (c.source, c.index)):
            name = section_name(chunk.heading)
            if name is None:
                continue
            for key in section_keys(name):
                ids = by_name.setdefault(key, [])
                if len(ids) < 4 * PER_NAME:
                    ids.append(chunk.id)
        return cls(by_name)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.by_name), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> SectionNames | None:
        try:
            return cls(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def named(self, question: str) -> list[str]:
        """Chunks of the sections the question names, first named first."""
        out: list[str] = []
        for key in asked_names(question):
            for chunk_id in self.by_name.get(key, [])[:PER_NAME]:
                if chunk_id not in out:
                    out.append(chunk_id)
        return out[:LIMIT]
