"""bot.rag.library (SourceLibrary) and bot.source_cli: source changes of one knowledge base,
with the real converters, web fetcher (against tests/web_site.py), Chroma, the embedding model,
SQLite and PostgreSQL state, and two real processes adding to one base at once."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.errors import IndexUnavailableError, SourceError, UnknownSourceError
from bot.rag.library import SourceExistsError, SourceLibrary
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings
from bot.source_cli import add_source_commands
from bot.state import Database, database_url
from tests.helpers import run_cli
from tests.postgres_server import free_port
from tests.web_site import WebSite

BASE = "guild-1"
GUIDE = (b"# Lantern Club handbook\n\nThe Lantern Club meets every Thursday evening in the old boathouse on Mill Lane.\n\n"
         b"## Fees\n\nMembership costs twelve euros per year, paid to the treasurer, Ingrid Okafor.\n")
ACTOR: dict[str, Any] = {"actor_id": 42, "actor_name": "mod"}


def make_pdf(text: str, **encryption: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, text)
    if encryption:
        pdf.set_encryption(**encryption)
    return bytes(pdf.output())


MANUAL = make_pdf("Glider maintenance manual\nThe tow hook of the glider must be inspected after every fifty flights.")


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(50):  # 50 MB of zeros in about 50 KB
                member.write(bytes(1 << 20))
    return buffer.getvalue()


def answer(service: RagService, base: str, question: str) -> str:
    return service.bases.get(base).start().chain.invoke(question).answer


def files_of(library: SourceLibrary, base: str = BASE) -> list[str]:
    folder = library.folder(base)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def lib_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return make_settings(data_dir=tmp_path / "data", allow_private_urls="true", max_source_bytes=200_000)


@pytest.fixture
def lib_service(lib_settings: Settings, embeddings: MiniLMEmbeddings) -> RagService:
    return RagService(lib_settings, embeddings=embeddings)


@pytest.fixture
def library(lib_settings: Settings, lib_service: RagService) -> Iterator[SourceLibrary]:
    db = Database(database_url(lib_settings))
    db.create_schema()
    yield SourceLibrary(lib_settings, lib_service.bases, db)
    db.dispose()


# --- files ---------------------------------------------------------------------------------
def test_files_are_listed_indexed_and_answered_from(library: SourceLibrary, lib_service: RagService) -> None:
    seen: list[str] = []
    first = library.add_file(BASE, "guide.md", GUIDE, progress=seen.append, **ACTOR)
    assert first.action == "add" and first.kind == "file" and first.chunks >= 1 and first.report is not None
    assert first.report.added == first.chunks and "added" in first.result and seen[0].startswith("Checking")
    second = library.add_file(BASE, "glider manual.pdf", MANUAL, **ACTOR)
    assert second.name == "glider manual.pdf" and second.report is not None and second.report.unchanged == first.chunks
    rows = {row.name: row for row in library.list(BASE)}
    assert set(rows) == {"guide.md", "glider manual.pdf"}
    assert all(r.chunks >= 1 and r.kind == "file" and r.added_by == "42" and r.status == "ready" for r in rows.values())
    assert files_of(library) == ["glider manual.pdf", "guide.md"]  # stored as uploaded, nothing else
    assert "boathouse on Mill Lane" in answer(lib_service, BASE, "Where does the Lantern Club meet?")
    assert "fifty flights" in answer(lib_service, BASE, "How often must the tow hook be inspected?")
    audit = library.registry.audit_log(BASE)
    assert [(a.action, a.target, a.result) for a in audit] == [  # each add: registered as pending, then done
        ("add", "glider manual.pdf", "ok"), ("add", "glider manual.pdf", "pending"), ("add", "guide.md", "ok"),
        ("add", "guide.md", "pending")]
    assert audit[2].added == first.chunks and audit[0].unchanged == first.chunks and audit[0].guild_id == "1"
    assert library.list("guild-2") == [] and files_of(library, "guild-2") == []  # nothing crosses bases
    assert library.names(BASE, "gl") == ["glider manual.pdf"] and library.names("guild-2", "gl") == []


def test_a_name_already_taken_is_refused(library: SourceLibrary) -> None:
    library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
    with pytest.raises(SourceExistsError, match="already exists"):
        library.add_file(BASE, "guide.md", b"# Other\n\nSomething else entirely about kites.\n", **ACTOR)
    with pytest.raises(SourceExistsError):  # the name option collides too (the suffix is kept)
        library.add_file(BASE, "notes.md", b"# Notes\n\nKites fly best in steady wind.\n", name="guide", **ACTOR)
    assert library.folder(BASE).joinpath("guide.md").read_bytes() == GUIDE
    assert [r.name for r in library.list(BASE)] == ["guide.md"]
    library.add_file("guild-2", "guide.md", GUIDE, **ACTOR)  # the same name in another base is fine
    assert [r.name for r in library.list("guild-2")] == ["guide.md"]


@pytest.mark.parametrize(("filename", "data", "message"), [
    ("tool.exe", b"MZ\x90\x00 not a document", "unsupported file type"),
    ("huge.md", b"# Huge\n\n" + b"All work and no play. " * 12_000, "over the 200,000-byte limit"),
    ("broken.pdf", MANUAL[: len(MANUAL) // 2], "damaged or truncated"),
    ("locked.pdf", make_pdf("Secret glider notes.", owner_password="o", user_password="u"), "password-protected"),
    ("bomb.docx", zip_bomb(), "zip bomb"),
    ("empty.txt", b"   \n", "empty"),
], ids=["unsupported", "oversize", "corrupt-pdf", "encrypted-pdf", "zip-bomb", "empty"])
def test_bad_files_are_refused_and_the_old_index_keeps_serving(library: SourceLibrary, lib_service: RagService,
                                                               filename: str, data: bytes, message: str) -> None:
    library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
    version = lib_service.bases.get(BASE).start().version.name
    with pytest.raises(SourceError, match=message):
        library.add_file(BASE, filename, data, **ACTOR)
    assert files_of(library) == ["guide.md"] and [r.name for r in library.list(BASE)] == ["guide.md"]
    assert lib_service.bases.get(BASE).start().version.name == version  # not even re-indexed
    assert "boathouse" in answer(lib_service, BASE, "Where does the Lantern Club meet?")
    failed = library.registry.audit_log(BASE)[0]
    assert (failed.action, failed.result) == ("add", "failed") and message in (failed.detail or "")
    assert not list((library.settings.data_dir / "staging").glob("*"))


def test_a_failed_ingest_rolls_the_file_back(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings,
                                            tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path / "data", chroma_host="127.0.0.1", chroma_port=free_port())
    db = Database(database_url(settings))
    db.create_schema()
    library = SourceLibrary(settings, RagService(settings, embeddings=embeddings).bases, db)
    with pytest.raises(IndexUnavailableError, match="Chroma server"):  # nobody listens on that port
        library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
    assert files_of(library) == [] and library.list(BASE) == []  # stored, indexed, failed: removed again
    assert files_of(library) == []  # nothing of the failed add is left (the base keeps its empty folder)
    assert [(a.action, a.result) for a in library.registry.audit_log(BASE)] == [("add", "failed"), ("add", "pending")]
    db.dispose()


def test_a_duplicate_never_pushes_the_original_out(library: SourceLibrary, lib_service: RagService) -> None:
    library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
    for copy in ("copy.md", "zz-copy.md"):  # sorted before and after the original
        try:
            library.add_file(BASE, copy, GUIDE, **ACTOR)
        except SourceError as exc:  # refused (the loader kept one copy of the text): nothing of it stored
            assert "same text" in str(exc) and copy not in files_of(library) and library.registry.get(BASE, copy) is None
        assert "guide.md" in {s.name for s in lib_service.bases.get(BASE).sources()}
    assert "boathouse" in answer(lib_service, BASE, "Where does the Lantern Club meet?")


def test_remove_drops_the_source_and_only_a_known_name(library: SourceLibrary, lib_service: RagService) -> None:
    library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
    library.add_file(BASE, "manual.pdf", MANUAL, **ACTOR)
    with pytest.raises(UnknownSourceError, match="no source called 'nope.md'"):
        library.remove(BASE, "nope.md", **ACTOR)
    with pytest.raises(UnknownSourceError):  # another base's source cannot be named from here
        library.remove("guild-2", "guide.md", **ACTOR)
    change = library.remove(BASE, "manual.pdf", **ACTOR)
    assert change.action == "remove" and change.report is not None and change.report.removed >= 1
    assert [r.name for r in library.list(BASE)] == ["guide.md"] and files_of(library) == ["guide.md"]
    assert {s.name for s in lib_service.bases.get(BASE).sources()} == {"guide.md"}
    assert "fifty flights" not in answer(lib_service, BASE, "How often must the tow hook be inspected?")
    library.remove(BASE, "guide.md", **ACTOR)  # the last one: the base becomes empty, nothing serves it
    assert files_of(library) == [] and library.list(BASE) == []
    assert lib_service.bases.get(BASE).sources() == []
    assert [(a.action, a.result) for a in library.registry.audit_log(BASE)][:2] == [("remove", "ok"), ("remove", "ok")]


def test_a_change_starts_from_what_another_process_left(library: SourceLibrary, lib_service: RagService,
                                                        lib_settings: Settings) -> None:
    library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
    library.add_file(BASE, "manual.pdf", MANUAL, **ACTOR)
    assert "fifty flights" in answer(lib_service, BASE, "How often must the tow hook be inspected?")  # serving here
    removed = run_cli(lib_settings, "source", "remove", "manual.pdf", "--base", BASE)  # e.g. the host, from a shell
    assert removed.returncode == 0, removed.stderr
    assert [r.name for r in library.list(BASE)] == ["guide.md"]  # this process's listing follows
    fees = library.add_file(BASE, "fees.md", b"# Fees\n\nThe boat shed key deposit is five euros.\n", **ACTOR)
    assert fees.chunks >= 1 and "added `fees.md`" in fees.result
    assert [r.name for r in library.list(BASE)] == ["fees.md", "guide.md"]
    assert files_of(library) == ["fees.md", "guide.md"]
    assert "five euros" in answer(lib_service, BASE, "How much is the boat shed key deposit?")
    assert "fifty flights" not in answer(lib_service, BASE, "How often must the tow hook be inspected?")


# --- web sources ---------------------------------------------------------------------------
def test_url_and_crawl_sources_and_conditional_reload(library: SourceLibrary, lib_service: RagService) -> None:
    library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
    with WebSite() as site:
        page = library.add_url(BASE, site.url("/docs/unlinked.html"), **ACTOR)
        assert page.kind == "url" and page.name == "Unlinked.html" and page.chunks >= 1
        sidecar = json.loads((library.folder(BASE) / f"{page.name}.source.json").read_text())
        assert sidecar == {"url": site.url("/docs/unlinked.html"), "title": "Unlinked"}
        chunks = lib_service.bases.get(BASE).start().version.chunks.values()
        assert {c.url for c in chunks if c.source == page.name} == {site.url("/docs/unlinked.html")}
        progress: list[str] = []
        crawl = library.add_url(BASE, site.url("/docs/index.html"), crawl=True, max_pages=10, name="docs",
                                progress=progress.append, **ACTOR)
        assert crawl.kind == "crawl" and any(p.startswith("Crawling") for p in progress)
        stored = {f for f in files_of(library) if f.startswith("docs/") and not f.endswith(".source.json")}
        assert stored == {"docs/docs-index.html", "docs/docs-a.html", "docs/docs-b.html", "docs/docs-sub-c.html",
                          "docs/docs-sub-d.html"}  # robots-disallowed and off-site pages are not fetched
        assert any("manual.pdf" in note and "damaged" in note for note in crawl.notes)  # a bad page is left out
        row = library.registry.get(BASE, "docs")
        assert row is not None and row.pages == 5 and row.chunks == crawl.chunks >= 5
        assert len(library.registry.crawl_pages(row.id)) == 5

        unchanged = library.reload(BASE, **ACTOR)
        assert unchanged.report is not None and not unchanged.report.rebuilt
        for path in ("/docs/unlinked.html", "/docs/index.html", "/docs/a.html", "/docs/b.html", "/docs/sub/c.html"):
            assert site.statuses[path] == [200, 304], path  # validators sent; nothing downloaded again
        assert library.registry.audit_log(BASE)[0].result == "unchanged"

        site.versions["/docs/b.html"] += 1
        changed = library.reload(BASE, **ACTOR)
        assert changed.report is not None and changed.report.rebuilt and changed.report.updated >= 1
        assert site.statuses["/docs/b.html"] == [200, 304, 200] and site.statuses["/docs/a.html"] == [200, 304, 304]
        texts = [c.text for c in lib_service.bases.get(BASE).start().version.chunks.values() if c.source == "docs/docs-b.html"]
        assert any("version 1" in t for t in texts) and not any("version 0" in t for t in texts)
        removed = library.remove(BASE, "docs", **ACTOR)
        assert removed.report is not None and removed.report.removed == crawl.chunks
        assert not any(f.startswith("docs/") for f in files_of(library))


def test_unsafe_and_failing_urls_store_nothing(library: SourceLibrary, make_settings: Callable[..., Settings],
                                               lib_service: RagService, tmp_path: Path) -> None:
    library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
    with WebSite() as site:
        with pytest.raises(SourceError, match="HTTP 404"):
            library.add_url(BASE, site.url("/docs/missing.html"), **ACTOR)
        strict = SourceLibrary(make_settings(data_dir=tmp_path / "data"), lib_service.bases, library.db)
        with pytest.raises(SourceError, match="private|loopback"):  # the SSRF guard, on by default
            strict.add_url(BASE, site.url("/docs/a.html"), **ACTOR)
    with pytest.raises(SourceError, match="only http"):
        library.add_url(BASE, "file:///etc/passwd", **ACTOR)
    assert files_of(library) == ["guide.md"] and [r.name for r in library.list(BASE)] == ["guide.md"]


# --- two processes, PostgreSQL, the CLI ----------------------------------------------------
WORKER = """
import json, sys, time
from pathlib import Path
from bot.rag.library import SourceLibrary
from bot.rag.service import RagService
from bot.settings import Settings
from bot.state import Database
cfg = json.loads(sys.argv[1])
settings = Settings(_env_file=None, **cfg["settings"])
db = Database(cfg["url"])
library = SourceLibrary(settings, RagService(settings).bases, db)
settings.vectorstore_dir.mkdir(parents=True, exist_ok=True)
print("ready", flush=True)
while not Path(cfg["go"]).exists():
    time.sleep(0.005)
change = library.add_file(cfg["base"], cfg["name"], cfg["text"].encode(), actor_id=cfg["name"], actor_name="worker")
print(json.dumps({"chunks": change.chunks}), flush=True)
"""


def test_two_processes_adding_to_one_base_both_land(library: SourceLibrary, lib_settings: Settings,
                                                    embeddings: MiniLMEmbeddings, tmp_path: Path) -> None:
    texts = {"kites.md": "# Kites\n\nThe kite festival on Gull Beach is held every August.\n",
             "ferries.md": "# Ferries\n\nThe ferry to Skerry Island leaves the harbour at 9 am every morning.\n"}
    keys = ("sources_dir", "vectorstore_dir", "data_dir", "llm_provider")
    config = {k: str(getattr(lib_settings, k)) for k in keys}
    url = database_url(lib_settings)
    workers = [subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps({"settings": config, "url": url, "go": str(tmp_path / "go"),
                                                   "base": BASE, "name": name, "text": text})],
        cwd=PROJECT_ROOT, text=True, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    ) for name, text in texts.items()]
    try:
        for proc in workers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        (tmp_path / "go").touch()
        results = [json.loads(proc.communicate(timeout=180)[0].strip().splitlines()[-1]) for proc in workers]
        assert [proc.returncode for proc in workers] == [0, 0] and all(r["chunks"] >= 1 for r in results)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [r.name for r in library.list(BASE)] == ["ferries.md", "kites.md"]
    assert files_of(library) == ["ferries.md", "kites.md"]
    fresh = RagService(lib_settings, embeddings=embeddings)  # a third process's view: the newest index has both
    assert {s.name for s in fresh.bases.get(BASE).sources()} == {"ferries.md", "kites.md"}
    assert "Gull Beach" in answer(fresh, BASE, "When is the kite festival on Gull Beach held?")
    assert "9 am" in answer(fresh, BASE, "When does the ferry to Skerry Island leave?")


def test_changes_on_postgres(postgres_url: str, lib_settings: Settings, embeddings: MiniLMEmbeddings) -> None:
    admin, name = postgres_url.replace("postgresql+psycopg://", "postgresql://"), f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    try:
        db.create_schema()
        service = RagService(lib_settings.model_copy(update={"database_url": url}), embeddings=embeddings)
        library = SourceLibrary(service.settings, service.bases, db)
        library.add_file(BASE, "guide.md", GUIDE, **ACTOR)
        library.add_file(BASE, "manual.pdf", MANUAL, **ACTOR)
        with pytest.raises(SourceExistsError):
            library.add_file(BASE, "manual.pdf", MANUAL, **ACTOR)
        library.remove(BASE, "manual.pdf", **ACTOR)
        library.set_log_channel(BASE, 777, **ACTOR)
        assert [r.name for r in library.list(BASE)] == ["guide.md"] and library.log_channel(BASE) == "777"
        assert [(a.action, a.result) for a in library.registry.audit_log(BASE)] == [
            ("log-channel", "ok"), ("remove", "ok"), ("add", "failed"), ("add", "ok"), ("add", "pending"), ("add", "ok"),
            ("add", "pending")]
        assert not (lib_settings.data_dir / "locks").exists()  # PostgreSQL: advisory locks, no lock files
    finally:
        db.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def run_source_cli(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_source_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["source", *argv])
    assert args.needs_service is False
    return int(args.func(settings, args))


def test_cli_adds_to_the_shared_folder_and_to_a_server_base(library: SourceLibrary, lib_settings: Settings,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "guide.md").write_bytes(GUIDE)
    assert run_source_cli(lib_settings, "add", str(tmp_path / "guide.md")) == 0
    assert (lib_settings.sources_dir / "guide.md").read_bytes() == GUIDE  # copied, indexed by the next ingest
    assert "ingest" in capsys.readouterr().out
    assert run_source_cli(lib_settings, "add", str(tmp_path / "guide.md"), "--base", "1", "--name", "club") == 0
    assert "chunk(s) added" in capsys.readouterr().out
    assert run_source_cli(lib_settings, "list", "--base", "guild-1", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "club.md" and row["kind"] == "file" and row["chunks"] >= 1 and row["added_by"] == "cli"
    shared = {r.name: r for r in library.list("shared")}
    assert shared["guide.md"].status == "pending"
    (tmp_path / "tool.exe").write_bytes(b"MZ\x90")
    with pytest.raises(SourceError, match="unsupported"):
        run_source_cli(lib_settings, "add", str(tmp_path / "tool.exe"))
    assert run_source_cli(lib_settings, "remove", "guide.md") == 0
    assert not (lib_settings.sources_dir / "guide.md").exists()
    assert (lib_settings.sources_dir / "haliva-resignation.txt").exists()  # the host's own files stay


@pytest.mark.asyncio
async def test_the_bot_connects_while_a_base_is_busy_and_its_orphan_is_undone_later(
    library: SourceLibrary, lib_settings: Settings, lib_service: RagService, emulator: Any, start_bot: Any,
) -> None:
    import time

    from bot.rag.library_steps import IN_FLIGHT

    library.registry.add(BASE, "almanac.md", "file", "upload", added_by=1, added_by_name="mod",
                         status="pending", error=IN_FLIGHT)  # an add a killed process left half done
    holder = ("import sys; from bot.settings import Settings; from bot.state import Database, database_url, ingest_lock\n"
              "s = Settings(); db = Database(database_url(s))\n"
              f"with ingest_lock(db, {BASE!r}, lock_dir=s.data_dir / 'locks'):\n"
              "    print('held', flush=True); sys.stdin.readline()\n")
    env = {"PATH": os.environ.get("PATH", ""), "DATA_DIR": str(lib_settings.data_dir),
           "SOURCES_DIR": str(lib_settings.sources_dir), "VECTORSTORE_DIR": str(lib_settings.vectorstore_dir)}
    other = subprocess.Popen([sys.executable, "-c", holder], cwd=PROJECT_ROOT, env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert other.stdout is not None and other.stdout.readline() == "held\n"  # another change of the base runs
        started = time.monotonic()
        await start_bot(lib_service)  # ready within the fixture's 10 s, not after the 600 s lock wait
        assert time.monotonic() - started < 10
        assert library.registry.get(BASE, "almanac.md") is not None  # left to the next change of the base
    finally:
        other.communicate("\n", timeout=30)
    library.add_file(BASE, "guide.md", GUIDE, **ACTOR)  # the next change undoes it
    assert library.registry.get(BASE, "almanac.md") is None
    assert ("add", "almanac.md", "failed") in [(a.action, a.target, a.result) for a in library.registry.audit_log(BASE)]
