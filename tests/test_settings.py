"""Configuration: every setting documented, lists parsed from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT, Settings


def test_env_example_documents_every_setting() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if name.upper() not in text]
    assert missing == []


def test_provider_follows_the_openai_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_PROVIDER"):
        monkeypatch.delenv(key, raising=False)
    assert Settings().provider == "extractive"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert Settings().provider == "openai"
    monkeypatch.setenv("LLM_PROVIDER", "extractive")
    assert Settings().provider == "extractive"


def test_id_lists_and_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLOWED_CHANNEL_IDS", "12, 34;56")
    monkeypatch.setenv("DISCORD_TOKEN", "sekrit-token")
    settings = Settings()
    assert settings.allowed_channel_ids == [12, 34, 56]
    assert "sekrit-token" not in repr(settings) and "sekrit-token" not in str(settings.model_dump())
