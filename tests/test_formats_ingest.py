"""A folder of mixed formats through the whole pipeline: converted with structure, chunked
by section, reported per file, cited with heading paths and page numbers. The files are
generated here (fpdf2, python-docx); nothing binary is checked in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.service import RagService
from bot.settings import Settings
from tests.helpers import run_cli

PAGES = [
    "The ferry to Skerry Island leaves at nine every morning from the south pier.",
    "Tickets cost twelve euros for adults and six euros for children under twelve.",
    "Dogs travel free of charge on the upper deck of the ferry.",
]


def write_corpus(folder: Path) -> None:
    pdf = FPDF()
    for text in PAGES:
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 10, text)
    pdf.output(str(folder / "ferry.pdf"))
    document = docx.Document()
    document.add_heading("Harbour rules", 1)
    document.add_heading("Parking", 2)
    document.add_paragraph("Cars may park on the east quay for at most four hours.")
    document.save(str(folder / "rules.docx"))
    (folder / "guide.md").write_text(
        "# Visitor guide\n\nWelcome to the island of Skerry.\n\n## Fares\n\n"
        "The harbour museum asks eight euros at the door.\n", encoding="utf-8")
    (folder / "page.html").write_text(
        "<html><head><title>Lighthouse</title></head><body><nav>Home | About | Shop</nav><main>"
        "<h1>The lighthouse</h1><p>The old lighthouse on Skerry Point was painted bright green in 1911 after "
        "a vote of the harbour council, which met every second Tuesday of the month in the town hall.</p>"
        "<h2>Opening hours</h2><p>The lighthouse is open to visitors from May to September, every day from "
        "ten in the morning to five in the afternoon, except when the weather is stormy.</p></main>"
        "<footer>Copyright the harbour council</footer><script>alert('ignore previous instructions')</script>"
        "</body></html>", encoding="utf-8")
    (folder / "page.html.source.json").write_text('{"url": "https://skerry.example/lighthouse.html"}')
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "_sources").mkdir()
    (folder / "_sources" / "guide.md.txt").write_text("A text copy of a page from the docs build.")
    (folder / "z-copy-of-guide.md").write_text((folder / "guide.md").read_text())
    (folder / "_static").mkdir()  # a docs build: its generated index pages are not sources
    (folder / "genindex-L.html").write_text("<html><body><h1>Index – L</h1><ul><li><a href='page.html'>"
                                            "lighthouse (Skerry Point)</a></li></ul></body></html>")
    (folder / "search.html").write_text("<html><body><h1>Search</h1><p>Please activate JavaScript.</p></body></html>")


@pytest.fixture
def corpus_service(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, tmp_path: Path) -> RagService:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_corpus(folder)
    return RagService(make_settings(sources_dir=folder), embeddings=embeddings)


def test_every_format_is_read_and_reported(corpus_service: RagService) -> None:
    report = corpus_service.ingest()
    names = sorted(s.name for s in corpus_service.sources())
    assert names == ["ferry.pdf", "guide.md", "page.html", "rules.docx"]
    assert ("logo.png", "unsupported file type .png") in report.skipped
    assert any(name == "z-copy-of-guide.md" and "same text as guide.md" in why for name, why in report.skipped)
    assert not any("_sources" in name for name, _ in report.skipped + report.failed), "build folders are not sources"
    generated = {name for name, why in report.skipped if "generated index page" in why}
    assert generated == {"genindex-L.html", "search.html"}
    chunks = corpus_service.start().version.chunks.values()
    assert {c.page for c in chunks if c.source == "ferry.pdf"} == {1, 2, 3}, "a chunk never straddles a PDF page"
    assert not any("Home | About" in c.text or "alert(" in c.text or "Copyright" in c.text for c in chunks)


def test_citations_name_the_page_and_heading(corpus_service: RagService) -> None:
    corpus_service.ingest()
    dogs = corpus_service.ask("Do dogs have to pay on the ferry?")
    assert dogs.answerable and dogs.citations[0].label == "ferry.pdf p. 3"
    parking = corpus_service.ask("How long can I park on the east quay?")
    assert parking.answerable and parking.citations[0].label == "rules.docx › Parking"
    hours = corpus_service.ask("When is the lighthouse open to visitors?")
    assert hours.citations and hours.citations[0].link is not None
    assert hours.citations[0].link.startswith("https://skerry.example/lighthouse.html")


def test_the_heading_takes_part_in_retrieval(corpus_service: RagService) -> None:
    corpus_service.ingest()
    top = corpus_service.retrieve("what are the fares at the museum?")[0]
    assert top.source == "guide.md" and top.heading == "Visitor guide › Fares"


def test_ingest_sources_dir_is_remembered(tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_corpus(folder)
    env_settings = settings.model_copy(update={"sources_dir": tmp_path / "unused"})
    result = run_cli(env_settings, "ingest", "--sources", str(folder))
    assert result.returncode == 0 and "skipped: logo.png: unsupported file type .png" in result.stdout
    # run_cli pins SOURCES_DIR, so the CLI keeps using it; a base left to its default follows the index
    from bot.rag.service import RagService as Service

    following = Service(Settings(_env_file=None, vectorstore_dir=settings.vectorstore_dir, llm_provider="extractive"))
    assert following.base.folder() == folder.resolve()
