"""The command line as a user runs it: `python -m bot ...` in a subprocess."""

from __future__ import annotations

import json

from bot.settings import Settings

from tests.test_bad_input import run_cli


def test_ask_builds_the_index_on_first_use_and_prints_citations(settings: Settings) -> None:
    result = run_cli(settings, "ask", "How many hostages were taken back to Gaza?")
    assert result.returncode == 0, result.stderr
    assert "253" in result.stdout
    assert "[1] haliva-resignation.txt, characters" in result.stdout
    assert settings.vectorstore_dir.exists()


def test_ask_json_reads_questions_from_stdin(settings: Settings) -> None:
    result = run_cli(settings, "ask", "--json", stdin="Who is the IDF chief of staff?\n\nWhat is the capital of Peru?\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["question"] for line in lines] == ["Who is the IDF chief of staff?", "What is the capital of Peru?"]
    first, second = lines
    assert set(first) == {"question", "answer", "answerable", "citations"}
    assert first["answerable"] and "halevi" in first["answer"].lower()
    citation = first["citations"][0]
    assert set(citation) == {"n", "source", "chunk_id", "start", "end", "quote"}
    assert citation["n"] == 1 and citation["chunk_id"].startswith("haliva-resignation.txt#")
    assert second == {"question": "What is the capital of Peru?", "answer": second["answer"], "answerable": False, "citations": []}


def test_a_bad_line_in_a_batch_does_not_lose_the_rest(settings: Settings) -> None:
    result = run_cli(settings, "ask", "--json", stdin="why " * 600 + "\nWho is the IDF chief of staff?\n")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "error" in lines[0] and lines[1]["answerable"]
    assert result.returncode == 2


def test_ingest_sources_and_summary(settings: Settings) -> None:
    first = run_cli(settings, "ingest")
    assert first.returncode == 0 and "chunk(s) added" in first.stdout and " 0 removed" in first.stdout
    again = run_cli(settings, "ingest")
    assert "0 chunk(s) added, 0 updated" in again.stdout
    listing = run_cli(settings, "sources")
    assert listing.stdout.startswith("haliva-resignation.txt\t") and "chunks" in listing.stdout
    summary = json.loads(run_cli(settings, "summary", "--json").stdout)
    assert summary["bullets"] and all(b["citations"] for b in summary["bullets"])


def test_ask_sees_an_edited_source_without_a_manual_ingest(settings: Settings) -> None:
    assert run_cli(settings, "ask", "Who is the IDF chief of staff?").returncode == 0
    (settings.sources_dir / "lighthouse.md").write_text("The old lighthouse on Skerry Point was painted bright green in 1911.\n", encoding="utf-8")
    result = run_cli(settings, "ask", "What colour was the lighthouse on Skerry Point painted?")
    assert "green" in result.stdout


def test_ask_keeps_answering_when_a_source_breaks(settings: Settings) -> None:
    assert run_cli(settings, "ingest").returncode == 0
    (settings.sources_dir / "broken.txt").write_bytes(b"\x00\x01binary")
    result = run_cli(settings, "ask", "How many hostages were taken back to Gaza?")
    assert result.returncode == 0 and "253" in result.stdout
