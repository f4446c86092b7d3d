"""Who can read a reply, and which source visibilities those readers allow (issue 20).

A source's `Visibility` is everyone in the server (the default), some channels (and their threads
and forum posts) or some roles; it may be used for a reply only if everyone who can read the reply
may see it. `reply_audience` works out those readers: a channel's viewers as Discord computes them
from permission overwrites (a thread or forum post: its parent's), a private thread's members and
whoever manages its threads, the asker alone for an ephemeral reply, no one in the server for a DM.
They are described by *kinds*, sets of role ids every reader of that kind holds (who views thanks
to role R holds R; a member let in by their own overwrite, a thread member or the asker holds their
roles), and `Readers.allows` (`bot.rag.access`) applies the rule. Moderators (owner, Administrator, Manage Server, a
role in MODERATOR_ROLE_IDS, as in checks.py) see every source, so they are never a kind. Whatever
cannot be known (roles the bot cannot fetch, an unlisted private thread, an uncached channel) is a
reader holding no role: never a leak, at worst a role-scoped source left out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping

import discord
from discord.abc import GuildChannel

from bot.discord_bot.checks import member_is_moderator
from bot.rag.access import Readers

UNKNOWN: frozenset[int] = frozenset()  # the kind of a reader whose roles are unknown: holds no role
MAX_FETCHED_MEMBERS = 25  # members fetched over REST for one reply; any beyond count as UNKNOWN


# --- a reader's kind ---------------------------------------------------------------------------------
def _kind(member: discord.Member | None, guild: discord.Guild,
          moderator_role_ids: Collection[int]) -> frozenset[int] | None:
    """A reader's kind: their roles; None for a moderator; UNKNOWN when the member is unknown."""
    if member is None or member.guild.id != guild.id:
        return UNKNOWN
    if member_is_moderator(member, moderator_role_ids):
        return None
    return frozenset(role.id for role in member.roles if not role.is_default())


# --- channels ---------------------------------------------------------------------------------------
Members = Mapping[int, discord.Member | None]  # user id -> member (None: not in the server)
KindOf = Callable[[int], frozenset[int] | None]  # user id -> their kind, None: not a reader kind


def _kind_lookup(guild: discord.Guild, moderator_role_ids: Collection[int], members: Members) -> KindOf:
    """A user's kind by id: from `members`, else discord.py's cache if current, else UNKNOWN.
    None (no kind): the bot itself, a moderator, someone no longer in the server."""
    current, me = _member_cache_is_current(guild), getattr(guild.me, "id", None)

    def kind_of(user_id: int) -> frozenset[int] | None:
        if user_id == me:
            return None
        if user_id in members:
            member = members[user_id]
            return None if member is None else _kind(member, guild, moderator_role_ids)
        return _kind(guild.get_member(user_id) if current else None, guild, moderator_role_ids)

    return kind_of


def _holders(channel: GuildChannel, permission: str, moderator_role_ids: Collection[int],
             kind_of: KindOf) -> tuple[bool, list[frozenset[int]]]:
    """Who has `permission` in a (non-thread) channel: (a member with no role does, the kinds of
    the others), by discord.py's permissions_for (of a role: someone holding only it). A member
    with roles S has it only if @everyone does, or one R in S does alone (R's overwrite allows it,
    or R's base permission that no overwrite of S denies), or their own overwrite allows it."""
    guild = channel.guild
    if getattr(GuildChannel.permissions_for(channel, guild.default_role), permission):
        return True, []
    me = getattr(guild.me, "id", None)
    kinds = []
    for role in guild.roles:
        moderator = role.id in moderator_role_ids or role.permissions.administrator or role.permissions.manage_guild
        own = me is not None and role.tags is not None and role.tags.bot_id == me  # only this bot holds it
        if not (role.is_default() or moderator or own) and getattr(GuildChannel.permissions_for(channel, role),
                                                                    permission):
            kinds.append(frozenset({role.id}))
    for target, overwrite in channel.overwrites.items():
        if not isinstance(target, discord.Role) and getattr(overwrite, permission) is True:
            kind = kind_of(target.id)
            if kind is not None:
                kinds.append(kind)
    return False, kinds


def _minimal(kinds: Iterable[frozenset[int]]) -> tuple[frozenset[int], ...]:
    """The kinds without repeats or supersets (a superset holds a role whenever its subset does)."""
    unique = sorted(set(kinds), key=lambda k: (len(k), sorted(k)))
    kept: list[frozenset[int]] = []
    for kind in unique:
        if not any(k <= kind for k in kept):
            kept.append(kind)
    return tuple(kept)


def _uncertain(guild_id: int, channel_ids: Iterable[int]) -> Readers:  # readers unknown: anyone
    return Readers(guild_id, frozenset(channel_ids), public=True)


def channel_audience(channel: GuildChannel | discord.Thread, moderator_role_ids: Collection[int], *,
                     members: Members | None = None, thread_members: Iterable[int] | None = None) -> Readers:
    """Who can read a message in this channel, thread or forum post. `members`: known members by
    id (None: not in the server); anyone else needed is taken from discord.py's member cache when
    the GUILD_MEMBERS intent keeps it current, otherwise counted as UNKNOWN. For a private thread,
    `thread_members` are its members' ids (None: not known, an UNKNOWN reader)."""
    return _audience(channel, moderator_role_ids, _kind_lookup(channel.guild, moderator_role_ids, members or {}),
                     None if thread_members is None else list(thread_members))


def _audience(channel: GuildChannel | discord.Thread, moderator_role_ids: Collection[int], kind_of: KindOf,
              thread_members: list[int] | None) -> Readers:
    guild, ids = channel.guild, {channel.id}
    if isinstance(channel, discord.Thread):
        ids.add(channel.parent_id)
        parent = channel.parent
        if parent is None:
            return _uncertain(guild.id, ids)
        if channel.type is discord.ChannelType.private_thread:  # its members, and who manages threads
            everyone, kinds = _holders(parent, "manage_threads", moderator_role_ids, kind_of)
            if everyone:  # whoever views the parent may open its private threads
                public, viewers = _holders(parent, "view_channel", moderator_role_ids, kind_of)
                if public:
                    return Readers(guild.id, frozenset(ids), public=True)
                kinds += viewers
            found = [kind_of(u) for u in thread_members] if thread_members is not None else [UNKNOWN]
            return Readers(guild.id, frozenset(ids), False, _minimal(kinds + [k for k in found if k is not None]))
        channel = parent
    public, kinds = _holders(channel, "view_channel", moderator_role_ids, kind_of)
    return Readers(guild.id, frozenset(ids), public, () if public else _minimal(kinds))


def _member_cache_is_current(guild: discord.Guild) -> bool:
    """discord.py keeps cached members' roles current only from GUILD_MEMBER_UPDATE, which Discord
    sends only with the GUILD_MEMBERS intent; without it a cached member may be stale."""
    intents = getattr(getattr(guild, "_state", None), "_intents", None)
    return bool(getattr(intents, "members", False))


# --- the entry point --------------------------------------------------------------------------------
async def reply_audience(place: discord.abc.Messageable | None, asker: discord.Member | discord.User, *,
                         ephemeral: bool, moderator_role_ids: Collection[int]) -> Readers:
    """Who will read a reply to `asker` posted in `place` (None or a DM channel: a DM). An
    ephemeral reply is read by the asker alone; otherwise see channel_audience, with the members
    it needs (private thread members, members with their own overwrite) fetched over REST."""
    guild: discord.Guild | None = getattr(place, "guild", None)
    if place is None or guild is None:
        return Readers.dm()
    asker_kind = _kind(asker if isinstance(asker, discord.Member) else None, guild, moderator_role_ids)
    askers = () if asker_kind is None else (asker_kind,)
    ids = {place.id} | ({place.parent_id} if isinstance(place, discord.Thread) else set())  # type: ignore[union-attr]
    if ephemeral:
        return Readers(guild.id, frozenset(ids), False, askers)
    if not isinstance(place, (GuildChannel, discord.Thread)):
        return _uncertain(guild.id, ids)  # e.g. a PartialMessageable: the channel is not cached
    thread_members: list[int] | None = None
    if isinstance(place, discord.Thread) and place.type is discord.ChannelType.private_thread:
        try:
            thread_members = [m.id for m in await place.fetch_members()]
        except discord.HTTPException:
            pass  # not allowed to list them (the GUILD_MEMBERS intent, no access): UNKNOWN
    known: dict[int, discord.Member | None] = {asker.id: asker} if isinstance(asker, discord.Member) else {}
    wanted: list[int] = []  # a dry run tells whose roles it needs

    def record(user_id: int) -> frozenset[int]:
        wanted.append(user_id)
        return UNKNOWN

    _audience(place, moderator_role_ids, record, thread_members)
    known.update(await _fetch_members(guild, [u for u in dict.fromkeys(wanted) if u not in known]))
    audience = _audience(place, moderator_role_ids, _kind_lookup(guild, moderator_role_ids, known), thread_members)
    if audience.public or asker_kind is None:
        return audience
    return Readers(audience.guild_id, audience.channel_ids, False, _minimal(audience.reader_roles + askers))


async def _fetch_members(guild: discord.Guild, user_ids: list[int]) -> dict[int, discord.Member | None]:
    """Members by id: from the cache when it is current, else GET /guilds/{g}/members/{u} (at most
    MAX_FETCHED_MEMBERS). None: not in the server; left out: unknown (an error, or over the cap)."""
    current, me = _member_cache_is_current(guild), getattr(guild.me, "id", None)
    cached = {u: m for u in user_ids if current and (m := guild.get_member(u)) is not None}
    fetch = [u for u in user_ids if u not in cached and u != me][:MAX_FETCHED_MEMBERS]
    found: dict[int, discord.Member | None] = dict(cached)
    results = await asyncio.gather(*map(guild.fetch_member, fetch), return_exceptions=True)
    for user_id, result in zip(fetch, results, strict=True):
        if isinstance(result, (discord.Member, discord.NotFound)):
            found[user_id] = result if isinstance(result, discord.Member) else None
        elif not isinstance(result, discord.HTTPException):
            raise result  # not Discord's answer: a bug or a cancellation
    return found
