"""bot/discord_bot/audience.py: who reads a reply and which source visibilities they allow,
worked out by the real discord.py client (the bot's own intents: no GUILD_MEMBERS) from what the
Discord emulator sends it: roles, channel permission overwrites, threads, private threads and
their members, ephemeral replies and DMs, and changes of all these while connected."""

from __future__ import annotations

import asyncio
import random

import discord
import pytest

from bot.discord_bot.audience import UNKNOWN, channel_audience, reply_audience
from bot.discord_bot.checks import member_is_moderator as is_moderator
from bot.rag.access import Readers, Visibility
from tests.discord_client import RecordingClient, StartClient
from tests.discord_emulator import (
    ADMINISTRATOR,
    CREATE_PRIVATE_THREADS,
    EVERYONE_PERMISSIONS,
    MANAGE_GUILD,
    MANAGE_THREADS,
    VIEW_CHANNEL,
    DiscordEmulator,
    Member,
)
from tests.helpers import eventually


class World:
    """One server: roles A and B (no permissions of their own), the moderator role, a Manage
    Server role; channels public (#questions), a (@everyone denied, A allowed), ab (A and B
    allowed), personal (A allowed, and carol by her own overwrite), modded (A and the moderator
    role), mods-only (the moderator role and Managers); members with each mix of roles."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        e, g = emulator, emulator.guild_id
        self.emulator, self.guild = e, g
        self.a, self.b = e.add_role(g, "A", position=1), e.add_role(g, "B", position=2)
        self.mod, self.managers = e.moderator_role_id, e.add_role(g, "Managers", MANAGE_GUILD, position=3)
        self.public = e.channel_id
        self.alice = e.member("alice", EVERYONE_PERMISSIONS | CREATE_PRIVATE_THREADS, roles=[self.a])
        self.anna = e.member("anna", roles=[self.a])
        self.bob = e.member("bob", roles=[self.b])
        self.carol = e.member("carol", roles=[self.b])
        self.dave = e.member("dave")
        self.mo = e.member("mo", roles=[self.mod])
        self.boss = e.member("boss", EVERYONE_PERMISSIONS | MANAGE_GUILD)  # Manage Server of their own
        self.a_only = self.closed("a-only", self.a)
        self.ab = self.closed("ab", self.a, self.b)
        self.personal = self.closed("personal", self.a)
        e.set_overwrite(self.personal, self.carol.id, allow=VIEW_CHANNEL)
        self.modded = self.closed("modded", self.a, self.mod)
        self.mods_only = self.closed("mods-only", self.mod, self.managers)
        self.forum = e.add_channel(g, "help", type=15)
        e.set_overwrite(self.forum, g, deny=VIEW_CHANNEL)
        e.set_overwrite(self.forum, self.a, allow=VIEW_CHANNEL)

    def closed(self, name: str, *allowed: str) -> str:
        cid = self.emulator.add_channel(self.guild, name)
        self.emulator.set_overwrite(cid, self.guild, deny=VIEW_CHANNEL)
        for role in allowed:
            self.emulator.set_overwrite(cid, role, allow=VIEW_CHANNEL)
        return cid

    def roles(self, *ids: str) -> Visibility:
        return Visibility.roles(int(i) for i in ids)

    def channels(self, *ids: str) -> Visibility:
        return Visibility.channels(int(i) for i in ids)


@pytest.fixture
def world(emulator: DiscordEmulator) -> World:
    return World(emulator)


async def ask(emulator: DiscordEmulator, client: RecordingClient, member: Member, channel: str | None = None, *,
              dm: bool = False) -> discord.Interaction:
    """The member runs /where (in `channel`, or a DM): the interaction as discord.py built it."""
    before = len(client.asked)
    await emulator.inject_command(member, "where", channel=channel, dm=dm)
    await eventually(lambda: len(client.asked) > before)
    return client.asked[-1]


async def audience(emulator: DiscordEmulator, client: RecordingClient, member: Member, channel: str | None = None, *,
                   ephemeral: bool = False, dm: bool = False) -> Readers:
    interaction = await ask(emulator, client, member, channel, dm=dm)
    return await reply_audience(interaction.channel, interaction.user, ephemeral=ephemeral,
                                moderator_role_ids=[int(emulator.moderator_role_id)])


# --- the values themselves ---------------------------------------------------------------------------
def test_visibility_round_trips_and_describes_itself() -> None:
    for v in (Visibility.everyone(), Visibility.channels([3, 1]), Visibility.roles([7])):
        assert Visibility.from_option(v.as_option()) == v
    assert Visibility.channels([3, 1]).as_option() == {"kind": "channels", "ids": [1, 3]}
    assert Visibility.channels([1, 2]).describe({1: "a", 2: "b"}) == "channels #a, #b"
    assert Visibility.roles([5]).describe() == "roles <@&5>" and Visibility.everyone().describe() == "everyone"
    with pytest.raises(ValueError):
        Visibility("everyone", frozenset({1}))
    with pytest.raises(ValueError):
        Visibility("staff", frozenset({1}))  # type: ignore[arg-type]
    assert Visibility.from_option(None) == Visibility.everyone()
    assert Visibility.from_option({"kind": "staff", "ids": [1]}) == Visibility.roles([0])  # unreadable: moderators only


def test_audience_rules_on_plain_values() -> None:
    everyone, staff, staff_or_paid = Visibility.everyone(), Visibility.roles([1]), Visibility.roles([1, 2])
    assert not any(Readers.dm().allows(v) for v in (everyone, staff, Visibility.channels([9])))
    public = Readers(5, frozenset({9}), public=True)
    assert public.allows(everyone) and public.allows(Visibility.channels([9])) and not public.allows(staff)
    assert public.allows(Visibility.roles([5]))  # the @everyone role is everyone
    mixed = Readers(5, frozenset({9}), reader_roles=(frozenset({1}), frozenset({2, 3})))
    assert mixed.allows(staff_or_paid) and not mixed.allows(staff) and not mixed.allows(Visibility.channels([8]))
    unknown = Readers(5, frozenset({9}), reader_roles=(UNKNOWN,))
    assert unknown.allows(everyone) and not unknown.allows(staff_or_paid)
    moderators = Readers(5, frozenset({9}))
    assert moderators.only_moderators and moderators.allows(Visibility.channels([8])) and moderators.allows(staff)


# --- channels ------------------------------------------------------------------------------------------
async def test_a_public_channel_allows_what_everyone_may_see(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    seen = await audience(emulator, client, world.alice, world.public)
    assert seen.public and seen.guild_id == int(world.guild) and seen.channel_ids == {int(world.public)}
    assert seen.allows(Visibility.everyone()) and not seen.allows(world.roles(world.a, world.b, world.mod))
    assert seen.allows(world.channels(world.public)) and not seen.allows(world.channels(world.a_only))
    channel = client.get_channel(int(world.public))
    assert channel.permissions_for(channel.guild.default_role).view_channel  # type: ignore[union-attr]


async def test_a_channel_only_role_a_views_allows_role_a(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    seen = await audience(emulator, client, world.alice, world.a_only)
    assert not seen.public and seen.reader_roles == (frozenset({int(world.a)}),)
    assert seen.allows(world.roles(world.a)) and seen.allows(world.roles(world.a, world.b))
    assert not seen.allows(world.roles(world.b)) and seen.allows(Visibility.everyone())
    assert emulator.calls_to("GET", r"/guilds/\d+/members/\d+") == []  # nothing to fetch


async def test_a_channel_two_roles_view_needs_both(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    seen = await audience(emulator, client, world.bob, world.ab)
    assert seen.allows(world.roles(world.a, world.b))
    assert not seen.allows(world.roles(world.a)) and not seen.allows(world.roles(world.b))


async def test_a_members_own_overwrite_makes_their_roles_readers(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    seen = await audience(emulator, client, world.alice, world.personal)
    assert set(seen.reader_roles) == {frozenset({int(world.a)}), frozenset({int(world.b)})}  # carol holds B
    assert emulator.calls_to("GET", rf"/guilds/{world.guild}/members/{world.carol.id}")  # fetched: not cached
    assert not seen.allows(world.roles(world.a)) and seen.allows(world.roles(world.a, world.b))

    emulator.set_member_roles(world.guild, world.carol.id, [world.mod])  # carol becomes a moderator
    assert (await audience(emulator, client, world.alice, world.personal)).allows(world.roles(world.a))

    gone = emulator.member("gone", roles=[world.b])
    emulator.set_overwrite(world.personal, gone.id, allow=VIEW_CHANNEL)
    del emulator.guilds[world.guild].members[gone.id]  # left the server; the overwrite stays
    unknown_member = emulator.expect_error(404, 10007, method="GET", path=rf"/guilds/\d+/members/{gone.id}")
    await eventually(lambda: len(client.get_channel(int(world.personal)).overwrites) == 4)  # type: ignore[union-attr]
    assert (await audience(emulator, client, world.alice, world.personal)).allows(world.roles(world.a))
    assert len(unknown_member.calls) == 1


async def test_moderators_never_block_a_source(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    modded = await audience(emulator, client, world.alice, world.modded)
    assert modded.reader_roles == (frozenset({int(world.a)}),) and modded.allows(world.roles(world.a))
    only_mods = await audience(emulator, client, world.mo, world.mods_only)
    assert only_mods.only_moderators and only_mods.allows(world.roles(world.b))
    assert only_mods.allows(world.channels(world.a_only))  # only moderators read it: they see everything
    channel = client.get_channel(int(world.mods_only))
    mo = await channel.guild.fetch_member(int(world.mo.id))  # type: ignore[union-attr]
    assert is_moderator(mo, [int(world.mod)]) and not is_moderator(mo, [])


# --- threads --------------------------------------------------------------------------------------------
async def test_private_threads_are_read_by_their_members(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    bot = emulator.bot_as_member()
    both_a = await emulator.start_private_thread(world.alice, world.public, "a-team", invite=[world.anna, world.mo, bot])
    mixed = await emulator.start_private_thread(world.alice, world.public, "mixed", invite=[world.bob, bot])
    client = await start_client()
    seen = await audience(emulator, client, world.alice, both_a["id"])
    assert isinstance(client.get_channel(int(both_a["id"])), discord.Thread)
    assert emulator.calls_to("GET", rf"/channels/{both_a['id']}/thread-members")
    assert not seen.public and seen.reader_roles == (frozenset({int(world.a)}),)  # mo is a moderator
    assert seen.allows(world.roles(world.a)) and seen.channel_ids == {int(both_a["id"]), int(world.public)}
    other = await audience(emulator, client, world.alice, mixed["id"])
    assert not other.allows(world.roles(world.a)) and other.allows(world.roles(world.a, world.b))

    await emulator.add_thread_member(both_a["id"], world.dave)  # a member without A joins
    assert not (await audience(emulator, client, world.alice, both_a["id"])).allows(world.roles(world.a))


async def test_private_thread_members_that_cannot_be_listed_block_role_sources(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    thread = await emulator.start_private_thread(world.alice, world.public, "a-team",
                                                 invite=[world.anna, emulator.bot_as_member()])
    emulator.members_intent_enabled = False  # the portal switch is off: Discord refuses the member list
    refused = emulator.expect_error(403, 50001, method="GET", path=rf"/channels/{thread['id']}/thread-members")
    client = await start_client()
    seen = await audience(emulator, client, world.alice, thread["id"])
    assert len(refused.calls) == 1 and UNKNOWN in seen.reader_roles
    assert seen.allows(Visibility.everyone()) and seen.allows(world.channels(world.public))
    assert not seen.allows(world.roles(world.a))


async def test_a_private_thread_where_the_bot_is_mentioned(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    thread = await emulator.start_private_thread(world.alice, world.public, "a-team", invite=[world.anna])
    client = await start_client()
    assert client.get_channel(int(thread["id"])) is None  # private: not shown to the bot
    await emulator.inject_message(world.anna, "where is the runbook?", mention_bot=True, channel=thread["id"])
    message = await eventually(lambda: client.seen and client.seen[-1])
    assert isinstance(message.channel, discord.Thread) and message.channel.type is discord.ChannelType.private_thread
    seen = await reply_audience(message.channel, message.author, ephemeral=False, moderator_role_ids=[])
    assert seen.reader_roles == (frozenset({int(world.a)}),) and seen.allows(world.roles(world.a))


async def test_a_public_thread_and_a_forum_post_are_read_by_their_parents_viewers(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    starter = await emulator.inject_message(world.alice, "a question", channel=world.a_only)
    thread = await emulator.start_thread(world.alice, starter, "a question")
    await eventually(lambda: client.get_channel(int(thread["id"])))
    seen = await audience(emulator, client, world.anna, thread["id"])
    assert seen.channel_ids == {int(thread["id"]), int(world.a_only)} and seen.allows(world.roles(world.a))
    assert not seen.allows(world.roles(world.b)) and seen.allows(world.channels(world.a_only))
    post, _ = await emulator.create_forum_post(world.alice, world.forum, "How do I?", "details")
    await eventually(lambda: client.get_channel(int(post["id"])))
    in_post = await audience(emulator, client, world.alice, post["id"])
    assert in_post.allows(world.roles(world.a)) and in_post.allows(world.channels(world.forum))
    assert not in_post.allows(world.channels(world.a_only))


# --- ephemeral replies and DMs -------------------------------------------------------------------------
async def test_an_ephemeral_reply_is_read_by_the_asker_alone(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    alice = await audience(emulator, client, world.alice, world.public, ephemeral=True)
    assert alice.reader_roles == (frozenset({int(world.a)}),) and alice.allows(world.roles(world.a))
    assert not alice.allows(world.roles(world.b)) and not alice.allows(world.channels(world.a_only))
    dave = await audience(emulator, client, world.dave, world.public, ephemeral=True)
    assert dave.reader_roles == (frozenset(),) and not dave.allows(world.roles(world.a, world.b))
    for moderator in (world.mo, world.boss):  # a moderator role; Manage Server from the interaction
        mine = await audience(emulator, client, moderator, world.public, ephemeral=True)
        assert mine.only_moderators and mine.allows(world.roles(world.b)) and mine.allows(world.channels(world.ab))


async def test_a_dm_allows_no_server_source(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    for ephemeral in (False, True):
        seen = await audience(emulator, client, world.alice, dm=True, ephemeral=ephemeral)
        assert seen == Readers.dm() and not seen.allows(Visibility.everyone())
    assert not (await reply_audience(None, client.user, ephemeral=False, moderator_role_ids=[])).allows(  # type: ignore[arg-type]
        Visibility.everyone())


async def test_a_channel_scoped_source_answers_in_that_channel_and_its_threads_only(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    scoped = world.channels(world.public)
    starter = await emulator.inject_message(world.alice, "a question")
    thread = await emulator.start_thread(world.alice, starter, "a question")
    await eventually(lambda: client.get_channel(int(thread["id"])))
    assert (await audience(emulator, client, world.bob, world.public)).allows(scoped)
    assert (await audience(emulator, client, world.bob, thread["id"])).allows(scoped)
    assert (await audience(emulator, client, world.bob, thread["id"], ephemeral=True)).allows(scoped)
    assert not (await audience(emulator, client, world.alice, world.a_only)).allows(scoped)
    assert not (await audience(emulator, client, world.alice, world.a_only, ephemeral=True)).allows(scoped)


# --- changes while connected ---------------------------------------------------------------------------
async def test_a_permission_change_takes_effect_on_the_next_reply(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    assert (await audience(emulator, client, world.alice, world.a_only)).allows(world.roles(world.a))

    updated = asyncio.ensure_future(client.wait_for("guild_channel_update", timeout=5,
                                                    check=lambda _before, after: after.id == int(world.a_only)))
    await asyncio.sleep(0)  # the listener is registered before the change goes out
    emulator.set_overwrite(world.a_only, world.b, allow=VIEW_CHANNEL)  # CHANNEL_UPDATE
    await updated
    after = await audience(emulator, client, world.alice, world.a_only)
    assert not after.allows(world.roles(world.a)) and after.allows(world.roles(world.a, world.b))

    updated = asyncio.ensure_future(client.wait_for("guild_channel_update", timeout=5,
                                                    check=lambda _before, after: after.id == int(world.a_only)))
    await asyncio.sleep(0)  # the listener is registered before the change goes out
    emulator.set_overwrite(world.a_only, world.guild, allow=VIEW_CHANNEL)  # open to everyone
    await updated
    assert (await audience(emulator, client, world.alice, world.a_only)).public


async def test_a_role_change_takes_effect_on_the_next_reply(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client()
    assert (await audience(emulator, client, world.alice, world.public, ephemeral=True)).allows(world.roles(world.a))
    emulator.set_member_roles(world.guild, world.alice.id, [world.b])  # no GUILD_MEMBER_UPDATE: no intent
    await emulator.settle()
    assert emulator.sent_on(None, "GUILD_MEMBER_UPDATE") == []
    lost = await audience(emulator, client, world.alice, world.public, ephemeral=True)  # the payload's roles
    assert not lost.allows(world.roles(world.a)) and lost.allows(world.roles(world.b))


async def test_with_the_members_intent_the_cache_follows_role_changes(emulator: DiscordEmulator, world: World, start_client: StartClient) -> None:
    client = await start_client(members_intent=True)
    channel = client.get_channel(int(world.personal))
    assert isinstance(channel, discord.TextChannel)
    assert channel_audience(channel, []).allows(world.roles(world.a, world.b))  # carol from the cache
    assert emulator.calls_to("GET", r"/guilds/\d+/members/\d+") == []
    updated = asyncio.ensure_future(client.wait_for("member_update", timeout=5))
    await asyncio.sleep(0)
    emulator.set_member_roles(world.guild, world.carol.id, [world.a])  # GUILD_MEMBER_UPDATE
    await updated
    assert channel_audience(channel, []).allows(world.roles(world.a))


# --- against discord.py's own permissions_for ------------------------------------------------------------
async def test_every_member_who_can_view_is_covered_by_a_reader_kind(emulator: DiscordEmulator, start_client: StartClient) -> None:
    """Random overwrites in two servers (one whose @everyone cannot view, where roles grant it):
    for every member discord.py lets view a channel, the audience is public, the member is a
    moderator, or one reader kind is among their roles; and the emulator computes the same view."""
    rng = random.Random(20)
    plans: list[tuple[str, list[str], dict[str, Member]]] = []
    for closed_server in (False, True):
        g = emulator.add_guild("Closed" if closed_server else "Open")
        everyone = EVERYONE_PERMISSIONS & ~VIEW_CHANNEL if closed_server else EVERYONE_PERMISSIONS
        emulator.guilds[g].roles[g]["permissions"] = str(everyone)
        roles = [emulator.add_role(g, "R1", VIEW_CHANNEL, position=1), emulator.add_role(g, "R2", position=2),
                 emulator.add_role(g, "R3", VIEW_CHANNEL | MANAGE_THREADS, position=3),
                 emulator.add_role(g, "Admin", ADMINISTRATOR, position=4)]
        members = {f"m{i}": emulator.member(f"m{i}", everyone, guild=g,
                                            roles=rng.sample(roles[:3], rng.randint(0, 3)) + (
                                                [roles[3]] if i == 0 else []))
                   for i in range(8)}
        channels = []
        for n in range(6):
            cid = emulator.add_channel(g, f"c{n}")
            for target in [g, *roles[:3], *(m.id for m in rng.sample(list(members.values()), 2))]:
                allow, deny = rng.choice([(0, 0), (VIEW_CHANNEL, 0), (0, VIEW_CHANNEL)])
                if allow or deny:
                    emulator.set_overwrite(cid, target, allow=allow, deny=deny)
            channels.append(cid)
        plans.append((g, channels, members))
    client = await start_client()
    checked = 0
    for g, channels, members in plans:
        guild = client.get_guild(int(g))
        assert guild is not None
        fetched = {name: await guild.fetch_member(int(m.id)) for name, m in members.items()}
        for cid in channels:
            channel = guild.get_channel(int(cid))
            assert isinstance(channel, discord.TextChannel)
            seen = await reply_audience(channel, fetched["m0"], ephemeral=False, moderator_role_ids=[])  # m0: an admin
            assert seen.public == channel.permissions_for(guild.default_role).view_channel
            for role in guild.roles[1:]:  # every role that alone lets a member view is a kind
                if not seen.public and not role.permissions.administrator and channel.permissions_for(role).view_channel:
                    assert {frozenset({role.id}), UNKNOWN} & set(seen.reader_roles)  # (or a reader without roles)
            for name, member in fetched.items():
                views = channel.permissions_for(member).view_channel
                assert views == bool(emulator.permissions(members[name], cid) & VIEW_CHANNEL)
                if views and not is_moderator(member, []):
                    held = {r.id for r in member.roles}
                    assert seen.public or any(kind <= held for kind in seen.reader_roles), (name, cid)
                    checked += 1
    assert checked >= 20
