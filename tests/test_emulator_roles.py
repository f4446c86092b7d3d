"""The Discord emulator's member roles, role routes, private threads and thread member lists,
exercised with the real discord.py client (a plain one, `tests/discord_client.py`, not the project's
bot): role changes reach later message and interaction payloads always, and GUILD_MEMBER_UPDATE
only with the GUILD_MEMBERS intent; the bot gives and takes roles under Discord's rules; private
threads are seen only by their members; the member list needs the privileged intent enabled."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import pytest

from tests.discord_client import RecordingClient, StartClient
from tests.discord_emulator import (
    CREATE_PRIVATE_THREADS,
    EVERYONE_PERMISSIONS,
    MANAGE_MESSAGES,
    MANAGE_ROLES,
    DiscordEmulator,
)
from tests.helpers import eventually


def sent(emulator: DiscordEmulator, event: str) -> list[dict[str, Any]]:
    return [frame["d"] for frame in emulator._sent if frame["t"] == event]


# --- member roles --------------------------------------------------------------------------------------
async def test_a_role_change_reaches_payloads_always_and_member_updates_with_the_intent(emulator: DiscordEmulator, start_client: StartClient) -> None:
    g = emulator.guild_id
    staff, helpers = emulator.add_role(g, "Staff"), emulator.add_role(g, "Helpers", MANAGE_MESSAGES)
    alice = emulator.member("alice", roles=[staff])
    client = await start_client()
    earlier = await emulator.inject_message(alice, "before")
    emulator.set_member_roles(g, alice.id, [helpers])
    await emulator.settle()
    assert sent(emulator, "GUILD_MEMBER_UPDATE") == []  # no GUILD_MEMBERS intent: Discord does not send it
    assert earlier["member"]["roles"] == [staff]  # what was sent stays as it was
    await emulator.inject_message(alice, "after")
    message = await eventually(lambda: next((m for m in client.seen if m.content == "after"), None))
    assert [r.id for r in message.author.roles[1:]] == [int(helpers)]
    await emulator.inject_slash(alice, "where")
    interaction = await eventually(lambda: client.asked and client.asked[-1])
    assert [r.id for r in interaction.user.roles[1:]] == [int(helpers)] and interaction.permissions.manage_messages
    fetched = await client.get_guild(int(g)).fetch_member(int(alice.id))  # type: ignore[union-attr]
    assert [r.id for r in fetched.roles[1:]] == [int(helpers)]

    with pytest.raises(ValueError):
        emulator.set_member_roles(g, alice.id, [g])  # @everyone is not assignable
    with pytest.raises(LookupError):
        emulator.set_member_roles(g, "1234", [staff])


async def test_with_the_members_intent_the_cached_member_follows(emulator: DiscordEmulator, start_client: StartClient) -> None:
    g = emulator.guild_id
    staff = emulator.add_role(g, "Staff")
    alice = emulator.member("alice")
    client = await start_client(members_intent=True)
    guild = client.get_guild(int(g))
    assert guild is not None and guild.get_member(int(alice.id)) is not None
    updated = asyncio.ensure_future(client.wait_for("member_update", timeout=5))
    await asyncio.sleep(0)
    emulator.set_member_roles(g, alice.id, [staff])
    before, after = await updated
    assert [r.id for r in before.roles[1:]] == [] and [r.id for r in after.roles[1:]] == [int(staff)]
    assert sent(emulator, "GUILD_MEMBER_UPDATE")[0]["roles"] == [staff]


async def test_the_bot_gives_and_takes_roles_under_the_role_hierarchy(emulator: DiscordEmulator, start_client: StartClient) -> None:
    g = emulator.guild_id
    staff = emulator.add_role(g, "Staff", position=2)
    alice = emulator.member("alice")
    client = await start_client(members_intent=True)
    guild = client.get_guild(int(g))
    assert guild is not None
    member, role = guild.get_member(int(alice.id)), guild.get_role(int(staff))
    assert member is not None and role is not None

    refused = emulator.expect_error(403, 50013, method="PUT", path=r"/guilds/\d+/members/\d+/roles/\d+")
    with pytest.raises(discord.Forbidden):
        await member.add_roles(role)  # no Manage Roles
    emulator.bot_permissions |= MANAGE_ROLES
    with pytest.raises(discord.Forbidden):
        await member.add_roles(role)  # the bot's highest role (none) is not above Staff
    assert len(refused.calls) == 2 and alice.roles == []

    own = emulator.add_role(g, "sourcebot", position=5)
    emulator.set_member_roles(g, emulator.app_id, [own])
    updated = asyncio.ensure_future(client.wait_for("member_update", timeout=5, check=lambda _b, a: a.id == member.id))
    await asyncio.sleep(0)
    await member.add_roles(role, reason="helper")
    assert alice.roles == [staff] and emulator.calls[-1].status == 204
    _, after = await updated
    assert role in after.roles
    await member.remove_roles(role)
    assert alice.roles == []
    unknown = emulator.expect_error(404, 10011, method="PUT")
    with pytest.raises(discord.NotFound):
        await member.add_roles(discord.Object(id=1))
    assert len(unknown.calls) == 1


# --- private threads and thread members ----------------------------------------------------------------
async def test_a_private_thread_is_seen_by_its_members_and_lists_them(emulator: DiscordEmulator, start_client: StartClient) -> None:
    alice = emulator.member("alice", EVERYONE_PERMISSIONS | CREATE_PRIVATE_THREADS)
    anna, dave = emulator.member("anna"), emulator.member("dave")
    with pytest.raises(PermissionError):
        await emulator.start_private_thread(anna, emulator.channel_id, "nope")  # no Create Private Threads
    thread = await emulator.start_private_thread(alice, emulator.channel_id, "secret", invite=[anna])
    client = await start_client()
    assert client.get_channel(int(thread["id"])) is None  # not listed in GUILD_CREATE: the bot cannot see it
    assert emulator.thread_members(thread["id"]) == {alice.id, anna.id}
    hidden = emulator.expect_error(403, 50001, method="GET", path=rf"/channels/{thread['id']}")
    with pytest.raises(discord.Forbidden):
        await client.fetch_channel(int(thread["id"]))
    assert len(hidden.calls) == 1
    with pytest.raises(PermissionError):
        await emulator.inject_message(dave, "let me in", channel=thread["id"])
    await emulator.inject_message(anna, "not for the bot", channel=thread["id"])  # not delivered

    await emulator.inject_message(anna, "help?", mention_bot=True, channel=thread["id"])  # the mention adds the bot
    message = await eventually(lambda: client.seen and client.seen[-1])
    assert message.content.endswith("help?") and [m.content for m in client.seen] == [message.content]
    events = [f["t"] for f in emulator._sent if f["t"] in ("THREAD_CREATE", "THREAD_MEMBERS_UPDATE", "MESSAGE_CREATE")]
    assert events == ["THREAD_CREATE", "THREAD_MEMBERS_UPDATE", "MESSAGE_CREATE"]
    channel = message.channel
    assert isinstance(channel, discord.Thread) and channel.type is discord.ChannelType.private_thread
    assert {m.id for m in await channel.fetch_members()} == {int(alice.id), int(anna.id), int(emulator.app_id)}
    await emulator.add_thread_member(thread["id"], dave)
    assert [d.get("added_members", [{}])[0].get("user_id") for d in sent(emulator, "THREAD_MEMBERS_UPDATE")] == [
        emulator.app_id]  # about dave: only with the GUILD_MEMBERS intent
    assert int(dave.id) in {m.id for m in await channel.fetch_members()}

    route = discord.http.Route("GET", "/channels/{channel_id}/thread-members", channel_id=channel.id)
    page = await client.http.request(route, params={"with_member": "true", "limit": 2})
    assert len(page) == 2 and all(p["member"]["user"]["id"] == p["user_id"] for p in page)
    rest = await client.http.request(route, params={"with_member": "true", "after": page[-1]["user_id"]})
    assert {p["user_id"] for p in page + rest} == emulator.thread_members(thread["id"])
    assert (await client.http.get_thread_member(channel.id, int(anna.id)))["user_id"] == anna.id

    emulator.members_intent_enabled = False
    refused = emulator.expect_error(403, 50001, method="GET", path=rf"/channels/{thread['id']}/thread-members")
    with pytest.raises(discord.Forbidden):
        await channel.fetch_members()
    assert len(refused.calls) == 1


async def test_the_bot_adds_and_removes_thread_members(emulator: DiscordEmulator, start_client: StartClient) -> None:
    alice, bob = emulator.member("alice"), emulator.member("bob")
    client = await start_client(members_intent=True)
    channel = client.get_channel(int(emulator.channel_id))
    assert isinstance(channel, discord.TextChannel)
    emulator.bot_permissions |= CREATE_PRIVATE_THREADS
    thread = await channel.create_thread(name="private", type=discord.ChannelType.private_thread)
    await thread.add_user(discord.Object(id=int(alice.id)))
    assert emulator.thread_members(str(thread.id)) == {emulator.app_id, alice.id}
    added = sent(emulator, "THREAD_MEMBERS_UPDATE")[-1]
    assert added["added_members"][0]["user_id"] == alice.id and added["added_members"][0]["member"]["roles"] == []
    await thread.remove_user(discord.Object(id=int(alice.id)))  # the private thread's creator may
    assert sent(emulator, "THREAD_MEMBERS_UPDATE")[-1]["removed_member_ids"] == [alice.id]
    missing = emulator.expect_error(404, 10007, method="PUT")
    with pytest.raises(discord.NotFound):
        await thread.add_user(discord.Object(id=1))
    assert len(missing.calls) == 1 and bob.id not in emulator.thread_members(str(thread.id))


async def test_asking_for_the_members_intent_when_it_is_not_enabled_closes_with_4014(emulator: DiscordEmulator) -> None:
    emulator.members_intent_enabled = False
    client = RecordingClient(members_intent=True)
    await client.login("test-token")
    try:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.connect(), 10)
    finally:
        await client.close()
    assert emulator.sessions == 0
