"""The Discord emulator's pins, members' edits and deletions, forum tags, reactions and archived
threads (tests/discord_content.py), exercised with a plain discord.py client (not the project's
bot): what discord.py reads back and which events reach it."""

from __future__ import annotations

import asyncio

import discord
import pytest

from tests import discord_payloads as P
from tests.discord_client import StartClient
from tests.discord_emulator import MANAGE_MESSAGES, MANAGE_THREADS, READ_MESSAGE_HISTORY, DiscordEmulator
from tests.helpers import eventually


class Events:
    """The events a client got, by name."""

    def __init__(self, client: discord.Client) -> None:
        self.got: list[tuple[str, object]] = []
        for name in ("raw_message_edit", "raw_message_delete", "guild_channel_pins_update", "raw_thread_update"):
            setattr(client, f"on_{name}", self._recorder(name))  # what Client.dispatch calls

    def _recorder(self, name: str):  # type: ignore[no-untyped-def]
        async def record(*args: object) -> None:
            self.got.append((name, args[0]))
        return record

    def named(self, name: str) -> list[object]:
        return [payload for got, payload in self.got if got == name]


async def test_pins_are_read_newest_first_in_pages_and_pinning_sends_its_events(
        emulator: DiscordEmulator, start_client: StartClient) -> None:
    client = await start_client()
    events = Events(client)
    mod = emulator.member("mod", permissions=P.EVERYONE_PERMISSIONS | MANAGE_MESSAGES)
    alice = emulator.member("alice")
    with pytest.raises(PermissionError):
        await emulator.pin(alice, await emulator.inject_message(alice, "a member may not pin"))
    messages = [await emulator.inject_message(alice, f"note number {i}") for i in range(53)]
    for message in messages:
        await emulator.pin(mod, message)
    channel = client.get_channel(int(emulator.channel_id))
    assert isinstance(channel, discord.TextChannel)
    pinned = [m async for m in channel.pins(limit=None)]  # two pages of at most 50
    assert [m.content for m in pinned] == [f"note number {i}" for i in reversed(range(53))]
    assert all(m.pinned and m.pinned_at is not None for m in pinned)
    await eventually(lambda: len(events.named("guild_channel_pins_update")) == 53)
    notices = [m for m in client.seen if m.type is discord.MessageType.pins_add]  # "pinned a message"
    assert len(notices) == 53 and notices[0].reference and notices[0].reference.message_id == int(messages[0]["id"])

    await emulator.unpin(mod, messages[-1])
    assert len([m async for m in channel.pins(limit=None)]) == 52
    emulator.set_overwrite(emulator.channel_id, emulator.app_id, deny=READ_MESSAGE_HISTORY)
    await asyncio.sleep(0.05)
    emulator.expect_error(403, 50001)
    with pytest.raises(discord.Forbidden):
        [m async for m in channel.pins()]


async def test_a_members_edit_and_deletion_reach_the_client(emulator: DiscordEmulator, start_client: StartClient) -> None:
    client = await start_client()
    events = Events(client)
    alice = emulator.member("alice")
    message = await emulator.inject_message(alice, "The canoe is free on weekends.")
    await emulator.edit_message(message, "The canoe is free on Sundays only.")
    edits = await eventually(lambda: events.named("raw_message_edit"))
    assert edits[0].data["content"] == "The canoe is free on Sundays only."  # type: ignore[attr-defined]
    history = [m async for m in client.get_channel(int(emulator.channel_id)).history(limit=5)]  # type: ignore[union-attr]
    assert history[0].content == "The canoe is free on Sundays only." and history[0].edited_at is not None
    await emulator.delete_message(message)
    deleted = await eventually(lambda: events.named("raw_message_delete"))
    assert deleted[0].message_id == int(message["id"])  # type: ignore[attr-defined]
    assert [m async for m in client.get_channel(int(emulator.channel_id)).history(limit=5)] == []  # type: ignore[union-attr]


async def test_forum_tags_reactions_and_archived_posts(emulator: DiscordEmulator, start_client: StartClient) -> None:
    client = await start_client()
    events = Events(client)
    forum_id = emulator.add_channel(emulator.guild_id, "help", 15, available_tags=[P.forum_tag("solved")])
    alice, bob = emulator.member("alice"), emulator.member("bob")
    mod = emulator.member("mod", permissions=P.EVERYONE_PERMISSIONS | MANAGE_THREADS)
    await asyncio.sleep(0.05)
    post, _ = await emulator.create_forum_post(alice, forum_id, "Canoe booking", "How do I book the canoe?")
    answer = await emulator.inject_message(bob, "Sign the logbook in the boathouse.", channel=post["id"])
    await emulator.react(alice, answer, "✅")
    await emulator.react(mod, answer, "✅")
    solved = emulator.tag_id(emulator.channels[forum_id], "solved")
    with pytest.raises(PermissionError):  # neither the post's author nor a moderator
        await emulator.set_tags(bob, post["id"], [solved])
    await emulator.set_tags(mod, post["id"], [solved])
    await eventually(lambda: events.named("raw_thread_update"))
    thread = client.get_channel(int(post["id"]))
    assert isinstance(thread, discord.Thread) and [t.name for t in thread.applied_tags] == ["solved"]
    read = [m async for m in thread.history(limit=10) if m.id == int(answer["id"])][0]
    assert [(str(r.emoji), r.count) for r in read.reactions] == [("✅", 2)]

    await emulator.archive_thread(post["id"])
    forum = client.get_channel(int(forum_id))
    assert isinstance(forum, discord.ForumChannel)
    archived = [t async for t in forum.archived_threads(limit=None)]
    assert [t.id for t in archived] == [int(post["id"])] and archived[0].archived
