"""A local emulator of Discord's REST API, gateway and attachment CDN, enough for the
unmodified discord.py client to log in, sync slash commands (groups and subcommands), receive
messages (guild and DM) and interactions (commands and autocomplete) in several guilds, and
answer them.

It enforces the Discord rules the bot must respect (2,000-character messages, embed limits, no
empty messages, the 3-second first-response deadline, no double acknowledgement, default member
permissions on commands, options checked against the synced schema, channel permission
overwrites -> 403 50013, the ephemeral flag fixed by the first response, gateway intents) and
records every REST call so tests can assert on what a member would see. Payload shapes and rule
checks live in tests/discord_payloads.py.

Shards: a sharded IDENTIFY (`shard: [id, count]`) opens a session for that shard; READY carries
`shard` and lists only that shard's guilds, and every guild event (GUILD_CREATE, MESSAGE_*,
INTERACTION_CREATE, channel and role changes) goes only to the session running the guild's shard,
`(guild_id >> 22) % count`, as on Discord; DMs and events without a guild go to shard 0. Any
number of sessions may be connected at once (one per shard, from one process or several); an
unsharded session receives everything. `add_guild(..., shard=k, shard_count=n)` picks a guild id
on shard k; `sent_on(shard, event)` is what that shard's sessions received.

Roles: `add_role`, `member(..., roles=)` and `set_member_roles(guild, user, roles)` (the bot's own
too: user == app_id); a member's messages and interactions always carry their current roles and
permissions, while GUILD_MEMBER_UPDATE (like every GUILD_MEMBER_* event) reaches only sessions that
IDENTIFYed with the GUILD_MEMBERS intent. The bot gives and takes roles with PUT/DELETE
/guilds/{g}/members/{u}/roles/{r} (MANAGE_ROLES and a role below its highest, else 403 50013) and
reads a member with GET /guilds/{g}/members/{u}. `members_intent_enabled = False` is the privileged
intent switched off in the developer portal: an IDENTIFY asking for it is closed with 4014.

Message context menus (type 3 commands, kept apart from chat commands: `message_commands`):
`inject_message_command(member, name, message)` delivers one as Discord does (data.type 3,
target_id, resolved.messages), refused like Discord's client (default member permissions).

Threads, forum posts, message components (buttons, selects) and modals: tests/discord_threads.py
(mixed into DiscordEmulator), whose docstring lists the routes, rules and helpers. Pins, members'
edits and deletions, forum tags, reactions and archived threads: tests/discord_content.py. Rate limits
(429s with Discord's headers) and holds (a REST call kept waiting): tests/discord_traffic.py.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import mimetypes
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl
from aiohttp import WSMsgType, web

from tests import discord_payloads as P
from tests.discord_content import ChannelContent
from tests.discord_payloads import (  # noqa: F401  (re-exported: tests import them from here)
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    ATTACH_FILES,
    BOT_PERMISSIONS,
    CREATE_PRIVATE_THREADS,
    CREATE_PUBLIC_THREADS,
    EMBED_LINKS,
    EPHEMERAL,
    EVERYONE_PERMISSIONS,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MANAGE_ROLES,
    MANAGE_THREADS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    USE_APPLICATION_COMMANDS,
    VIEW_CHANNEL,
    Call,
    Expectation,
    Guild,
    Interaction,
    Member,
    error,
    json_response,
    snowflake,
)
from tests.discord_threads import ThreadsAndComponents
from tests.discord_traffic import Hold, RateLimits

INTERACTION_DEADLINE = 3.0
UPLOAD_LIMIT = 10 * 1024 * 1024
_DEFAULT: Any = object()
# Guild ids picked for a shard: timestamps (2024) below the ids tests/discord_payloads.snowflake()
# hands out (the current time), so the two never collide.
_SHARD_TIMESTAMPS = itertools.count(1_400_000_000_000_000_000 >> 22)
_GUILD_KEYED_BY_ID = {"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"}
# Events a session receives only when it IDENTIFYed with this intent (Discord drops them otherwise).
EVENT_INTENTS = {"GUILD_MEMBER_ADD": P.INTENT_GUILD_MEMBERS, "GUILD_MEMBER_UPDATE": P.INTENT_GUILD_MEMBERS,
                 "GUILD_MEMBER_REMOVE": P.INTENT_GUILD_MEMBERS}


def shard_of(guild_id: str | int | None, shard_count: int) -> int:
    """Discord's routing: the shard that receives a guild's events (DMs: None -> shard 0)."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


def event_guild(event: str, data: Any) -> str | None:
    """The guild a gateway event belongs to (None: a DM or no guild), which decides its shard."""
    if not isinstance(data, dict):
        return None
    gid = data.get("id") if event in _GUILD_KEYED_BY_ID else data.get("guild_id")
    return None if gid is None else str(gid)


@dataclass
class GatewaySession:
    """One IDENTIFYed gateway session (Discord's session_id). `shard` is (shard_id, shard_count)
    from a sharded IDENTIFY, None for an unsharded client (which gets every guild). A RESUME
    attaches the client's new socket to it and replays what it missed."""

    id: str
    shard: tuple[int, int] | None
    intents: int | None
    ws: web.WebSocketResponse | None
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # every dispatch frame, in order

    @property
    def shard_id(self) -> int | None:
        return None if self.shard is None else self.shard[0]

    @property
    def connected(self) -> bool:
        return self.ws is not None and not self.ws.closed

    def owns(self, guild_id: str | None) -> bool:
        return self.shard is None or shard_of(guild_id, self.shard[1]) == self.shard[0]

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The `d` of every event sent on this session (of one type when `event` is given)."""
        return [f["d"] for f in self.sent if event is None or f["t"] == event]


class DiscordEmulator(ThreadsAndComponents, ChannelContent):
    def __init__(self) -> None:
        self.app_id = snowflake()
        self.bot_user = self.user("sourcebot", bot=True, user_id=self.app_id)
        self.owner = self.user("owner")
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, dict[str, Any]] = {}  # every channel, DMs included
        self.calls: list[Call] = []
        self.cdn_calls: list[Call] = []
        self.messages: dict[str, dict[str, Any]] = {}  # channel messages (not ephemeral ones), in order
        self.interactions: dict[str, Interaction] = {}
        self.files: dict[str, tuple[str, bytes, str]] = {}  # attachment id -> (filename, bytes, content type)
        self.expectations: list[Expectation] = []
        self.dms_closed: set[str] = set()
        self.bot_permissions = BOT_PERMISSIONS  # the bot's guild permissions (add MANAGE_THREADS etc. here)
        # The GUILD_MEMBERS privileged intent switched on in the developer portal: without it an IDENTIFY
        # asking for it is closed with 4014 and GET /channels/{thread}/thread-members is 403 50001.
        self.members_intent_enabled = True
        self._bot_roles: dict[str, list[str]] = {}  # guild id -> the bot's roles there (set_member_roles)
        self.sockets: list[web.WebSocketResponse] = []
        self.sessions = 0  # IDENTIFYs so far
        self.resumes = 0
        self.intents: int | None = None  # from the last IDENTIFY
        self.identifies: list[dict[str, Any]] = []  # every IDENTIFY's `d`, token removed
        self.gateway_sessions: list[GatewaySession] = []  # in IDENTIFY order
        self.shard_count: int | None = None  # from add_guild(shard_count=) or the last sharded IDENTIFY
        self.heartbeat_interval_ms = 41250
        self.heartbeats: list[float] = []  # when each client heartbeat arrived
        self.rate_limits: RateLimits | None = None  # Discord's 429s (tests/discord_traffic.py); None: unlimited
        self.holds: list[Hold] = []  # requests kept waiting (hold())
        self._commands: dict[str | None, dict[str, dict[str, Any]]] = {}  # scope (None: global) -> name -> command
        self._command_ids: dict[tuple[str | None, str], str] = {}
        self._menus: dict[str | None, dict[tuple[int, str], dict[str, Any]]] = {}  # scope -> (type, name) -> context menu
        self._users: dict[str, dict[str, Any]] = {self.app_id: self.bot_user}
        self._dms: dict[str, str] = {}  # user id -> DM channel id
        self._sent: list[dict[str, Any]] = []  # every dispatched frame, all sessions (each keeps its own too)
        self._outbox: list[tuple[str, Any]] = []
        self._identified = False
        self._flush_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self.port = 0
        self._setup_threads()
        self._setup_content()  # pins, edits, tags, reactions: tests/discord_content.py
        self.guild_id = self.add_guild("Test Server", channel="questions")
        self.channel_id = self.guilds[self.guild_id].default_channel
        self.moderator_role_id = self.add_role(self.guild_id, "Moderators", EVERYONE_PERMISSIONS)

    # --- fixtures of the world -------------------------------------------------------------
    @staticmethod
    def user(name: str, bot: bool = False, user_id: str | None = None) -> dict[str, Any]:
        return P.user(name, bot, user_id)

    def member(self, name: str, permissions: int = EVERYONE_PERMISSIONS, roles: list[str] | None = None,
               guild: str | None = None) -> Member:
        gid = guild or self.guild_id
        member = Member(self.user(name), roles or [], permissions, gid)
        unknown = [r for r in member.roles if r not in self.guilds[gid].roles]
        if unknown:
            raise ValueError(f"roles {unknown} are not roles of guild {gid}")
        self.guilds[gid].members[member.id] = member
        self._users[member.id] = member.user
        return member

    def add_guild(self, name: str, *, channel: str = "general", owner: dict[str, Any] | None = None,
                  shard: int | None = None, shard_count: int | None = None) -> str:
        """A guild the bot is in, with @everyone and one text channel (Guild.default_channel).
        Added after READY, it reaches the client as GUILD_CREATE (the bot joined it), on the
        session of its shard. With `shard`, its id is picked so that the guild lands on that shard
        of `shard_count` (default: the emulator's shard_count) shards."""
        if shard is None:
            gid = snowflake()
        else:
            count = shard_count or self.shard_count
            if count is None or not 0 <= shard < count:
                raise ValueError(f"shard {shard} needs a shard_count above it (got {count})")
            self.shard_count = self.shard_count or count
            timestamp = next(_SHARD_TIMESTAMPS)
            while timestamp % count != shard:
                timestamp = next(_SHARD_TIMESTAMPS)
            gid = str(timestamp << 22)
        self.guilds[gid] = Guild(gid, name, (owner or self.owner)["id"])
        self.guilds[gid].roles[gid] = P.role(gid, "@everyone", EVERYONE_PERMISSIONS)
        self.guilds[gid].default_channel = self._new_channel(gid, channel, 0)
        # A join has no `unavailable` key (false would mean "back from an outage": guild_available).
        self._announce("GUILD_CREATE", lambda: {k: v for k, v in self._guild(gid).items() if k != "unavailable"})
        return gid

    def add_channel(self, guild: str, name: str, type: int = 0, **extra: Any) -> str:
        """A guild channel (0 text, 2 voice, 4 category, 5 announcement, 15 forum); `extra` goes into
        the channel object (topic=, parent_id=, nsfw=, permission_overwrites=...)."""
        cid = self._new_channel(guild, name, type, **extra)
        self._announce("CHANNEL_CREATE", lambda: self.channels[cid])
        return cid

    def add_role(self, guild: str, name: str, permissions: int = 0, *, position: int = 1) -> str:
        rid = snowflake()
        self.guilds[guild].roles[rid] = P.role(rid, name, permissions, position)
        self._announce("GUILD_ROLE_CREATE", lambda: {"guild_id": guild, "role": self.guilds[guild].roles[rid]})
        return rid

    def set_member_roles(self, guild: str, user_id: str, role_ids: list[str]) -> Member:
        """A moderator gives a member (or the bot: user_id == app_id) exactly these roles. As on
        Discord, the member's later messages and interactions carry the new roles, their
        permissions follow them, and GUILD_MEMBER_UPDATE goes out, to sessions that asked for the
        GUILD_MEMBERS intent only. Returns the member."""
        g = self.guilds[guild]
        unknown = [r for r in role_ids if r not in g.roles or r == g.id]
        if unknown:
            raise ValueError(f"roles {unknown} are not assignable roles of guild {guild}")
        roles = list(dict.fromkeys(str(r) for r in role_ids))  # a new list: payloads already sent keep the old one
        if str(user_id) == self.app_id:
            self._bot_roles[guild] = roles
            member = self._bot_member(guild)
        elif str(user_id) in g.members:
            member = g.members[str(user_id)]
            member.roles = roles
        else:
            raise LookupError(f"user {user_id} is not a member of guild {guild}")
        self._announce("GUILD_MEMBER_UPDATE", {"guild_id": guild, **member.payload()})
        return member

    def set_overwrite(self, channel_id: str, target_id: str, *, allow: int = 0, deny: int = 0) -> None:
        """A channel permission overwrite for a role (or @everyone, id == guild id) or a member."""
        ch = self.channels[str(channel_id)]
        kind = 0 if target_id in self.guilds[ch["guild_id"]].roles else 1
        ch["permission_overwrites"] = [o for o in ch["permission_overwrites"] if o["id"] != target_id] + [
            {"id": target_id, "type": kind, "allow": str(allow), "deny": str(deny)}]
        self._announce("CHANNEL_UPDATE", lambda: ch)

    def deny_bot(self, channel_id: str, permissions: int = SEND_MESSAGES) -> None:
        """Deny the bot `permissions` in a channel: posting there then gets 403 50013 like Discord."""
        self.set_overwrite(channel_id, self.app_id, deny=permissions)

    def dm_channel(self, user: Member | dict[str, Any]) -> str:
        """The DM channel (type 1) between the bot and this user."""
        u = user.user if isinstance(user, Member) else user
        self._users.setdefault(u["id"], u)
        if u["id"] not in self._dms:
            cid = snowflake()
            self._dms[u["id"]] = cid
            self.channels[cid] = P.dm_channel(cid, u)
        return self._dms[u["id"]]

    def attachment(self, filename: str, data: bytes, *, content_type: str | None = None) -> dict[str, Any]:
        """Serve `data` from the emulator's CDN (after start()) and return the attachment object
        Discord sends. Like Discord, spaces in the filename become underscores."""
        if not self.port:
            raise RuntimeError("start() the emulator before making attachments: their URLs need its port")
        aid, filename = snowflake(), filename.replace(" ", "_")
        content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self.files[aid] = (filename, data, content_type)
        base, quoted = f"http://127.0.0.1:{self.port}", urllib.parse.quote(filename)
        return P.attachment(aid, filename, len(data), f"{base}/attachments/{aid}/{quoted}",
                            f"{base}/media/attachments/{aid}/{quoted}", content_type)

    def _new_channel(self, guild: str, name: str, type: int, **extra: Any) -> str:
        cid = snowflake()
        self.channels[cid] = P.channel(cid, guild, name, type, len(self.guilds[guild].channels), **extra)
        self.guilds[guild].channels.append(cid)
        return cid

    # --- permissions -----------------------------------------------------------------------
    def permissions(self, member: Member, channel_id: str | None = None) -> int:
        """What Discord computes for a member: base permissions and roles, then channel overwrites."""
        guild = self.guilds[member.guild_id or self.guild_id]
        base = member.permissions
        for rid in member.roles:
            base |= int(guild.roles[rid]["permissions"])
        if base & ADMINISTRATOR or member.id == guild.owner_id:
            return ALL_PERMISSIONS
        if channel_id is None:
            return base
        ch = self.channels[str(channel_id)]
        if ch["type"] in P.THREAD_TYPES:  # a thread has the permissions of its parent
            ch = self.channels[ch["parent_id"]]
        return P.permissions_in(base, ch["permission_overwrites"], everyone_id=guild.id,
                                role_ids=member.roles, member_id=member.id)

    def _bot_member(self, guild: str) -> Member:
        return Member(self.bot_user, list(self._bot_roles.get(guild, [])), self.bot_permissions, guild)

    def _top_position(self, member: Member) -> int:
        """The position of the member's highest role (0: only @everyone), for Discord's role hierarchy."""
        roles = self.guilds[member.guild_id or self.guild_id].roles
        return max((int(roles[r]["position"]) for r in member.roles if r in roles), default=0)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        app.router.add_get("/attachments/{id}/{filename}", self._cdn)
        app.router.add_get("/media/attachments/{id}/{filename}", self._cdn)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def point_client_here(self) -> None:
        """The two attributes that send an unmodified discord.py to this emulator."""
        discord.http.Route.BASE = f"http://127.0.0.1:{self.port}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{self.port}/")

    # --- gateway ---------------------------------------------------------------------------
    def shard_of(self, guild_id: str | int | None, shard_count: int | None = None) -> int:
        """The shard Discord sends this guild's events to (DMs: shard 0), out of `shard_count`
        (default: the emulator's shard_count; unsharded: 0)."""
        return shard_of(guild_id, shard_count or self.shard_count or 1)

    def session_for(self, guild_id: str | None) -> GatewaySession | None:
        """The session that receives this guild's events (None: a DM): the newest connected one
        running its shard, else the newest such session (its events wait for a RESUME)."""
        owners = [s for s in self.gateway_sessions if s.owns(guild_id)]
        connected = [s for s in owners if s.connected]
        return (connected or owners or [None])[-1]

    def shard_session(self, shard_id: int | None) -> GatewaySession:
        """The newest session that IDENTIFYed for this shard (None: an unsharded session)."""
        for session in reversed(self.gateway_sessions):
            if session.shard_id == shard_id:
                return session
        raise LookupError(f"no gateway session for shard {shard_id}; sessions: "
                          f"{[s.shard for s in self.gateway_sessions]}")

    def sent_on(self, shard_id: int | None, event: str | None = None) -> list[dict[str, Any]]:
        """The events every session of this shard (None: unsharded sessions) has been sent."""
        return [d for s in self.gateway_sessions if s.shard_id == shard_id for d in s.events(event)]

    async def wait_for_sessions(self, *shards: int | None, timeout: float = 60.0) -> list[GatewaySession]:
        """Wait until a connected session runs each of these shards (None: an unsharded one)."""
        deadline = time.monotonic() + timeout
        while True:
            found = {s.shard_id: s for s in self.gateway_sessions if s.connected}
            if all(shard in found for shard in shards):
                return [found[shard] for shard in shards]
            if time.monotonic() > deadline:
                raise AssertionError(f"no connected session for shards {shards} within {timeout}s; "
                                     f"have {sorted(map(str, found))}")
            await asyncio.sleep(0.02)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None})
        session: GatewaySession | None = None  # what this socket IDENTIFYed or RESUMEd
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op = payload["op"]
                if op == 1:
                    self.heartbeats.append(time.monotonic())
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    session = await self._identify(ws, payload["d"])
                    if session is None:
                        break
                elif op == 6:
                    self.resumes += 1
                    d = payload["d"]
                    session = next((s for s in self.gateway_sessions if s.id == d.get("session_id")), None)
                    if session is None:  # Discord: invalid session, not resumable
                        await ws.send_json({"op": 9, "d": False, "s": None, "t": None})
                        continue
                    session.ws = ws
                    last = d.get("seq") or 0
                    for frame in session.sent:
                        if frame["s"] > last:
                            await ws.send_json(frame)
                    await self._send(session, "RESUMED", {})
                elif op == 8 and session is not None:  # request guild members: one chunk with everyone
                    d = payload["d"]
                    for gid in d["guild_id"] if isinstance(d["guild_id"], list) else [d["guild_id"]]:
                        await self._send(session, "GUILD_MEMBERS_CHUNK", {
                            "guild_id": str(gid), "members": self._member_payloads(str(gid), everyone=True),
                            "chunk_index": 0, "chunk_count": 1, "not_found": [], "nonce": d.get("nonce")})
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> GatewaySession | None:
        """Op 2: a new session (for one shard when `shard` is given), READY, then its guilds."""
        shard: tuple[int, int] | None = None
        if d.get("shard") is not None:
            shard = (int(d["shard"][0]), int(d["shard"][1]))
            if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
                await ws.close(code=4010, message=b"Invalid shard")  # what Discord closes with
                return None
            self.shard_count = shard[1]
        if not self.members_intent_enabled and (d.get("intents") or 0) & P.INTENT_GUILD_MEMBERS:
            await ws.close(code=4014, message=b"Disallowed intent(s).")  # privileged, not enabled in the portal
            return None
        self.sessions += 1
        self.intents = d.get("intents")
        self.identifies.append({k: v for k, v in d.items() if k != "token"})
        self._identified = True
        session = GatewaySession(f"session-{self.sessions}", shard, d.get("intents"), ws)
        self.gateway_sessions.append(session)
        await self._send(session, "READY", self._ready(session))
        for gid in self.guilds:
            if session.owns(gid):
                await self._send(session, "GUILD_CREATE", self._guild(gid))
        return session

    async def _send(self, session: GatewaySession | None, event: str, data: Any) -> None:
        if session is None:  # no session runs this shard: Discord would not deliver it either
            return
        needed = EVENT_INTENTS.get(event)
        if needed is not None and session.intents is not None and not session.intents & needed:
            return  # an event of an intent this session did not ask for
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.sent.append(frame)  # kept for RESUME even when no socket is connected right now
        self._sent.append(frame)
        if session.connected:
            try:
                await session.ws.send_json(frame)  # type: ignore[union-attr]
            except (ConnectionError, RuntimeError):
                pass

    async def dispatch(self, event: str, data: Any) -> None:
        """Send an event on the session running its guild's shard (DMs: shard 0)."""
        gid = event_guild(event, data)
        for _ in range(200):  # wait for a connected socket (e.g. during a reconnect)
            session = self.session_for(gid)
            if session is not None and session.connected:
                break
            await asyncio.sleep(0.01)
        await self.settle()
        session = self.session_for(gid)
        if session is None:
            raise RuntimeError(f"no gateway session receives {event} for guild {gid} (shard "
                               f"{self.shard_of(gid)}); sessions: {[s.shard for s in self.gateway_sessions]}")
        await self._send(session, event, data)

    def _announce(self, event: str, data: Any) -> None:
        """Queue a gateway event caused by a change of the world (only once a client is connected)."""
        if not self._identified:
            return
        self._outbox.append((event, data() if callable(data) else data))
        try:
            task = asyncio.get_running_loop().create_task(self.settle())
        except RuntimeError:
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Send the queued gateway events (channel/guild/role changes, echoes of the bot's messages),
        each on the session of its guild's shard."""
        async with self._flush_lock:
            while self._outbox:
                event, data = self._outbox.pop(0)
                await self._send(self.session_for(event_guild(event, data)), event, data)

    async def request_reconnect(self, shard: int | None = None) -> None:
        """Op 7: the client must reconnect and RESUME (default: on the newest socket)."""
        ws = self.sockets[-1] if shard is None else self.shard_session(shard).ws
        assert ws is not None
        await ws.send_json({"op": 7, "d": None, "s": None, "t": None})

    def _wants(self, intent: int) -> bool:
        return self.intents is None or bool(self.intents & intent)

    def _ready(self, session: GatewaySession | None = None) -> dict[str, Any]:
        guilds = [gid for gid in self.guilds if session is None or session.owns(gid)]
        data: dict[str, Any] = {
            "v": 10, "user": self.bot_user, "guilds": [{"id": gid, "unavailable": True} for gid in guilds],
            "session_id": session.id if session else f"session-{self.sessions}",
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/",
            "application": {"id": self.app_id, "flags": 0}, "private_channels": [], "relationships": [],
        }
        if session is not None and session.shard is not None:
            data["shard"] = list(session.shard)  # discord.py's sharded parse_ready needs it (KeyError)
        return data

    def _member_payloads(self, gid: str, everyone: bool) -> list[dict[str, Any]]:
        members = [self._bot_member(gid)] + (list(self.guilds[gid].members.values()) if everyone else [])
        return [m.payload() for m in members]

    def _guild(self, guild_id: str | None = None) -> dict[str, Any]:
        guild = self.guilds[guild_id or self.guild_id]
        return {
            "id": guild.id, "name": guild.name, "owner_id": guild.owner_id, "unavailable": False,
            # Everyone is listed (so member_count == len(members): no chunk wait) when the client
            # asked for the members intent; otherwise Discord lists only the bot itself.
            "member_count": 1 + len(guild.members), "large": False, "features": [], "emojis": [], "stickers": [],
            "threads": self._active_threads(guild.id), "voice_states": [], "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "roles": list(guild.roles.values()), "channels": [self.channels[c] for c in guild.channels],
            "members": self._member_payloads(guild.id, self._wants(P.INTENT_GUILD_MEMBERS) and self.intents is not None),
            "premium_tier": 0, "verification_level": 0, "explicit_content_filter": 0,
            "default_message_notifications": 0, "mfa_level": 0, "system_channel_flags": 0, "preferred_locale": "en-US",
            "nsfw_level": 0, "premium_progress_bar_enabled": False, "joined_at": "2024-01-01T00:00:00+00:00",
        }

    def _message_event(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The MESSAGE_* payload the client gets for this message, or None if its intents exclude it."""
        dm = "guild_id" not in message
        if not self._wants(P.INTENT_DIRECT_MESSAGES if dm else P.INTENT_GUILD_MESSAGES):
            return None
        readable = (dm or message["author"]["id"] == self.app_id or self._wants(P.INTENT_MESSAGE_CONTENT)
                    or any(u["id"] == self.app_id for u in message.get("mentions", [])))
        return message if readable else P.strip_content(message)

    def _echo(self, event: str, message: dict[str, Any]) -> None:
        data = self._message_event(message)
        if data is not None:
            self._announce(event, copy.deepcopy(data))

    # --- things members do -------------------------------------------------------------------
    async def inject_message(
        self, author: Member, content: str, *, mention_bot: bool = False, reply_to: dict[str, Any] | None = None,
        channel: str | None = None, dm: bool = False, attachments: list[dict[str, Any] | tuple[str, bytes]] | None = None,
    ) -> dict[str, Any]:
        """A member posts in a channel (default: their guild's default channel) or, with dm=True,
        in their DM with the bot (no guild_id, no member). Returns the message object."""
        user = author.user if isinstance(author, Member) else author
        channel = str(channel) if channel is not None else None
        if dm or (channel is not None and self.channels.get(channel, {}).get("type") == 1):
            cid, gid = self.dm_channel(user), None
        else:
            gid = (author.guild_id if isinstance(author, Member) else None) or self.guild_id
            cid = channel or self.guilds[gid].default_channel
            if cid not in self.channels:
                raise LookupError(f"channel {cid} does not exist (a deleted thread?)")
            if self.channels[cid].get("guild_id") != gid:
                raise ValueError(f"channel {cid} is not in guild {gid}, where {user['username']} is a member")
            if self.channels[cid]["type"] in P.FORUM_TYPES:
                raise ValueError(f"channel {cid} is a forum: members post there with create_forum_post")
            if self.channels[cid]["type"] in P.THREAD_TYPES and isinstance(author, Member):
                await self._member_posts_in_thread(author, self.channels[cid])
        if mention_bot:
            content = f"<@{self.app_id}> {content}"
        files = [a if isinstance(a, dict) else self.attachment(*a) for a in attachments or []]
        message = self._message(user, content, member=author if gid and isinstance(author, Member) else None,
                                channel_id=cid, guild_id=gid, attachments=files)
        message["mentions"] = [self.bot_user] if mention_bot else []
        if reply_to is not None:
            message["type"] = 19
            message["message_reference"] = {"message_id": reply_to["id"], "channel_id": reply_to["channel_id"],
                                            **({"guild_id": reply_to["guild_id"]} if "guild_id" in reply_to else {})}
            message["referenced_message"] = reply_to
        thread = self.channels[cid] if cid in self.threads else None
        if thread is not None and mention_bot and not self._bot_sees(thread):  # a mention adds the bot to a
            bot = self._bot_member(thread["guild_id"])                          # private thread, if it can
            if self.permissions(bot, thread["parent_id"]) & VIEW_CHANNEL:      # view the channel
                await self.add_thread_member(cid, bot)
        self._stored(message)
        event = self._message_event(message) if thread is None or self._bot_sees(thread) else None
        if event is not None:
            await self.dispatch("MESSAGE_CREATE", event)
        return message

    async def inject_slash(self, member: Member, name: str, /, **options: Any) -> Interaction:
        """Deliver a slash command as Discord would; `name` may be "group sub" or "group subgroup sub".
        Raises LookupError for a command/subcommand that is not synced, PermissionError where Discord
        would not deliver it (default member permissions) and ValueError for bad options."""
        return await self.inject_command(member, name, options)

    async def inject_command(self, member: Member, name: str, options: dict[str, Any] | None = None, *,
                             channel: str | None = None, dm: bool = False) -> Interaction:
        """inject_slash with a channel of the member's guild, or in the member's DM with the bot."""
        return await self._interact(2, member, name, options or {}, channel=channel, dm=dm)

    async def inject_autocomplete(self, member: Member, name: str, focused: str, value: str, *,
                                  options: dict[str, Any] | None = None, channel: str | None = None,
                                  dm: bool = False, timeout: float = INTERACTION_DEADLINE) -> list[dict[str, Any]]:
        """The member types `value` into option `focused`: INTERACTION_CREATE type 4. Returns the
        choices of the bot's type-8 answer (AssertionError if it does not answer in time)."""
        mark = len(self.calls)
        interaction = await self._interact(4, member, name, {**(options or {}), focused: value},
                                           channel=channel, dm=dm, focused=focused)
        call = await self.wait_for_call("POST", rf"/interactions/{interaction.id}/{interaction.token}/callback",
                                        after=mark, timeout=timeout)
        if call.status >= 400 or interaction.choices is None:
            raise AssertionError(f"the autocomplete answer was refused ({call.status}): {call.body}")
        return interaction.choices

    async def _interact(self, kind: int, member: Member, name: str, values: dict[str, Any], *,
                        channel: str | None, dm: bool, focused: str | None = None) -> Interaction:
        top, *path = name.split()
        gid = None if dm else (member.guild_id or self.guild_id)
        cid = self.dm_channel(member) if dm else str(channel or self.guilds[gid].default_channel)  # type: ignore[index]
        if gid is not None and self.channels[cid].get("guild_id") != gid:
            raise ValueError(f"channel {cid} is not in guild {gid}")
        command, scope = self._find_command(top, gid)
        required = command.get("default_member_permissions")
        if gid is not None and required is not None and int(required) & self.permissions(member) != int(required):
            raise PermissionError(f"/{top} needs permissions {required}")
        options, resolved = P.build_options(command, path, values, self._resolver(gid, member, cid), focused)
        token, interaction_id = f"itoken-{snowflake()}", snowflake()
        self.interactions[token] = Interaction(interaction_id, token, time.monotonic(), name, kind=kind,
                                               guild_id=gid, channel_id=cid, user_id=member.id)
        data: dict[str, Any] = {"id": command["id"], "name": top, "type": command.get("type", 1), "options": options}
        if scope is not None:
            data["guild_id"] = scope
        if resolved:
            data["resolved"] = resolved
        await self.dispatch("INTERACTION_CREATE", self._interaction_payload(kind, member, gid, cid, token,
                                                                            interaction_id, data))
        return self.interactions[token]

    def _interaction_payload(self, kind: int, member: Member, gid: str | None, cid: str, token: str,
                             interaction_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """INTERACTION_CREATE as Discord sends it: the full channel (a thread's too: discord.py builds an
        uncached thread from it), the member with roles, flags and permissions, app_permissions, locales."""
        payload: dict[str, Any] = {
            "id": interaction_id, "application_id": self.app_id, "type": kind, "token": token, "version": 1,
            "channel_id": cid, "locale": "en-US", "entitlements": [], "authorizing_integration_owners": {},
            "attachment_size_limit": 8 * 1024 * 1024, "data": data,
        }
        if gid is None:
            payload.update(context=1, user=member.user, channel=self.channels[cid],
                           app_permissions=str(self.bot_permissions))
        else:
            payload.update(context=0, guild_id=gid, guild_locale="en-US",
                           guild={"id": gid, "locale": "en-US", "features": []},
                           channel={**self.channels[cid], "permissions": str(self.permissions(member, cid))},
                           member=member.payload(with_permissions=True, permissions=self.permissions(member, cid)),
                           app_permissions=str(self.permissions(self._bot_member(gid), cid)))
        return payload

    def _find_command(self, name: str, guild_id: str | None) -> tuple[dict[str, Any], str | None]:
        for scope in ([guild_id] if guild_id else []) + [None]:
            command = self._commands.get(scope, {}).get(name)
            if command is None or command.get("type", 1) != 1:
                continue
            contexts = command.get("contexts")
            if guild_id is None and (command.get("dm_permission") is False or (contexts is not None and 1 not in contexts)):
                raise LookupError(f"/{name} is not available in DMs")
            if guild_id is not None and contexts is not None and 0 not in contexts:
                raise LookupError(f"/{name} is not available in guilds")
            return command, scope
        raise LookupError(f"/{name} is not synced" + (f" for guild {guild_id}" if guild_id else " globally"))

    def _resolver(self, gid: str | None, invoker: Member, cid: str) -> P.Resolver:
        def resolve(opt: dict[str, Any], value: Any) -> tuple[Any, dict[str, dict[str, Any]]]:
            kind, name = opt["type"], opt["name"]
            if kind == 11:
                att = value if isinstance(value, dict) else self.attachment(*value)
                return att["id"], {"attachments": {att["id"]: {**att, "ephemeral": True}}}
            if kind in (6, 9) and isinstance(value, (Member, dict)):
                u = value.user if isinstance(value, Member) else value
                found: dict[str, dict[str, Any]] = {"users": {u["id"]: u}}
                if isinstance(value, Member) and gid is not None and value.id in self.guilds[gid].members:
                    data = value.payload(with_permissions=True, permissions=self.permissions(value, cid))
                    found["members"] = {u["id"]: {k: v for k, v in data.items() if k != "user"}}
                return u["id"], found
            value = str(value)
            if kind in (8, 9) and gid is not None and value in self.guilds[gid].roles:
                return value, {"roles": {value: self.guilds[gid].roles[value]}}
            if kind == 7 and value in self.channels and (gid is None or self.channels[value].get("guild_id") == gid):
                ch = self.channels[value]
                if opt.get("channel_types") and ch["type"] not in opt["channel_types"]:
                    raise ValueError(f"option {name}: channel type {ch['type']} not in {opt['channel_types']}")
                perms = self.permissions(invoker, value) if gid is not None else self.bot_permissions
                return value, {"channels": {value: {**{k: v for k, v in ch.items() if k != "permission_overwrites"},
                                                    "permissions": str(perms)}}}
            what = {6: "user", 7: "channel", 8: "role", 9: "user or role"}.get(kind)
            raise ValueError(f"option {name}: {value!r} is not a {what} of this guild" if what
                             else f"option {name}: unsupported option type {kind}")
        return resolve

    # --- CDN -------------------------------------------------------------------------------
    async def _cdn(self, request: web.Request) -> web.Response:
        call = Call("GET", request.path, None, time.monotonic(), query=dict(request.query))
        self.cdn_calls.append(call)
        stored = self.files.get(request.match_info["id"])
        if stored is None or stored[0] != request.match_info["filename"]:
            response = web.Response(status=404, text="Not Found")
        else:
            response = web.Response(body=stored[1], headers={"Content-Type": stored[2]})
        call.status = response.status
        self._match_expectations(call)
        return response

    # --- REST ------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body: Any = None
        if request.content_type.startswith("multipart/"):
            body = {"multipart": True, "files": []}
            async for part in await request.multipart():
                raw = await part.read(decode=False)  # type: ignore[union-attr]
                if part.name == "payload_json":
                    body.update(json.loads(raw))
                else:
                    body["files"].append({"field": part.name, "filename": part.filename, "size": len(raw),  # type: ignore[union-attr]
                                          "content_type": part.headers.get("Content-Type"), "data": bytes(raw)})
        elif request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json":
                body = json.loads(raw)
        call = Call(request.method, path, body, time.monotonic(), query=dict(request.query))
        self.calls.append(call)
        for hold in [h for h in self.holds if h.matches(request.method, path)]:
            hold.waiting += 1
            await hold.released.wait()
            if request.transport is None or request.transport.is_closing():  # the client is gone: never done
                call.status, call.expected = 499, True
                return web.Response(status=499)
        limited, headers = self.rate_limits.admit(request.method, path) if self.rate_limits else (None, {})
        response = limited or self._route(request.method, path, body, call.query)
        response.headers.update(headers)
        call.status = response.status
        if limited is not None:
            call.expected = True  # Discord's doing: tests read rate_limits.hits
        elif response.status >= 400:
            call.code = json.loads(response.body).get("code")  # type: ignore[arg-type]
            self._match_expectations(call)
        await self.settle()  # gateway events caused by this call go out before the HTTP answer
        async with self._changed:
            self._changed.notify_all()
        return response

    def _route(self, method: str, path: str, body: Any, query: dict[str, str] | None = None) -> web.Response:
        app, query = self.app_id, query or {}
        if (method, path) == ("GET", "/users/@me"):
            return json_response(self.bot_user)
        if (method, path) == ("GET", "/oauth2/applications/@me"):
            return json_response({"id": app, "name": "sourcebot", "description": "", "icon": None, "bot_public": True,
                                  "bot_require_code_grant": False, "owner": self.owner, "verify_key": "00", "flags": 0})
        if m := re.fullmatch(rf"/applications/{app}(?:/guilds/(\d+))?/commands", path):
            return self._commands_route(method, m.group(1), body)
        if (method, path) == ("POST", "/users/@me/channels"):
            recipient = self._users.get(str((body or {}).get("recipient_id")))
            if recipient is None:
                return error(400, 50035, "Invalid Form Body: recipient_id: Unknown User")
            return json_response(self.channels[self.dm_channel(recipient)])
        if method == "GET" and (m := re.fullmatch(r"/users/(\d+)", path)):
            return json_response(self._users[m.group(1)]) if m.group(1) in self._users else error(404, 10013, "Unknown User")
        if method in ("PUT", "DELETE") and (m := re.fullmatch(r"/guilds/(\d+)/members/(\d+)/roles/(\d+)", path)):
            return self._member_role_route(method, m.group(1), m.group(2), m.group(3))
        if method == "GET" and (m := re.fullmatch(r"/guilds/(\d+)/members/(\d+)", path)):
            guild = self.guilds.get(m.group(1))
            member = guild and (guild.members.get(m.group(2)) or (self._bot_member(guild.id) if m.group(2) == app else None))
            return json_response(member.payload()) if member else error(404, 10007, "Unknown Member")
        if method == "POST" and (m := re.fullmatch(r"/channels/(\d+)/messages/(\d+)/threads", path)):
            return self._start_thread_route(m.group(1), m.group(2), body)
        if method == "POST" and (m := re.fullmatch(r"/channels/(\d+)/threads", path)):
            return self._create_thread_route(m.group(1), body)
        if m := re.fullmatch(r"/channels/(\d+)/thread-members(?:/(@me|\d+))?", path):
            return self._thread_member_route(method, m.group(1), m.group(2), query)
        if (content := self._content_route(method, path, query)) is not None:  # pins, archived threads
            return content
        if m := re.fullmatch(r"/channels/(\d+)(/typing|/messages(?:/(\d+))?)?", path):
            return self._channel_route(method, m.group(1), m.group(2) or "", m.group(3), body, query)
        if method == "POST" and (m := re.fullmatch(r"/interactions/(\d+)/([\w-]+)/callback", path)):
            return self._callback(m.group(2), body, query)
        if m := re.fullmatch(rf"/webhooks/{app}/([\w-]+)(?:/messages/(@original|\d+))?", path):
            return self._webhook(method, m.group(1), m.group(2), body, query)
        return error(404, 0, f"emulator has no route for {method} {path}")

    def _member_role_route(self, method: str, gid: str, uid: str, rid: str) -> web.Response:
        """PUT/DELETE /guilds/{g}/members/{u}/roles/{r}: the bot gives or takes a role. Discord
        wants MANAGE_ROLES and the role below the bot's highest role (unless the bot owns the guild);
        204, then GUILD_MEMBER_UPDATE when the roles changed."""
        guild = self.guilds.get(gid)
        if guild is None:
            return error(404, 10004, "Unknown Guild")
        member = self._bot_member(gid) if uid == self.app_id else guild.members.get(uid)
        if member is None:
            return error(404, 10007, "Unknown Member")
        role = guild.roles.get(rid)
        if role is None or rid == gid:
            return error(404, 10011, "Unknown Role")
        bot = self._bot_member(gid)
        if not self.permissions(bot) & MANAGE_ROLES:
            return error(403, 50013, "Missing Permissions")
        if guild.owner_id != self.app_id and int(role["position"]) >= self._top_position(bot):
            return error(403, 50013, "Missing Permissions")  # Discord's role hierarchy
        roles = [r for r in member.roles if r != rid] + ([rid] if method == "PUT" else [])
        if set(roles) != set(member.roles):
            self.set_member_roles(gid, uid, roles)
        return web.Response(status=204)

    def _commands_route(self, method: str, guild: str | None, body: Any) -> web.Response:
        if guild is not None and guild not in self.guilds:
            return error(403, 50001, "Missing Access")
        if method == "PUT":
            problem = P.check_commands(body)
            if problem:
                return error(400, 50035, f"Invalid Form Body: {problem}")
            self._commands[guild], self._menus[guild] = {}, {}
            for command in body:
                kind = command.get("type", 1)
                key = (guild, command["name"] if kind == 1 else f"{kind}:{command['name']}")
                self._command_ids.setdefault(key, snowflake())  # Discord keeps ids of re-synced names
                stored = {"type": 1, "description": "", **command, "id": self._command_ids[key], "application_id": self.app_id,
                          "version": "1", **({"guild_id": guild} if guild else {})}
                if kind == 1:
                    self._commands[guild][command["name"]] = stored
                else:
                    self._menus[guild][(kind, command["name"])] = stored
        elif method != "GET":
            return error(405, 0, "405: Method Not Allowed")
        return json_response(list(self._commands.get(guild, {}).values()) + list(self._menus.get(guild, {}).values()))

    @property
    def commands(self) -> dict[str, dict[str, Any]]:
        """Synced chat commands a member of the default guild sees: global ones, then the guild's."""
        return {**self._commands.get(None, {}), **self._commands.get(self.guild_id, {})}

    @commands.setter
    def commands(self, value: dict[str, dict[str, Any]]) -> None:
        self._commands = {self.guild_id: dict(value)}

    # --- message context menus (Apps → "Correct this answer") ---------------------------------
    @property
    def message_commands(self) -> dict[str, dict[str, Any]]:
        """Synced message context-menu commands (type 3) a member of the default guild sees, by name."""
        return {name: cmd for scope in (None, self.guild_id) for (kind, name), cmd in self._menus.get(scope, {}).items()
                if kind == 3}

    async def inject_message_command(self, member: Member, name: str, message: dict[str, Any] | str) -> Interaction:
        """The member right-clicks a message → Apps → `name`: INTERACTION_CREATE type 2 with
        data.type 3, `target_id` and the message in `resolved.messages`, in the message's channel,
        as Discord sends it. Raises LookupError for a menu that is not synced (or a message that
        does not exist), PermissionError where Discord's client does not offer it (the command's
        default member permissions, a channel the member cannot see) and ValueError for an
        ephemeral message (it has no context menu)."""
        mid = str(message["id"] if isinstance(message, dict) else message)
        stored, owner = self._find_message(mid)
        if owner is not None:
            raise ValueError(f"message {mid} is ephemeral: Discord offers no apps on it")
        gid, cid = stored.get("guild_id"), stored["channel_id"]
        command = self._menus.get(gid, {}).get((3, name)) or self._menus.get(None, {}).get((3, name))
        if command is None:
            raise LookupError(f"message command {name!r} is not synced")
        if gid is not None:
            if command.get("contexts") is not None and 0 not in command["contexts"]:
                raise LookupError(f"message command {name!r} is not available in guilds")
            required = command.get("default_member_permissions")
            if required is not None and int(required) & self.permissions(member) != int(required):
                raise PermissionError(f"{name!r} needs permissions {required}")
            if not self.permissions(member, cid) & P.VIEW_CHANNEL:
                raise PermissionError(f"{member.user['username']} cannot see channel {cid}")
        elif command.get("dm_permission") is False or (command.get("contexts") is not None and 1 not in command["contexts"]):
            raise LookupError(f"message command {name!r} is not available in DMs")
        token, interaction_id = f"itoken-{snowflake()}", snowflake()
        self.interactions[token] = Interaction(interaction_id, token, time.monotonic(), name, kind=2, guild_id=gid,
                                               channel_id=cid, user_id=member.id)
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": 3, "target_id": mid,
                                "resolved": {"messages": {mid: copy.deepcopy(stored)}}}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        await self.dispatch("INTERACTION_CREATE", self._interaction_payload(2, member, gid, cid, token, interaction_id, data))
        return self.interactions[token]

    def guild_commands(self, guild: str | None) -> dict[str, dict[str, Any]]:
        """Commands synced for one guild (None: the global ones)."""
        return self._commands.get(guild, {})

    def _channel_route(self, method: str, cid: str, what: str, mid: str | None, body: Any,
                       query: dict[str, str] | None = None) -> web.Response:
        ch = self.channels.get(cid)
        if ch is None:
            return error(404, 10003, "Unknown Channel")
        guild = ch.get("guild_id")
        perms = self.permissions(self._bot_member(guild), cid) if guild else ALL_PERMISSIONS
        in_thread = ch["type"] in P.THREAD_TYPES
        if not perms & VIEW_CHANNEL or (in_thread and not self._bot_sees(ch)):
            return error(403, 50001, "Missing Access")
        if what == "" and method == "GET":
            return json_response(ch)
        if what == "" and in_thread:
            return self._thread_route(method, ch, perms, body)
        if what == "/typing" and method == "POST":
            send = SEND_MESSAGES_IN_THREADS if in_thread else SEND_MESSAGES
            return web.Response(status=204) if perms & send else error(403, 50013, "Missing Permissions")
        if what == "/messages" and method == "POST":
            return self._post_message(ch, perms, body or {})
        if what == "/messages" and method == "GET":
            return self._history(cid, query or {}) if perms & READ_MESSAGE_HISTORY else error(403, 50001, "Missing Access")
        if what.startswith("/messages/") and mid is not None:
            message = self.messages.get(mid)
            if message is None or message["channel_id"] != cid:
                return error(404, 10008, "Unknown Message")
            mine = message["author"]["id"] == self.app_id
            if method == "GET":
                return json_response(message) if perms & READ_MESSAGE_HISTORY else error(403, 50001, "Missing Access")
            if method in ("DELETE", "PATCH") and in_thread and ch["thread_metadata"]["archived"]:
                return error(400, 50083, "Thread is archived")
            if method == "DELETE":
                if not mine and not perms & MANAGE_MESSAGES:
                    return error(403, 50013, "Missing Permissions")
                self._unstored(mid)
                self._announce("MESSAGE_DELETE", {"id": mid, "channel_id": cid, **({"guild_id": guild} if guild else {})})
                return web.Response(status=204)
            if method == "PATCH":
                if not mine:
                    return error(403, 50005, "Cannot edit a message authored by another user")
                problem = P.check_message(body, edit=True, current=message)
                if problem:
                    return error(*problem)
                self._apply_edit(message, body or {})
                self._bot_wrote(message)
                self._echo("MESSAGE_UPDATE", message)
                return json_response(message)
        return error(405, 0, "405: Method Not Allowed")

    def _post_message(self, ch: dict[str, Any], perms: int, body: dict[str, Any]) -> web.Response:
        if ch["type"] in P.NON_TEXT_CHANNELS:
            return error(400, 50008, "Cannot send messages in a non-text channel")
        if ch["type"] == 1 and ch["recipients"][0]["id"] in self.dms_closed:
            return error(403, 50007, "Cannot send messages to this user")
        in_thread = ch["type"] in P.THREAD_TYPES
        if in_thread and (problem := self._thread_send_problem(ch, perms)):
            return problem
        send = SEND_MESSAGES_IN_THREADS if in_thread else SEND_MESSAGES  # a thread needs its own permission
        if not perms & send or (body.get("files") and not perms & ATTACH_FILES):
            return error(403, 50013, "Missing Permissions")
        problem = P.check_message(body) or self._check_upload(body)
        if problem:
            return error(*problem)
        ref = body.get("message_reference")
        referenced = self.messages.get(str(ref.get("message_id"))) if ref else None
        if ref and referenced is None and ref.get("fail_if_not_exists", True):
            return error(400, 50035, "Invalid Form Body: message_reference: Unknown message")
        if ref and not perms & READ_MESSAGE_HISTORY:
            return error(403, 50013, "Missing Permissions")
        guild = ch.get("guild_id")
        message = self._message(self.bot_user, body.get("content") or "", embeds=body.get("embeds") or [],
                                channel_id=ch["id"], guild_id=guild, attachments=self._uploads(body),
                                member=self._bot_member(guild) if guild else None,
                                components=body.get("components") or [])
        message["flags"] = int(body.get("flags") or 0) & P.SENDABLE_FLAGS
        if referenced is not None:
            message["type"] = 19
            message["message_reference"] = {k: str(v) for k, v in ref.items() if k != "fail_if_not_exists"}
            message["referenced_message"] = referenced
        self._stored(message)
        self._bot_wrote(message)
        self._echo("MESSAGE_CREATE", message)
        return json_response(message)

    def _check_upload(self, body: dict[str, Any]) -> tuple[int, int, str] | None:
        if sum(f["size"] for f in body.get("files") or []) > UPLOAD_LIMIT:
            return 413, 40005, "Request entity too large"
        return None

    def _uploads(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.attachment(f["filename"], f["data"], content_type=f["content_type"]) for f in body.get("files") or []]

    def _apply_edit(self, message: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("content", "embeds", "components"):  # null clears, like Discord
            if key in body:
                message[key] = body[key] if body[key] is not None else ("" if key == "content" else [])
        if "attachments" in body or body.get("files"):  # `attachments` lists the ones kept
            kept = {str(a.get("id")) for a in body.get("attachments") or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in kept] + self._uploads(body)
        if body.get("flags") is not None:  # only SUPPRESS_EMBEDS can change; ephemeral is fixed at creation
            message["flags"] = (message["flags"] & ~P.SUPPRESS_EMBEDS) | (int(body["flags"]) & P.SUPPRESS_EMBEDS)
        message["flags"] &= ~P.LOADING
        message["edited_timestamp"] = P.TIMESTAMP

    # --- interaction responses ---------------------------------------------------------------
    _ALLOWED_RESPONSES = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}

    def _check_message(self, body: Any, edit: bool = False) -> web.Response | None:
        """(Kept for callers of the old helper.) The error response Discord gives this body, or None."""
        problem = P.check_message(body, edit=edit)
        return error(*problem) if problem else None

    def _callback(self, token: str, body: Any, query: dict[str, str] | None = None) -> web.Response:
        query = {"with_response": "1"} if query is None else query
        interaction = self.interactions.get(token)
        if interaction is None:
            return error(404, 10062, "Unknown interaction")
        if time.monotonic() - interaction.created > INTERACTION_DEADLINE:
            interaction.late = True
            return error(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            return error(400, 40060, "Interaction has already been acknowledged.")
        kind = body["type"]
        data = {**(body.get("data") or {}), **({"files": body["files"]} if body.get("files") else {})}
        if kind not in self._ALLOWED_RESPONSES.get(interaction.kind, set()):
            return error(400, 50035, f"Invalid Form Body: type: callback type {kind} is not valid for interaction type {interaction.kind}")
        problem = P.check_message(data) if kind == 4 else self._component_callback_problem(interaction, kind, data)
        if kind == 8 and (why := P.check_choices(data)):
            problem = (400, 50035, f"Invalid Form Body: data.{why}")
        if problem or (kind == 4 and (problem := self._check_upload(data))):
            return error(*problem)
        interaction.acknowledged = True
        interaction.response = body
        if kind == 8:
            interaction.choices = data["choices"]
        message = None
        if kind in (4, 5):
            flags = int(data.get("flags") or 0) & (EPHEMERAL | P.SENDABLE_FLAGS) | (P.LOADING if kind == 5 else 0)
            message = self._response_message(interaction, data if kind == 4 else {}, flags, original=True)
            interaction.original = message
            self._bot_wrote(message)
            if not flags & EPHEMERAL:
                self._stored(message)
                self._echo("MESSAGE_CREATE", message)
        elif kind in (6, 7, 9):
            message = self._component_callback(interaction, kind, data)
        if query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        target = interaction.original if kind in (6, 7) else message
        reply: dict[str, Any] = {"interaction": {
            "id": interaction.id, "type": interaction.kind, "response_message_id": target and target["id"],
            "response_message_loading": kind == 5, "response_message_ephemeral": bool(target and target["flags"] & EPHEMERAL)}}
        if message is not None:
            reply["resource"] = {"type": kind, "message": message}
        elif kind == 9:
            reply["resource"] = {"type": 9}
        return json_response(reply)

    def _response_message(self, interaction: Interaction, data: dict[str, Any], flags: int, original: bool) -> dict[str, Any]:
        message = self._message(self.bot_user, data.get("content") or "", embeds=data.get("embeds") or [],
                                channel_id=interaction.channel_id, guild_id=interaction.guild_id,
                                attachments=self._uploads(data), flags=flags, components=data.get("components") or [])
        message.update(webhook_id=self.app_id, application_id=self.app_id, type=20 if original else 0)
        return message

    def _webhook(self, method: str, token: str, target: str | None, body: Any, query: dict[str, str]) -> web.Response:
        interaction = self.interactions.get(token)
        if interaction is None or interaction.response_type not in (4, 5, 6, 7, 9):
            return error(404, 10015, "Unknown Webhook")  # no webhook before the first response
        body = body or {}
        if target is None:
            if method != "POST":
                return error(405, 0, "405: Method Not Allowed")
            problem = P.check_message(body) or self._check_upload(body)
            if problem:
                return error(*problem)
            original = interaction.original
            if original is not None and original["flags"] & P.LOADING:  # the first followup fills the deferred
                self._apply_edit(original, body)                         # message and keeps its ephemeral flag
                message, event = original, "MESSAGE_UPDATE"
            else:
                flags = int(body.get("flags") or 0) & (EPHEMERAL | P.SENDABLE_FLAGS)
                message, event = self._response_message(interaction, body, flags, original=False), "MESSAGE_CREATE"
            interaction.followups.append(message)
            self._bot_wrote(message)
            if not message["flags"] & EPHEMERAL:
                self._stored(message)
                self._echo(event, message)
            return json_response(message) if query.get("wait") in ("1", "true", "True") else web.Response(status=204)
        message = interaction.original if target == "@original" else next(
            (m for m in interaction.followups if m["id"] == target), None)
        if message is None or message.get("_deleted"):
            return error(404, 10008, "Unknown Message")
        if method == "GET":
            return json_response(message)
        if method == "DELETE":
            message["_deleted"] = True
            if self._unstored(message["id"]) is not None:
                self._announce("MESSAGE_DELETE", {"id": message["id"], "channel_id": message["channel_id"],
                                                  **({"guild_id": message["guild_id"]} if "guild_id" in message else {})})
            return web.Response(status=204)
        if method != "PATCH":
            return error(405, 0, "405: Method Not Allowed")
        problem = P.check_message(body, edit=True, current=message) or self._check_upload(body)
        if problem:
            return error(*problem)
        self._apply_edit(message, body)
        self._bot_wrote(message)
        if target == "@original":
            interaction.edits.append(copy.deepcopy(message))
        if not message["flags"] & EPHEMERAL:
            self._echo("MESSAGE_UPDATE", message)
        return json_response(message)

    def _message(self, author: dict[str, Any], content: str, *, member: Member | None = None,
                 embeds: list[dict[str, Any]] | None = None, channel_id: str | None = None,
                 guild_id: str | None = _DEFAULT, attachments: list[dict[str, Any]] | None = None,
                 flags: int = 0, components: list[dict[str, Any]] | None = None,
                 message_id: str | None = None) -> dict[str, Any]:
        return P.message(author, content, channel_id=channel_id or self.channel_id,
                         guild_id=self.guild_id if guild_id is _DEFAULT else guild_id,
                         member=member.payload() if member is not None else None, embeds=embeds,
                         attachments=attachments, flags=flags, components=components, message_id=message_id)

    # --- assertions ------------------------------------------------------------------------
    async def wait_for_call(self, method: str, pattern: str, *, after: int = 0, timeout: float = 20.0,
                            where: Any = None) -> Call:
        """The first recorded call (from index `after`) matching method and path regex."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                for call in self.calls[after:]:
                    if call.method == method and re.fullmatch(pattern, call.path) and (where is None or where(call)):
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(c.method, c.path) for c in self.calls[after:]]
                    raise AssertionError(f"no {method} {pattern} within {timeout}s; saw {seen}")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass

    def hold(self, method: str, pattern: str) -> Hold:
        """Keep matching REST calls waiting until `.release()` (a call whose client died meanwhile
        is dropped): the bot is then in the middle of that call, e.g. to kill it mid-answer."""
        hold = Hold(method, pattern)
        self.holds.append(hold)
        return hold

    async def replay(self, message: dict[str, Any]) -> None:
        """Deliver a member's message's MESSAGE_CREATE again, as Discord may after a gateway resume."""
        event = self._message_event(message)
        if event is not None:
            await self.dispatch("MESSAGE_CREATE", copy.deepcopy(event))

    def calls_to(self, method: str, pattern: str, after: int = 0) -> list[Call]:
        return [c for c in self.calls[after:] if c.method == method and re.fullmatch(pattern, c.path)]

    def messages_in(self, channel_id: str, *, from_bot: bool | None = None) -> list[dict[str, Any]]:
        """The messages now in a channel or thread, oldest first (members' and the bot's; from_bot filters)."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id)
                and (from_bot is None or (m["author"]["id"] == self.app_id) == from_bot)]

    def original_edits(self, token: str) -> list[dict[str, Any]]:
        """The original response of an interaction after each PATCH .../messages/@original, in order."""
        return self.interactions[token].edits

    def expect_error(self, status: int, code: int | None = None, *, method: str | None = None,
                     path: str | None = None) -> Expectation:
        """Declare that the bot may provoke this 4xx; matching calls are exempt from unexpected_errors()."""
        expectation = Expectation(status, code, method, path)
        self.expectations.append(expectation)
        return expectation

    def _match_expectations(self, call: Call) -> None:
        for expectation in self.expectations:
            if expectation.matches(call):
                call.expected = True
                expectation.calls.append(call)
                return

    def unexpected_errors(self) -> list[Call]:
        """REST and CDN calls Discord refused (status >= 400) that no expect_error() covered."""
        return [c for c in self.calls + self.cdn_calls if c.status >= 400 and not c.expected]
