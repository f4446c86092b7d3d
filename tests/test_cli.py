"""The command line as a user runs it: `python -m bot ...` in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from bot.settings import PROJECT_ROOT, Settings
from tests.helpers import run_cli


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
    assert set(citation) == {"n", "source", "chunk_id", "start", "end", "quote", "label", "link"}
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


def test_version_and_help_a_new_user_sees(settings: Settings) -> None:
    version = run_cli(settings, "--version")
    assert version.returncode == 0 and version.stdout.startswith("python -m bot 0.")
    for command in ("summary", "sources", "eval", "bench", "ask"):
        helptext = run_cli(settings, command, "--help").stdout
        json_line = next(line for line in helptext.splitlines() if "--json" in line)
        assert json_line.strip() != "--json", f"{command} --json has no help text"


def test_console_script_names_itself(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "sourcebot"
    assert script.exists(), "pip install -e . installs the sourcebot console script"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.stdout.startswith("usage: sourcebot ")


def test_ask_fails_with_2_when_the_sources_folder_is_gone(settings: Settings) -> None:
    assert run_cli(settings, "ingest").returncode == 0
    shutil.rmtree(settings.sources_dir)
    result = run_cli(settings, "ask", "Who is the IDF chief of staff?")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_run_from_another_folder_creates_nothing_there(settings: Settings, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LLM_PROVIDER": "extractive",
           "SOURCES_DIR": "no-such-folder", "VECTORSTORE_DIR": "vs-relative"}
    result = subprocess.run([sys.executable, "-m", "bot", "ask", "Who resigned?"], capture_output=True, text=True,
                            cwd=elsewhere, env=env, timeout=120)
    assert result.returncode == 2 and "no-such-folder" in result.stderr
    assert list(elsewhere.iterdir()) == [], "nothing is created in the current folder"
    assert not (PROJECT_ROOT / "vs-relative").exists(), "nothing is created before the command can succeed"


def test_one_chunk_is_singular(settings: Settings) -> None:
    for path in settings.sources_dir.iterdir():
        path.unlink()
    (settings.sources_dir / "short.md").write_text("The ferry leaves at nine.\n", encoding="utf-8")
    listing = run_cli(settings, "sources")
    assert "\t1 chunk\t" in listing.stdout, listing.stdout
