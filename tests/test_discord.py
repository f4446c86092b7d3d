"""The Discord bot end to end: the unmodified discord.py client against the local Discord
API emulator (tests/discord_emulator.py), with the real service, Chroma and embedded model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.discord_bot.render import MESSAGE_LIMIT, render_answer, split_text
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.models import Answer, Citation
from bot.rag.service import RagService
from bot.settings import Settings
from tests.discord_emulator import MANAGE_GUILD, DiscordEmulator, Member
from tests.helpers import StartBot, field_values, followup, pings_nobody
from tests.test_operations import SlowEmbeddings


# --- mentions ---------------------------------------------------------------------------------
async def test_mention_gets_a_cited_reply_to_that_message(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    assert set(emulator.commands) == {"ask", "summary", "sources", "reload", "stats", "source", "config", "forget-me"}
    mark = len(emulator.calls)
    message = await emulator.inject_message(member, "How many hostages were taken back to Gaza?", mention_bot=True)
    call = await emulator.wait_for_call("POST", rf"/channels/{emulator.channel_id}/messages", after=mark)
    assert emulator.calls_to("POST", r"/channels/\d+/typing", after=mark) == []  # a quick answer: no "typing…" call
    assert str(call.body["message_reference"]["message_id"]) == message["id"]
    assert "253" in call.body["content"] and "[1]" in call.body["content"]
    assert "253 others were taken back to gaza" in call.body["content"]  # the quote, shown once
    fields = call.body["embeds"][0]["fields"]
    assert fields[0]["name"] == "[1] haliva-resignation.txt"
    assert not any("253 others were taken back to gaza" in v for v in field_values(call.body))
    assert pings_nobody(call.body)


async def test_a_slow_answer_shows_typing_first(emulator: DiscordEmulator, start_bot: StartBot, settings: Settings,
                                              embeddings: MiniLMEmbeddings, member: Member) -> None:
    slow = RagService(settings, embeddings=SlowEmbeddings(embeddings, 1.5, trigger="How many hostages"))
    await asyncio.to_thread(slow.start)
    await start_bot(slow)
    mark = len(emulator.calls)
    await emulator.inject_message(member, "How many hostages were taken back to Gaza?", mention_bot=True)
    typing = await emulator.wait_for_call("POST", rf"/channels/{emulator.channel_id}/typing", after=mark)
    answer = await emulator.wait_for_call("POST", rf"/channels/{emulator.channel_id}/messages", after=mark)
    assert typing.at < answer.at and "253" in answer.body["content"]


async def test_message_without_mention_gets_nothing(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    mark = len(emulator.calls)
    await emulator.inject_message(member, "How many hostages were taken back to Gaza?")
    await asyncio.sleep(0.5)
    assert emulator.calls_to("POST", r"/channels/\d+/(messages|typing)", after=mark) == []


async def test_reply_to_the_bot_counts_as_a_question(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    earlier = emulator._message(emulator.bot_user, "An earlier answer")
    mark = len(emulator.calls)
    await emulator.inject_message(member, "Who is the IDF chief of staff?", reply_to=earlier)
    call = await emulator.wait_for_call("POST", r"/channels/\d+/messages", after=mark)
    assert "halevi" in call.body["content"].lower()


async def test_channel_filter(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service, allowed_channel_ids=[1234])
    mark = len(emulator.calls)
    await emulator.inject_message(member, "Who is the IDF chief of staff?", mention_bot=True)
    await asyncio.sleep(0.5)
    assert emulator.calls_to("POST", r"/channels/\d+/messages", after=mark) == []


async def test_cooldown_has_a_clear_reply(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service, question_cooldown_count=1, question_cooldown_seconds=60)
    mark = len(emulator.calls)
    await emulator.inject_message(member, "Who is the IDF chief of staff?", mention_bot=True)
    await emulator.wait_for_call("POST", r"/channels/\d+/messages", after=mark)
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="Who is the IDF chief of staff?")
    call = await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    assert call.body["type"] == 4 and call.body["data"]["flags"] == 64
    assert "too quickly" in call.body["data"]["content"]


# --- /ask -------------------------------------------------------------------------------------
async def test_ask_defers_then_follows_up_with_the_cited_answer(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="Who is the IDF chief of staff?")
    defer = await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    assert defer.body["type"] == 5 and defer.at - interaction.created < 3 and not interaction.late
    body = await followup(emulator, interaction.token, mark)
    assert "lt gen herzi halevi" in body["content"].lower()
    assert body["embeds"][0]["fields"][0]["name"].endswith("haliva-resignation.txt")
    assert not any("lt gen herzi halevi" in v for v in field_values(body))  # not repeated below
    assert pings_nobody(body)


async def test_ask_unanswerable_gets_the_refusal(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="What is the capital of Australia?")
    body = await followup(emulator, interaction.token, mark)
    assert body["content"] == shared_service.components.prompts.refusal
    assert not body.get("embeds")


@pytest.mark.parametrize(("question", "message"), [("   ", "empty"), ("why " * 600, "2,000")])
async def test_ask_bad_question_is_an_ephemeral_error(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member, question: str, message: str) -> None:
    await start_bot(shared_service)
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question=question)
    call = await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    assert call.body["type"] == 4 and call.body["data"]["flags"] == 64
    assert message in call.body["data"]["content"]


async def test_ask_option_is_validated_against_the_synced_schema(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    with pytest.raises(ValueError, match="required"):
        await emulator.inject_slash(member, "ask")


# --- /summary, /sources ---------------------------------------------------------------------------
async def test_summary_and_sources(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "summary")
    body = await followup(emulator, interaction.token, mark)
    bullets = [line for line in body["content"].splitlines() if line.startswith("•")]
    assert 3 <= len(bullets) <= 6 and all(line.rstrip().endswith("]") for line in bullets)
    assert len(field_values(body)) == len(bullets)

    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "sources")
    embed = (await followup(emulator, interaction.token, mark))["embeds"][0]
    assert embed["fields"][0]["name"] == "haliva-resignation.txt" and "chunks" in embed["fields"][0]["value"]


# --- /reload ------------------------------------------------------------------------------------
async def test_reload_needs_manage_server(emulator: DiscordEmulator, start_bot: StartBot, service: RagService, member: Member) -> None:
    await asyncio.to_thread(service.start)
    await start_bot(service)
    assert emulator.commands["reload"]["default_member_permissions"] in (MANAGE_GUILD, str(MANAGE_GUILD))
    with pytest.raises(PermissionError):
        await emulator.inject_slash(member, "reload")  # Discord itself does not deliver it
    # A server admin overrode the command's permissions: the bot's own check still refuses.
    emulator.commands["reload"]["default_member_permissions"] = None
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "reload")
    call = await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    assert call.body["data"]["flags"] == 64 and "Only moderators" in call.body["data"]["content"]
    assert service.last_reload is not None and service.last_reload.added  # only the start-up ingest ran


async def test_reload_of_the_shared_sources_is_the_hosts(emulator: DiscordEmulator, start_bot: StartBot, service: RagService, moderator: Member) -> None:
    await asyncio.to_thread(service.start)
    await start_bot(service)  # the moderator is not in OWNER_IDS nor the application's owner
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(moderator, "reload")
    call = await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    assert call.body["data"]["flags"] == 64 and "Only the bot's host" in call.body["data"]["content"]
    assert "/source" in call.body["data"]["content"]


async def test_reload_by_the_host_reflects_changed_sources(emulator: DiscordEmulator, start_bot: StartBot, service: RagService, sources_dir: Path, moderator: Member, member: Member) -> None:
    await asyncio.to_thread(service.start)
    await start_bot(service, owner_ids=[int(moderator.id)])
    (sources_dir / "lighthouse.md").write_text("The old lighthouse on Skerry Point was painted bright green in 1911.\n", encoding="utf-8")
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(moderator, "reload")
    first = await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    assert first.body["data"]["flags"] == 64
    done = await emulator.wait_for_call("PATCH", rf"/webhooks/{emulator.app_id}/{interaction.token}/messages/@original", after=mark)
    assert "1 chunk(s) added" in done.body["content"]
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="What colour was the lighthouse on Skerry Point painted?")
    body = await followup(emulator, interaction.token, mark)
    assert "green" in body["content"]


async def test_reload_by_a_moderator_role(emulator: DiscordEmulator, start_bot: StartBot, service: RagService) -> None:
    await asyncio.to_thread(service.start)
    role_member = emulator.member("helper", roles=[emulator.moderator_role_id])
    await start_bot(service, moderator_role_ids=[int(emulator.moderator_role_id)], owner_ids=[int(role_member.id)])
    emulator.commands["reload"]["default_member_permissions"] = None  # the admin allowed the role
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(role_member, "reload")
    done = await emulator.wait_for_call("PATCH", rf"/webhooks/{emulator.app_id}/{interaction.token}/messages/@original", after=mark)
    assert "Reload done" in done.body["content"] and "Nothing changed" in done.body["content"]


async def test_broken_reload_keeps_answering_from_the_old_index(emulator: DiscordEmulator, start_bot: StartBot, service: RagService, sources_dir: Path, moderator: Member, member: Member) -> None:
    await asyncio.to_thread(service.start)
    await start_bot(service, owner_ids=[int(moderator.id)])
    (sources_dir / "broken.txt").write_bytes(b"\x00\x01\x02binary")
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(moderator, "reload")
    done = await emulator.wait_for_call("PATCH", rf"/webhooks/{emulator.app_id}/{interaction.token}/messages/@original", after=mark)
    assert "1 file(s) failed" in done.body["content"] and "broken.txt: looks like a binary file" in done.body["content"]
    assert "previous version" in done.body["content"]
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="How many hostages were taken back to Gaza?")
    assert "253" in (await followup(emulator, interaction.token, mark))["content"]


# --- safety and resilience ------------------------------------------------------------------------
async def test_echoed_mentions_ping_nobody(emulator: DiscordEmulator, start_bot: StartBot, service: RagService, sources_dir: Path, member: Member) -> None:
    (sources_dir / "rules.md").write_text(
        f"Server announcements: @everyone must read the pinned rules before the quiz night starts. "
        f"Appeals about the quiz night go to <@&{emulator.moderator_role_id}> and @here.\n",
        encoding="utf-8",
    )
    await asyncio.to_thread(service.start)
    await start_bot(service)
    mark = len(emulator.calls)
    await emulator.inject_message(member, "Who must read the pinned rules before the quiz night? @everyone", mention_bot=True)
    call = await emulator.wait_for_call("POST", r"/channels/\d+/messages", after=mark)
    assert "@everyone" in call.body["content"]
    assert pings_nobody(call.body)
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="Where do appeals about the quiz night go?")
    body = await followup(emulator, interaction.token, mark)
    assert f"<@&{emulator.moderator_role_id}>" in body["content"]
    assert pings_nobody(body)


async def test_bot_survives_a_gateway_reconnect(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    await emulator.request_reconnect()
    for _ in range(300):
        if emulator.resumes:
            break
        await asyncio.sleep(0.02)
    assert emulator.resumes == 1 and emulator.sessions == 1  # resumed, not re-identified
    mark = len(emulator.calls)
    await emulator.inject_message(member, "Who is the IDF chief of staff?", mention_bot=True)
    call = await emulator.wait_for_call("POST", r"/channels/\d+/messages", after=mark)
    assert "halevi" in call.body["content"].lower()


# --- rendering (no Discord needed) --------------------------------------------------------------
def test_long_answers_are_split_within_discord_limits() -> None:
    sentence = "The harbour master logged every ship that entered the bay that winter. "
    text = sentence * 80
    pieces = split_text(text)
    assert len(pieces) >= 3 and all(len(p) <= MESSAGE_LIMIT for p in pieces)
    assert " ".join(pieces).split() == text.split()
    assert all(p.endswith(".") for p in pieces)
    quote = "x" * 5000
    answer = Answer("q", text, True, [Citation(n, "a.txt", f"a#{n}", 0, 5000, quote) for n in range(1, 31)])
    replies = render_answer(answer)
    assert all(r.embed is None for r in replies[:-1])
    embed = replies[-1].embed
    assert embed is not None and len(embed.fields) <= 25 and len(embed) <= 6000
    assert all(len(f.value or "") <= 1024 for f in embed.fields)
