"""The OpenAI back-end: the real `openai` client and ChatOpenAI against a local
OpenAI-compatible server whose model is scripted (see tests/openai_server.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from bot.rag.errors import ModelError
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.service import RagService
from bot.settings import Settings

from tests.openai_server import OpenAICompatibleServer


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    server = OpenAICompatibleServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm_service(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, server: OpenAICompatibleServer) -> RagService:
    settings = make_settings(
        llm_provider=None, openai_base_url=server.base_url, openai_api_key="sk-test-secret",
        request_timeout=2, max_retries=0,
    )
    assert settings.provider == "openai"
    return RagService(settings, embeddings=embeddings)


def excerpt_numbers(messages: list[dict]) -> list[int]:
    return [int(n) for n in re.findall(r"^\[(\d+)\]", messages[-1]["content"], re.M)]


def test_answer_keeps_valid_citations_and_drops_invented_ones(llm_service: RagService, server: OpenAICompatibleServer) -> None:
    def reply(messages: list[dict]) -> str:
        numbers = excerpt_numbers(messages)
        hostage_excerpt = next(n for n in numbers if "253 others" in messages[-1]["content"].split(f"[{n}]")[1][:900])
        return f"253 people were taken to Gaza as hostages [{hostage_excerpt}][9]. Nobody else [12]."

    server.reply = reply
    answer = llm_service.ask("How many hostages were taken back to Gaza?")
    assert answer.provider == "openai" and answer.answerable and answer.grounded
    assert "[9]" not in answer.answer and "[12]" not in answer.answer
    assert answer.answer.startswith("253 people were taken to Gaza as hostages [1].")
    assert [c.n for c in answer.citations] == [1]
    assert "253 others were taken back to gaza" in answer.citations[0].quote
    sent = server.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer sk-test-secret"
    system, user = sent["body"]["messages"]
    assert system["role"] == "system" and "NOT_IN_SOURCES" in system["content"]
    assert "Question: How many hostages were taken back to Gaza?" in user["content"]
    assert excerpt_numbers(sent["body"]["messages"]) == [1, 2, 3, 4]
    assert sent["body"]["max_tokens"] == llm_service.settings.max_output_tokens


def test_refusal_sentinel_becomes_the_refusal(llm_service: RagService, server: OpenAICompatibleServer) -> None:
    server.reply = lambda messages: "NOT_IN_SOURCES"
    answer = llm_service.ask("What is the capital of Australia?")
    assert not answer.answerable and answer.citations == []
    assert answer.answer == llm_service.prompts.refusal


def test_uncited_answer_is_flagged(llm_service: RagService, server: OpenAICompatibleServer) -> None:
    server.reply = lambda messages: "Canberra is the capital."
    answer = llm_service.ask("What is the capital of Australia?")
    assert not answer.grounded and answer.citations == []
    assert llm_service.prompts.uncited_note in answer.answer


@pytest.mark.parametrize(("status", "delay", "message"), [(429, 0, "busy"), (500, 0, "HTTP 500"), (200, 3, "did not answer within 2 s")])
def test_model_failures_are_clear_messages(llm_service: RagService, server: OpenAICompatibleServer, status: int, delay: float, message: str) -> None:
    server.status, server.delay = status, delay
    with pytest.raises(ModelError, match=message):
        llm_service.ask("How many hostages were taken back to Gaza?")


def test_summary_from_the_model(llm_service: RagService, server: OpenAICompatibleServer) -> None:
    server.reply = lambda messages: "Here it is:\n- The intelligence chief resigned [1].\n- Hostages were taken [2][70].\n- Lapid praised it [1]."
    summary = llm_service.summary()
    assert [b.text for b in summary.bullets] == ["The intelligence chief resigned.", "Hostages were taken.", "Lapid praised it."]
    assert [b.citations for b in summary.bullets] == [[1], [2], [1]]
    assert [c.n for c in summary.citations] == [1, 2]
