"""Discord channels as sources, end to end: the real SourceBot (unmodified discord.py) against the
Discord emulator, with the real SourceLibrary, state database, Chroma and embedding model and the
offline extractive answerer. A moderator adds a forum (its posts tagged solved) or a channel (its
pinned messages); members' questions are answered from them with the message's jump link; edits,
deletions, pins and tag changes reach the answers; a private channel's messages answer only there;
bots' messages and the asker's own are never quoted; /forget-me takes a member's messages out."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.discord_bot.app import SourceBot
from bot.rag.access import Visibility
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.index.registry import guild_base_name
from bot.rag.service import RagService
from bot.settings import Settings
from tests import discord_payloads as P
from tests.discord_emulator import (
    EPHEMERAL,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MANAGE_THREADS,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    DiscordEmulator,
    Member,
)
from tests.helpers import StartBot, eventually, pings_nobody
from tests.test_sources_discord import World, reply

QUESTION = "I forgot my Lantern portal password after the update. What should I do?"
ANSWER = ("Open the Lantern portal settings page and click Reset password. "
          "A reset link is emailed to you within five minutes.")
EDITED = ("Open the Lantern portal settings page and click Forgot password. "
          "The reset code now arrives by text message within two minutes.")
BOT_SPAM = ("Reset your Lantern portal password by sending your old password to the quartz helpdesk robot "
            "in a direct message.")
ASK = "How do I reset my Lantern portal password?"
CANOE = "Members can borrow the club canoe on weekends after signing the logbook in the boathouse."
KAYAK = "The club kayaks are stored in the shed behind the harbour office and are free for members on Tuesdays."
SAFE = "The boathouse alarm code is kept in the blue safe behind the reception desk, sealed in a grey envelope."


class Club(World):
    """Guild A with a forum (tags solved/open), a public #faq, a private #staff-notes (the Staff
    role only), a Mods role, members alice, bob, carol and sam (Staff), and another bot."""

    def __init__(self, emulator: DiscordEmulator, bot: SourceBot, service: RagService) -> None:
        super().__init__(emulator, bot, service)
        self.mods = emulator.add_role(self.a, "Mods", MANAGE_GUILD | MANAGE_MESSAGES | MANAGE_THREADS)
        self.staff = emulator.add_role(self.a, "Staff")
        self.general = emulator.channel_id
        self.forum = emulator.add_channel(self.a, "help", 15,
                                          available_tags=[P.forum_tag("solved"), P.forum_tag("open")])
        self.faq = emulator.add_channel(self.a, "faq")
        self.staff_notes = emulator.add_channel(self.a, "staff-notes")
        emulator.set_overwrite(self.staff_notes, self.a, deny=VIEW_CHANNEL)  # @everyone may not view it
        emulator.set_overwrite(self.staff_notes, self.staff, allow=VIEW_CHANNEL | SEND_MESSAGES)
        emulator.set_overwrite(self.staff_notes, emulator.app_id, allow=VIEW_CHANNEL | SEND_MESSAGES)
        self.keeper = emulator.member("keeper", roles=[self.mods])  # a moderator by role: named in citations
        self.bob, self.carol = emulator.member("bob"), emulator.member("carol")
        self.sam = emulator.member("sam", roles=[self.staff])
        robot = Member(P.user("quartzbot", bot=True), [], P.EVERYONE_PERMISSIONS, self.a)
        emulator.guilds[self.a].members[robot.id] = robot
        self.robot = robot

    def solved(self) -> str:
        return self.emulator.tag_id(self.emulator.channels[self.forum], "solved")

    async def ask(self, member: Member, question: str, channel: str) -> dict[str, Any]:
        """Ask by mention in `channel`; the bot's reply there (content and embeds)."""
        mark = len(self.emulator.calls)
        await self.emulator.inject_message(member, question, mention_bot=True, channel=channel)
        return (await self.emulator.wait_for_call("POST", rf"/channels/{channel}/messages", after=mark, timeout=30)).body

    async def until_reply(self, member: Member, question: str, channel: str, check: Callable[[str], bool],
                          timeout: float = 30.0) -> str:
        """Ask until the reply passes `check` (a change reaches the index within the sync delay)."""
        text = ""
        for _ in range(int(timeout / 0.5)):
            text = json.dumps(await self.ask(member, question, channel), ensure_ascii=False)
            if check(text):
                return text
            await asyncio.sleep(0.5)
        raise AssertionError(f"the reply never changed as expected; last: {text[:400]}")

    def refusal(self) -> str:
        return self.service.components.prompts.refusal


@pytest.fixture
async def club(emulator: DiscordEmulator, start_bot: StartBot, make_settings: Callable[..., Settings],
               embeddings: MiniLMEmbeddings, tmp_path: Path) -> Club:
    settings = make_settings(data_dir=tmp_path / "data", channel_sync_delay=0.2, channel_source_limit=2)
    service = RagService(settings, embeddings=embeddings)
    bot = await start_bot(service, discord_guild_id=None)
    club = Club(emulator, bot, service)
    await emulator.settle()
    await asyncio.sleep(0.1)
    return club


def registry_row(club: Club, name: str) -> Any:
    library = club.bot.get_cog("SourcesCog").library  # type: ignore[union-attr]
    return library.registry.get(guild_base_name(club.a), name)


async def test_a_solved_forum_post_answers_with_its_jump_link_and_follows_edits_and_deletion(club: Club) -> None:
    emulator = club.emulator
    post, _ = await emulator.create_forum_post(club.member_a, club.forum, "Lantern portal password reset", QUESTION)
    answer = await emulator.inject_message(club.bob, ANSWER, channel=post["id"])
    spam = await emulator.inject_message(club.robot, BOT_SPAM, channel=post["id"])  # another bot: never a source
    for voter in (club.carol, club.sam, club.keeper):
        await emulator.react(voter, spam, "👍")  # the most reactions: still not the answer
    await emulator.react(club.carol, answer, "✅")
    dud = await emulator.inject_message(club.sam, "Just reinstall the Lantern portal app and the password comes back.",
                                        channel=post["id"])  # the latest reply, voted down: no vote for it
    for voter, emoji in ((club.carol, "👎"), (club.keeper, "👎"), (club.bob, "❌")):
        await emulator.react(voter, dud, emoji)
    unsolved, _ = await emulator.create_forum_post(club.carol, club.forum, "Kayak storage",
                                                   "Where are the club kayaks kept over the winter months?")
    await emulator.inject_message(club.bob, KAYAK, channel=unsolved["id"])  # not tagged solved: not taken
    await emulator.set_tags(club.keeper, post["id"], [club.solved()])

    added = await club.run(club.mod_a, "source add", channel=club.forum, **{"solved-tag": "solved"})
    assert reply(added).startswith("✅ Added `help` (discord, "), reply(added)
    row = registry_row(club, "help")
    assert row.kind == "discord" and Visibility.of(row) == Visibility.everyone()  # a forum everyone can read

    body = await club.ask(club.carol, ASK, club.general)
    text = json.dumps(body, ensure_ascii=False)
    assert "Reset password" in body["content"] and pings_nobody(body)
    assert f"https://discord.com/channels/{club.a}/{post['id']}/{answer['id']}" in text  # the answer's jump link
    assert "quartz" not in text.lower() and "bob" not in text and "alice" not in text  # no bot, no author named
    assert "reinstall" not in text
    kayak = json.dumps(await club.ask(club.carol, "Where are the club kayaks stored?", club.general))
    assert "harbour office" not in kayak

    await emulator.edit_message(answer, EDITED)
    changed = await club.until_reply(club.carol, ASK, club.general, lambda t: "text message" in t)
    assert "emailed" not in changed

    await emulator.delete_message(answer)
    gone = await club.until_reply(club.carol, ASK, club.general, lambda t: "text message" not in t)
    assert "Forgot password" not in gone and "quartz" not in gone.lower()


async def test_tagging_a_post_solved_later_adds_it(club: Club) -> None:
    emulator = club.emulator
    await emulator.create_forum_post(club.carol, club.forum, "Opening hours",
                                     "When is the clubhouse open during the summer holidays?")
    first, _ = await emulator.create_forum_post(club.member_a, club.forum, "Lantern portal password reset", QUESTION)
    await emulator.inject_message(club.bob, ANSWER, channel=first["id"])
    await emulator.set_tags(club.keeper, first["id"], [club.solved()])
    await club.run(club.mod_a, "source add", channel=club.forum, **{"solved-tag": "solved"})
    mark = len(emulator.calls)
    later, _ = await emulator.create_forum_post(club.carol, club.forum, "Kayak storage",
                                                "Where are the club kayaks kept over the winter months?")
    reply_message = await emulator.inject_message(club.keeper, KAYAK, channel=later["id"])
    await emulator.set_tags(club.carol, later["id"], [club.solved()])  # the post's author marks it solved
    text = await club.until_reply(club.bob, "Where are the club kayaks stored?", club.general,
                                  lambda t: "harbour office" in t)
    assert f"/{later['id']}/{reply_message['id']}" in text
    assert "keeper, moderator" in text  # a moderator's answer is credited to them
    read = [call.path for call in emulator.calls[mark:] if call.method == "GET"]
    assert f"/channels/{later['id']}/messages" in read and not any(  # only the touched post was read
        "/threads/archived" in path or path.startswith(f"/channels/{first['id']}/") for path in read), read
    library = club.bot.get_cog("SourcesCog").library  # type: ignore[union-attr]
    log = library.registry.audit_log(guild_base_name(club.a))
    add, sync = (next(e for e in log if e.action == action and e.result == "ok") for action in ("add", "sync"))
    assert sync.added > 0 and (sync.unchanged, sync.updated, sync.removed) == (add.added, 0, 0)  # the first post's
    # chunks were neither converted nor embedded again

    # An edit made while the bot was offline (no event reached it): the sweep reads the forum again.
    emulator.messages[reply_message["id"]]["content"] = KAYAK.replace("harbour office", "old lifeboat station")
    await club.bot.get_cog("ChannelSourcesCog").sweep()  # type: ignore[union-attr]
    assert "old lifeboat station" in (await club.ask(club.bob, "Where are the club kayaks stored?", club.general))["content"]


async def test_pinned_messages_never_quote_the_asker_and_forget_me_removes_theirs(club: Club) -> None:
    emulator = club.emulator
    canoe = await emulator.inject_message(club.member_a, CANOE, channel=club.faq)
    await emulator.pin(club.keeper, canoe)
    await emulator.inject_message(club.bob, KAYAK, channel=club.faq)  # not pinned: not taken
    added = await club.run(club.mod_a, "source add", channel=club.faq)  # take: pinned by default
    assert reply(added).startswith("✅ Added `faq` (discord, "), reply(added)

    asked = "When can members borrow the club canoe?"
    body = await club.ask(club.bob, asked, club.general)
    assert "logbook" in body["content"]
    assert f"https://discord.com/channels/{club.a}/{club.faq}/{canoe['id']}" in json.dumps(body)
    assert "alice" not in json.dumps(body)  # a member's name is never shown
    own = json.dumps(await club.ask(club.member_a, asked, club.general), ensure_ascii=False)
    assert "logbook" not in own  # alice is never quoted her own message

    kayaks = "Where are the club kayaks stored?"
    assert "harbour office" not in json.dumps(await club.ask(club.carol, kayaks, club.general))
    later = await emulator.inject_message(club.bob, KAYAK, channel=club.faq)
    await emulator.pin(club.keeper, later)  # a pin reaches the index within the sync delay
    await club.until_reply(club.carol, kayaks, club.general, lambda t: "harbour office" in t)

    mark = len(emulator.calls)
    forget = await emulator.inject_slash(club.member_a, "forget-me")
    await emulator.wait_for_call("POST", rf"/interactions/\d+/{forget.token}/callback", after=mark)
    await club.until_reply(club.bob, asked, club.general, lambda t: "logbook" not in t)
    library = club.bot.get_cog("ChannelSourcesCog")
    assert await library.sync(guild_base_name(club.a), "faq") is None  # type: ignore[union-attr]  # stays out
    assert "logbook" not in json.dumps(await club.ask(club.bob, asked, club.general))


async def test_all_messages_takes_the_newest_and_new_ones_as_they_come(club: Club) -> None:
    emulator = club.emulator
    await emulator.inject_message(club.member_a, CANOE, channel=club.faq)  # past the limit of 2 newest
    await emulator.inject_message(club.bob, KAYAK, channel=club.faq)
    await emulator.inject_message(club.carol, "The clubhouse kitchen closes at ten in the evening on weekdays.",
                                  channel=club.faq)
    await emulator.inject_message(club.carol, "ok thanks!", channel=club.faq)  # too short to be a source
    await emulator.inject_message(club.sam, "Where do members borrow the club canoe on weekends?", mention_bot=True,
                                  channel=club.faq)  # a question to the bot: never a source
    added = await club.run(club.mod_a, "source add", channel=club.faq, take="all", name="club faq")
    assert reply(added).startswith("✅ Added `club faq` (discord, "), reply(added)
    assert "harbour office" in (await club.ask(club.sam, "Where are the club kayaks stored?", club.general))["content"]
    asked = "When can members borrow the club canoe?"
    assert "logbook" not in json.dumps(await club.ask(club.sam, asked, club.general))
    await emulator.inject_message(club.carol, CANOE.replace("weekends", "Saturdays"), channel=club.faq)
    text = await club.until_reply(club.sam, asked, club.general, lambda t: "Saturdays" in t)
    assert "carol" not in text


async def test_a_private_channel_answers_only_inside_it(club: Club) -> None:
    emulator = club.emulator
    tess = emulator.member("tess", roles=[club.staff])
    note = await emulator.inject_message(tess, SAFE, channel=club.staff_notes)
    await emulator.pin(club.keeper, note)
    added = await club.run(club.mod_a, "source add", channel=club.staff_notes, take="pinned")
    assert reply(added).startswith("✅"), reply(added)
    assert Visibility.of(registry_row(club, "staff-notes")) == Visibility.channels([int(club.staff_notes)])

    asked = "Where is the boathouse alarm code kept?"
    inside = await club.ask(club.sam, asked, club.staff_notes)
    assert "blue safe" in inside["content"]
    for member, channel in ((club.member_a, club.general), (club.sam, club.general), (club.bob, club.faq)):
        outside = json.dumps(await club.ask(member, asked, channel), ensure_ascii=False)
        assert "blue safe" not in outside and "grey envelope" not in outside and "staff-notes" not in outside
    mark = len(emulator.calls)
    private = await emulator.inject_command(club.sam, "ask", {"question": asked, "private": True}, channel=club.general)
    body = (await emulator.wait_for_call("POST", rf"/webhooks/{emulator.app_id}/{private.token}", after=mark)).body
    assert body.get("flags", 0) & EPHEMERAL and "blue safe" not in json.dumps(body)

    emulator.set_overwrite(club.staff_notes, club.a, allow=VIEW_CHANNEL)  # the channel opens to everyone
    await eventually(lambda: Visibility.of(registry_row(club, "staff-notes")) == Visibility.everyone(), timeout=10)
    assert "blue safe" in (await club.ask(club.member_a, asked, club.general))["content"]
    emulator.set_overwrite(club.staff_notes, club.a, deny=VIEW_CHANNEL)  # and closes again: at once, no debounce
    await eventually(lambda: Visibility.of(registry_row(club, "staff-notes")) != Visibility.everyone(), timeout=2)
    assert "blue safe" not in json.dumps(await club.ask(club.member_a, asked, club.general))


async def test_only_moderators_add_channels_and_bad_input_changes_nothing(club: Club) -> None:
    emulator = club.emulator
    with pytest.raises(PermissionError):  # Discord itself does not deliver /source to members
        await emulator.inject_slash(club.member_a, "source add", channel=club.faq)
    emulator.commands["source"]["default_member_permissions"] = None  # an admin opened /source to everyone
    refused = await club.run(club.member_a, "source add", channel=club.faq, take="all")
    assert "Only moderators" in reply(refused)
    wrong = await club.run(club.mod_a, "source add", channel=club.faq, take="solved")
    assert reply(wrong).startswith("❌") and "take:solved" in reply(wrong)
    untagged = await club.run(club.mod_a, "source add", channel=club.forum, **{"solved-tag": "answered"})
    assert reply(untagged).startswith("❌") and "no tag called `answered`" in reply(untagged)
    mixed = await club.run(club.mod_a, "source add", channel=club.faq, url="https://example.org/")
    assert "on its own" in reply(mixed)
    empty = await club.run(club.mod_a, "source add", channel=club.faq)
    assert reply(empty).startswith("❌") and "nothing to take" in reply(empty)
    assert registry_row(club, "faq") is None


async def test_a_renamed_solved_tag_changes_nothing_and_a_deleted_one_keeps_the_posts(
        club: Club, caplog: pytest.LogCaptureFixture) -> None:
    emulator = club.emulator
    post, _ = await emulator.create_forum_post(club.member_a, club.forum, "Lantern portal password reset", QUESTION)
    await emulator.inject_message(club.bob, ANSWER, channel=post["id"])
    await emulator.set_tags(club.keeper, post["id"], [club.solved()])
    added = await club.run(club.mod_a, "source add", channel=club.forum, **{"solved-tag": "solved"})
    assert reply(added).startswith("✅"), reply(added)
    cog = club.bot.get_cog("ChannelSourcesCog")
    base = guild_base_name(club.a)

    tags = club.emulator.channels[club.forum]["available_tags"]
    await emulator.set_forum_tags(club.forum, [{**t, "name": "resolved"} if t["name"] == "solved" else t for t in tags])
    await cog.sweep()  # type: ignore[union-attr]
    assert "Reset password" in (await club.ask(club.carol, ASK, club.general))["content"]

    await emulator.set_forum_tags(club.forum, [t for t in tags if t["name"] != "solved"])
    with caplog.at_level(logging.WARNING):
        assert await cog.sync(base, "help") is None  # type: ignore[union-attr]
    assert "no tag `solved` any more" in caplog.text
    assert "Reset password" in (await club.ask(club.carol, ASK, club.general))["content"]  # still serving
    assert registry_row(club, "help").pages == 1


async def test_a_channel_made_private_stops_answering_elsewhere_at_once_even_while_the_base_is_busy(club: Club) -> None:
    emulator = club.emulator
    canoe = await emulator.inject_message(club.member_a, CANOE, channel=club.faq)
    await emulator.pin(club.keeper, canoe)
    assert reply(await club.run(club.mod_a, "source add", channel=club.faq)).startswith("✅")
    asked = "When can members borrow the club canoe?"
    assert "logbook" in (await club.ask(club.bob, asked, club.general))["content"]

    library = club.bot.get_cog("SourcesCog").library  # type: ignore[union-attr]
    held, release = threading.Event(), threading.Event()

    def busy() -> None:  # a long re-index of the base holds its ingest lock
        with library._locked(guild_base_name(club.a)):
            held.set()
            release.wait(30)

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        assert await asyncio.to_thread(held.wait, 10)
        emulator.set_overwrite(club.faq, club.a, deny=VIEW_CHANNEL)  # @everyone may no longer view #faq
        await eventually(lambda: Visibility.of(registry_row(club, "faq")) == Visibility.channels([int(club.faq)]),
                         timeout=5)
        assert "logbook" not in json.dumps(await club.ask(club.bob, asked, club.general))
        # Opened again, then @everyone's role loses View Channel: the same, at once.
        emulator.set_overwrite(club.faq, club.a)
        await eventually(lambda: Visibility.of(registry_row(club, "faq")) == Visibility.everyone(), timeout=5)
        await emulator.set_role_permissions(club.a, club.a, P.EVERYONE_PERMISSIONS & ~VIEW_CHANNEL)
        await eventually(lambda: Visibility.of(registry_row(club, "faq")) == Visibility.channels([int(club.faq)]),
                         timeout=5)
        assert "logbook" not in json.dumps(await club.ask(club.bob, asked, club.general))
    finally:
        release.set()
        await asyncio.to_thread(worker.join)


async def test_questions_the_bot_answered_in_an_auto_answer_channel_are_never_taken(club: Club) -> None:
    emulator = club.emulator
    await emulator.inject_message(club.bob, KAYAK, channel=club.faq)
    interaction = await emulator.inject_slash(club.mod_a, "config auto-answer", channel=club.faq)
    await emulator.wait_for_response(interaction)
    mark = len(emulator.calls)
    question = await emulator.inject_message(club.carol, "Where do I find the boathouse alarm code for tonight?",
                                             channel=club.faq)  # asked without a mention: the bot answers it
    await emulator.wait_for_call("POST", rf"/channels/{club.faq}/messages", after=mark, timeout=30,
                                 where=lambda call: str((call.body.get("message_reference") or {}).get("message_id"))
                                 == question["id"])
    threaded = await emulator.inject_message(club.sam, "Who keeps the spare keys of the club minibus these days?",
                                             channel=club.faq)
    emulator._thread_on(emulator.messages[threaded["id"]], emulator.channels[club.faq], emulator.app_id,
                        "spare keys", 1440)  # answered in a thread the bot opened on it (answer_in_thread)
    await emulator.settle()
    added = await club.run(club.mod_a, "source add", channel=club.faq, take="all", name="club faq")
    assert reply(added).startswith("✅"), reply(added)
    files = " ".join(registry_row(club, "club faq").options["authors"])
    assert question["id"] not in files  # the bot replied to it
    assert threaded["id"] not in files  # the bot answered it in a thread it opened on it
    assert "kayaks" in files
    text = json.dumps(await club.ask(club.bob, "Where is the boathouse alarm code?", club.general))
    assert "tonight" not in text
