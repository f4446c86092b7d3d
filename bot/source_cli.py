"""The `source` sub-commands of the command line: `source add PATH|DIR|URL [--replace] [--refresh]`,
`source remove NAME`, `source refresh NAME [--every]` and `source list`, each for one knowledge
base (`--base`).

Owns the host's side of source changes. `--base shared` (the default) is the sources folder:
a file, page or crawl is validated and stored there (registered as pending) and indexed by the
next `ingest` or the bot's /reload, since a running bot owns that index. Any other base
(`guild-<id>`, or just the server id) goes through `SourceLibrary` and is re-indexed at once,
exactly as `/source` does in Discord. Handlers take `(settings, args)` (`needs_service=False`)
and let a RagError reach `bot.cli.main`, which prints it as one line.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.rag.errors import RagError, SourceError
from bot.rag.index.registry import SHARED, parse_base_name
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.rag.library import SourceChange, SourceLibrary

BASE_HELP = "knowledge base: shared (the sources folder; default), guild-<server id>, or just the server id"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def add_source_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `source add|remove|list` to the CLI's sub-command parsers."""
    source = subparsers.add_parser("source", help="add, remove or list the sources of a knowledge base")
    actions = source.add_subparsers(dest="source_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a file, a folder's files or a web page (or a crawl of a site's folder)")
    add.add_argument("target", metavar="PATH|DIR|URL",
                     help="a file of a supported type, a folder (each of its files), or an http(s) URL")
    add.add_argument("--base", default=SHARED, help=BASE_HELP)
    add.add_argument("--crawl", action="store_true", help="with a URL: also fetch the pages under its folder")
    add.add_argument("--max-pages", type=_positive, help="most pages a crawl fetches (default: CRAWL_MAX_PAGES)")
    add.add_argument("--max-depth", type=_positive, help="most links a crawl follows (default: CRAWL_MAX_DEPTH)")
    add.add_argument("--name", help="the source's name (default: the file name, or the first page's title)")
    add.add_argument("--replace", action="store_true",
                     help="a file: put it in the place of the source of that name (the old one serves until the new one is indexed)")
    add.add_argument("--refresh", metavar="INTERVAL",
                     help="a URL: how often it is fetched again (daily, 6h, 2d, never; default REFRESH_INTERVAL_HOURS)")
    add.set_defaults(func=cmd_source_add, needs_service=False)

    refresh = actions.add_parser("refresh", help="fetch a web source again now (or, with --every, set how often)")
    refresh.add_argument("name", help="the source's name, as `source list` shows it")
    refresh.add_argument("--base", default=SHARED, help=BASE_HELP)
    refresh.add_argument("--every", metavar="INTERVAL", help="set its interval instead (daily, 6h, 2d, never, default)")
    refresh.set_defaults(func=cmd_source_refresh, needs_service=False)

    remove = actions.add_parser("remove", help="remove a source (its files, then re-index)")
    remove.add_argument("name", help="the source's name, as `source list` shows it")
    remove.add_argument("--base", default=SHARED, help=BASE_HELP)
    remove.set_defaults(func=cmd_source_remove, needs_service=False)

    visibility = actions.add_parser("visibility", help="who may see a source of a server's base (default: everyone)")
    visibility.add_argument("name", help="the source's name, as `source list` shows it")
    visibility.add_argument("--base", required=True, help=BASE_HELP)
    who = visibility.add_mutually_exclusive_group(required=True)
    who.add_argument("--everyone", action="store_true", help="every member of the server")
    who.add_argument("--channels", type=_ids, help="comma-separated channel ids (their threads and posts too)")
    who.add_argument("--roles", type=_ids, help="comma-separated role ids")
    visibility.set_defaults(func=cmd_source_visibility, needs_service=False)

    listing = actions.add_parser("list", help="list the sources of a knowledge base: registered or indexed, with their status")
    listing.add_argument("--base", default=SHARED, help=BASE_HELP)
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")
    listing.set_defaults(func=cmd_source_list, needs_service=False)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _ids(text: str) -> frozenset[int]:
    try:
        ids = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("give ids as numbers, comma-separated") from None
    if not ids:
        raise argparse.ArgumentTypeError("give at least one id")
    return ids


def cmd_source_visibility(settings: Settings, args: argparse.Namespace) -> int:
    from bot.rag.access import Visibility

    visibility = (Visibility("channels", args.channels) if args.channels else
                  Visibility("roles", args.roles) if args.roles else Visibility())
    with _library(settings) as library:
        row = library.set_visibility(base_name(args.base), args.name, visibility, **_actor())
    print(f"{row.base}: `{row.name}` is visible to {visibility.describe()}")
    return 0


def base_name(text: str) -> str:
    """`shared`, `guild-<id>`, or a server id (which means `guild-<id>`)."""
    return parse_base_name(text)


def _actor() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        user = None
    return {"actor_id": "cli", "actor_name": user}


@contextlib.contextmanager
def _library(settings: Settings) -> Iterator[SourceLibrary]:
    """A SourceLibrary over this host's state database; the embedding model loads only if indexing."""
    from bot.rag.components import Components
    from bot.rag.index.registry import KnowledgeBases
    from bot.rag.library import SourceLibrary
    from bot.state import Database, database_url

    db = Database(database_url(settings))
    try:
        db.create_schema()
        yield SourceLibrary(settings, KnowledgeBases(Components(settings)), db)
    finally:
        db.dispose()


def _print_change(change: SourceChange) -> None:
    print(f"{change.base}: {change.result}")
    for note in change.notes:
        print(f"  {note}")
    if change.report is None:
        print("  run `ingest` (or /reload in Discord) to index it now")
    elif details := getattr(change.report, "details", None):
        for line in details(limit=10):
            print(f"  {line}")


def cmd_source_add(settings: Settings, args: argparse.Namespace) -> int:
    """Add a URL, a file, or each file of a folder (a bad file is reported and the others go on)."""
    base = base_name(args.base)
    progress = (lambda text: print(text, file=sys.stderr, flush=True)) if getattr(args, "verbose", False) else None
    with _library(settings) as library:
        if _URL.match(args.target):
            if args.replace:
                raise SourceError("--replace goes with a file; a web source is fetched again by a reload.")
            interval = _interval(args.refresh)
            change = library.add_url(base, args.target, crawl=args.crawl, max_pages=args.max_pages,
                                     max_depth=args.max_depth, name=args.name, index=base != SHARED,
                                     progress=progress, **_actor())
            _print_change(change)
            if args.refresh is not None:
                refresher = _refresher(library)
                _print_schedule(refresher.set_interval(base, change.name, interval), refresher)
            return 0
        if args.crawl or args.max_pages or args.max_depth or args.refresh:
            raise SourceError("--crawl, --max-pages, --max-depth and --refresh go with a URL, not a file.")
        target = Path(args.target).expanduser()
        files, failed = _files_of(target, args.name), 0
        for path in files:
            try:
                change = library.add_file(base, path.name, _read(path, settings.max_source_bytes), name=args.name,
                                          origin=str(path.resolve()), index=base != SHARED, replace=args.replace,
                                          progress=progress, **_actor())
            except RagError as exc:
                if len(files) == 1:
                    raise
                failed += 1
                print(f"error: {path.name}: {exc}", file=sys.stderr, flush=True)
                continue
            _print_change(change)
    if failed:
        print(f"{failed} of {len(files)} file(s) of {target} not added", file=sys.stderr)
    return 2 if failed else 0


def _files_of(path: Path, name: str | None) -> list[Path]:
    """The file to add, or a folder's files (not in sub-folders, not hidden), each checked as it is added."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder.")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise SourceError(f"{path} is a folder with no files in it; give a file, or a folder of files.")
    if name is not None and len(files) > 1:
        raise SourceError(f"{path} is a folder of {len(files)} files: --name goes with one file.")
    return files


def _read(path: Path, limit: int) -> bytes:
    if (size := path.stat().st_size) > limit:
        raise SourceError(f"{path.name}: {size:,} bytes is over the {limit:,}-byte limit.")
    return path.read_bytes()


def cmd_source_remove(settings: Settings, args: argparse.Namespace) -> int:
    base = base_name(args.base)
    with _library(settings) as library:
        change = library.remove(base, args.name, index=base != SHARED, **_actor())
    _print_change(change)
    return 0


# --- scheduled refresh (issue 21) -----------------------------------------------------------
def _interval(text: str | None) -> int | None:
    from bot.rag.refresh import parse_interval

    return parse_interval(text)


def _refresher(library: SourceLibrary) -> Any:
    from bot.rag.refresh import SourceRefresher

    return SourceRefresher(library)


def _print_schedule(row: Any, refresher: Any) -> None:
    from bot.rag.refresh import describe_interval

    minutes = refresher.interval(row.interval_minutes)
    every = describe_interval(minutes) + (" (the default)" if row.interval_minutes is None else "")
    when = "" if not minutes else f"; next refresh {row.next_due:%Y-%m-%d %H:%M} UTC"
    print(f"{row.base}: `{row.name}` is {every}{when}")


def cmd_source_refresh(settings: Settings, args: argparse.Namespace) -> int:
    """Fetch one web source again now (a shared one is stored and indexed by the next ingest), or set its interval."""
    base = base_name(args.base)
    with _library(settings) as library:
        refresher = _refresher(library)
        if args.every is not None:
            _print_schedule(refresher.set_interval(base, args.name, _interval(args.every)), refresher)
            return 0
        change = refresher.refresh_now(base, args.name, index=base != SHARED, **_actor())
    _print_change(change)
    return 0


def cmd_source_list(settings: Settings, args: argparse.Namespace) -> int:
    base = base_name(args.base)
    with _library(settings) as library:
        rows = library.list(base)
    if args.json:
        fields = ("name", "kind", "origin", "status", "error", "chunks", "pages", "added_by", "added_by_name")
        print(json.dumps([{**{f: getattr(r, f) for f in fields}, "added_at": r.added_at.isoformat(),
                           "updated_at": r.updated_at.isoformat()} for r in rows], ensure_ascii=False))
        return 0
    if not rows:
        print(f"{base}: no sources")
    for r in rows:
        who = r.added_by_name or r.added_by or "?"
        status = "" if r.status == "ready" else f"\t{r.status}" + (f": {r.error}" if r.error else "")
        when = f"{r.added_at:%Y-%m-%d %H:%M} UTC"
        print(f"{r.name}\t{r.kind}\t{r.chunks} chunk(s)\tadded by {who} {when}\t{r.origin}{status}")
    return 0
