"""The files side of the source library (`bot.rag.library`): safe source names, file names of
fetched pages, turning fetched pages into validated files with their `<file>.source.json`
sidecars, and `FolderChange`, the set of writes and deletions in a base's folder that is
applied at once and rolled back whole when the change fails.

Owns nothing persistent beyond the folder itself; the registry, the lock and the index are the
library's. Temporary files start with a dot, which the folder loader never reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.rag.errors import SourceError
from bot.rag.ingest.convert import convert, detect_suffix
from bot.rag.ingest.sources import SIDECAR_SUFFIX
from bot.rag.ingest.url_safety import display_url
from bot.rag.ingest.web import FetchedPage, WebFetcher

if TYPE_CHECKING:
    from bot.state import SourceRow

NAME_LIMIT = 100  # Discord shows at most 100 characters of an autocomplete choice
Files = dict[str, tuple[bytes, dict[str, Any] | None] | None]
"""Name in the folder -> (bytes, sidecar metadata or None); None: delete it (and its sidecar)."""
Web = tuple[str, Files, dict[str, Any], list[str]]
"""A fetched web source: its name, its files, the registry fields to record, notes on bad pages."""
Progress = Callable[[str], None]


def say(progress: Progress | None, text: str) -> None:
    """Report progress; a failing progress display never breaks a change."""
    if progress is not None:
        with contextlib.suppress(Exception):
            progress(text)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_name(name: str, suffix: str = "") -> str:
    """A safe source name: one path segment of letters, digits, spaces and `._-`, no leading
    dot, at most NAME_LIMIT characters, ending in `suffix` when one is given."""
    text = unicodedata.normalize("NFC", name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]).strip()
    text = text[: -len(suffix)] if suffix and text.lower().endswith(suffix) else text
    text = re.sub(r"[^\w. -]+", "-", text).strip(" .-")[: NAME_LIMIT - len(suffix)].strip(" .-")
    if not text or (text + suffix).endswith(SIDECAR_SUFFIX):
        raise SourceError(f"{name!r} cannot be a source name: use letters, digits, spaces, '.', '-' or '_'.")
    return text + suffix


def url_slug(url: str, *, host: bool = True, limit: int = 60) -> str:
    """A readable file-name stem for a URL: host (optional), path and query, e.g. `example-com-docs-intro`."""
    parts = urlsplit(url)
    raw = ((parts.hostname or "") if host else "") + parts.path.rstrip("/") + (f"-{parts.query}" if parts.query else "")
    raw = re.sub(r"\.(x?html?|php|aspx?|md|txt|pdf|docx)$", "", raw, flags=re.IGNORECASE)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", raw).strip("-").lower() or "index"
    return slug if len(slug) <= limit else slug[: limit - 9].rstrip("-") + "-" + sha256(url.encode())[:8]


def titled_name(title: str | None, fallback: str, suffix: str, free: Callable[[str], bool]) -> str:
    """A new web source's name: its first page's `title` (else `fallback`, the URL's slug) as a
    safe source name ending in `suffix`, numbered " (2)", " (3)"... while `free` says it is taken."""
    try:
        name = source_name(title, suffix) if title and title.strip() else source_name(fallback, suffix)
    except SourceError:  # a title of nothing but punctuation
        name = source_name(fallback, suffix)
    stem = name.removesuffix(suffix) if suffix else name
    for n in itertools.count(1):
        tag = f" ({n})" if n > 1 else ""
        candidate = stem[: NAME_LIMIT - len(suffix) - len(tag)].rstrip(" .-") + tag + suffix
        if free(candidate):
            return candidate
    raise AssertionError("unreachable")


def renamed(files: Files, old: str, new: str) -> Files:
    """`files` of the source `old` (its file, or the files of its folder) under the name `new`."""
    return {(new + key[len(old):] if key == old or key.startswith(f"{old}/") else key): item
            for key, item in files.items()}


def page_suffix(page: FetchedPage) -> str:
    """The file suffix of a fetched page: from its content type, else from its URL."""
    try:
        return detect_suffix("page", page.content_type)
    except SourceError:
        return detect_suffix(urlsplit(page.url).path.rsplit("/", 1)[-1] or "page")


@dataclass
class PageFiles:
    """Fetched pages as files: what to write, what stays as stored (304), validators, problems."""

    files: Files = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)
    validators: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # url -> (etag, last_modified)
    notes: list[str] = field(default_factory=list)


def page_files(target: str, pages: Iterable[FetchedPage], *, crawl: bool, stored: dict[str, Path],
               max_bytes: int) -> PageFiles:
    """Validate each fetched page with `convert` and name its file: `target` itself for a single
    page, `target/<slug><suffix>` for a crawl's (a page stored before keeps its file, found in
    `stored`: url -> path). A 304 answer keeps the stored copy. A bad page of a crawl is noted
    and left out; a bad single page raises SourceError."""
    out = PageFiles()
    for page in pages:
        known = stored.get(page.url)
        if page.status == "not_modified":
            if known or not crawl:  # a crawl page whose copy is gone is fetched in full next time
                out.kept.add(f"{target}/{known.name}" if known else target)
                out.validators[page.url] = (page.etag, page.last_modified)
            continue
        try:
            suffix = known.suffix.lower() if known else page_suffix(page)
            own = known.name if known else source_name(url_slug(page.url, host=False), suffix)
            file = f"{target}/{own}" if crawl else target
            if file in out.files:
                file = f"{file.removesuffix(suffix)}-{sha256(page.url.encode())[:8]}{suffix}"
            doc = convert(page.content, file.rsplit("/", 1)[-1], max_bytes=max_bytes, url=page.url,
                          content_type=page.content_type)
        except SourceError as exc:
            if not crawl:
                raise
            out.notes.append(f"failed: {exc}" + (" (its stored copy is kept)" if known else ""))
            if known:
                out.kept.add(f"{target}/{known.name}")
            continue
        out.files[file] = (page.content, {"url": page.url, "title": doc.title})
        out.validators[page.url] = (page.etag, page.last_modified)
    return out


def fetch_web(fetcher: WebFetcher, kind: str, url: str, folder: Path, *, max_bytes: int, name: str | None = None,
              options: dict[str, Any] | None = None, row: SourceRow | None = None,
              known: dict[str, tuple[str | None, str | None]] | None = None, progress: Progress | None = None,
              free: Callable[[str], bool] = lambda _: True) -> Web:
    """Fetch a web source ("url": one page, "crawl": the site's folder under `url`) as files of
    `folder`, each page validated. A new source without a `name` is named after its first page's
    title (`titled_name`, unique by `free`). With `row` (a reload) the requests are conditional
    (the row's validators; a crawl's `known` ones): a page answering 304 keeps its stored copy,
    and a crawl's pages that are gone are deleted (a page that failed to fetch keeps its copy)."""
    shown, options = display_url(url), options or {}
    notes: list[str] = []
    hint: list[str] = []  # why nothing was stored, when the notes do not say
    failed: set[str] = set()
    stored = stored_pages(folder / row.name) if kind == "crawl" and row is not None else {}
    if kind == "url":
        say(progress, f"Fetching {shown}…")
        pages = [fetcher.fetch(url, etag=row.etag if row else None, last_modified=row.last_modified if row else None)]
        target = row.name if row else source_name(name or url_slug(pages[0].url), page_suffix(pages[0]))
    else:
        result = fetcher.crawl(
            url, max_pages=options.get("max_pages"), max_depth=options.get("max_depth"), known=known,
            progress=lambda done, total: say(progress, f"Crawling {shown}: {done}/{total} page(s)…"),
            stored=(lambda link: stored_copy(stored.get(link))) if row is not None else None)
        pages = result.pages
        # A stored page is deleted only when the site says it is gone (404/410), or when a
        # crawl that ran to the end never met it; one that failed or was cut off keeps its copy.
        gone_status = {link for link, why in result.failed if "HTTP 404" in why or "HTTP 410" in why}
        failed = {link for link, _ in result.failed + result.skipped} - gone_status
        if result.stopped:
            failed |= set(known or {})
        target = row.name if row else source_name(name or url_slug(url))
        notes = [f"failed: {display_url(link)}: {why}" for link, why in result.failed]
        notes += [f"stopped early: {result.stopped}"] if result.stopped else []
        hint = [f"{display_url(link)}: {why}" for link, why in result.skipped[:1]]
    out = page_files(target, pages, crawl=kind == "crawl", stored=stored, max_bytes=max_bytes)
    if not out.files and not out.kept:
        raise SourceError(" ".join([f"{shown}: no page could be stored.", *(out.notes + notes or hint)]))
    if row is None and name is None:  # named after the first page that has a title, else the URL
        title = next((meta.get("title") for item in out.files.values() if item and (meta := item[1])
                      and meta.get("title")), None)
        slug, suffix = target, page_suffix(pages[0]) if kind == "url" else ""
        target = titled_name(title, slug.removesuffix(suffix) if suffix else slug, suffix, free)
        out.files = renamed(out.files, slug, target)
    gone = {f"{target}/{path.name}" for link, path in stored.items() if link not in failed} - set(out.files) - out.kept
    files: Files = {**out.files, **dict.fromkeys(gone)}
    if kind == "crawl":
        fields: dict[str, Any] = {"pages": len(out.files) + len(out.kept), "crawl_pages": out.validators}
    else:
        fields = {"etag": pages[0].etag, "last_modified": pages[0].last_modified}
        if out.files:  # fetched again (not a 304)
            fields["content_hash"] = sha256(pages[0].content)
    return target, files, fields, out.notes + notes


def stored_pages(folder: Path) -> dict[str, Path]:
    """url -> stored file of a crawl's pages, read from their sidecars."""
    pages: dict[str, Path] = {}
    for sidecar in folder.glob(f"*{SIDECAR_SUFFIX}"):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            url = json.loads(sidecar.read_text(encoding="utf-8")).get("url")
            pages[url] = sidecar.with_name(sidecar.name.removesuffix(SIDECAR_SUFFIX))
    return pages


def stored_copy(path: Path | None) -> bytes | None:
    """The stored copy of a crawl's page, for the links of a page that answered 304: its HTML,
    b"" for a page of another type (no links), None when there is none (its links are unknown)."""
    if path is None:
        return None
    if path.suffix.lower() not in (".html", ".htm", ".xhtml"):
        return b""
    try:
        return path.read_bytes()
    except OSError:
        return None


@dataclass(frozen=True)
class PageChanges:
    """What a refresh changed in a source's stored pages: the change report's figures."""

    added: int = 0
    updated: int = 0
    removed: int = 0

    @classmethod
    def of(cls, folder: Path, files: Files) -> PageChanges:
        """Count `files` (about to be applied under `folder`) against what the folder holds:
        a new file is added, a different one updated, a deleted one removed; same bytes: nothing."""
        added = updated = removed = 0
        for name, item in files.items():
            path = folder / name
            if item is None:
                removed += path.is_file()
            elif not path.is_file():
                added += 1
            else:
                updated += path.read_bytes() != item[0]
        return cls(added, updated, removed)

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def __str__(self) -> str:
        """ "3 pages updated, 1 added, 1 removed" (only the figures that are not 0)."""
        figures = [(n, what) for n, what in ((self.updated, "updated"), (self.added, "added"),
                                             (self.removed, "removed")) if n]
        if not figures:
            return "no page changed"
        (n, what), rest = figures[0], figures[1:]
        return ", ".join([f"{n} page{'' if n == 1 else 's'} {what}", *(f"{m} {w}" for m, w in rest)])


class FolderChange:
    """Files written or deleted in a base's folder; `rollback` puts everything back as it was.
    Deleted and overwritten files are moved to `staging` until `commit` drops them."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self._created: list[Path] = []
        self._dirs: list[Path] = []  # folders this change created, deepest first
        self._moved: list[tuple[Path, Path]] = []  # (original place, where it waits in staging)

    def delete(self, path: Path) -> None:
        if path.exists() and path not in self._created:
            self.staging.mkdir(parents=True, exist_ok=True)
            self._moved.append((path, Path(shutil.move(path, self.staging / str(len(self._moved))))))

    def write(self, path: Path, data: bytes) -> None:
        self._dirs.extend(p for p in [path.parent, *path.parent.parents] if not p.exists())
        path.parent.mkdir(parents=True, exist_ok=True)
        self.delete(path)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
        self._created.append(path)

    def apply(self, folder: Path, files: Files) -> None:
        """Write (or, for None, delete) each file of `files` under `folder`, with its sidecar."""
        folder.mkdir(parents=True, exist_ok=True)  # the base's own folder stays, even on rollback
        for name, item in files.items():
            path = folder / name
            if not path.resolve().is_relative_to(folder.resolve()):
                raise SourceError(f"{name!r} is not a name inside the knowledge base's folder.")
            if item is None:
                self.delete(path)
                self.delete(path.with_name(path.name + SIDECAR_SUFFIX))
                continue
            self.write(path, item[0])
            if item[1] is not None:
                meta = {k: v for k, v in item[1].items() if v}
                self.write(path.with_name(path.name + SIDECAR_SUFFIX), json.dumps(meta, ensure_ascii=False).encode())

    def rollback(self) -> None:
        for path in self._created:
            path.unlink(missing_ok=True)
        for folder in self._dirs:
            with contextlib.suppress(OSError):
                folder.rmdir()
        for path, kept in reversed(self._moved):
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(kept, path)
        self.commit()

    def commit(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
