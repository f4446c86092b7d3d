"""Nothing a member asked is lost or answered twice, seen through the real discord.py client
and the emulator: a replayed MESSAGE_CREATE (as after a gateway resume) gets no second answer,
and on start the bot catches up with the questions it missed while down: a real `python -m bot
run` killed with SIGKILL in the middle of an answer, restarted, answers it in the thread it had
opened, and the questions asked while it was down; over CATCH_UP_LIMIT, members are asked to
ask again; with CATCH_UP_MINUTES=0, nothing is read."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.discord_bot.app import SourceBot
from bot.discord_bot.cogs.catch_up import READ_CAP, CatchUpCog, CatchUpReport
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings
from tests.discord_emulator import DiscordEmulator, Member
from tests.helpers import StartBot
from tests.test_conversation_store import FERRY, FIRST, FOLLOW_UP, LIGHTHOUSE
from tests.test_conversations import bot_messages, thread_on

pytestmark = pytest.mark.asyncio


def replies_to(emulator: DiscordEmulator, message: dict) -> list[dict]:
    return [m for m in emulator.messages_in(message["channel_id"], from_bot=True)
            if (m.get("message_reference") or {}).get("message_id") == message["id"]]


async def test_a_replayed_message_gets_one_answer_and_no_error(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await start_bot(stories_service, answer_in_thread=True)
    question = await emulator.inject_message(member, FIRST, mention_bot=True)
    await emulator.replay(question)  # while the first delivery is being answered
    thread = await thread_on(emulator, question)
    await bot_messages(emulator, thread["id"], 1)
    assert await bot.until_idle(10)
    await emulator.replay(question)  # after the answer
    await bot.close()
    await start_bot(stories_service, answer_in_thread=True)  # and to a new process (the database remembers)
    await emulator.replay(question)
    await asyncio.sleep(1.0)
    assert len(emulator.messages_in(thread["id"], from_bot=True)) == 1
    assert replies_to(emulator, question) == [] and len(emulator.threads) == 1
    assert len(emulator.calls_to("POST", r"/channels/\d+/messages/\d+/threads")) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_missed_questions_over_the_limit_are_asked_to_ask_again(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
) -> None:
    bot = await start_bot(stories_service)
    chatter = await emulator.inject_message(member, "good morning everyone")
    answered = await emulator.inject_message(member, "Who commanded the island ferry?", mention_bot=True)
    await bot_messages(emulator, answered["channel_id"], 1)
    assert await bot.until_idle(10)
    await bot.close()  # down: these reach nobody
    missed = [await emulator.inject_message(member, text, mention_bot=True)
              for text in (FIRST, "When did Captain Ivo Alder retire?", "When did Tomas Berg retire?")]
    mark = len(emulator.calls)
    bot = await start_bot(stories_service, catch_up_limit=2)
    for message in missed:
        for _ in range(200):
            if replies_to(emulator, message):
                break
            await asyncio.sleep(0.05)
    first, second, third = (replies_to(emulator, m) for m in missed)
    assert len(first) == len(second) == len(third) == 1
    assert "tomas berg" in first[0]["content"].lower() and "2003" in second[0]["content"]  # oldest first
    assert "ask again" in third[0]["content"]
    assert len(replies_to(emulator, answered)) == 1 and replies_to(emulator, chatter) == []  # nothing twice
    reads = emulator.calls_to("GET", rf"/channels/{answered['channel_id']}/messages", after=mark)
    assert reads and int(reads[0].query["after"]) >= int(answered["id"])  # resumed after what it handled


async def test_an_empty_thread_over_the_limit_is_told_to_ask_again(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
) -> None:
    bot = await start_bot(stories_service, answer_in_thread=True)
    held = emulator.hold("POST", r"/channels/\d+/messages")
    question = await emulator.inject_message(member, FIRST, mention_bot=True)
    thread = await thread_on(emulator, question)
    await held.arrived()
    await bot.close()  # gone in the middle of the answer
    held.release()
    emulator.holds.remove(held)
    await start_bot(stories_service, answer_in_thread=True, catch_up_limit=0)
    told, = await bot_messages(emulator, thread["id"], 1)
    assert "ask again" in told["content"] and replies_to(emulator, question) == []


async def test_a_rolling_restart_answers_a_question_once(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
) -> None:
    old = await start_bot(stories_service)
    held = emulator.hold("POST", r"/channels/\d+/messages")
    question = await emulator.inject_message(member, FIRST, mention_bot=True)
    await held.arrived()  # the old run is answering it...
    new = await start_bot(stories_service)  # ...while the new one starts and catches up
    catch_up: CatchUpCog = new.get_cog("CatchUpCog")  # type: ignore[assignment]
    assert catch_up.task is not None
    done, _ = await asyncio.wait({catch_up.task}, timeout=30)
    assert done, "the new run's catch-up is answering the question the old run is answering"
    held.release()
    emulator.holds.remove(held)
    answer, = await bot_messages(emulator, question["channel_id"], 1)
    assert await old.until_idle(10) and await new.until_idle(10)
    assert "tomas berg" in answer["content"].lower()
    assert replies_to(emulator, question) == [answer]  # the old run's answer, and no second one


async def test_a_failed_answer_is_not_redone_on_every_restart(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
) -> None:
    emulator.deny_bot(emulator.channel_id)  # the reply is refused: a failure that would come again
    refused = emulator.expect_error(403, 50013, method="POST")
    bot = await start_bot(stories_service)
    await emulator.inject_message(member, "", mention_bot=True)  # a bare mention: told to type a question
    for _ in range(400):
        if refused.calls:
            break
        await asyncio.sleep(0.05)
    assert refused.calls and await bot.until_idle(10)
    await bot.close()
    mark = len(emulator.calls)
    restarted = await start_bot(stories_service)
    catch_up: CatchUpCog = restarted.get_cog("CatchUpCog")  # type: ignore[assignment]
    assert catch_up.task is not None
    done, _ = await asyncio.wait({catch_up.task}, timeout=30)
    assert done and await restarted.until_idle(10)
    assert emulator.calls_to("POST", r"/channels/\d+/messages", after=mark) == []  # not answered again
    assert len(refused.calls) == 1


async def finished_catch_up(bot: SourceBot) -> CatchUpReport:
    """The report of the bot's catch-up on start, once all of it has run."""
    catch_up: CatchUpCog = bot.get_cog("CatchUpCog")  # type: ignore[assignment]
    assert catch_up.task is not None
    return await asyncio.wait_for(asyncio.shield(catch_up.task), 60)


async def test_questions_past_a_channels_read_cap_are_told_to_ask_again(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
) -> None:
    await (await start_bot(stories_service)).close()
    for n in range(READ_CAP):  # a busy channel while the bot was down (stored as posted: no gateway to reach)
        emulator._stored(emulator._message(member.user, f"chatter {n}", member=member))
    asked = await emulator.inject_message(member, FIRST, mention_bot=True)  # after READ_CAP messages
    bot = await start_bot(stories_service)
    report = await finished_catch_up(bot)
    assert await bot.until_idle(10)
    told, = replies_to(emulator, asked)  # not dropped silently
    assert "ask again" in told["content"] and (report.read, report.answered, report.told) == (READ_CAP + 1, 0, 1)


async def test_channels_the_bot_may_not_answer_in_are_not_read(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
) -> None:
    await (await start_bot(stories_service)).close()
    await emulator.inject_message(member, FIRST, mention_bot=True)  # while down, in a channel not allowed
    mark = len(emulator.calls)
    other = emulator.add_channel(emulator.guild_id, "questions")
    bot = await start_bot(stories_service, allowed_channel_ids=[int(other)])
    assert (await finished_catch_up(bot)).channels == 0
    assert emulator.calls_to("GET", r"/channels/\d+/messages", after=mark) == []
    assert emulator.messages_in(emulator.channel_id, from_bot=True) == []


async def test_without_a_window_nothing_is_read(
    emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member,
) -> None:
    await (await start_bot(stories_service)).close()
    await emulator.inject_message(member, FIRST, mention_bot=True)  # while the bot is down
    mark = len(emulator.calls)
    bot = await start_bot(stories_service, catch_up_minutes=0)  # no window: no catch-up
    fresh = await emulator.inject_message(member, "Who commanded the island ferry?", mention_bot=True)
    answer, = await bot_messages(emulator, emulator.channel_id, 1)  # live questions are answered: the bot is up
    assert replies_to(emulator, fresh) == [answer] and await bot.until_idle(10)
    catch_up: CatchUpCog = bot.get_cog("CatchUpCog")  # type: ignore[assignment]
    assert catch_up.task is None  # no catch-up was started on ready...
    assert emulator.calls_to("GET", r"/channels/\d+/messages", after=mark) == []  # ...and nothing was read


def bot_env(emulator: DiscordEmulator, settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""), "HOME": str(settings.vectorstore_dir.parent),
        "DISCORD_TOKEN": "catch-up-token", "DISCORD_GUILD_ID": emulator.guild_id,
        "DISCORD_API_BASE": f"http://127.0.0.1:{emulator.port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{emulator.port}/",
        "SOURCES_DIR": str(settings.sources_dir), "VECTORSTORE_DIR": str(settings.vectorstore_dir),
        "DATA_DIR": str(settings.data_dir), "LLM_PROVIDER": "extractive", "LOG_LEVEL": "INFO",
        "ANSWER_IN_THREAD": "true", **extra,
    }


async def start_process(emulator: DiscordEmulator, env: dict[str, str]) -> asyncio.subprocess.Process:
    sessions = len(emulator.gateway_sessions)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", cwd=PROJECT_ROOT, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    for _ in range(1200):  # model load and index check, then the gateway session
        if len(emulator.gateway_sessions) > sessions and emulator.gateway_sessions[-1].connected:
            return proc
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the bot did not connect: {(await proc.communicate())[1].decode()[-3000:]}")


async def log_line(proc: asyncio.subprocess.Process, text: str, timeout: float) -> str:
    """The first line of the bot's log holding `text` (read as it is written), else ''."""
    assert proc.stderr is not None

    async def read() -> str:
        while line := (await proc.stderr.readline()).decode():
            if text in line:
                return line
        return ""

    return await asyncio.wait_for(read(), timeout)


async def test_killed_mid_answer_the_bot_answers_after_a_restart(
    emulator: DiscordEmulator, settings: Settings, sources_dir: Path, member: Member,
) -> None:
    for name, text in (("lighthouse.md", LIGHTHOUSE), ("ferry.md", FERRY)):
        (sources_dir / name).write_text(text, encoding="utf-8")
    env = bot_env(emulator, settings)
    proc = await start_process(emulator, env)
    try:
        # A first conversation, answered, with its follow-up asked while the bot is down.
        earlier = await emulator.inject_message(member, "Who commanded the island ferry?", mention_bot=True)
        earlier_thread = await thread_on(emulator, earlier, timeout=60)
        await bot_messages(emulator, earlier_thread["id"], 1, timeout=60)
        held = emulator.hold("POST", r"/channels/\d+/messages")  # every answer now stops on its way out
        question = await emulator.inject_message(member, FIRST, mention_bot=True)
        thread = await thread_on(emulator, question, timeout=60)  # opened, still empty
        await held.arrived(60)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        held.release()  # the killed bot's answer never arrives
        emulator.holds.remove(held)
        await asyncio.sleep(0.2)
        assert emulator.messages_in(thread["id"], from_bot=True) == []

        follow_up = await emulator.inject_message(member, FOLLOW_UP, channel=earlier_thread["id"])
        asked_while_down = await emulator.inject_message(member, "When did Captain Ivo Alder retire?", mention_bot=True)
        proc = await start_process(emulator, env)
        answer, = await bot_messages(emulator, thread["id"], 1, timeout=60)  # in the thread it had opened
        assert "tomas berg" in answer["content"].lower()
        _, later = await bot_messages(emulator, earlier_thread["id"], 2, timeout=60)
        assert "2003" in later["content"]  # the follow-up, with its conversation's history
        down_thread = await thread_on(emulator, asked_while_down, timeout=60)
        assert "2003" in (await bot_messages(emulator, down_thread["id"], 1, timeout=60))[0]["content"]
        assert follow_up["id"] not in emulator.threads and len(emulator.threads) == 3  # no thread opened twice

        # the report is logged once every missed question's handling has returned
        assert await log_line(proc, "catch-up: 3 missed question(s) answered", timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
