"""Conversations in Discord, seen as a member sees them, through the real discord.py client and
the emulator: the answer in a thread opened on the question, a follow-up there without a
mention, auto-answer channels and forum posts (chatter ignored, moderators respected), 👍/👎
with the reason form (after a restart too), /stats equal to a scripted session, /forget-me,
and faults (no thread permission, an archived or deleted thread, the database down)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.discord_bot.feedback import DOWN_ID, REASON_FIELD_ID, UP_ID
from bot.rag.service import RagService
from bot.state import Database
from bot.state.conversations import ConversationLog
from bot.state.server_config import ServerConfig
from tests.discord_emulator import DiscordEmulator, Member
from tests.discord_payloads import CREATE_PUBLIC_THREADS
from tests.helpers import StartBot, pings_nobody
from tests.test_conversation_store import FIRST, FOLLOW_UP

pytestmark = pytest.mark.asyncio


async def bot_messages(emulator: DiscordEmulator, channel: str, count: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = emulator.messages_in(channel, from_bot=True)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} bot message(s) in {channel}, saw {emulator.messages_in(channel, from_bot=True)}")


async def thread_on(emulator: DiscordEmulator, message: dict, timeout: float = 20.0) -> dict:
    """The thread the bot opens on a member's message, once it exists."""
    deadline = time.monotonic() + timeout
    while message["id"] not in emulator.threads:
        if time.monotonic() > deadline:
            raise AssertionError(f"no thread was opened on message {message['id']}")
        await asyncio.sleep(0.05)
    return emulator.threads[message["id"]]


async def test_a_channel_question_opens_a_thread_and_a_follow_up_needs_no_mention(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member
) -> None:
    await start_bot(stories_service, answer_in_thread=True)
    question = await emulator.inject_message(member, FIRST, mention_bot=True)
    thread = await thread_on(emulator, question)  # opened on the question, named after it
    assert thread["name"] == FIRST and thread["parent_id"] == question["channel_id"]
    first, = await bot_messages(emulator, thread["id"], 1)
    assert "tomas berg" in first["content"].lower()
    assert all(pings_nobody(c.body) for c in emulator.calls_to("POST", rf"/channels/{thread['id']}/messages"))
    assert {c["custom_id"] for row in first["components"] for c in row["components"]} == {UP_ID, DOWN_ID}

    await emulator.inject_message(member, FOLLOW_UP, channel=thread["id"])  # no mention
    _, second = await bot_messages(emulator, thread["id"], 2)
    assert "1987" in second["content"] and "2003" not in second["content"]
    await emulator.inject_message(member, "thanks!", channel=thread["id"])
    await asyncio.sleep(0.5)
    assert len(emulator.messages_in(thread["id"], from_bot=True)) == 2  # chatter gets no answer


async def test_the_conversation_survives_a_restart(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member
) -> None:
    bot = await start_bot(stories_service, answer_in_thread=True)
    question = await emulator.inject_message(member, FIRST, mention_bot=True)
    thread = await thread_on(emulator, question)
    await bot_messages(emulator, thread["id"], 1)
    assert await bot.until_idle(10)
    await bot.close()
    await start_bot(stories_service, answer_in_thread=True)  # a new process: only the database remembers
    await emulator.inject_message(member, FOLLOW_UP, channel=thread["id"])
    _, follow_up = await bot_messages(emulator, thread["id"], 2)
    assert "1987" in follow_up["content"]


async def test_without_thread_permission_the_answer_is_a_reply(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_bot(stories_service, answer_in_thread=True)
    channel = emulator.guilds[emulator.guild_id].default_channel
    emulator.deny_bot(channel, CREATE_PUBLIC_THREADS)
    refused = emulator.expect_error(403, 50013, method="POST", path=r"/channels/\d+/messages/\d+/threads")
    question = await emulator.inject_message(member, FIRST, mention_bot=True)
    replies = [m for m in await bot_messages(emulator, channel, 1)
               if (m.get("message_reference") or {}).get("message_id") == question["id"]]
    assert replies and "tomas berg" in replies[0]["content"].lower()
    assert len(refused.calls) == 1 and not emulator.threads
    assert "could not open a thread" in caplog.text


async def test_auto_answer_channel_and_forum(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member, moderator: Member
) -> None:
    await start_bot(stories_service, answer_in_thread=True, moderator_role_ids=[int(emulator.moderator_role_id)])
    helper = emulator.member("helper", roles=[emulator.moderator_role_id])  # a moderator by role
    help_channel = emulator.add_channel(emulator.guild_id, "help")
    forum = emulator.add_channel(emulator.guild_id, "ask-here", type=15)
    for channel in (help_channel, forum):
        interaction = await emulator.inject_slash(moderator, "config auto-answer", channel=channel)
        assert "without a mention" in (await emulator.wait_for_response(interaction))["data"]["content"]

    await emulator.inject_message(member, "thanks everyone!", channel=help_channel)
    asked = await emulator.inject_message(member, "When did Tomas Berg retire?", channel=help_channel)
    thread = await thread_on(emulator, asked)
    reply, = await bot_messages(emulator, thread["id"], 1)
    assert "1987" in reply["content"]
    assert len(emulator.threads) == 1  # "thanks everyone!" opened nothing

    post, _ = await emulator.create_forum_post(member, forum, "Island ferry", "When did Captain Ivo Alder retire?")
    answer, *_ = await bot_messages(emulator, post["id"], 1)
    assert "2003" in answer["content"]
    await asyncio.sleep(0.3)
    answered = len(emulator.messages_in(post["id"], from_bot=True))
    await emulator.inject_message(helper, "He retired when the route closed, see the harbour notice.", channel=post["id"])
    await emulator.inject_message(member, "Why did the route close?", channel=post["id"])
    await asyncio.sleep(0.5)
    assert len(emulator.messages_in(post["id"], from_bot=True)) == answered  # a moderator took over the thread


async def test_votes_after_a_restart_one_per_member_and_the_reason_form(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member, moderator: Member
) -> None:
    bot = await start_bot(stories_service)
    question = await emulator.inject_message(member, FIRST, mention_bot=True)
    channel = question["channel_id"]
    answer, = await bot_messages(emulator, channel, 1)
    assert await bot.until_idle(10)
    await bot.close()
    await start_bot(stories_service)  # a click after a restart still records

    click = await emulator.click(member, answer, UP_ID)
    assert "👍" in (await emulator.wait_for_response(click))["data"]["content"]
    click = await emulator.click(member, answer, DOWN_ID)  # the same member changes their vote
    modal = await emulator.wait_for_modal(click)
    submitted = await emulator.submit_modal(member, click, {REASON_FIELD_ID: "it missed the ferry captain"})
    assert "👎" in (await emulator.wait_for_response(submitted))["data"]["content"]
    other = emulator.member("bob")
    assert "👍" in (await emulator.wait_for_response(await emulator.click(other, answer, UP_ID)))["data"]["content"]
    assert modal["title"]

    report = ConversationLog(stories_service.components.database).stats(int(emulator.guild_id), since=None)
    assert (report.up, report.down, report.questions) == (1, 1, 1)
    assert report.top_down == [(FIRST.lower(), 1)]


async def test_stats_equal_a_scripted_session_and_forget_me_leaves_nothing(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member, moderator: Member
) -> None:
    bot = await start_bot(stories_service)
    channel = emulator.guilds[emulator.guild_id].default_channel
    script = [(member, FIRST), (member, "When did Captain Ivo Alder retire?"), (member, "How do I register a blueprint in Flask?"),
              (emulator.member("bob"), "how do i register a blueprint in flask?")]
    answers = []
    for who, text in script:  # one after the other, as people type
        await emulator.inject_message(who, text, mention_bot=True)
        answers = await bot_messages(emulator, channel, len(answers) + 1)
        assert await bot.until_idle(10)
    await emulator.wait_for_response(await emulator.click(moderator, answers[0], UP_ID))
    await emulator.wait_for_response(await emulator.click(member, answers[1], DOWN_ID))

    interaction = await emulator.inject_slash(moderator, "stats", period="24h")
    text = (await emulator.wait_for_response(interaction))["data"]["content"]
    assert "questions: 4 — answered 2, refused 2 (50%)" in text
    assert "👍 1 · 👎 1" in text and "most cited: " in text
    assert "“how do i register a blueprint in flask?” ×2" in text  # the docs-gap report

    log = bot.conversations
    assert log.stored_for(member.id) == 4  # three questions and a vote
    interaction = await emulator.inject_slash(member, "forget-me")
    said = (await emulator.wait_for_response(interaction))["data"]["content"]
    assert "deleted 3 questions and 2 votes" in said  # their vote, and the moderator's on their question
    assert log.stored_for(member.id) == 0
    assert log.stats(int(emulator.guild_id), since=None).questions == 1  # bob's stays


async def test_an_archived_or_deleted_thread_mid_conversation(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member
) -> None:
    await start_bot(stories_service, answer_in_thread=True)
    question = await emulator.inject_message(member, FIRST, mention_bot=True)
    thread = await thread_on(emulator, question)
    await bot_messages(emulator, thread["id"], 1)
    await emulator.archive_thread(thread["id"])
    await emulator.inject_message(member, FOLLOW_UP, channel=thread["id"])  # the member's message reopens it
    await bot_messages(emulator, thread["id"], 2)
    await emulator.delete_thread(thread["id"])
    again = await emulator.inject_message(member, "Who commanded the island ferry?", mention_bot=True)
    new_thread = await thread_on(emulator, again)  # a new question gets a new thread
    reply, = await bot_messages(emulator, new_thread["id"], 1)
    assert "ivo alder" in reply["content"].lower()


async def test_answers_flow_when_the_database_is_down(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await start_bot(stories_service, answer_in_thread=True)
    channel = emulator.guilds[emulator.guild_id].default_channel
    down = Database("postgresql://sourcebot@127.0.0.1:1/state", connect_timeout=1)  # nothing listens there
    bot.conversations, bot.server_config = ConversationLog(down), ServerConfig(down, True)
    await emulator.inject_message(member, FIRST, mention_bot=True)
    answer, = await bot_messages(emulator, channel, 1)
    assert "tomas berg" in answer["content"].lower()
    response = await emulator.wait_for_response(await emulator.click(member, answer, UP_ID))
    assert "could not be saved" in response["data"]["content"]
    assert "state database unavailable" in caplog.text and not emulator.threads  # no thread without settings


async def test_fifty_conversations_with_follow_ups_at_once(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService
) -> None:
    emulator.heartbeat_interval_ms = 250
    bot = await start_bot(stories_service, answer_in_thread=True)
    members = [emulator.member(f"user{i}") for i in range(50)]
    started = time.monotonic()
    questions = await asyncio.gather(*(emulator.inject_message(m, FIRST, mention_bot=True) for m in members))
    threads = [await thread_on(emulator, q, timeout=60) for q in questions]
    await asyncio.gather(*(bot_messages(emulator, t["id"], 1, timeout=60) for t in threads))
    await asyncio.gather(*(emulator.inject_message(m, FOLLOW_UP, channel=t["id"]) for m, t in zip(members, threads)))
    answers = await asyncio.gather(*(bot_messages(emulator, t["id"], 2, timeout=60) for t in threads))
    assert all("1987" in a[1]["content"] for a in answers)  # 0 lost, each follow-up from its own conversation
    assert await bot.until_idle(20) and len(bot.get_cog("QuestionsCog")._turns) == 0  # type: ignore[union-attr]
    beats = [t for t in emulator.heartbeats if t >= started]
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert len(beats) >= 2 and max(gaps) < 1.5, f"heartbeat stalled: max gap {max(gaps):.2f}s"
    print(f"50 conversations, 100 answers in {time.monotonic() - started:.1f}s, max heartbeat gap {max(gaps):.2f}s")
