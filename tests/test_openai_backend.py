"""The OpenAI back-end: the real `openai` client and ChatOpenAI against a local
OpenAI-compatible server whose model is scripted (see tests/openai_server.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.errors import ModelError
from bot.rag.models import Answer
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings
from tests.openai_server import OpenAICompatibleServer, answer_from_excerpts


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
    assert answer.answer == llm_service.components.prompts.refusal


def test_uncited_answer_is_flagged(llm_service: RagService, server: OpenAICompatibleServer) -> None:
    server.reply = lambda messages: "Canberra is the capital."
    answer = llm_service.ask("What is the capital of Australia?")
    assert not answer.grounded and answer.citations == []
    assert llm_service.components.prompts.uncited_note in answer.answer


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


# --- the computed stand-in model, faults, streaming, budget, embeddings ---------------------------
def test_cli_ask_json_with_the_openai_provider(settings: Settings, server: OpenAICompatibleServer) -> None:
    server.reply = answer_from_excerpts
    result = run_cli_with(settings, server, "ask", "--json", stdin="How many hostages were taken back to Gaza?\nWhat is the capital of Peru?\n")
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert "253" in first["answer"] and first["answerable"]
    assert first["citations"] and "253 others were taken back to gaza" in first["citations"][0]["quote"]
    assert re.search(r"\[1\]", first["answer"])
    assert second["answerable"] is False and second["citations"] == []


def test_cli_streams_the_answer(settings: Settings, server: OpenAICompatibleServer) -> None:
    server.stream_chunk_delay = 0.01
    result = run_cli_with(settings, server, "ask", "Who is the IDF chief of staff?")
    assert result.returncode == 0, result.stderr
    assert "herzi halevi" in result.stdout.lower() and "[1] haliva-resignation.txt, characters" in result.stdout
    assert any(r["body"].get("stream") for r in server.requests), "the CLI asked for a streamed answer"


def test_429_with_retry_after_is_retried(llm_service: RagService, server: OpenAICompatibleServer) -> None:
    llm_service = RagService(  # the retried request is the text one
        llm_service.settings.model_copy(update={"max_retries": 2, "openai_structured_output": "off"}),
        embeddings=llm_service.components.embeddings,
    )
    server.fail_next = [(429, 0.2), (500, None)]
    started = time.monotonic()
    answer = llm_service.ask("How many hostages were taken back to Gaza?")
    assert "253" in answer.answer
    assert len(server.requests) == 3 and time.monotonic() - started >= 0.2  # honoured retry-after


@pytest.mark.parametrize("fault", ["timeout", "malformed", "truncated", "429", "500"])
def test_each_fault_is_a_clear_message_and_the_next_question_works(llm_service: RagService, server: OpenAICompatibleServer, fault: str) -> None:
    if fault == "timeout":
        server.delay = 3
    elif fault == "malformed":
        server.malformed = True
    elif fault == "truncated":
        server.truncate_stream = True
    else:
        server.status = int(fault)
    with pytest.raises(ModelError) as info:
        list(llm_service.stream("How many hostages were taken back to Gaza?"))
    assert str(info.value) and "Traceback" not in str(info.value)
    server.delay, server.malformed, server.truncate_stream, server.status = 0, False, False, 200
    assert "253" in llm_service.ask("How many hostages were taken back to Gaza?").answer


def test_stream_yields_growing_text_then_the_answer(llm_service: RagService) -> None:
    items = list(llm_service.stream("Who is the IDF chief of staff?"))
    partials, final = items[:-1], items[-1]
    assert isinstance(final, Answer) and len(partials) >= 3
    assert all(b.startswith(a) for a, b in zip(partials, partials[1:]))
    assert final.answer.startswith(partials[-1].rstrip(" .").split(" [")[0])


def test_context_is_trimmed_to_the_token_budget(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, server: OpenAICompatibleServer) -> None:
    settings = make_settings(llm_provider="openai", openai_base_url=server.base_url, context_token_budget=250, max_retries=0)
    RagService(settings, embeddings=embeddings).ask("How many hostages were taken back to Gaza?")
    assert excerpt_numbers(server.requests[-1]["body"]["messages"]) == [1]


def test_openai_embeddings_build_their_own_index(make_settings: Callable[..., Settings], server: OpenAICompatibleServer) -> None:
    settings = make_settings(llm_provider="openai", openai_base_url=server.base_url, openai_embedding_model="test-embed", max_retries=0)
    service = RagService(settings)
    answer = service.ask("How many hostages were taken back to Gaza?")
    assert service.start().version.embedding_model == "openai:test-embed"
    assert any(r["body"].get("model") == "test-embed" for r in server.requests)
    assert "253" in answer.answer


def run_cli_with(settings: Settings, server: OpenAICompatibleServer, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(settings.vectorstore_dir.parent), "SOURCES_DIR": str(settings.sources_dir),
           "VECTORSTORE_DIR": str(settings.vectorstore_dir), "DATA_DIR": str(settings.data_dir),
           "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test",
           "MAX_RETRIES": "0"}
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=PROJECT_ROOT, timeout=120)


def test_structured_output_where_the_server_supports_it(llm_service: RagService, server: OpenAICompatibleServer) -> None:
    answer = llm_service.ask("How many hostages were taken back to Gaza?")
    request = server.requests[-1]["body"]
    assert request["response_format"]["type"] == "json_schema"
    assert set(request["response_format"]["json_schema"]["schema"]["properties"]) == {"answerable", "answer", "citations"}
    assert "253" in answer.answer and answer.citations and len(server.requests) == 1
    refused = llm_service.ask("What is the capital of Peru?")
    assert not refused.answerable and refused.answer == llm_service.components.prompts.refusal


def test_text_fallback_where_structured_output_is_unsupported(llm_service: RagService, server: OpenAICompatibleServer) -> None:
    server.json_schema = False  # like llama.cpp's server: HTTP 500 for json_schema
    first = llm_service.ask("How many hostages were taken back to Gaza?")
    assert "253" in first.answer and first.citations
    assert [("response_format" in r["body"]) for r in server.requests] == [True, False]
    llm_service.ask("Who is the IDF chief of staff?")
    assert "response_format" not in server.requests[-1]["body"] and len(server.requests) == 3  # not asked again
