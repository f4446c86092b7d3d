"""Operating the bot: load with a reload in the middle, one reload at a time, /stats,
the per-question log line, and graceful shutdown — all through the Discord emulator."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.errors import ReloadInProgressError
from bot.rag.service import RagService
from bot.rag.stats import question_log_formatter
from bot.settings import Settings
from tests.discord_emulator import MANAGE_GUILD, DiscordEmulator
from tests.helpers import StartBot


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


class SlowEmbeddings(MiniLMEmbeddings):
    """The real model, slowed down so that a reload is still running when a test needs it."""

    def __init__(self, model: MiniLMEmbeddings, delay: float, trigger: str = "The old lighthouse") -> None:
        self.__dict__.update(model.__dict__)
        self.delay = delay
        self.trigger = trigger

    def encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1 and texts[0].startswith(self.trigger):
            time.sleep(self.delay)
        return super().encode(texts)


LIGHTHOUSE = "The old lighthouse on Skerry Point was painted bright green in 1911.\n"


async def test_load_with_a_reload_in_the_middle(emulator: DiscordEmulator, start_bot: StartBot, service: RagService, sources_dir: Path) -> None:
    emulator.heartbeat_interval_ms = 250
    await asyncio.to_thread(service.start)
    moderator = emulator.member("mod", permissions=MANAGE_GUILD | (1 << 10) | (1 << 11))
    await start_bot(service, question_cooldown_count=3, question_cooldown_seconds=60, owner_ids=[int(moderator.id)])
    members = [emulator.member(f"user{i}") for i in range(30)]
    spammers = [emulator.member(f"spammer{i}") for i in range(5)]
    questions = ["How many hostages were taken back to Gaza?", "Who is the IDF chief of staff?",
                 "What did Lapid say Netanyahu should do?", "What is the capital of Australia?"]
    (sources_dir / "lighthouse.md").write_text(LIGHTHOUSE, encoding="utf-8")
    before_rss, mark, started = rss_mib(), len(emulator.calls), time.monotonic()

    injections = []
    for i, member in enumerate(members):
        injections.append(emulator.inject_message(member, questions[i % 4], mention_bot=True))
        injections.append(emulator.inject_slash(member, "ask", question=questions[(i + 1) % 4]))
        if i == 15:
            injections.append(emulator.inject_slash(moderator, "reload"))
    for spammer in spammers:
        injections.extend(emulator.inject_message(spammer, questions[0], mention_bot=True) for _ in range(5))
    sent = await asyncio.gather(*injections)
    messages = [x for x in sent if isinstance(x, dict)]
    interactions = [x for x in sent if not isinstance(x, dict)]
    assert len(messages) + len(interactions) >= 50

    def replied(message_id: str) -> list[dict]:
        return [c.body for c in emulator.calls_to("POST", r"/channels/\d+/messages", after=mark)
                if str((c.body.get("message_reference") or {}).get("message_id")) == message_id]

    def finished(token: str) -> bool:
        callback = emulator.calls_to("POST", rf"/interactions/\d+/{token}/callback", after=mark)
        later = emulator.calls_to("POST", rf"/webhooks/\d+/{token}", after=mark) + \
            emulator.calls_to("PATCH", rf"/webhooks/\d+/{token}/messages/@original", after=mark)
        return bool(callback) and (callback[0].body["type"] == 4 or bool(later))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(replied(m["id"]) for m in messages) and all(finished(i.token) for i in interactions):
            break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    lost = [m["content"] for m in messages if not replied(m["id"])] + [i.command for i in interactions if not finished(i.token)]
    assert lost == [], f"{len(lost)} question(s) lost"
    assert not any(i.late for i in interactions), "every interaction was acknowledged within 3 s"

    cooldowns = sum("too quickly" in replied(m["id"])[0]["content"] for m in messages)
    assert cooldowns == 2 * len(spammers)  # each spammer: 3 answered, 2 told to wait
    reload_done = [c.body["content"] for c in emulator.calls_to("PATCH", r"/webhooks/\d+/[\w-]+/messages/@original", after=mark)]
    assert any("1 chunk(s) added" in text for text in reload_done)

    beats = [t for t in emulator.heartbeats if t >= started]
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert len(beats) >= 2 and max(gaps) < 1.5, f"heartbeat stalled: max gap {max(gaps):.2f}s"
    assert rss_mib() - before_rss < 300
    stats = service.stats.snapshot()
    assert stats.errors == 0 and stats.questions == len(members) * 2 + 3 * len(spammers)
    print(f"\nload: {len(messages) + len(interactions)} questions in {elapsed:.2f}s, "
          f"max heartbeat gap {max(gaps):.2f}s, RSS +{rss_mib() - before_rss:.0f} MiB, p50 {stats.p50_latency_ms:.1f} ms")


async def test_one_reload_at_a_time(emulator: DiscordEmulator, start_bot: StartBot, service: RagService, sources_dir: Path, embeddings: MiniLMEmbeddings) -> None:
    slow = RagService(service.settings, embeddings=SlowEmbeddings(embeddings, delay=1.5))
    await asyncio.to_thread(slow.start)
    moderator = emulator.member("mod", permissions=MANAGE_GUILD | (1 << 10) | (1 << 11))
    await start_bot(slow, owner_ids=[int(moderator.id)])
    (sources_dir / "lighthouse.md").write_text(LIGHTHOUSE, encoding="utf-8")
    mark = len(emulator.calls)
    first = await emulator.inject_slash(moderator, "reload")
    await asyncio.sleep(0.5)
    second = await emulator.inject_slash(moderator, "reload")
    told = await emulator.wait_for_call("PATCH", rf"/webhooks/\d+/{second.token}/messages/@original", after=mark)
    assert "already running" in told.body["content"]
    done = await emulator.wait_for_call("PATCH", rf"/webhooks/\d+/{first.token}/messages/@original", after=mark)
    assert "1 chunk(s) added" in done.body["content"]
    # The service enforces it too, not only the bot.
    (sources_dir / "lighthouse.md").write_text(LIGHTHOUSE, encoding="utf-8")
    (sources_dir / "lighthouse.md").write_text(LIGHTHOUSE.replace("1911", "1912"), encoding="utf-8")
    running = asyncio.create_task(asyncio.to_thread(slow.ingest))
    await asyncio.sleep(0.3)
    with pytest.raises(ReloadInProgressError, match="already running"):
        slow.ingest()
    assert (await running).updated == 1


async def test_stats_for_moderators(emulator: DiscordEmulator, start_bot: StartBot, service: RagService) -> None:
    bot = await start_bot(service)
    member = emulator.member("alice")
    mark = len(emulator.calls)
    for question in ["Who is the IDF chief of staff?", "What is the capital of Australia?"]:
        interaction = await emulator.inject_slash(member, "ask", question=question)
        await emulator.wait_for_call("POST", rf"/webhooks/\d+/{interaction.token}", after=mark)
    assert await bot.until_idle(10)  # answers are recorded once sent
    with pytest.raises(PermissionError):
        await emulator.inject_slash(member, "stats")
    moderator = emulator.member("mod", permissions=MANAGE_GUILD | (1 << 10) | (1 << 11))
    interaction = await emulator.inject_slash(moderator, "stats")
    call = await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    text = call.body["data"]["content"]
    assert call.body["data"]["flags"] == 64
    assert "questions: 2 — answered 1, refused 1 (50%)" in text
    assert "“what is the capital of australia?”" in text  # the docs-gap report
    assert "answer time:" in text and "most cited: haliva-resignation.txt (1)" in text


async def test_one_log_line_per_question_without_ids_or_text(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, caplog: pytest.LogCaptureFixture) -> None:
    await start_bot(shared_service)
    member = emulator.member("alice")
    caplog.set_level(logging.INFO, logger="bot.questions")
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="Who is the IDF chief of staff?")
    await emulator.wait_for_call("POST", rf"/webhooks/\d+/{interaction.token}", after=mark)
    formatter = question_log_formatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name == "bot.questions"]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "question" and line["provider"] == "extractive" and line["answerable"] is True
    assert line["citations"] >= 1 and line["latency_ms"] > 0
    assert line["user"] and member.id not in json.dumps(line) and "chief of staff" not in json.dumps(line)


async def test_graceful_shutdown_finishes_answers_in_flight(emulator: DiscordEmulator, start_bot: StartBot, settings: Settings, embeddings: MiniLMEmbeddings) -> None:
    slow = SlowEmbeddings(embeddings, 1.0, trigger="Who is the IDF chief of staff?")  # the question takes 1 s
    slow_service = RagService(settings, embeddings=slow)
    slow_service.start()
    bot = await start_bot(slow_service)
    member = emulator.member("alice")
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="Who is the IDF chief of staff?")
    await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    shutdown = asyncio.create_task(bot.shutdown(grace=10))
    await asyncio.sleep(0.1)
    late = await emulator.inject_slash(member, "ask", question="Who is the IDF chief of staff?")
    refused = await emulator.wait_for_call("POST", rf"/interactions/\d+/{late.token}/callback", after=mark)
    assert "restarting" in refused.body["data"]["content"]
    await asyncio.wait_for(shutdown, 15)
    answer = emulator.calls_to("POST", rf"/webhooks/\d+/{interaction.token}", after=mark)
    assert answer and "halevi" in answer[0].body["content"].lower()
    assert bot.is_closed()


async def test_the_discord_token_never_reaches_the_logs(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await start_bot(shared_service)  # logs in with "test-token"
    member = emulator.member("alice")
    mark = len(emulator.calls)
    await emulator.inject_message(member, "Who is the IDF chief of staff?", mention_bot=True)
    await emulator.wait_for_call("POST", r"/channels/\d+/messages", after=mark)
    assert caplog.records and "test-token" not in caplog.text
