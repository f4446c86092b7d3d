"""Moderators correct the bot, seen as members and moderators see it in Discord (the real
discord.py client against the emulator): "Correct this answer" (a message context menu) opens a
form whose answer then answers the same question and a paraphrase, cited as answered by the
moderators with a link to the corrected answer; members cannot correct; "Teach the bot" takes a
moderator's reply in a thread; the curated answer is listed and removable with /source; /stats
shows the 👎 queue by topic, with a menu that corrects a topic (which leaves the queue), and the
chart of a scripted run's questions and votes per day as a PNG; `python -m bot stats` too."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update

from bot.discord_bot.cogs.corrections import CORRECT, NOT_AN_ANSWER, NOT_OWN_REPLY, TEACH
from bot.discord_bot.corrections import ANSWER_FIELD_ID, QUESTION_FIELD_ID, QUEUE_SELECT_ID, SOURCES_FIELD_ID
from bot.discord_bot.feedback import DOWN_ID, REASON_FIELD_ID, UP_ID
from bot.rag.curated import CURATED, MODERATORS
from bot.rag.service import RagService
from bot.state.models import AnswerRecord, VoteRecord, utcnow
from tests.discord_emulator import MANAGE_GUILD, DiscordEmulator, Interaction, Member
from tests.helpers import StartBot, eventually, pings_nobody, run_cli

pytestmark = pytest.mark.asyncio
QUESTION = "Can I bring my dog on the island ferry?"
PARAPHRASE = "Are pets allowed on the island ferry?"
RIGHT = "Dogs ride the island ferry free of charge if they stay on a lead on the open deck."
REFUSED = "How do I register a blueprint in Flask?"


async def ask(emulator: DiscordEmulator, who: Member, text: str, channel: str | None = None) -> dict:
    """A member mentions the bot with a question; the bot's reply to it."""
    question = await emulator.inject_message(who, text, mention_bot=True, channel=channel)

    def reply() -> dict | None:
        return next((m for m in emulator.messages_in(question["channel_id"], from_bot=True)
                     if (m.get("message_reference") or {}).get("message_id") == question["id"] and m.get("embeds")
                     or (m.get("message_reference") or {}).get("message_id") == question["id"]
                     and "don't contain" in m["content"]), None)
    return await eventually(reply, timeout=30)


async def final_reply(emulator: DiscordEmulator, interaction: Interaction, timeout: float = 60) -> str:
    """The private reply's last text: a direct answer, or the deferred one once edited."""
    response = await emulator.wait_for_response(interaction)
    if response["type"] == 4:
        return response["data"]["content"]
    deadline = time.monotonic() + timeout
    while not (interaction.original or {}).get("content"):
        assert time.monotonic() < deadline, "the deferred reply was never filled in"
        await asyncio.sleep(0.05)
    return interaction.original["content"]  # type: ignore[index]


async def correct(emulator: DiscordEmulator, moderator: Member, opened: Interaction, answer: str,
                  sources: str = "") -> tuple[dict, str]:
    """The moderator fills in the correction form opened on `opened`; (the form, the bot's reply)."""
    modal = await emulator.wait_for_modal(opened)
    submitted = await emulator.submit_modal(moderator, opened, {ANSWER_FIELD_ID: answer, SOURCES_FIELD_ID: sources})
    return modal, await final_reply(emulator, submitted)


def moderators_citation(reply: dict) -> dict:
    field, = [f for e in reply["embeds"] for f in e.get("fields", []) if MODERATORS in f["name"]]
    return field


async def test_a_moderators_correction_answers_the_question_and_a_paraphrase_next_time(
        emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member, moderator: Member) -> None:
    log_channel = emulator.add_channel(emulator.guild_id, "source-log")
    bot = await start_bot(stories_service)
    library = bot.get_cog("CorrectionsCog").corrector.library  # type: ignore[union-attr]
    await asyncio.to_thread(library.set_log_channel, f"guild-{emulator.guild_id}", log_channel, actor_id="1",
                            actor_name="admin")
    assert emulator.message_commands[CORRECT]["default_member_permissions"] in (MANAGE_GUILD, str(MANAGE_GUILD))
    wrong = await ask(emulator, member, QUESTION)
    assert RIGHT not in wrong["content"] and await bot.until_idle(10)  # answered and recorded

    opened = await emulator.inject_message_command(moderator, CORRECT, wrong)
    modal, said = await correct(emulator, moderator, opened, RIGHT, "ferry notice on the pier")
    question_field, = [c for row in modal["components"] for c in row.get("components", [row.get("component")])
                       if c and c.get("custom_id") == QUESTION_FIELD_ID]
    assert question_field["value"] == QUESTION  # the form opens on the answered question
    assert said.startswith("✅ Saved the curated answer") and "visible to everyone" in said and "1 queue item" in said
    announced = await emulator.wait_for_call("POST", rf"/channels/{log_channel}/messages")  # as every source change
    assert said.split("`")[1] in announced.body["content"] and pings_nobody(announced.body)

    link = f"https://discord.com/channels/{wrong['guild_id']}/{wrong['channel_id']}/{wrong['id']}"
    for asked in (QUESTION, PARAPHRASE):
        reply = await ask(emulator, emulator.member("bob"), asked)
        assert reply["content"].startswith(RIGHT), asked
        assert f"<{link}>" in moderators_citation(reply)["value"]
    assert all(pings_nobody(c.body) for c in emulator.calls_to("POST", r"/channels/\d+/messages"))


async def test_a_member_cannot_correct_and_only_answers_can_be_corrected(
        emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member, moderator: Member) -> None:
    bot = await start_bot(stories_service)
    answer = await ask(emulator, member, QUESTION)
    assert await bot.until_idle(10)
    with pytest.raises(PermissionError):  # Discord does not offer a member the moderators' menu
        await emulator.inject_message_command(member, CORRECT, answer)
    emulator.message_commands[CORRECT]["default_member_permissions"] = None  # an admin opened it to everyone
    refused = await emulator.inject_message_command(member, CORRECT, answer)
    response = await emulator.wait_for_response(refused)
    assert response["type"] == 4 and "Only moderators" in response["data"]["content"]  # the bot checks again
    assert response["data"]["flags"] & 64

    own = await emulator.inject_message(moderator, "a moderator's message, not an answer")
    said = await final_reply(emulator, await emulator.inject_message_command(moderator, CORRECT, own))
    assert said == NOT_AN_ANSWER
    rows = await asyncio.to_thread(bot.get_cog("CorrectionsCog").corrector.library.registry.list,  # type: ignore[union-attr]
                                   f"guild-{emulator.guild_id}")
    assert [r for r in rows if r.kind == CURATED] == []


async def test_teach_the_bot_with_a_moderators_reply_then_list_and_remove_it(
        emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member, moderator: Member) -> None:
    bot = await start_bot(stories_service, answer_in_thread=True)
    question = await emulator.inject_message(member, QUESTION, mention_bot=True)
    thread = await eventually(lambda: emulator.threads.get(question["id"]), timeout=30)
    await eventually(lambda: emulator.messages_in(thread["id"], from_bot=True), timeout=30)
    assert await bot.until_idle(10)
    reply = await emulator.inject_message(moderator, RIGHT, channel=thread["id"])
    not_mine = await emulator.inject_message(member, "thanks, I'll try that", channel=thread["id"])
    said = await final_reply(emulator, await emulator.inject_message_command(moderator, TEACH, not_mine))
    assert said == NOT_OWN_REPLY
    said = await final_reply(emulator, await emulator.inject_message_command(moderator, TEACH, reply))
    assert said.startswith("✅ Saved the curated answer") and "visible to everyone" in said
    name = said.split("`")[1]

    again = await emulator.inject_message(emulator.member("bob"), PARAPHRASE, mention_bot=True)
    other = await eventually(lambda: emulator.threads.get(again["id"]), timeout=30)
    answer = (await eventually(lambda: emulator.messages_in(other["id"], from_bot=True), timeout=30))[0]
    assert answer["content"].startswith(RIGHT)
    assert f"<https://discord.com/channels/{emulator.guild_id}/{thread['id']}/{reply['id']}>" in moderators_citation(answer)["value"]

    listed = await emulator.inject_slash(moderator, "source list")
    response = await emulator.wait_for_response(listed)
    assert any(name in f["name"] and f["value"].startswith(CURATED) for e in response["data"]["embeds"] for f in e["fields"])
    removed = await emulator.inject_slash(moderator, "source remove", name=name)
    assert (await final_reply(emulator, removed)).startswith("✅")
    after = await emulator.inject_message(emulator.member("carol"), QUESTION, mention_bot=True)
    last = await eventually(lambda: emulator.threads.get(after["id"]), timeout=30)
    answer = (await eventually(lambda: emulator.messages_in(last["id"], from_bot=True), timeout=30))[0]
    assert RIGHT not in answer["content"]


async def test_the_queue_and_chart_equal_a_scripted_run_and_a_correction_resolves_its_topic(
        emulator: DiscordEmulator, start_bot: StartBot, stories_service: RagService, member: Member, moderator: Member,
        tmp_path: Path) -> None:
    bot = await start_bot(stories_service)
    bob, carol = emulator.member("bob"), emulator.member("carol")
    # (day offset, who, question, votes: (voter, 👍/👎, reason))
    script = [
        (2, member, "Who ran the Skerry Point lighthouse?", [(bob, UP_ID, None)]),
        (2, bob, REFUSED, []),
        (1, carol, "how do i register a blueprint in flask", []),
        (1, member, "Who commanded the island ferry?", [(bob, DOWN_ID, "it should say the captain's full title"),
                                                         (carol, DOWN_ID, None)]),
        (0, bob, "When did Keeper Tomas Berg retire?", [(member, UP_ID, None), (carol, UP_ID, None)]),
        (0, member, "What colour is the harbour master's boat?", []),
    ]
    replies = []
    for _, who, text, votes in script:
        replies.append(reply := await ask(emulator, who, text))
        for voter, button, reason in votes:
            click = await emulator.click(voter, reply, button)
            if reason is not None:
                await emulator.wait_for_modal(click)
                await emulator.wait_for_response(await emulator.submit_modal(voter, click, {REASON_FIELD_ID: reason}))
            else:
                await emulator.wait_for_response(click)
        assert await bot.until_idle(10)
    now = utcnow()
    with stories_service.components.database.session() as session:  # the script ran over three days
        for (days, *_), reply in zip(script, replies):
            answer_id = session.query(AnswerRecord.id).filter(AnswerRecord.message_id == reply["id"]).scalar()
            at = now - timedelta(days=days)
            session.execute(update(AnswerRecord).where(AnswerRecord.id == answer_id).values(asked_at=at))
            session.execute(update(VoteRecord).where(VoteRecord.answer_id == answer_id).values(at=at))
    refused = {i for i, r in enumerate(replies) if "don't contain" in r["content"]}
    assert refused == {1, 2, 5}

    expected: dict[object, Counter[str]] = {}
    for i, (days, _, _, votes) in enumerate(script):
        day = (now - timedelta(days=days)).date()
        expected.setdefault(day, Counter()).update(questions=1, refused=int(i in refused),
                                                   up=sum(b == UP_ID for _, b, _ in votes),
                                                   down=sum(b == DOWN_ID for _, b, _ in votes))
    report = await asyncio.to_thread(bot.conversations.stats, int(emulator.guild_id), None)
    assert [(d.day, d.questions, d.refused, d.up, d.down) for d in report.daily] == [
        (day, c["questions"], c["refused"], c["up"], c["down"]) for day, c in sorted(expected.items())]

    interaction = await emulator.inject_slash(moderator, "stats", period="all")
    response = await emulator.wait_for_response(interaction)
    data = response["data"]
    assert "questions: 6 — answered 3, refused 3" in data["content"] and "👍 3 · 👎 2" in data["content"]
    png = next(f for f in response.get("files", data.get("files", [])) if f["filename"] == "stats.png")
    with Image.open(io.BytesIO(png["data"])) as image:
        assert image.format == "PNG" and image.size[0] > 300
    topics = [f["name"] for e in data["embeds"] for f in e["fields"]]
    assert [t.split(". ", 1)[1] for t in topics] == [f"{q.topic} ({len(q.items)})" for q in report.queue]
    assert [sorted(i.question for i in t.items) for t in report.queue] == [
        sorted([REFUSED, "how do i register a blueprint in flask"]), ["What colour is the harbour master's boat?"],
        ["Who commanded the island ferry?"]]  # the biggest topic first, then the newest
    ferry = report.queue[2].items[0]
    assert (ferry.down, ferry.reasons, ferry.refused) == (2, ("it should say the captain's full title",), False)
    assert "captain's full title" in data["embeds"][0]["fields"][2]["value"]

    # The host's view is the same (and writes the same chart).
    chart = tmp_path / "chart.png"
    done = await asyncio.to_thread(run_cli, stories_service.settings, "stats", "--guild", emulator.guild_id, "--period", "all",
                                   "--json", "--chart", str(chart))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert [[i["answer_id"] for i in t["items"]] for t in printed["queue"]] == [t.answer_ids for t in report.queue]
    assert [(d["questions"], d["refused"], d["up"], d["down"]) for d in printed["daily"]] == [
        (d.questions, d.refused, d.up, d.down) for d in report.daily]
    with Image.open(chart) as image:
        assert image.format == "PNG"
    assert printed["daily"][0]["day"] == report.daily[0].day.isoformat()
    text = (await asyncio.to_thread(run_cli, stories_service.settings, "stats", "--period", "all")).stdout
    assert f"  {report.queue[0].topic} (2)" in text and "👎 2\tWho commanded the island ferry?\t— it should say" in text

    # Correcting the first topic from /stats resolves both of its questions; the others stay.
    stored = emulator.interactions[interaction.token].original
    chosen = await emulator.choose(moderator, stored, QUEUE_SELECT_ID, ["0"])
    _, said = await correct(emulator, moderator, chosen, "Register it on the app with app.register_blueprint(bp).")
    assert said.startswith("✅") and "2 queue items resolved" in said
    after = await asyncio.to_thread(bot.conversations.stats, int(emulator.guild_id), None)
    assert [t.answer_ids for t in after.queue] == [t.answer_ids for t in report.queue[1:]]
    answer = await ask(emulator, bob, "How can I register a blueprint in Flask?")
    assert answer["content"].startswith("Register it on the app")
