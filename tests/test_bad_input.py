"""Bad input: a clear message, no traceback, and the existing index left serving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.errors import QuestionError, SourceError, UnknownSourceError
from bot.rag.service import RagService
from bot.settings import Settings
from tests.helpers import run_cli


@pytest.mark.parametrize("question", ["", "   \n\t ", "\u200b\u200b"])
def test_empty_question(service: RagService, question: str) -> None:
    with pytest.raises(QuestionError, match="empty"):
        service.ask(question)


def test_question_over_the_limit(service: RagService) -> None:
    with pytest.raises(QuestionError, match="2,000"):
        service.ask("why " * 600)
    assert service.ask("x" * 10 + " " + "Who is the IDF chief of staff?") is not None  # just under is fine


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"   \n", "empty"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("latin1.md", "caf\xe9".encode("latin-1"), "UTF-8"),
    ],
)
def test_bad_source_file_keeps_the_old_index(
    service: RagService, sources_dir: Path, name: str, content: bytes, message: str
) -> None:
    service.ingest()
    (sources_dir / name).write_bytes(content)
    (sources_dir / "lighthouse.md").write_text("The old lighthouse on Skerry Point was painted bright green in 1911.\n")
    report = service.ingest()  # the bad file is reported; the good one still lands
    assert [n for n, _ in report.failed] == [name] and message in report.failed[0][1]
    assert sorted(s.name for s in service.sources()) == ["haliva-resignation.txt", "lighthouse.md"]
    assert service.ask("How many hostages were taken back to Gaza?").answerable
    assert "green" in service.ask("What colour was the lighthouse on Skerry Point painted?").answer


def test_missing_sources_folder(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, tmp_path: Path) -> None:
    service = RagService(make_settings(sources_dir=tmp_path / "nowhere"), embeddings=embeddings)
    with pytest.raises(SourceError, match="does not exist"):
        service.ingest()


def test_unknown_summary_source(service: RagService) -> None:
    with pytest.raises(UnknownSourceError, match="haliva-resignation.txt"):
        service.summary("nope.txt")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "empty"),
        (["ask", "why " * 600], "limit is 2,000"),
        (["summary", "nope.txt"], "no source called"),
    ],
)
def test_cli_errors_are_one_clear_line(settings: Settings, args: list[str], message: str) -> None:
    result = run_cli(settings, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_missing_sources_folder(settings: Settings, tmp_path: Path) -> None:
    broken = settings.model_copy(update={"sources_dir": tmp_path / "missing"})
    result = run_cli(broken, "ingest")
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
