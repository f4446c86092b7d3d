"""The Discord emulator's threads, forum posts, message components and modals, exercised with the
real discord.py client driving a tiny commands.Bot defined here (not the project's bot, so these
tests do not depend on bot/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord
import pytest
import yarl
from discord.ext import commands

from tests import discord_payloads as P
from tests.discord_emulator import (
    CREATE_PUBLIC_THREADS,
    EPHEMERAL,
    MANAGE_THREADS,
    SEND_MESSAGES_IN_THREADS,
    DiscordEmulator,
    Member,
)
from tests.helpers import connect, disconnect_all, eventually

ORIGINAL_BASE = discord.http.Route.BASE
ORIGINAL_GATEWAY = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


# --- the tiny bot ---------------------------------------------------------------------------------
class FeedbackModal(discord.ui.Modal, title="Feedback"):
    answer: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(label="Answer", custom_id="fb:answer")

    def __init__(self) -> None:
        super().__init__(custom_id="fb:modal")

    async def on_submit(self, interaction: discord.Interaction[ThreadBot]) -> None:
        interaction.client.feedback.append(self.answer.value)
        await interaction.response.send_message(f"Thanks: {self.answer.value}", ephemeral=True)


class PanelView(discord.ui.View):
    """Persistent: no timeout, and every item has a custom_id."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Approve", style=discord.ButtonStyle.success, custom_id="panel:approve")
    async def approve(self, interaction: discord.Interaction[ThreadBot], button: discord.ui.Button[PanelView]) -> None:
        interaction.client.clicks.append(interaction)
        button.disabled = True
        await interaction.response.edit_message(content=f"Approved by {interaction.user.name}", view=self)

    @discord.ui.button(label="Ack", custom_id="panel:ack")
    async def ack(self, interaction: discord.Interaction[ThreadBot], button: discord.ui.Button[PanelView]) -> None:
        interaction.client.clicks.append(interaction)
        await interaction.response.send_message("acknowledged", ephemeral=True)

    @discord.ui.button(label="Feedback", custom_id="panel:feedback")
    async def feedback(self, interaction: discord.Interaction[ThreadBot], button: discord.ui.Button[PanelView]) -> None:
        await interaction.response.send_modal(FeedbackModal())

    @discord.ui.button(label="Twice", custom_id="panel:twice")
    async def twice(self, interaction: discord.Interaction[ThreadBot], button: discord.ui.Button[PanelView]) -> None:
        await interaction.response.send_message("once", ephemeral=True)
        interaction.response._response_type = None  # forget it locally: Discord still knows
        try:
            await interaction.response.send_message("twice", ephemeral=True)
        except discord.HTTPException as e:
            interaction.client.errors.append(e.code)


class SourcePicker(discord.ui.View):
    """Not persistent: tracked under the message it was sent with."""

    @discord.ui.select(custom_id="pick:source", options=[discord.SelectOption(label="Harbour log", value="harbour"),
                                                         discord.SelectOption(label="Lighthouse", value="lighthouse")])
    async def pick(self, interaction: discord.Interaction[ThreadBot], select: discord.ui.Select[SourcePicker]) -> None:
        interaction.client.clicks.append(interaction)
        await interaction.response.defer()  # type 6: nothing visible yet
        await interaction.edit_original_response(content=f"Picked {', '.join(select.values)}", view=None)


class ThreadBot(commands.Bot):
    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
        self.seen: list[discord.Message] = []
        self.created: list[discord.Thread] = []
        self.updated: list[discord.Thread] = []
        self.deleted: list[discord.Thread] = []
        self.clicks: list[discord.Interaction[ThreadBot]] = []
        self.feedback: list[str] = []
        self.errors: list[int] = []

    async def setup_hook(self) -> None:
        self.add_view(PanelView())  # before the gateway connects: clicks on old panels reach it

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.created.append(thread)

    async def on_thread_update(self, before: discord.Thread, after: discord.Thread) -> None:
        self.updated.append(after)

    async def on_thread_delete(self, thread: discord.Thread) -> None:
        self.deleted.append(thread)


# --- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    emu = DiscordEmulator()
    await emu.start()
    emu.point_client_here()
    yield emu
    await emu.stop()
    discord.http.Route.BASE = ORIGINAL_BASE
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = ORIGINAL_GATEWAY or yarl.URL("wss://gateway.discord.gg/")
    assert [(c.method, c.path, c.status, c.code) for c in emu.unexpected_errors()] == [], "the bot broke a Discord rule"


@pytest.fixture
async def start_bot(emulator: DiscordEmulator) -> AsyncIterator[Callable[[], Awaitable[ThreadBot]]]:
    running: list[tuple[ThreadBot, asyncio.Task[None]]] = []

    async def start() -> ThreadBot:
        bot = ThreadBot()
        await connect(bot, running)
        return bot

    yield start
    await disconnect_all(running)


@pytest.fixture
def alice(emulator: DiscordEmulator) -> Member:
    return emulator.member("alice")




def text_channel(bot: ThreadBot, emulator: DiscordEmulator) -> discord.TextChannel:
    channel = bot.get_channel(int(emulator.channel_id))
    assert isinstance(channel, discord.TextChannel)
    return channel


def events(emulator: DiscordEmulator, *names: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f["t"], f["d"]) for f in emulator._sent if f["t"] in names]


async def seen_message(bot: ThreadBot, message_id: str) -> discord.Message:
    return await eventually(lambda: next((m for m in bot.seen if m.id == int(message_id)), None))


# --- threads --------------------------------------------------------------------------------------
async def test_bot_starts_a_thread_on_a_message_posts_in_it_and_sees_follow_ups(emulator: DiscordEmulator, start_bot, alice: Member) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    question = await emulator.inject_message(alice, "how do tides work?")
    seen = await seen_message(bot, question["id"])

    thread = await seen.create_thread(name="Tides")
    assert thread.id == seen.id  # Discord: a thread on a message has the message's id
    assert isinstance(bot.get_channel(thread.id), discord.Thread)  # cached: THREAD_CREATE came before the 201
    assert [t.id for t in bot.created] == [thread.id]
    stored = emulator.threads[question["id"]]
    assert (stored["type"], stored["parent_id"], stored["owner_id"], stored["guild_id"]) == (
        11, emulator.channel_id, emulator.app_id, emulator.guild_id)
    assert stored["thread_metadata"]["archived"] is False and stored["thread_metadata"]["auto_archive_duration"] == 1440
    (first, create), (second, update) = events(emulator, "THREAD_CREATE", "MESSAGE_UPDATE")[:2]
    assert (first, second) == ("THREAD_CREATE", "MESSAGE_UPDATE")
    assert create["newly_created"] is True and create["member"]["user_id"] == emulator.app_id
    assert update["id"] == question["id"] and update["thread"]["id"] == question["id"]
    assert emulator.messages[question["id"]]["flags"] & P.HAS_THREAD

    await thread.send("Tides follow the moon.")
    assert [m["content"] for m in emulator.messages_in(str(thread.id))] == ["Tides follow the moon."]
    assert stored["message_count"] == 1 and emulator.thread_members(str(thread.id)) == {emulator.app_id}
    assert emulator.messages_in(emulator.channel_id) == [emulator.messages[question["id"]]]  # not in the channel

    # A member's follow-up inside the thread reaches on_message with the thread as its channel.
    await emulator.inject_message(alice, "and the sun?", channel=str(thread.id))
    follow = await eventually(lambda: next((m for m in bot.seen if m.content == "and the sun?"), None))
    assert isinstance(follow.channel, discord.Thread) and follow.channel.id == thread.id
    assert follow.channel.parent_id == int(emulator.channel_id) and isinstance(follow.channel.parent, discord.TextChannel)
    assert follow.guild is not None and follow.guild.id == int(emulator.guild_id)
    reply = await follow.reply("The sun too, a little.")
    assert emulator.messages[str(reply.id)]["channel_id"] == str(thread.id) and emulator.messages[str(reply.id)]["type"] == 19
    history = [m.content async for m in thread.history(limit=10)]
    assert history == ["The sun too, a little.", "and the sun?", "Tides follow the moon."]
    assert stored["message_count"] == 3 and stored["member_count"] == 2
    fetched = await bot.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread) and fetched.parent_id == int(emulator.channel_id)

    refused = emulator.expect_error(400, 160004)
    with pytest.raises(discord.HTTPException) as raised:
        await seen.create_thread(name="Tides again")
    assert raised.value.code == 160004 and len(refused.calls) == 1


async def test_without_create_public_threads_starting_a_thread_is_forbidden(emulator: DiscordEmulator, start_bot, alice: Member) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    emulator.deny_bot(emulator.channel_id, CREATE_PUBLIC_THREADS)
    await emulator.settle()
    message = await text_channel(bot, emulator).send("An answer")  # posting in the channel is still allowed
    forbidden = emulator.expect_error(403, 50013)
    with pytest.raises(discord.Forbidden) as raised:
        await message.create_thread(name="Nope")
    assert raised.value.code == 50013 and emulator.threads == {}

    # A member may still open one; denied SEND_MESSAGES_IN_THREADS, the bot cannot post inside it.
    opened = await emulator.start_thread(alice, str(message.id), "From alice")
    assert opened["owner_id"] == alice.id and emulator.thread_members(opened["id"]) == {alice.id}
    thread = await eventually(lambda: bot.get_channel(int(opened["id"])))
    assert isinstance(thread, discord.Thread) and thread.owner_id == int(alice.id) and thread.me is None
    emulator.deny_bot(emulator.channel_id, CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS)
    await emulator.settle()
    with pytest.raises(discord.Forbidden):
        await thread.send("hello")
    await text_channel(bot, emulator).send("still fine here")
    assert len(forbidden.calls) == 2
    with pytest.raises(ValueError, match="already has a thread"):
        await emulator.start_thread(alice, str(message.id), "Twice")


async def test_forum_posts_by_a_member_and_by_the_bot(emulator: DiscordEmulator, start_bot, alice: Member) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    bug = P.forum_tag("bug")
    forum_id = emulator.add_channel(emulator.guild_id, "help", type=15, available_tags=[bug])
    await emulator.settle()
    forum = await eventually(lambda: bot.get_channel(int(forum_id)))
    assert isinstance(forum, discord.ForumChannel) and [t.name for t in forum.available_tags] == ["bug"]

    thread, opening = await emulator.create_forum_post(alice, forum_id, "The bot ignores me", "It never answers",
                                                       tags=[bug["id"]])
    assert opening["id"] == thread["id"] == opening["channel_id"] and thread["parent_id"] == forum_id
    order = [(t, d["id"]) for t, d in events(emulator, "THREAD_CREATE", "MESSAGE_CREATE") if d["id"] == thread["id"]]
    assert order == [("THREAD_CREATE", thread["id"]), ("MESSAGE_CREATE", thread["id"])]
    created = await eventually(lambda: next((t for t in bot.created if t.id == int(thread["id"])), None))
    assert isinstance(created.parent, discord.ForumChannel) and created.owner_id == int(alice.id)
    assert [t.name for t in created.applied_tags] == ["bug"] and created.name == "The bot ignores me"
    seen = await seen_message(bot, opening["id"])
    assert isinstance(seen.channel, discord.Thread) and seen.channel.parent_id == int(forum_id)
    assert created.starter_message is not None and created.starter_message.id == seen.id
    await seen.channel.send("Mention me and I will")
    assert [m["content"] for m in emulator.messages_in(thread["id"], from_bot=True)] == ["Mention me and I will"]
    assert emulator.threads[thread["id"]]["message_count"] == 1  # the opening message is not counted

    post = await forum.create_thread(name="FAQ", content="Read this first")
    assert post.message.id == post.thread.id and isinstance(bot.get_channel(post.thread.id), discord.Thread)
    assert emulator.threads[str(post.thread.id)]["parent_id"] == forum_id
    assert emulator.messages[str(post.thread.id)]["content"] == "Read this first"
    with pytest.raises(ValueError, match="forum"):
        await emulator.inject_message(alice, "in the forum itself", channel=forum_id)


async def test_archived_threads_refuse_posts_and_deleted_ones_are_gone(emulator: DiscordEmulator, start_bot, alice: Member) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    answer = await text_channel(bot, emulator).send("An answer")
    opened = await emulator.start_thread(alice, str(answer.id), "Follow-up")
    thread = await eventually(lambda: bot.get_channel(int(opened["id"])))
    await thread.send("ask away")

    await emulator.archive_thread(opened["id"])
    assert (await eventually(lambda: bot.updated))[-1].archived
    archived = emulator.expect_error(400, 50083)
    with pytest.raises(discord.HTTPException) as raised:
        await thread.send("too late")
    assert raised.value.code == 50083 and len(archived.calls) == 1

    revived = await thread.edit(archived=False)  # unlocked: SEND_MESSAGES_IN_THREADS is enough
    assert not revived.archived and not opened["thread_metadata"]["archived"]
    await revived.send("back again")
    await emulator.archive_thread(opened["id"])
    await emulator.inject_message(alice, "one more thing", channel=opened["id"])  # a member's message revives it
    assert not opened["thread_metadata"]["archived"]
    follow = await eventually(lambda: next((m for m in bot.seen if m.content == "one more thing"), None))
    assert isinstance(follow.channel, discord.Thread)

    await emulator.archive_thread(opened["id"], locked=True)
    with pytest.raises(PermissionError, match="locked"):
        await emulator.inject_message(alice, "let me in", channel=opened["id"])
    emulator.expect_error(403, 50013, method="PATCH")
    with pytest.raises(discord.Forbidden):
        await revived.edit(archived=False)  # locked: only MANAGE_THREADS unarchives
    emulator.bot_permissions |= MANAGE_THREADS
    unlocked = await revived.edit(archived=False, locked=False)
    assert not unlocked.locked and not opened["thread_metadata"]["locked"]

    await emulator.delete_thread(opened["id"])
    assert [t.id for t in await eventually(lambda: bot.deleted)] == [int(opened["id"])]
    assert opened["id"] not in emulator.threads and emulator.messages_in(opened["id"]) == []
    assert "thread" not in emulator.messages[str(answer.id)]  # the starter message stays
    gone = emulator.expect_error(404, 10003)
    with pytest.raises(discord.NotFound):
        await unlocked.send("anyone?")
    assert len(gone.calls) == 1
    with pytest.raises(LookupError):
        await emulator.inject_message(alice, "hello?", channel=opened["id"])

    # The bot (with MANAGE_THREADS) deletes a thread of its own.
    own = await answer.create_thread(name="Mine")
    await own.delete()
    assert str(own.id) not in emulator.threads and await eventually(lambda: len(bot.deleted) == 2)


# --- components and modals ------------------------------------------------------------------------
async def test_a_persistent_view_click_after_a_restart_reaches_the_new_client(emulator: DiscordEmulator, start_bot, alice: Member) -> None:  # type: ignore[no-untyped-def]
    first = await start_bot()
    panel = await text_channel(first, emulator).send("Moderation panel", view=PanelView())
    stored = emulator.messages[str(panel.id)]
    assert [(c["type"], c["custom_id"]) for c in stored["components"][0]["components"]] == [
        (2, "panel:approve"), (2, "panel:ack"), (2, "panel:feedback"), (2, "panel:twice")]
    thread = await panel.create_thread(name="Panel log")
    await first.close()

    second = await start_bot()
    assert isinstance(second.get_channel(thread.id), discord.Thread)  # GUILD_CREATE lists active threads
    mark = len(emulator._sent)
    click = await emulator.click(alice, stored, "panel:approve")
    response = await emulator.wait_for_response(click)
    assert response["type"] == 7 and response["data"]["content"] == "Approved by alice"
    assert [i.id for i in second.clicks] == [int(click.id)] and first.clicks == []
    sent = next(d for t, d in events(emulator, "INTERACTION_CREATE")[-1:])
    assert sent["type"] == 3 and sent["data"] == {"custom_id": "panel:approve", "component_type": 2}
    assert sent["message"]["id"] == str(panel.id) and sent["channel"]["id"] == emulator.channel_id
    assert sent["member"]["user"]["id"] == alice.id and "permissions" in sent["member"] and "app_permissions" in sent
    assert stored["content"] == "Approved by alice" and emulator.component(stored, "panel:approve")["disabled"] is True
    updates = [d for f in emulator._sent[mark:] if f["t"] == "MESSAGE_UPDATE" for d in [f["d"]] if d["id"] == str(panel.id)]
    assert updates and updates[-1]["content"] == "Approved by alice" and updates[-1]["type"] == 0
    with pytest.raises(ValueError, match="disabled"):
        await emulator.click(alice, stored, "panel:approve")

    ack = await emulator.click(alice, str(panel.id), "panel:ack")
    response = await emulator.wait_for_response(ack)
    assert response == {"type": 4, "data": {"tts": False, "content": "acknowledged", "flags": EPHEMERAL}}
    assert ack.ephemeral and ack.original is not None and ack.original["channel_id"] == emulator.channel_id
    with pytest.raises(LookupError, match="no component"):
        await emulator.click(alice, stored, "panel:nothing")


async def test_a_select_menu_in_a_thread_and_a_deferred_update_edit_the_message(emulator: DiscordEmulator, start_bot, alice: Member) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    starter = await text_channel(bot, emulator).send("Which source?")
    thread = await starter.create_thread(name="Sources")
    picker = await thread.send("Pick one", view=SourcePicker())
    with pytest.raises(ValueError, match="pick 1-1"):
        await emulator.choose(alice, str(picker.id), "pick:source", ["harbour", "lighthouse"])
    with pytest.raises(ValueError, match="not a button"):
        await emulator.click(alice, str(picker.id), "pick:source")
    chose = await emulator.choose(alice, str(picker.id), "pick:source", ["lighthouse"])
    assert (await emulator.wait_for_response(chose))["type"] == 6
    await eventually(lambda: chose.edits)
    stored = emulator.messages[str(picker.id)]
    assert stored["content"] == "Picked lighthouse" and stored["components"] == [] and stored["channel_id"] == str(thread.id)
    seen = bot.clicks[0]
    assert isinstance(seen.channel, discord.Thread) and seen.channel.id == thread.id and seen.message is not None
    assert chose.original is stored and chose.channel_id == str(thread.id)
    sent = events(emulator, "INTERACTION_CREATE")[-1][1]
    assert sent["data"] == {"custom_id": "pick:source", "component_type": 3, "values": ["lighthouse"]}
    assert sent["channel"]["parent_id"] == emulator.channel_id and sent["channel"]["thread_metadata"]["archived"] is False


async def test_a_modal_opened_from_a_button_is_submitted_to_on_submit(emulator: DiscordEmulator, start_bot, alice: Member) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    panel = await text_channel(bot, emulator).send("Tell us", view=PanelView())
    opened = await emulator.click(alice, str(panel.id), "panel:feedback")
    modal = await emulator.wait_for_modal(opened)
    assert modal["custom_id"] == "fb:modal" and modal["title"] == "Feedback"
    assert modal["components"][0]["components"][0]["custom_id"] == "fb:answer"

    with pytest.raises(PermissionError):
        await emulator.submit_modal(emulator.member("bob"), opened, {"fb:answer": "not mine"})
    with pytest.raises(ValueError, match="required"):
        await emulator.submit_modal(alice, opened, {})
    with pytest.raises(ValueError, match="no inputs"):
        await emulator.submit_modal(alice, opened, {"fb:other": "x"})
    submitted = await emulator.submit_modal(alice, modal, {"fb:answer": "great bot"})
    response = await emulator.wait_for_response(submitted)
    assert bot.feedback == ["great bot"]
    assert response["type"] == 4 and response["data"]["content"] == "Thanks: great bot" and submitted.ephemeral
    sent = events(emulator, "INTERACTION_CREATE")[-1][1]
    assert sent["type"] == 5 and sent["data"] == {"custom_id": "fb:modal", "components": [
        {"type": 1, "components": [{"type": 4, "custom_id": "fb:answer", "value": "great bot"}]}]}
    assert sent["message"]["id"] == str(panel.id)
    with pytest.raises(ValueError, match="already submitted"):
        await emulator.submit_modal(alice, opened, {"fb:answer": "again"})

    ack = await emulator.click(alice, str(panel.id), "panel:ack")
    with pytest.raises(AssertionError, match="not a modal"):
        await emulator.submit_modal(alice, ack, {"fb:answer": "x"})


async def test_a_second_response_to_one_interaction_is_40060(emulator: DiscordEmulator, start_bot, alice: Member) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    panel = await text_channel(bot, emulator).send("Panel", view=PanelView())
    refused = emulator.expect_error(400, 40060)
    click = await emulator.click(alice, str(panel.id), "panel:twice")
    await eventually(lambda: bot.errors)
    assert bot.errors == [40060] and len(refused.calls) == 1
    assert click.response is not None and click.response["data"]["content"] == "once"


async def test_components_and_modals_are_validated_like_discord(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    channel = text_channel(bot, emulator)
    refused = emulator.expect_error(400, 50035)
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="x" * 81, custom_id="long-label"))
    with pytest.raises(discord.HTTPException, match="label: Must be 80 or fewer"):
        await channel.send("bad", view=view)
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="ok", custom_id="c" * 101))
    with pytest.raises(discord.HTTPException, match="custom_id: Must be 100 or fewer"):
        await channel.send("bad", view=view)
    assert len(refused.calls) == 2 and emulator.messages_in(emulator.channel_id) == []
    link = discord.ui.View()
    link.add_item(discord.ui.Button(label="Docs", url="https://example.org/docs"))
    sent = await channel.send("fine", view=link)
    assert emulator.messages[str(sent.id)]["components"][0]["components"][0]["style"] == 5

    button = {"type": 2, "style": 1, "label": "Go", "custom_id": "go"}
    row = lambda *items: {"type": 1, "components": list(items)}  # noqa: E731
    assert P.check_components([row(button)]) is None
    assert "Must be between 1 and 5" in P.check_components([row(*[{**button, "custom_id": f"b{i}"} for i in range(6)])])
    assert "Must be 5 or fewer" in P.check_components([row({**button, "custom_id": f"r{i}"}) for i in range(6)])
    assert "duplicated" in P.check_components([row(button, button)])
    assert "style" in P.check_components([row({**button, "style": 9})])
    assert "link button" in P.check_components([row({"type": 2, "style": 5, "label": "x", "url": "https://x", "custom_id": "x"})])
    assert "Value must be one of (1,)" in P.check_components([button])
    select = {"type": 3, "custom_id": "pick", "options": [{"label": "A", "value": "a"}]}
    assert P.check_components([row(select)]) is None and "only component" in P.check_components([row(select, button)])

    text = {"type": 4, "custom_id": "t", "style": 1, "label": "Answer"}
    modal = {"custom_id": "m", "title": "Feedback", "components": [row(text)]}
    assert P.check_modal(modal) is None
    assert "title" in P.check_modal({**modal, "title": "t" * 46})
    assert "Must be between 1 and 5" in P.check_modal({**modal, "components": [row({**text, "custom_id": f"t{i}"}) for i in range(6)]})
    assert "label" in P.check_modal({**modal, "components": [row({**text, "label": "l" * 46})]})
    assert "style" in P.check_modal({**modal, "components": [row({**text, "style": 3})]})
    assert "Must be 1 in length" in P.check_modal({**modal, "components": [row(text, {**text, "custom_id": "u"})]})
    assert P.check_modal({**modal, "components": [{"type": 18, "label": "Answer", "component": {**text, "label": None}}]}) is None
