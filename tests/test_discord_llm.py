"""The Discord flows with LLM_PROVIDER=openai: the bot, the emulator, the real openai client
and the local OpenAI-compatible test server (its stand-in model answers from the excerpts)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.service import RagService
from bot.settings import Settings
from tests.discord_emulator import DiscordEmulator
from tests.helpers import StartBot, pings_nobody
from tests.openai_server import OpenAICompatibleServer


@pytest.fixture
def streaming_service(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, server: OpenAICompatibleServer) -> RagService:
    server.stream_chunk_delay = 0.03
    settings = make_settings(llm_provider="openai", openai_base_url=server.base_url, max_retries=0, request_timeout=2,
                             stream_edit_interval=0.05)
    service = RagService(settings, embeddings=embeddings)
    service.start()
    return service


async def test_ask_streams_edits_in_order_then_the_full_answer(emulator: DiscordEmulator, start_bot: StartBot, streaming_service: RagService) -> None:
    await start_bot(streaming_service)
    member = emulator.member("alice")
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="How many hostages were taken back to Gaza?")
    final = await emulator.wait_for_call(
        "PATCH", rf"/webhooks/\d+/{interaction.token}/messages/@original", after=mark,
        where=lambda call: bool(call.body.get("embeds")),
    )
    edits = [c.body["content"] for c in emulator.calls_to("PATCH", rf"/webhooks/\d+/{interaction.token}/messages/@original", after=mark)]
    partials = edits[:-1]
    assert len(partials) >= 2 and all(p.endswith(" …") for p in partials)
    texts = [p[: -len(" …")] for p in partials]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:])), "edits arrive in order, each extending the last"
    assert "253" in final.body["content"] and "[1]" in final.body["content"]
    assert "253 others were taken back to gaza" in final.body["embeds"][0]["fields"][0]["value"]
    assert pings_nobody(final.body)


async def test_mention_streams_by_editing_the_reply(emulator: DiscordEmulator, start_bot: StartBot, streaming_service: RagService) -> None:
    await start_bot(streaming_service)
    member = emulator.member("alice")
    mark = len(emulator.calls)
    await emulator.inject_message(member, "Who is the IDF chief of staff?", mention_bot=True)
    final = await emulator.wait_for_call("PATCH", r"/channels/\d+/messages/\d+", after=mark,
                                         where=lambda call: bool(call.body.get("embeds")))
    assert len(emulator.calls_to("POST", r"/channels/\d+/messages", after=mark)) == 1  # one reply, edited
    assert "halevi" in final.body["content"].lower()


async def test_model_fault_in_discord_is_a_plain_ephemeral_error_then_recovers(emulator: DiscordEmulator, start_bot: StartBot, streaming_service: RagService, server: OpenAICompatibleServer) -> None:
    await start_bot(streaming_service)
    member = emulator.member("alice")
    server.status = 500
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="How many hostages were taken back to Gaza?")
    error = await emulator.wait_for_call("POST", rf"/webhooks/\d+/{interaction.token}", after=mark)
    assert error.body["flags"] == 64 and "language model" in error.body["content"]
    server.status = 200
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="How many hostages were taken back to Gaza?")
    final = await emulator.wait_for_call("PATCH", rf"/webhooks/\d+/{interaction.token}/messages/@original", after=mark,
                                         where=lambda call: bool(call.body.get("embeds")))
    assert "253" in final.body["content"]
