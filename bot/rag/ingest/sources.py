"""Loading source files: discovery, decoding, validation, front matter, normalisation.

Any `.txt` or `.md` file under the sources folder is a source. A folder with one bad file
fails as a whole, naming every bad file, so a reload never half-applies.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from pathlib import Path

from bot.rag.errors import SourceError
from bot.rag.models import SourceDocument
from bot.rag.text import normalise_text

SOURCE_SUFFIXES = {".txt", ".md"}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.DOTALL)


def discover(sources_dir: Path) -> list[Path]:
    """Source files under `sources_dir`, sorted; raises when the folder is missing."""
    if not sources_dir.exists():
        raise SourceError(f"The sources folder {sources_dir} does not exist.")
    if not sources_dir.is_dir():
        raise SourceError(f"{sources_dir} is not a folder.")
    return sorted(
        p for p in sources_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in SOURCE_SUFFIXES and not p.name.startswith(".")
    )


def decode(raw: bytes, name: str) -> str:
    """Text of a file's bytes: UTF-8 (with or without BOM) or UTF-16 with a BOM."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{name}: not valid UTF-16 text ({exc.reason}).") from exc
    if b"\x00" in raw:
        raise SourceError(f"{name}: looks like a binary file, not text.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{name}: not UTF-8 text (invalid byte at position {exc.start}); save it as UTF-8."
        ) from exc


def parse_front_matter(text: str) -> tuple[dict[str, str], str]:
    """`key: value` lines between `---` fences at the top become metadata."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip().lower()] = value.strip().strip("'\"")
    return meta, text[match.end():]


def load_source(path: Path, name: str, max_bytes: int) -> SourceDocument:
    """One validated, normalised source."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{name}: {size:,} bytes is over the {max_bytes:,}-byte limit.")
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{name}: cannot be read ({exc.strerror or exc}).") from exc
    meta, body = parse_front_matter(decode(raw, name))
    text = normalise_text(body)
    if not text:
        raise SourceError(f"{name}: the file is empty.")
    return SourceDocument(
        name=name,
        text=text,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        title=meta.get("title") or None,
        url=meta.get("url") or None,
    )


def load_sources(sources_dir: Path, max_bytes: int) -> list[SourceDocument]:
    """Every source in the folder; raises one SourceError listing all bad files."""
    paths = discover(sources_dir)
    if not paths:
        raise SourceError(
            f"No sources in {sources_dir}: add .txt or .md files ({', '.join(sorted(SOURCE_SUFFIXES))})."
        )
    documents: list[SourceDocument] = []
    problems: list[str] = []
    for path in paths:
        name = path.relative_to(sources_dir).as_posix()
        try:
            documents.append(load_source(path, name, max_bytes))
        except SourceError as exc:
            problems.append(str(exc))
    if problems:
        raise SourceError("Some sources could not be loaded: " + " ".join(problems))
    return documents
