"""Loading a folder of sources: discovery (recursive; build folders and sidecars skipped),
conversion of every supported format to text with structure, normalisation, and a report
per file. A file that cannot be read does not stop the others: it is listed as failed (the
index keeps its previous version); a file that is not a source is listed as skipped.

Nothing outside the sources folder is read: a symbolic link (to a file or a folder) whose
target resolves outside it is skipped with a warning, a link to a folder inside it is not
walked twice, a sidecar that is a link is ignored, and each file's real path is checked
again just before it is read.

Plain `.txt` files keep the original normalisation (tokenised news text such as the seed
article is rejoined). Any file may have a sidecar `<file>.source.json` with `url`/`title`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.rag.errors import SourceError
from bot.rag.ingest.convert import SUPPORTED_SUFFIXES, convert
from bot.rag.ingest.formats_text import decode_text, split_front_matter
from bot.rag.models import DocumentSection, SourceDocument
from bot.rag.text import normalise_text

_log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".source.json"
# Sphinx (and similar) builds keep text copies and assets beside the pages: one page, indexed once.
BUILD_FOLDERS = {"_sources", "_static", "_images", "_downloads", ".doctrees", "__pycache__", "node_modules"}
# A docs build's generated pages (Sphinx: the A-Z index, the module index, the search page)
# are lists of links to the real pages: they answer nothing and crowd the real pages out.
GENERATED_PAGES = re.compile(r"^(genindex(-[^/]*)?|py-modindex|modindex|search)\.html?$", re.IGNORECASE)


class NoSourcesError(SourceError):
    """The folder holds no supported file."""


@dataclass
class LoadedSources:
    """What a folder holds: the documents, and the files left out with the reason."""

    documents: list[SourceDocument] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # same bytes as indexed: not converted again


def discover(sources_dir: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Supported files under `sources_dir` (sorted) and the files skipped, with why."""
    if not sources_dir.exists():
        raise NoSourcesError(f"The sources folder {sources_dir} does not exist.")
    if not sources_dir.is_dir():
        raise SourceError(f"{sources_dir} is not a folder.")
    root = sources_dir.resolve()
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(sources_dir):  # does not follow links to folders
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # hidden folders are never sources
        for entry in [d for d in dirs if (here / d).is_symlink()]:
            dirs.remove(entry)
            if (why := outside_reason(here / entry, root)) is not None:
                skipped.append(((here / entry).relative_to(sources_dir).as_posix(), why))
        for entry in files:
            path = here / entry
            relative = path.relative_to(sources_dir)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if (why := outside_reason(path, root)) is not None:
                skipped.append((relative.as_posix(), why))
                continue
            if not path.is_file() or any(part in BUILD_FOLDERS for part in relative.parts[:-1]):
                continue  # build output (text copies, assets): never a second copy of a page
            if path.name.endswith(SIDECAR_SUFFIX):
                continue
            if GENERATED_PAGES.match(path.name) and (path.parent / "_static").is_dir():
                skipped.append((relative.as_posix(), "a generated index page of a docs build (links to the pages only)"))
                continue
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                found.append(path)
            else:
                skipped.append((relative.as_posix(), f"unsupported file type {path.suffix or '(none)'}"))
    return sorted(found), sorted(skipped)


def outside_reason(path: Path, root: Path) -> str | None:
    """Why `path` (a link, or under one) must not be read: its real location is outside `root`."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a link loop
        target = None
    if target is not None and target.is_relative_to(root):
        return None
    _log.warning("skipped %s: a link to outside the sources folder", path)
    return "a link to outside the sources folder (not read)"


def _sidecar_path(path: Path) -> Path | None:
    """The file's sidecar, if it has one that is a plain file (a link is never followed)."""
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    return sidecar if sidecar.is_file() and not sidecar.is_symlink() else None


def _sidecar(path: Path) -> dict[str, str]:
    sidecar = _sidecar_path(path)
    if sidecar is None:
        return {}
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in meta.items() if k in {"url", "title"} and v} if isinstance(meta, dict) else {}


def _plain_text(raw: bytes, name: str) -> tuple[str, dict[str, str]]:
    meta, body = split_front_matter(decode_text(raw, name))
    return normalise_text(body), meta


def read_file(path: Path, name: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{name}: {size:,} bytes is over the {max_bytes:,}-byte limit.")
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{name}: cannot be read ({exc.strerror or exc}).") from exc


def file_hash(path: Path, raw: bytes, salt: str = "") -> str:
    """Identity of a file as indexed: its bytes, its sidecar's, and how it is chunked (`salt`)."""
    digest = hashlib.sha256(raw)
    if (sidecar := _sidecar_path(path)) is not None:
        digest.update(sidecar.read_bytes())
    digest.update(salt.encode())
    return digest.hexdigest()


def load_source(path: Path, name: str, max_bytes: int, raw: bytes | None = None,
                hashed: str | None = None) -> SourceDocument:
    """One validated, converted, normalised source."""
    raw = read_file(path, name, max_bytes) if raw is None else raw
    extra = _sidecar(path)
    if path.suffix.lower() == ".txt":
        text, meta = _plain_text(raw, name)
        if not text:
            raise SourceError(f"{name}: the file is empty.")
        title, url, sections, kind = meta.get("title"), meta.get("url"), (), "text"
    else:
        converted = convert(raw, name, max_bytes=max_bytes, url=extra.get("url"))
        text, title, url, kind = converted.text, converted.title, converted.url, converted.kind
        sections = tuple(
            DocumentSection(s.start, s.end, tuple(s.heading_path), s.page, s.anchor) for s in converted.sections
        )
    return SourceDocument(
        name=name,
        text=text,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        title=extra.get("title") or title or None,
        url=extra.get("url") or url or None,
        sections=sections,
        kind=kind,
        file_hash=hashed,
    )


def load_sources(
    sources_dir: Path, max_bytes: int, known: Mapping[str, tuple[str, str]] | None = None, salt: str = ""
) -> LoadedSources:
    """Every source in the folder, with the files skipped and failed. Files whose hash is
    in `known` (name → (file hash, text hash), from the index) are listed as unchanged, not
    converted.
    Raises only when the folder is missing or holds no supported file at all."""
    paths, skipped = discover(sources_dir)
    if not paths:
        raise NoSourcesError(
            f"No sources in {sources_dir}: add files of a supported type ({', '.join(sorted(SUPPORTED_SUFFIXES))})."
        )
    loaded = LoadedSources(skipped=skipped)
    seen: dict[str, str] = {}
    root = sources_dir.resolve()
    for path in paths:
        name = path.relative_to(sources_dir).as_posix()
        if (why := outside_reason(path, root)) is not None:  # changed since it was found
            loaded.skipped.append((name, why))
            continue
        try:
            raw = read_file(path, name, max_bytes)
            hashed = file_hash(path, raw, salt)
            indexed = (known or {}).get(name)
            if indexed is not None and indexed[0] == hashed:
                if indexed[1] in seen:
                    loaded.skipped.append((name, f"same text as {seen[indexed[1]]}"))
                else:
                    seen[indexed[1]] = name
                    loaded.unchanged.append(name)
                continue
            document = load_source(path, name, max_bytes, raw, hashed)
        except SourceError as exc:
            loaded.failed.append((name, str(exc)))
            continue
        if document.content_hash in seen:
            loaded.skipped.append((name, f"same text as {seen[document.content_hash]}"))
            continue
        seen[document.content_hash] = name
        loaded.documents.append(document)
    return loaded
