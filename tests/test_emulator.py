"""The Discord emulator's multi-guild, DM, command-group, autocomplete, attachment, interaction
response and channel-permission features, exercised with the real discord.py client driving a
tiny commands.Bot defined here (not the project's bot, so these tests do not depend on bot/)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from tests.discord_emulator import EPHEMERAL, MANAGE_GUILD, DiscordEmulator, Member
from tests.helpers import connect, disconnect_all, eventually

ORIGINAL_BASE = discord.http.Route.BASE
ORIGINAL_GATEWAY = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
SOURCES = ["haliva-resignation.txt", "harbour-log.md", "lighthouse.md"]


# --- the tiny bot ---------------------------------------------------------------------------------
class TinyBot(commands.Bot):
    def __init__(self, *, members: bool = False, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        intents.members = members
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
        self.seen: list[discord.Message] = []
        self.invocations: list[discord.Interaction] = []
        self.read: list[bytes] = []
        self.errors: list[int] = []
        self.joined: list[discord.Guild] = []
        self.tree.add_command(build_source_group())
        self.tree.add_command(whoami)
        self.tree.add_command(announce)
        self.tree.add_command(echo)

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self.joined.append(guild)


def build_source_group() -> app_commands.Group:
    source = app_commands.Group(name="source", description="Manage the sources",
                                default_permissions=discord.Permissions(manage_guild=True))
    config = app_commands.Group(name="config", description="Settings", parent=source)

    @source.command(name="add", description="Add a source file or URL")
    async def add(interaction: discord.Interaction[TinyBot], attachment: discord.Attachment | None = None,
                  url: str | None = None) -> None:
        interaction.client.invocations.append(interaction)
        await interaction.response.defer(ephemeral=True)
        await interaction.edit_original_response(content="Downloading…")
        data = await attachment.read() if attachment is not None else b""
        interaction.client.read.append(data)
        name = attachment.filename if attachment is not None else url
        await interaction.edit_original_response(content=f"Added {name}: {len(data)} bytes")
        await interaction.followup.send("Index rebuilt", ephemeral=True)

    @source.command(name="remove", description="Remove a source")
    async def remove(interaction: discord.Interaction[TinyBot], name: str) -> None:
        await interaction.response.send_message(f"Removed {name}", ephemeral=True)

    @remove.autocomplete("name")
    async def remove_names(interaction: discord.Interaction[TinyBot], current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=n, value=n) for n in SOURCES if current.lower() in n]

    @config.command(name="set", description="Set a setting")
    async def set_(interaction: discord.Interaction[TinyBot], key: str, value: int) -> None:
        interaction.client.invocations.append(interaction)
        await interaction.response.send_message(f"{key}={value}", ephemeral=True)

    return source


@app_commands.command(description="Who and where am I?")
async def whoami(interaction: discord.Interaction[TinyBot]) -> None:
    interaction.client.invocations.append(interaction)
    where = interaction.guild.name if interaction.guild else "DM"
    await interaction.response.send_message(f"{interaction.user.name} in {where}", ephemeral=True)


@app_commands.command(description="Post to a channel")
async def announce(interaction: discord.Interaction[TinyBot], channel: discord.TextChannel, text: str) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        await channel.send(text)
    except discord.Forbidden as e:
        interaction.client.errors.append(e.code)
        await interaction.followup.send(f"I may not post in {channel.mention} ({e.code})")
    else:
        await interaction.followup.send(f"Posted in {channel.mention}")


@app_commands.command(description="Repeat a text")
async def echo(interaction: discord.Interaction[TinyBot], text: str, times: int = 1) -> None:
    await interaction.response.defer(ephemeral=True)
    try:
        await interaction.edit_original_response(content=text * times)
    except discord.HTTPException as e:
        interaction.client.errors.append(e.code)
        await interaction.edit_original_response(content="too long")


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
async def start_bot(emulator: DiscordEmulator) -> AsyncIterator[Callable[..., Awaitable[TinyBot]]]:
    running: list[tuple[TinyBot, asyncio.Task[None]]] = []

    async def start(**intents: bool) -> TinyBot:
        bot = TinyBot(**intents)
        await connect(bot, running)
        return bot

    yield start
    await disconnect_all(running)


@pytest.fixture
def second_guild(emulator: DiscordEmulator) -> str:
    return emulator.add_guild("Harbour Archive")


def moderator(emulator: DiscordEmulator, guild: str | None = None) -> Member:
    return emulator.member("mod", permissions=MANAGE_GUILD | (1 << 10) | (1 << 11) | (1 << 31), guild=guild)




def last_response(emulator: DiscordEmulator, token: str) -> dict[str, Any]:
    return emulator.interactions[token].response or {}


# --- guilds ---------------------------------------------------------------------------------------
async def test_every_guild_gets_guild_create_and_the_bot_sees_both(emulator: DiscordEmulator, start_bot, second_guild: str) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    creates = [e["d"] for e in emulator._sent if e["t"] == "GUILD_CREATE"]
    assert [g["id"] for g in creates] == [emulator.guild_id, second_guild]
    assert all(g["member_count"] == len(g["members"]) for g in creates)
    assert {g.name for g in bot.guilds} == {"Test Server", "Harbour Archive"}
    guild_b = bot.get_guild(int(second_guild))
    assert guild_b is not None and guild_b.get_channel(int(emulator.guilds[second_guild].default_channel)) is not None
    assert emulator.calls_to("PUT", rf"/applications/{emulator.app_id}/commands")  # global sync
    # A guild added while connected arrives as GUILD_CREATE: the bot joined it.
    third = emulator.add_guild("Late Joiner")
    await emulator.settle()
    await eventually(lambda: bot.joined)
    assert bot.joined[0].id == int(third) and len(bot.guilds) == 3


async def test_with_the_members_intent_every_member_is_listed_and_nothing_waits_for_chunks(emulator: DiscordEmulator, start_bot, second_guild: str) -> None:  # type: ignore[no-untyped-def]
    bob = emulator.member("bob", guild=second_guild)
    emulator.member("carol", guild=second_guild)
    started = asyncio.get_running_loop().time()
    bot = await start_bot(members=True)
    assert asyncio.get_running_loop().time() - started < 2  # a chunk wait would take 5 s
    guild_b = bot.get_guild(int(second_guild))
    assert guild_b is not None and guild_b.chunked and guild_b.member_count == 3
    assert guild_b.get_member(int(bob.id)) is not None


async def test_slash_in_guild_b_carries_guild_b_and_its_member(emulator: DiscordEmulator, start_bot, second_guild: str) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    bob = emulator.member("bob", guild=second_guild)
    interaction = await emulator.inject_slash(bob, "whoami")
    await eventually(lambda: bot.invocations)
    seen = bot.invocations[0]
    assert seen.guild_id == int(second_guild) and seen.guild is not None and seen.guild.name == "Harbour Archive"
    assert isinstance(seen.user, discord.Member) and seen.user.id == int(bob.id) and seen.user.guild.id == int(second_guild)
    assert seen.channel_id == int(emulator.guilds[second_guild].default_channel)
    await eventually(lambda: interaction.response)
    assert last_response(emulator, interaction.token)["data"]["content"] == "bob in Harbour Archive"


async def test_role_permissions_count_for_default_member_permissions(emulator: DiscordEmulator, start_bot, second_guild: str) -> None:  # type: ignore[no-untyped-def]
    await start_bot()
    assert emulator.commands["source"]["default_member_permissions"] in (MANAGE_GUILD, str(MANAGE_GUILD))
    with pytest.raises(PermissionError):
        await emulator.inject_slash(emulator.member("alice", guild=second_guild), "source remove", name="x")
    admins = emulator.add_role(second_guild, "Archivists", MANAGE_GUILD)
    helper = emulator.member("helper", roles=[admins], guild=second_guild)
    interaction = await emulator.inject_slash(helper, "source remove", name="lighthouse.md")
    await eventually(lambda: interaction.response)
    assert last_response(emulator, interaction.token)["data"]["content"] == "Removed lighthouse.md"


# --- command groups -------------------------------------------------------------------------------
async def test_subcommands_and_nested_groups_use_discords_option_tree(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    synced = emulator.commands["source"]
    assert {o["name"]: o["type"] for o in synced["options"]} == {"add": 1, "remove": 1, "config": 2}
    mod = moderator(emulator)
    mark = len(emulator._sent)
    interaction = await emulator.inject_slash(mod, "source config set", key="depth", value=3)
    sent = next(e["d"] for e in emulator._sent[mark:] if e["t"] == "INTERACTION_CREATE")
    assert sent["data"]["options"] == [{"name": "config", "type": 2, "options": [{"name": "set", "type": 1, "options": [
        {"name": "key", "type": 3, "value": "depth"}, {"name": "value", "type": 4, "value": 3}]}]}]
    await eventually(lambda: interaction.response)
    assert last_response(emulator, interaction.token)["data"]["content"] == "depth=3"
    assert bot.invocations[0].command is not None and bot.invocations[0].command.qualified_name == "source config set"
    with pytest.raises(LookupError, match="no subcommand 'purge'"):
        await emulator.inject_slash(mod, "source purge")
    with pytest.raises(LookupError, match="cannot be invoked"):
        await emulator.inject_slash(mod, "source config")
    with pytest.raises(ValueError, match="integer"):
        await emulator.inject_slash(mod, "source config set", key="depth", value="3")
    with pytest.raises(ValueError, match="unknown option"):
        await emulator.inject_slash(mod, "source add", path="/etc")


async def test_autocomplete_choices_come_back(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    await start_bot()
    mod = moderator(emulator)
    mark = len(emulator._sent)
    choices = await emulator.inject_autocomplete(mod, "source remove", focused="name", value="ha")
    assert choices == [{"name": "haliva-resignation.txt", "value": "haliva-resignation.txt"},
                       {"name": "harbour-log.md", "value": "harbour-log.md"}]
    sent = next(e["d"] for e in emulator._sent[mark:] if e["t"] == "INTERACTION_CREATE")
    assert sent["type"] == 4
    assert sent["data"]["options"][0]["options"] == [{"name": "name", "type": 3, "value": "ha", "focused": True}]
    with pytest.raises(ValueError, match="no autocomplete"):
        await emulator.inject_autocomplete(mod, "source config set", focused="key", value="d")


# --- attachments and interaction responses --------------------------------------------------------
async def test_attachment_option_bytes_reach_the_bot_and_edits_are_recorded(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    payload = b"The harbour master logged every ship.\n" * 50
    file = emulator.attachment("harbour-log.md", payload)
    assert file["url"] == f"http://127.0.0.1:{emulator.port}/attachments/{file['id']}/harbour-log.md"
    interaction = await emulator.inject_slash(moderator(emulator), "source add", attachment=file)
    await eventually(lambda: interaction.followups)
    assert bot.read == [payload]
    assert [c.path for c in emulator.cdn_calls] == [f"/attachments/{file['id']}/harbour-log.md"]
    assert isinstance(bot.invocations[0].namespace.attachment, discord.Attachment)
    # deferred ephemeral, then two edits of the original, then an independent ephemeral followup
    assert interaction.response == {"type": 5, "data": {"flags": EPHEMERAL}}
    edits = emulator.original_edits(interaction.token)
    assert [e["content"] for e in edits] == ["Downloading…", f"Added harbour-log.md: {len(payload)} bytes"]
    assert all(e["flags"] & EPHEMERAL for e in edits) and interaction.ephemeral
    assert [f["content"] for f in interaction.followups] == ["Index rebuilt"]
    assert interaction.followups[0]["flags"] & EPHEMERAL and interaction.followups[0]["id"] != edits[0]["id"]
    assert emulator.messages_in(emulator.channel_id) == []  # ephemeral: nothing in the channel


async def test_first_followup_fills_a_deferred_response_and_keeps_its_visibility(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    await start_bot()
    reports = emulator.add_channel(emulator.guild_id, "reports")
    interaction = await emulator.inject_command(moderator(emulator), "announce", {"channel": reports, "text": "Weekly digest"})
    await eventually(lambda: interaction.followups)
    assert interaction.response == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert interaction.followups[0] is interaction.original and interaction.ephemeral
    assert interaction.original["content"] == f"Posted in <#{reports}>"


async def test_message_limits_are_enforced(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    refused = emulator.expect_error(400, 50035, method="PATCH")
    interaction = await emulator.inject_slash(emulator.member("alice"), "echo", text="x", times=2001)
    await eventually(lambda: len(interaction.edits) == 1)
    assert bot.errors == [50035] and len(refused.calls) == 1
    assert interaction.edits[0]["content"] == "too long"


# --- channels -------------------------------------------------------------------------------------
async def test_bot_posts_land_in_the_channel_and_a_denied_channel_is_forbidden(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    audit = emulator.add_channel(emulator.guild_id, "audit-log", topic="what the bot did")
    locked = emulator.add_channel(emulator.guild_id, "locked")
    forum = emulator.add_channel(emulator.guild_id, "help", type=15)
    emulator.deny_bot(locked)
    await emulator.settle()
    await eventually(lambda: bot.get_channel(int(forum)))
    assert isinstance(bot.get_channel(int(forum)), discord.ForumChannel)
    mod = moderator(emulator)

    interaction = await emulator.inject_command(mod, "announce", {"channel": audit, "text": "source added"})
    await eventually(lambda: interaction.followups)
    posted = emulator.messages_in(audit, from_bot=True)
    assert [m["content"] for m in posted] == ["source added"] and posted[0]["guild_id"] == emulator.guild_id
    await eventually(lambda: any(m.content == "source added" for m in bot.seen))  # the echo of its own post

    forbidden = emulator.expect_error(403, 50013, method="POST", path=rf"/channels/{locked}/messages")
    interaction = await emulator.inject_command(mod, "announce", {"channel": locked, "text": "secret"})
    await eventually(lambda: interaction.followups)
    assert bot.errors == [50013] and len(forbidden.calls) == 1
    assert emulator.messages_in(locked) == []
    assert interaction.followups[0]["content"] == f"I may not post in <#{locked}> (50013)"
    with pytest.raises(ValueError, match="channel type 15"):
        await emulator.inject_command(mod, "announce", {"channel": forum, "text": "x"})


async def test_unexpected_4xx_is_reported(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    emulator.deny_bot(emulator.channel_id)
    await emulator.settle()
    with pytest.raises(discord.Forbidden):
        await bot.get_channel(int(emulator.channel_id)).send("hello")  # type: ignore[union-attr]
    assert [(c.status, c.code) for c in emulator.unexpected_errors()] == [(403, 50013)]
    emulator.unexpected_errors()[0].expected = True  # this test wanted it


async def test_bot_upload_is_served_back_from_the_cdn(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    channel = bot.get_channel(int(emulator.channel_id))
    sent = await channel.send("report", file=discord.File(io.BytesIO(b"a,b\n1,2\n"), "report.csv"))  # type: ignore[union-attr]
    assert await sent.attachments[0].read() == b"a,b\n1,2\n"
    stored = emulator.messages_in(emulator.channel_id, from_bot=True)[0]
    assert stored["attachments"][0]["filename"] == "report.csv" and stored["content"] == "report"


# --- DMs and messages -----------------------------------------------------------------------------
async def test_dm_message_and_dm_slash(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    alice = emulator.member("alice")
    sent = await emulator.inject_message(alice, "hello bot", dm=True)
    assert "guild_id" not in sent and emulator.channels[sent["channel_id"]]["type"] == 1
    message = await eventually(lambda: next((m for m in bot.seen if m.content == "hello bot"), None))
    assert message.guild is None and isinstance(message.channel, discord.DMChannel) and message.author.id == int(alice.id)

    await message.channel.send("hi alice")  # the bot answers in the DM
    assert [m["content"] for m in emulator.messages_in(sent["channel_id"], from_bot=True)] == ["hi alice"]
    dm = await bot.create_dm(discord.Object(id=int(alice.id)))  # POST /users/@me/channels
    assert dm.id == int(sent["channel_id"])

    interaction = await emulator.inject_command(alice, "whoami", dm=True)
    await eventually(lambda: interaction.response)
    seen = bot.invocations[-1]
    assert seen.guild is None and seen.guild_id is None and isinstance(seen.user, discord.User)
    assert last_response(emulator, interaction.token)["data"]["content"] == "alice in DM"


async def test_message_attachments_and_channels_of_guild_b(emulator: DiscordEmulator, start_bot, second_guild: str) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot()
    bob = emulator.member("bob", guild=second_guild)
    cid = emulator.add_channel(second_guild, "uploads")
    await emulator.settle()
    sent = await emulator.inject_message(bob, "see file", channel=cid, attachments=[("notes.txt", b"hello")])
    message = await eventually(lambda: next((m for m in bot.seen if m.content == "see file"), None))
    assert message.guild.id == int(second_guild) and message.channel.id == int(cid)  # type: ignore[union-attr]
    assert await message.attachments[0].read() == b"hello"
    assert sent["guild_id"] == second_guild
    with pytest.raises(ValueError, match="not in guild"):
        await emulator.inject_message(bob, "wrong guild", channel=emulator.channel_id)


async def test_without_the_message_content_intent_only_mentions_and_dms_have_content(emulator: DiscordEmulator, start_bot) -> None:  # type: ignore[no-untyped-def]
    bot = await start_bot(message_content=False)
    alice = emulator.member("alice")
    await emulator.inject_message(alice, "plain words")
    await emulator.inject_message(alice, "hello there", mention_bot=True)
    await emulator.inject_message(alice, "a private word", dm=True)
    await eventually(lambda: len(bot.seen) == 3)
    assert [m.content for m in bot.seen] == ["", f"<@{emulator.app_id}> hello there", "a private word"]
