"""`python -m bot bench --sources DIR --index DIR --questions FILE`: every figure of one
corpus, and a second run that reuses the index instead of rebuilding it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.evaluation.bench import format_bench
from bot.evaluation.bench_inputs import copy_sample, derive_questions
from bot.evaluation.bench_scale import format_scale
from bot.rag.ingest.chunking import chunk_document
from bot.rag.models import Chunk
from bot.rag.service import RagService
from bot.settings import Settings
from tests.chroma_server import ChromaServer
from tests.helpers import run_cli

PAGES = {
    "guide/tea.html": "<html><head><title>Tea</title></head><body><h1>Brewing tea</h1><p>Green tea is brewed at "
                      "80 degrees for two minutes.</p><h2>Storage</h2><p>Keep the leaves in an airtight tin.</p>"
                      "</body></html>",
    "bikes.html": "<html><head><title>Bicycles</title></head><body><h1>Bicycle care</h1><p>Road tyres are inflated "
                  "to about 6 bar. Clean the chain with a degreaser every month.</p></body></html>",
    "ferry.txt": "The harbour ferry leaves every thirty minutes from pier four. A single ticket costs three euros.\n",
}
FIGURES = [
    "raw_embedding_chunks_per_s", "ingest_chunks_per_s", "ingest_vs_raw", "baseline_ingest_chunks_per_s",
    "reingest_unchanged_s", "cold_start_to_answer_s", "cold_start_peak_rss_mib",
    "answer_p50_ms", "answer_p95_ms", "retrieval_p50_ms", "retrieval_p95_ms",
    "baseline_answer_p50_ms", "baseline_answer_p95_ms", "baseline_retrieval_p50_ms", "baseline_retrieval_p95_ms",
]


def write_corpus(root: Path) -> Path:
    for name, text in PAGES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def bench(settings: Settings, sources: Path, index: Path, questions: Path) -> dict[str, Any]:
    result = run_cli(settings, "bench", "--sources", str(sources), "--index", str(index), "--questions", str(questions),
                     "--repeats", "6", "--cold-starts", "1", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bench_measures_one_folder_and_reuses_its_index(settings: Settings, tmp_path: Path) -> None:
    sources = write_corpus(tmp_path / "docs")
    index = tmp_path / "index"
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"id": "q1", "question": "How long is green tea brewed?"}\n\n'
                         '{"question": "How much is a ferry ticket?", "answerable": true}\n', encoding="utf-8")

    first = bench(settings, sources, index, questions)
    assert first["mode"] == "sources" and first["questions_file"] == str(questions)
    (corpus,) = first["corpora"]
    for key in FIGURES:
        assert isinstance(corpus[key], float) and corpus[key] > 0, key
    assert corpus["chunks"] >= 3 and corpus["baseline_chunks"] >= 3 and corpus["files"] == 3
    assert corpus["sample"]["files"] == 3 and corpus["sample"]["chunks"] == corpus["chunks"]
    assert corpus["throughput_rounds"] == 3  # raw embedding and ingest alternated: medians
    assert sorted(corpus["sample"]["paths"]) == sorted(PAGES)
    assert corpus["questions"]["given"] and corpus["questions"]["count"] == 2 and corpus["questions"]["timed"] == 6
    assert corpus["index_dir"] == str(index) and corpus["index_status"] == "built"
    assert corpus["full_ingest_chunks_per_s"] > 0 and corpus["full_sentence_pass_s"] > 0
    assert corpus["sentence_pass_s"] > 0 and corpus["ingest_with_sentences_chunks_per_s"] < corpus["ingest_chunks_per_s"]
    assert corpus["baseline_index_status"] == "built" and corpus["baseline_full_ingest_chunks_per_s"] > 0
    assert (index / "baseline").is_dir()  # where `eval --index` keeps (and finds) the baseline
    text = format_bench(first)
    assert "built by this run" in text and "full ingest (chunks/s)" in text and "cold start peak RSS" in text

    again = bench(settings, sources, index, questions)["corpora"][0]
    assert again["index_status"] == "reused" and again["baseline_index_status"] == "reused"
    assert "full_ingest_chunks_per_s" not in again and "baseline_full_ingest_chunks_per_s" not in again
    assert again["chunks"] == corpus["chunks"] and all(again[key] > 0 for key in FIGURES)
    assert "full ingest" not in format_bench({**first, "corpora": [again]})


def test_scoped_retrieval_at_scale_on_a_chroma_server(settings: Settings, tmp_path: Path) -> None:
    """`--scale-to N`: copies of the corpus on a real Chroma server, their vectors replayed
    from the corpus's index (only each copy's marked first section is embedded)."""
    sources, index = write_corpus(tmp_path / "docs"), tmp_path / "index"
    per_copy = len(RagService(settings.model_copy(update={"sources_dir": sources, "vectorstore_dir": index})).start()
                   .version.chunks)
    server = ChromaServer(tmp_path / "chroma").start()
    try:
        result = run_cli(settings, "bench", "--sources", str(sources), "--index", str(index), "--scale-to",
                         str(3 * per_copy), "--repeats", "4", "--json",
                         CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(server.port))
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    scaled = json.loads(result.stdout)
    assert scaled["copies"] == 3 and scaled["sources"] == 3 * len(PAGES) and scaled["store"].startswith("chroma server")
    # every chunk's vector is replayed but each copy's marked first section's (sentences are embedded)
    assert scaled["chunks"] >= 3 * per_copy and scaled["replayed"] >= scaled["chunks"] - 3 * len(PAGES)
    assert scaled["hidden_copy_chunks"] >= per_copy and scaled["timed"] >= 4
    for key in ("retrieval_p50_ms", "scoped_sources_p50_ms", "scoped_copy_p50_ms", "scoped_sources_vs_unscoped"):
        assert scaled[key] > 0, key
    assert "x unscoped" in format_scale(scaled)


def test_questions_and_index_need_sources(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, "bench", "--index", str(tmp_path / "index"))
    assert result.returncode == 2 and "need --sources" in result.stderr


def test_the_sample_and_the_derived_questions_are_deterministic(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "docs")
    for i in range(6):
        (corpus / "more" / f"page-{i}.txt").parent.mkdir(exist_ok=True)
        (corpus / "more" / f"page-{i}.txt").write_text(f"Page {i} says the tide turns at {i} o'clock. " * 40)

    def chunker(doc: Any) -> list[Chunk]:
        return chunk_document(doc, 800, 160)

    one = copy_sample(corpus, tmp_path / "a", chunker, 10**6, target_chunks=5)
    two = copy_sample(corpus, tmp_path / "b", chunker, 10**6, target_chunks=5)
    assert one.files == two.files and 5 <= one.chunks <= 7 and len(one.files) < len(PAGES) + 6
    assert all((tmp_path / "a" / name).is_file() for name in one.files)
    assert len(copy_sample(corpus, tmp_path / "c", chunker, 10**6, max_files=2).files) == 2

    chunks = [Chunk(f"c{i}", "lib.html", i, 0, 10, f"text {i}", "h", heading=f"Library › {i + 1}.2. Topic {i}¶")
              for i in range(50)]
    questions = derive_questions(chunks)
    assert len(questions) == 40 and questions == derive_questions(list(reversed(chunks)))
    assert all(q.startswith("What is Topic ") and q.endswith("?") for q in questions)
