"""Shared fixtures: the real embedding model (loaded once), a temp sources folder holding
the seed article, and settings/services pointing at a temp on-disk Chroma."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings

ARTICLE = PROJECT_ROOT / "sources" / "haliva-resignation.txt"
DEV_SET = PROJECT_ROOT / "tests" / "data" / "haliva_dev.jsonl"  # a copy of the team's shared dev set
OWN_SET = PROJECT_ROOT / "tests" / "data" / "haliva_own.jsonl"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def embeddings() -> MiniLMEmbeddings:
    return MiniLMEmbeddings(threads=2)


@pytest.fixture
def sources_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "sources"
    folder.mkdir()
    shutil.copy(ARTICLE, folder / ARTICLE.name)
    return folder


@pytest.fixture
def make_settings(tmp_path: Path, sources_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "sources_dir": sources_dir,
            "vectorstore_dir": tmp_path / "vectorstore",
            "llm_provider": "extractive",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def service(settings: Settings, embeddings: MiniLMEmbeddings) -> RagService:
    return RagService(settings, embeddings=embeddings)


@pytest.fixture(scope="session")
def shared_service(tmp_path_factory: pytest.TempPathFactory, embeddings: MiniLMEmbeddings) -> RagService:
    """One ingested service for read-only tests (questions, summaries)."""
    root = tmp_path_factory.mktemp("shared")
    (root / "sources").mkdir()
    shutil.copy(ARTICLE, root / "sources" / ARTICLE.name)
    settings = Settings(
        _env_file=None, sources_dir=root / "sources", vectorstore_dir=root / "vectorstore",  # type: ignore[call-arg]
        llm_provider="extractive",
    )
    service = RagService(settings, embeddings=embeddings)
    service.start()
    return service
