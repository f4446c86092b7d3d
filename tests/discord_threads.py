"""Threads, forum posts, message components and modals for tests/discord_emulator.py (a mixin of
DiscordEmulator; it uses the emulator's world, gateway and REST recording).

Threads are channels (type 10/11/12) kept in `emulator.channels` beside the others, with a
`parent_id`; `emulator.threads` lists them. Permissions inside a thread are the parent's, and
posting needs SEND_MESSAGES_IN_THREADS instead of SEND_MESSAGES, as on Discord. Active threads
are listed in GUILD_CREATE.threads, so a bot that reconnects (or a new bot on the same emulator)
caches them again; messages and their components outlive a bot the same way.

What the bot can do (REST), with Discord's answers:
- POST /channels/{c}/messages/{m}/threads: a public thread on a message (thread id == message id).
  403 50013 without CREATE_PUBLIC_THREADS in the parent, 400 160004 for a second thread on a
  message, 400 50024 in a thread, DM or forum. THREAD_CREATE (newly_created, with the bot as
  `member`) and MESSAGE_UPDATE of the starter message (`thread`, flag HAS_THREAD) go out before the 201.
- POST /channels/{forum}/threads: a forum post (`name` + `message`); the reply is the thread plus
  `message`, whose id is the thread id. POST /channels/{text}/threads: a thread without a message.
- GET/PATCH/DELETE /channels/{thread}: PATCH archives/unarchives/renames (THREAD_UPDATE), DELETE
  (MANAGE_THREADS) removes it and its messages (THREAD_DELETE). An archived thread refuses
  messages and edits with 400 50083; a deleted one is 404 10003.
- PUT/DELETE /channels/{thread}/thread-members/@me; GET /channels/{c}/messages (history).
- GET /channels/{thread}/thread-members (403 50001 without the GUILD_MEMBERS privileged intent
  enabled: `members_intent_enabled`; `with_member=true` adds each guild member and pages with
  after/limit), GET/PUT/DELETE /channels/{thread}/thread-members/{user} (PUT: may post in the
  thread; DELETE: MANAGE_THREADS or the private thread's creator): THREAD_MEMBERS_UPDATE.

Private threads (type 12), as on Discord: only their members and those with MANAGE_THREADS in
the parent see them. The bot gets THREAD_CREATE (and GUILD_CREATE.threads lists one) only when it
can see it, its REST calls on one it cannot see are 403 50001, and a member's message there
reaches it only then; a member's message that mentions the bot adds it to the thread first
(THREAD_CREATE, then THREAD_MEMBERS_UPDATE). THREAD_MEMBERS_UPDATE about others goes out only with
the GUILD_MEMBERS intent.

What members do (test helpers): start_thread, start_private_thread (with `invite=`),
add_thread_member / remove_thread_member, create_forum_post, inject_message(channel=thread)
(a member's message revives an archived, unlocked thread as Discord's client does),
archive_thread / unarchive_thread / delete_thread (a moderator), click / choose (a button or
select menu of a message: INTERACTION_CREATE type 3) and submit_modal (type 5, only for a modal
the bot opened on that member's interaction). Components the bot sends are validated like
Discord (400 50035) and kept on the stored message; callback 6/7 act on the clicked message and
9 opens a modal (validated too).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests import discord_payloads as P
from tests.discord_payloads import Interaction, Member, error, json_response, snowflake

# A member cannot click a button (or submit a modal) within this many seconds of the bot's
# HTTP answer that created it: discord.py stores a View/Modal only after reading that answer,
# and an interaction that arrives first is dropped silently (notes 2, section 4).
UI_SETTLE = 0.1


class ThreadsAndComponents:
    """Mixed into DiscordEmulator; see the module docstring."""

    def _setup_threads(self) -> None:
        self._thread_members: dict[str, set[str]] = {}  # thread id -> user ids
        self._ui_written: dict[str, float] = {}  # message id -> when the bot last wrote its components

    # --- the world ---------------------------------------------------------------------------
    @property
    def threads(self) -> dict[str, dict[str, Any]]:
        """Every thread that exists now (archived ones too), id -> the live channel object."""
        return {cid: ch for cid, ch in self.channels.items() if ch["type"] in P.THREAD_TYPES}

    def thread_members(self, thread_id: str) -> set[str]:
        """The user ids that joined a thread (its creator, everyone who posted, the bot once it posts)."""
        return set(self._thread_members.get(str(thread_id), set()))

    def _open_thread(self, parent: dict[str, Any], owner_id: str, name: str, *, type: int = 11,
                     auto_archive_duration: int = 1440, thread_id: str | None = None,
                     rate_limit_per_user: int = 0, applied_tags: list[str] | None = None,
                     invited: tuple[str, ...] = ()) -> dict[str, Any]:
        tid = thread_id or snowflake()
        thread = P.thread(tid, parent["guild_id"], parent["id"], owner_id, name, type=type,
                          auto_archive_duration=auto_archive_duration, rate_limit_per_user=rate_limit_per_user,
                          applied_tags=applied_tags)
        self.channels[tid] = thread
        self._thread_members[tid] = set()
        self._join_thread(thread, owner_id)
        for user_id in invited:
            self._join_thread(thread, user_id)
        if parent["type"] in P.FORUM_TYPES:
            parent["last_message_id"] = tid
        create: dict[str, Any] = {**thread, "newly_created": True}
        if self.app_id in self._thread_members[tid]:
            create["member"] = P.thread_member(tid, self.app_id)
        if self._bot_sees(thread):  # a private thread reaches only its members and moderators
            self._announce("THREAD_CREATE", lambda: copy.deepcopy(create))
        return thread

    def _bot_sees(self, thread: dict[str, Any]) -> bool:
        """Whether the bot can see this thread: a private one only as a member or with MANAGE_THREADS
        in the parent (the parent's VIEW_CHANNEL is checked by the routes)."""
        if thread["type"] != 12 or self.app_id in self._thread_members.get(thread["id"], set()):
            return True
        return bool(self.permissions(self._bot_member(thread["guild_id"]), thread["parent_id"]) & P.MANAGE_THREADS)

    def _members_changed(self, thread: dict[str, Any], added: tuple[str, ...] = (), removed: tuple[str, ...] = ()) -> None:
        """THREAD_MEMBERS_UPDATE: about anyone with the GUILD_MEMBERS intent, else only about the bot."""
        if self.app_id not in added + removed and not self._wants(P.INTENT_GUILD_MEMBERS):
            return
        guild = self.guilds[thread["guild_id"]]
        members = [guild.members.get(u) or (self._bot_member(guild.id) if u == self.app_id else None) for u in added]
        data: dict[str, Any] = {"id": thread["id"], "guild_id": thread["guild_id"], "member_count": thread["member_count"]}
        if added:
            data["added_members"] = [{**P.thread_member(thread["id"], u), **({"member": m.payload()} if m else {}),
                                      "presence": None} for u, m in zip(added, members, strict=True)]
        if removed:
            data["removed_member_ids"] = list(removed)
        self._announce("THREAD_MEMBERS_UPDATE", data)

    def _join_thread(self, thread: dict[str, Any], user_id: str) -> None:
        members = self._thread_members.setdefault(thread["id"], set())
        if user_id not in members:
            members.add(user_id)
            thread["member_count"] = min(len(members), 50)  # Discord stops counting at 50

    def _thread_payload(self, thread: dict[str, Any]) -> dict[str, Any]:
        """The thread as GUILD_CREATE lists it (`member` when the bot has joined)."""
        joined = self.app_id in self._thread_members.get(thread["id"], set())
        return {**thread, **({"member": P.thread_member(thread["id"], self.app_id)} if joined else {})}

    def _active_threads(self, guild_id: str) -> list[dict[str, Any]]:
        return [self._thread_payload(t) for t in self.threads.values()
                if t["guild_id"] == guild_id and not t["thread_metadata"]["archived"] and self._bot_sees(t)]

    def _thread(self, thread_id: str | int) -> dict[str, Any]:
        thread = self.channels.get(str(thread_id))
        if thread is None or thread["type"] not in P.THREAD_TYPES:
            raise LookupError(f"thread {thread_id} does not exist (deleted, or not a thread)")
        return thread

    def _set_archived(self, thread: dict[str, Any], archived: bool, locked: bool | None = None) -> None:
        meta = thread["thread_metadata"]
        if meta["archived"] != archived:
            meta["archive_timestamp"] = P.TIMESTAMP
        meta["archived"] = archived
        if locked is not None:
            meta["locked"] = locked

    def _stored(self, message: dict[str, Any]) -> dict[str, Any]:
        """Keep a channel message (and count it in its thread). Like Discord, the channel's
        `last_message_id` (sent in GUILD_CREATE) becomes its id."""
        self.messages[message["id"]] = message
        thread = self.channels.get(message["channel_id"])
        if thread is not None and "last_message_id" in thread:
            thread["last_message_id"] = message["id"]
        if thread is not None and thread["type"] in P.THREAD_TYPES:
            self._join_thread(thread, message["author"]["id"])
            thread["last_message_id"] = message["id"]
            if message["id"] != thread["id"]:  # a forum post's opening message is not counted
                thread["message_count"] += 1
                thread["total_message_sent"] += 1
        return message

    def _unstored(self, message_id: str) -> dict[str, Any] | None:
        message = self.messages.pop(message_id, None)
        thread = self.channels.get(message["channel_id"]) if message else None
        if thread is not None and thread["type"] in P.THREAD_TYPES and message_id != thread["id"]:
            thread["message_count"] = max(0, thread["message_count"] - 1)
        return message

    def _bot_wrote(self, message: dict[str, Any]) -> None:
        if message.get("components"):
            self._ui_written[message["id"]] = time.monotonic()

    # --- things members and moderators do ----------------------------------------------------
    async def start_thread(self, member: Member, message: dict[str, Any] | str, name: str, *,
                           auto_archive_duration: int = 1440) -> dict[str, Any]:
        """A member starts a public thread on a message (the bot's answer, say): THREAD_CREATE
        (without `member`: the bot has not joined) and MESSAGE_UPDATE of the starter message.
        Returns the thread. PermissionError without CREATE_PUBLIC_THREADS in the channel."""
        mid = str(message["id"] if isinstance(message, dict) else message)
        starter = self.messages.get(mid)
        if starter is None:
            raise LookupError(f"message {mid} does not exist")
        parent = self.channels[starter["channel_id"]]
        if parent.get("guild_id") != (member.guild_id or self.guild_id):
            raise ValueError(f"message {mid} is not in {member.user['username']}'s guild")
        if parent["type"] not in (0, 5):
            raise ValueError(f"threads start on messages of text channels, not channel type {parent['type']}")
        if starter.get("thread") is not None:
            raise ValueError(f"message {mid} already has a thread")
        if not self.permissions(member, parent["id"]) & P.CREATE_PUBLIC_THREADS:
            raise PermissionError(f"{member.user['username']} may not create threads in {parent['id']}")
        thread = self._thread_on(starter, parent, member.id, name, auto_archive_duration)
        await self.settle()
        return thread

    async def start_private_thread(self, member: Member, channel_id: str, name: str, *,
                                   invite: list[Member] | tuple[Member, ...] = (),
                                   auto_archive_duration: int = 1440) -> dict[str, Any]:
        """A member starts a private thread (type 12) in a text channel with these members invited
        (the bot too with `invite=[emulator.bot_as_member()]`; or a mention adds it later). The bot
        gets THREAD_CREATE only if it is a member or has MANAGE_THREADS there. PermissionError
        without CREATE_PRIVATE_THREADS, or for an invitee who cannot view the channel."""
        parent = self.channels[str(channel_id)]
        gid = member.guild_id or self.guild_id
        if parent.get("guild_id") != gid or parent["type"] != 0:
            raise ValueError(f"private threads start in a text channel of {member.user['username']}'s guild")
        if not self.permissions(member, parent["id"]) & P.CREATE_PRIVATE_THREADS:
            raise PermissionError(f"{member.user['username']} may not create private threads in {parent['id']}")
        for guest in invite:
            if not self.permissions(guest, parent["id"]) & P.VIEW_CHANNEL:
                raise PermissionError(f"{guest.user['username']} cannot view channel {parent['id']}")
        thread = self._open_thread(parent, member.id, name, type=12, auto_archive_duration=auto_archive_duration,
                                   invited=tuple(g.id for g in invite))
        await self.settle()
        return thread

    async def add_thread_member(self, thread_id: str, member: Member) -> None:
        """Someone adds `member` (the bot: emulator.bot_as_member()) to a thread: THREAD_MEMBERS_UPDATE,
        and THREAD_CREATE first when that makes a private thread visible to the bot."""
        thread = self._thread(thread_id)
        if member.id in self._thread_members[thread["id"]]:
            return
        if not self.permissions(member, thread["parent_id"]) & P.VIEW_CHANNEL:
            raise PermissionError(f"{member.user['username']} cannot view the thread's channel")
        saw = self._bot_sees(thread)
        self._join_thread(thread, member.id)
        if not saw and self._bot_sees(thread):
            self._announce("THREAD_CREATE", lambda: copy.deepcopy(self._thread_payload(thread)))
        self._members_changed(thread, added=(member.id,))
        await self.settle()

    async def remove_thread_member(self, thread_id: str, user_id: str) -> None:
        """Someone removes a user from a thread (or they leave it): THREAD_MEMBERS_UPDATE."""
        thread = self._thread(thread_id)
        members = self._thread_members[thread["id"]]
        if str(user_id) in members:
            members.discard(str(user_id))
            thread["member_count"] = min(len(members), 50)
            self._members_changed(thread, removed=(str(user_id),))
        await self.settle()

    def bot_as_member(self, guild: str | None = None) -> Member:
        """The bot as a member of a guild (to invite it to a thread, say)."""
        return self._bot_member(guild or self.guild_id)

    def _thread_on(self, starter: dict[str, Any], parent: dict[str, Any], owner_id: str, name: str,
                   auto_archive_duration: int) -> dict[str, Any]:
        thread = self._open_thread(parent, owner_id, name, type=10 if parent["type"] == 5 else 11,
                                   auto_archive_duration=auto_archive_duration, thread_id=starter["id"])
        starter["thread"] = thread
        starter["flags"] |= P.HAS_THREAD
        self._echo("MESSAGE_UPDATE", starter)
        return thread

    async def create_forum_post(self, member: Member, forum_id: str, title: str, content: str, *,
                                tags: list[str] | None = None,
                                attachments: list[dict[str, Any] | tuple[str, bytes]] | None = None
                                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A member posts in a forum: THREAD_CREATE first, then MESSAGE_CREATE of the opening
        message, whose id is the thread id (the order Discord uses; the other way round the
        client sees a PartialMessageable). Returns (thread, message)."""
        forum = self.channels[str(forum_id)]
        if forum["type"] not in P.FORUM_TYPES:
            raise ValueError(f"channel {forum_id} is not a forum (type {forum['type']})")
        if forum["guild_id"] != (member.guild_id or self.guild_id):
            raise ValueError(f"forum {forum_id} is not in {member.user['username']}'s guild")
        if not self.permissions(member, forum["id"]) & P.SEND_MESSAGES:
            raise PermissionError(f"{member.user['username']} may not post in forum {forum_id}")
        if not 1 <= len(title) <= 100:
            raise ValueError("a post title has 1 to 100 characters")
        known = {str(t["id"]) for t in forum.get("available_tags") or []}
        if set(tags or []) - known:
            raise ValueError(f"tags {sorted(set(tags or []) - known)} are not tags of forum {forum_id}")
        thread = self._open_thread(forum, member.id, title, applied_tags=list(tags or []),
                                   auto_archive_duration=forum.get("default_auto_archive_duration") or 1440)
        files = [a if isinstance(a, dict) else self.attachment(*a) for a in attachments or []]
        message = self._stored(self._message(member.user, content, member=member, channel_id=thread["id"],
                                             guild_id=forum["guild_id"], attachments=files, message_id=thread["id"]))
        event = self._message_event(message)
        if event is not None:
            await self.dispatch("MESSAGE_CREATE", event)  # flushes THREAD_CREATE first
        else:
            await self.settle()
        return thread, message

    async def archive_thread(self, thread_id: str, *, locked: bool = False) -> dict[str, Any]:
        """A moderator archives (and with locked=True, locks) a thread: THREAD_UPDATE."""
        thread = self._thread(thread_id)
        self._set_archived(thread, True, locked)
        self._announce("THREAD_UPDATE", lambda: copy.deepcopy(thread))
        await self.settle()
        return thread

    async def unarchive_thread(self, thread_id: str) -> dict[str, Any]:
        """A moderator unarchives (and unlocks) a thread: THREAD_UPDATE."""
        thread = self._thread(thread_id)
        self._set_archived(thread, False, False)
        self._announce("THREAD_UPDATE", lambda: copy.deepcopy(thread))
        await self.settle()
        return thread

    async def delete_thread(self, thread_id: str) -> dict[str, Any]:
        """A moderator deletes a thread, and with it its messages: THREAD_DELETE."""
        thread = self._remove_thread(self._thread(thread_id))
        await self.settle()
        return thread

    def _remove_thread(self, thread: dict[str, Any]) -> dict[str, Any]:
        tid = thread["id"]
        del self.channels[tid]
        self._thread_members.pop(tid, None)
        for mid in [m["id"] for m in self.messages.values() if m["channel_id"] == tid]:
            del self.messages[mid]
        starter = self.messages.get(tid)  # a thread started on a message: that message stays
        if starter is not None and starter.get("thread") is not None:
            del starter["thread"]
            starter["flags"] &= ~P.HAS_THREAD
        self._announce("THREAD_DELETE", {"id": tid, "guild_id": thread["guild_id"], "parent_id": thread["parent_id"],
                                         "type": thread["type"]})
        return thread

    async def _member_posts_in_thread(self, member: Member, thread: dict[str, Any]) -> None:
        """What a member's client does before a message in a thread: an archived, unlocked thread
        is unarchived by the message (THREAD_UPDATE first); a locked one refuses it, and a private
        one refuses a non-member without MANAGE_THREADS (they cannot see it)."""
        if (thread["type"] == 12 and member.id not in self._thread_members.get(thread["id"], set())
                and not self.permissions(member, thread["id"]) & P.MANAGE_THREADS):
            raise PermissionError(f"{member.user['username']} is not a member of private thread {thread['id']}")
        meta = thread["thread_metadata"]
        if meta["archived"] or meta.get("locked"):
            if meta.get("locked") and not self.permissions(member, thread["id"]) & P.MANAGE_THREADS:
                raise PermissionError(f"thread {thread['id']} is locked")
            if meta["archived"]:
                self._set_archived(thread, False)
                self._announce("THREAD_UPDATE", lambda: copy.deepcopy(thread))

    # --- REST: threads -------------------------------------------------------------------------
    def _thread_send_problem(self, thread: dict[str, Any], perms: int) -> web.Response | None:
        """Why Discord refuses a new message (or an edit) in this thread, or None."""
        meta = thread["thread_metadata"]
        if meta["archived"]:
            return error(400, 50083, "Thread is archived")
        if meta.get("locked") and not perms & P.MANAGE_THREADS:
            return error(403, 50013, "Missing Permissions")
        return None

    def _start_thread_route(self, cid: str, mid: str, body: Any) -> web.Response:
        ch = self.channels.get(cid)
        if ch is None:
            return error(404, 10003, "Unknown Channel")
        guild = ch.get("guild_id")
        perms = self.permissions(self._bot_member(guild), cid) if guild else P.ALL_PERMISSIONS
        if not perms & P.VIEW_CHANNEL:
            return error(403, 50001, "Missing Access")
        if ch["type"] not in (0, 5):
            return error(400, 50024, "Cannot execute action on this channel type")
        starter = self.messages.get(mid)
        if starter is None or starter["channel_id"] != cid:
            return error(404, 10008, "Unknown Message")
        if not perms & P.CREATE_PUBLIC_THREADS or not perms & P.READ_MESSAGE_HISTORY:
            return error(403, 50013, "Missing Permissions")
        if starter.get("thread") is not None or mid in self.channels:
            return error(400, 160004, "A thread has already been created for this message")
        body = body or {}
        if why := self._check_thread_fields(body):
            return why
        thread = self._thread_on(starter, ch, self.app_id, body["name"],
                                 body.get("auto_archive_duration") or ch.get("default_auto_archive_duration") or 1440)
        thread["rate_limit_per_user"] = body.get("rate_limit_per_user") or 0
        return json_response(thread, 201)

    def _check_thread_fields(self, body: dict[str, Any]) -> web.Response | None:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            return error(400, 50035, "Invalid Form Body: name: Must be between 1 and 100 in length.")
        duration = body.get("auto_archive_duration")
        if duration is not None and duration not in P.ARCHIVE_DURATIONS:
            return error(400, 50035, "Invalid Form Body: auto_archive_duration: Value must be one of (60, 1440, 4320, 10080).")
        limit = body.get("rate_limit_per_user")
        if limit is not None and not 0 <= limit <= 21600:
            return error(400, 50035, "Invalid Form Body: rate_limit_per_user: int value should be between 0 and 21600.")
        return None

    def _create_thread_route(self, cid: str, body: Any) -> web.Response:
        """POST /channels/{cid}/threads: a forum post (body has `message`) or, in a text channel,
        a thread without a starter message."""
        ch = self.channels.get(cid)
        if ch is None:
            return error(404, 10003, "Unknown Channel")
        guild = ch.get("guild_id")
        perms = self.permissions(self._bot_member(guild), cid) if guild else P.ALL_PERMISSIONS
        if not perms & P.VIEW_CHANNEL:
            return error(403, 50001, "Missing Access")
        body = body or {}
        if ch["type"] in P.FORUM_TYPES:
            return self._forum_post(ch, perms, body)
        if ch["type"] not in (0, 5):
            return error(400, 50024, "Cannot execute action on this channel type")
        kind = body.get("type")
        if kind not in (10, 11, 12) or (kind == 10) != (ch["type"] == 5):
            return error(400, 50035, "Invalid Form Body: type: Value must be one of (11, 12)." if ch["type"] == 0
                         else "Invalid Form Body: type: Value must be one of (10,).")
        needed = P.CREATE_PRIVATE_THREADS if kind == 12 else P.CREATE_PUBLIC_THREADS
        if not perms & needed:
            return error(403, 50013, "Missing Permissions")
        if why := self._check_thread_fields(body):
            return why
        thread = self._open_thread(ch, self.app_id, body["name"], type=kind,
                                   auto_archive_duration=body.get("auto_archive_duration") or 1440,
                                   rate_limit_per_user=body.get("rate_limit_per_user") or 0)
        if kind == 12:
            thread["thread_metadata"]["invitable"] = body.get("invitable", True)
        return json_response(thread, 201)

    def _forum_post(self, forum: dict[str, Any], perms: int, body: dict[str, Any]) -> web.Response:
        if not perms & P.SEND_MESSAGES:
            return error(403, 50013, "Missing Permissions")
        if why := self._check_thread_fields(body):
            return why
        first = body.get("message")
        if not isinstance(first, dict):
            return error(400, 50035, "Invalid Form Body: message: This field is required")
        first = {**first, **({"files": body["files"]} if body.get("files") else {})}
        if first.get("files") and not perms & P.ATTACH_FILES:
            return error(403, 50013, "Missing Permissions")
        problem = P.check_message(first) or self._check_upload(first)
        if problem:
            return error(*problem)
        tags = [str(t) for t in body.get("applied_tags") or []]
        known = {str(t["id"]) for t in forum.get("available_tags") or []}
        if set(tags) - known or len(tags) > 5:
            return error(400, 50035, "Invalid Form Body: applied_tags: Unknown tag" if set(tags) - known
                         else "Invalid Form Body: applied_tags: Must be 5 or fewer in length.")
        if forum.get("flags", 0) & (1 << 4) and not tags:  # REQUIRE_TAG
            return error(400, 40067, "A tag is required to create a forum post in this channel")
        thread = self._open_thread(forum, self.app_id, body["name"], applied_tags=tags,
                                   auto_archive_duration=body.get("auto_archive_duration")
                                   or forum.get("default_auto_archive_duration") or 1440,
                                   rate_limit_per_user=body.get("rate_limit_per_user") or 0)
        message = self._message(self.bot_user, first.get("content") or "", embeds=first.get("embeds") or [],
                                channel_id=thread["id"], guild_id=forum["guild_id"], attachments=self._uploads(first),
                                member=self._bot_member(forum["guild_id"]), components=first.get("components") or [],
                                message_id=thread["id"])
        message["flags"] = int(first.get("flags") or 0) & P.SENDABLE_FLAGS
        self._stored(message)
        self._bot_wrote(message)
        self._echo("MESSAGE_CREATE", message)
        return json_response({**thread, "message": message}, 201)

    def _thread_route(self, method: str, thread: dict[str, Any], perms: int, body: Any) -> web.Response:
        """PATCH (edit, archive, unarchive) and DELETE of a thread by the bot."""
        if method == "DELETE":
            if not perms & P.MANAGE_THREADS:
                return error(403, 50013, "Missing Permissions")
            return json_response(self._remove_thread(thread))
        if method != "PATCH":
            return error(405, 0, "405: Method Not Allowed")
        body = body or {}
        meta, mine = thread["thread_metadata"], thread["owner_id"] == self.app_id
        moderator = bool(perms & P.MANAGE_THREADS)
        unarchive = body.get("archived") is False
        if meta["archived"] and not unarchive:
            return error(400, 50083, "Thread is archived")
        if unarchive and meta["archived"] and meta.get("locked") and not moderator:
            return error(403, 50013, "Missing Permissions")
        owner_keys = {"name", "archived", "auto_archive_duration", "applied_tags"}
        for key in body:
            if key == "archived" and body[key] is False and not meta.get("locked"):
                allowed = bool(perms & P.SEND_MESSAGES_IN_THREADS)  # anyone who may post can unarchive
            else:
                allowed = moderator or (mine and key in owner_keys)
            if not allowed:
                return error(403, 50013, "Missing Permissions")
        if "name" in body and (why := self._check_thread_fields({"name": body["name"]})):
            return why
        if body.get("auto_archive_duration") is not None and body["auto_archive_duration"] not in P.ARCHIVE_DURATIONS:
            return error(400, 50035, "Invalid Form Body: auto_archive_duration: Value must be one of (60, 1440, 4320, 10080).")
        for key in ("name", "rate_limit_per_user", "flags"):
            if key in body:
                thread[key] = body[key]
        if "applied_tags" in body:
            thread["applied_tags"] = [str(t) for t in body["applied_tags"] or []]
        for key in ("auto_archive_duration", "invitable"):
            if key in body:
                meta[key] = body[key]
        if "archived" in body or "locked" in body:
            self._set_archived(thread, bool(body.get("archived", meta["archived"])), body.get("locked"))
        self._announce("THREAD_UPDATE", lambda: copy.deepcopy(thread))
        return json_response(thread)

    def _thread_member_route(self, method: str, tid: str, who: str | None,
                             query: dict[str, str] | None = None) -> web.Response:
        thread = self.channels.get(tid)
        if thread is None or thread["type"] not in P.THREAD_TYPES:
            return error(404, 10003, "Unknown Channel")
        perms = self.permissions(self._bot_member(thread["guild_id"]), tid)
        if not perms & P.VIEW_CHANNEL or not self._bot_sees(thread):
            return error(403, 50001, "Missing Access")
        members = self._thread_members.setdefault(tid, set())
        if who is None or method == "GET":
            return self._list_thread_members(thread, who, query or {})
        if thread["thread_metadata"]["archived"]:
            return error(400, 50083, "Thread is archived")
        user = self.app_id if who == "@me" else who
        if method == "PUT":
            if who != "@me":
                if user not in self.guilds[thread["guild_id"]].members and user != self.app_id:
                    return error(404, 10007, "Unknown Member")
                if not perms & P.SEND_MESSAGES_IN_THREADS:
                    return error(403, 50013, "Missing Permissions")
            if user in members:
                return web.Response(status=204)
            self._join_thread(thread, user)
            if who == "@me":
                self._announce("THREAD_MEMBER_UPDATE", {**P.thread_member(tid, self.app_id), "guild_id": thread["guild_id"]})
            else:
                self._members_changed(thread, added=(user,))
        elif method == "DELETE":
            creator = thread["type"] == 12 and thread["owner_id"] == self.app_id
            if who != "@me" and not perms & P.MANAGE_THREADS and not creator:
                return error(403, 50013, "Missing Permissions")
            if user in members:
                members.discard(user)
                thread["member_count"] = min(len(members), 50)
                if who != "@me":
                    self._members_changed(thread, removed=(user,))
        else:
            return error(405, 0, "405: Method Not Allowed")
        return web.Response(status=204)

    def _list_thread_members(self, thread: dict[str, Any], who: str | None, query: dict[str, str]) -> web.Response:
        """GET .../thread-members[/{user}]: thread member objects (with `member` when with_member=true)."""
        with_member = query.get("with_member") in ("1", "true", "True")
        guild = self.guilds[thread["guild_id"]]

        def entry(user_id: str) -> dict[str, Any]:
            data = P.thread_member(thread["id"], user_id)
            member = guild.members.get(user_id) or (self._bot_member(guild.id) if user_id == self.app_id else None)
            if with_member and member is not None:
                data["member"] = member.payload()
            return data

        members = sorted(self._thread_members.get(thread["id"], set()), key=int)
        if who is not None:
            user = self.app_id if who == "@me" else who
            return json_response(entry(user)) if user in members else error(404, 10007, "Unknown Member")
        if not self.members_intent_enabled:
            return error(403, 50001, "Missing Access")  # restricted to apps with the GUILD_MEMBERS intent enabled
        if with_member:  # paginated, like Discord
            after, limit = int(query.get("after") or 0), int(query.get("limit") or 100)
            if not 1 <= limit <= 100:
                return error(400, 50035, "Invalid Form Body: limit: int value should be between 1 and 100.")
            members = [u for u in members if int(u) > after][:limit]
        return json_response([entry(u) for u in members])

    def _history(self, cid: str, query: dict[str, str]) -> web.Response:
        """GET /channels/{cid}/messages: newest first, as Discord answers (before/after/around, limit 1-100)."""
        try:
            limit = int(query.get("limit", 50))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return error(400, 50035, "Invalid Form Body: limit: int value should be between 1 and 100.")
        found = sorted((m for m in self.messages.values() if m["channel_id"] == cid), key=lambda m: int(m["id"]))
        if "around" in query:
            pivot = int(query["around"])
            older = [m for m in found if int(m["id"]) <= pivot][-(limit - limit // 2):]
            newer = [m for m in found if int(m["id"]) > pivot][:limit // 2]
            found = older + newer
        else:
            if "before" in query:
                found = [m for m in found if int(m["id"]) < int(query["before"])]
            if "after" in query:
                found = [m for m in found if int(m["id"]) > int(query["after"])][:limit]
            found = found[-limit:]
        return json_response(list(reversed(found)))

    # --- components: what members do ---------------------------------------------------------
    def component(self, message: dict[str, Any] | str, custom_id: str) -> dict[str, Any]:
        """A component of a message as it is stored now (after the bot's edits)."""
        stored, _ = self._find_message(str(message["id"] if isinstance(message, dict) else message))
        found = P.find_component(stored["components"], custom_id)
        if found is None:
            ids = [c["custom_id"] for c in P.walk_components(stored["components"]) if c.get("custom_id")]
            raise LookupError(f"message {stored['id']} has no component {custom_id!r} (has {ids})")
        return found

    def _find_message(self, mid: str) -> tuple[dict[str, Any], str | None]:
        """(message, owner) for a channel message (owner None) or an ephemeral one (owner: the user it was shown to)."""
        if mid in self.messages:
            return self.messages[mid], None
        for interaction in self.interactions.values():
            for message in [interaction.original, *interaction.followups]:
                if message is not None and message["id"] == mid and not message.get("_deleted"):
                    return message, interaction.user_id
        raise LookupError(f"message {mid} does not exist (deleted, or never sent)")

    async def click(self, member: Member, message: dict[str, Any] | str, custom_id: str) -> Interaction:
        """The member clicks a button of a message (a dict from the emulator, or its id):
        INTERACTION_CREATE type 3 with the message as it is stored now. Returns the Interaction
        (wait with wait_for_response). Raises where Discord's client would not let the click
        through: LookupError (no such message or button), ValueError (a disabled or link
        button, a select menu: use choose), PermissionError (the member cannot see it)."""
        stored, component = await self._usable_component(member, message, custom_id)
        if component.get("type") != 2:
            raise ValueError(f"{custom_id!r} is a component of type {component.get('type')}, not a button: use choose()")
        return await self._component_interaction(member, stored, {"custom_id": custom_id, "component_type": 2})

    async def choose(self, member: Member, message: dict[str, Any] | str, custom_id: str,
                     values: list[str]) -> Interaction:
        """The member picks `values` in a string select menu: INTERACTION_CREATE type 3 with data.values."""
        stored, component = await self._usable_component(member, message, custom_id)
        if component.get("type") != 3:
            raise ValueError(f"{custom_id!r} is not a string select menu (type {component.get('type')})")
        options = [o["value"] for o in component.get("options") or []]
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if not set(values) <= set(options) or not low <= len(values) <= high or len(set(values)) != len(values):
            raise ValueError(f"pick {low}-{high} distinct values of {options}, not {values}")
        return await self._component_interaction(member, stored, {"custom_id": custom_id, "component_type": 3,
                                                                  "values": list(values)})

    async def _usable_component(self, member: Member, message: dict[str, Any] | str,
                                custom_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        mid = str(message["id"] if isinstance(message, dict) else message)
        stored, owner = self._find_message(mid)
        if owner is not None and owner != member.id:
            raise PermissionError(f"message {mid} is ephemeral: only its recipient sees it")
        gid = stored.get("guild_id")
        if gid is not None:
            if gid != (member.guild_id or self.guild_id):
                raise ValueError(f"message {mid} is not in {member.user['username']}'s guild")
            if stored["channel_id"] not in self.channels:
                raise LookupError(f"the channel of message {mid} was deleted")
            if owner is None and not self.permissions(member, stored["channel_id"]) & P.VIEW_CHANNEL:
                raise PermissionError(f"{member.user['username']} cannot see channel {stored['channel_id']}")
        component = self.component(stored, custom_id)
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        written = self._ui_written.get(mid, 0.0)
        await asyncio.sleep(max(0.0, written + UI_SETTLE - time.monotonic()))
        return stored, component

    async def _component_interaction(self, member: Member, stored: dict[str, Any], data: dict[str, Any]) -> Interaction:
        return await self._deliver_interaction(3, member, stored.get("guild_id"), stored["channel_id"], data,
                                               custom_id=data["custom_id"], message=stored)

    async def _deliver_interaction(self, kind: int, member: Member, gid: str | None, cid: str, data: dict[str, Any], *,
                                   custom_id: str, message: dict[str, Any] | None) -> Interaction:
        token, interaction_id = f"itoken-{snowflake()}", snowflake()
        interaction = Interaction(interaction_id, token, time.monotonic(), custom_id, kind=kind, guild_id=gid,
                                  channel_id=cid, user_id=member.id, custom_id=custom_id,
                                  message_id=message["id"] if message is not None else None)
        self.interactions[token] = interaction
        payload = self._interaction_payload(kind, member, gid, cid, token, interaction_id, data)
        if message is not None:
            payload["message"] = copy.deepcopy(message)
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    async def wait_for_response(self, interaction: Interaction, *, timeout: float = 5.0) -> dict[str, Any]:
        """The bot's callback body for an interaction ({"type": 4|5|6|7|9, "data": ...}) once it has answered."""
        await self._wait_until(lambda: interaction.response is not None, timeout,
                               f"no response to interaction {interaction.command!r}")
        return interaction.response  # type: ignore[return-value]

    async def wait_for_modal(self, interaction: Interaction, *, timeout: float = 5.0) -> dict[str, Any]:
        """The modal (callback type 9 `data`) the bot opened on this interaction."""
        response = await self.wait_for_response(interaction, timeout=timeout)
        if interaction.modal is None:
            raise AssertionError(f"the bot answered {interaction.command!r} with type {response['type']}, not a modal")
        return interaction.modal

    async def submit_modal(self, member: Member, opened: Interaction | dict[str, Any], values: dict[str, Any], *,
                           timeout: float = 5.0) -> Interaction:
        """The member fills in and submits a modal the bot opened (callback 9) on their interaction
        (`opened`: that Interaction, or the modal from wait_for_modal): INTERACTION_CREATE type 5
        with data.custom_id and one row per input ({type: 4, custom_id, value}). Returns the
        modal-submit Interaction. Raises AssertionError if the bot did not open a modal there,
        PermissionError for another member, ValueError for values Discord's client refuses
        (unknown custom_id, a required input left empty, a length out of range) or a second submit."""
        if isinstance(opened, Interaction):
            interaction = opened
            await self.wait_for_modal(interaction, timeout=timeout)
        else:
            interaction = next((i for i in reversed(list(self.interactions.values()))
                                if i.modal is opened or (i.modal and i.modal.get("custom_id") == opened.get("custom_id")
                                                         and i.user_id == member.id and i.submitted is None)), None)
            if interaction is None:
                raise AssertionError(f"the bot never opened modal {opened.get('custom_id')!r}")
        modal = interaction.modal
        assert modal is not None
        if interaction.user_id != member.id:
            raise PermissionError(f"modal {modal['custom_id']!r} was shown to user {interaction.user_id}, "
                                  f"not {member.user['username']}")
        if interaction.submitted is not None:
            raise ValueError(f"modal {modal['custom_id']!r} was already submitted (it closes on submit)")
        rows = P.modal_inputs(modal)
        known = {c["custom_id"] for _, c in rows}
        if set(values) - known:
            raise ValueError(f"modal {modal['custom_id']!r} has no inputs {sorted(set(values) - known)} (has {sorted(known)})")
        components = [self._submitted_input(wrapper, field, values) for wrapper, field in rows]
        await asyncio.sleep(max(0.0, interaction.modal_at + UI_SETTLE - time.monotonic()))
        message = self._find_message(interaction.message_id)[0] if interaction.message_id else None
        submit = await self._deliver_interaction(
            5, member, interaction.guild_id, interaction.channel_id,
            {"custom_id": modal["custom_id"], "components": components},
            custom_id=modal["custom_id"], message=message)
        interaction.submitted = submit
        return submit

    @staticmethod
    def _submitted_input(wrapper: int, field: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        cid, kind = field["custom_id"], field["type"]
        if kind == 4:
            value = values.get(cid, field.get("value") or "")
            if not isinstance(value, str):
                raise ValueError(f"input {cid!r} takes text, not {value!r}")
            if field.get("required", True) and not value:
                raise ValueError(f"input {cid!r} is required")
            if value and not field.get("min_length", 0) <= len(value) <= field.get("max_length", 4000):
                raise ValueError(f"input {cid!r}: {len(value)} characters, not "
                                 f"{field.get('min_length', 0)}-{field.get('max_length', 4000)}")
            answer: dict[str, Any] = {"type": 4, "custom_id": cid, "value": value}
        elif kind in P.SELECT_TYPES or kind == 22:
            picked = list(values.get(cid, []))
            if field.get("required", True) and not picked:
                raise ValueError(f"input {cid!r} is required")
            answer = {"type": kind, "custom_id": cid, "values": picked}
        elif kind == 21:
            answer = {"type": kind, "custom_id": cid, "value": values.get(cid)}
        elif kind == 23:
            answer = {"type": kind, "custom_id": cid, "value": bool(values.get(cid, False))}
        else:
            raise ValueError(f"input {cid!r} of type {kind} cannot be submitted by the emulator")
        return {"type": 1, "components": [answer]} if wrapper == 1 else {"type": 18, "component": answer}

    async def _wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not check():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{what} within {timeout}s")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass

    # --- components: callbacks 6, 7 and 9 ----------------------------------------------------
    def _component_callback_problem(self, interaction: Interaction, kind: int,
                                    data: dict[str, Any]) -> tuple[int, int, str] | None:
        if kind in (6, 7):
            if interaction.message_id is None:
                return 400, 50035, f"Invalid Form Body: type: callback type {kind} needs an interaction on a message"
            try:
                target, _ = self._find_message(interaction.message_id)
            except LookupError:
                return 404, 10008, "Unknown Message"
            if kind == 7:
                thread = self.channels.get(target["channel_id"])
                if thread is not None and thread["type"] in P.THREAD_TYPES and thread["thread_metadata"]["archived"]:
                    return 400, 50083, "Thread is archived"
                return P.check_message(data, edit=True, current=target) or self._check_upload(data)
        if kind == 9 and (why := P.check_modal(data)):
            return 400, 50035, f"Invalid Form Body: {why}"
        return None

    def _component_callback(self, interaction: Interaction, kind: int, data: dict[str, Any]) -> dict[str, Any] | None:
        """Apply an accepted callback 6/7/9; returns the message a type 7 updated."""
        if kind == 9:
            interaction.modal = copy.deepcopy(data)
            interaction.modal_at = time.monotonic()
            return None
        target, _ = self._find_message(interaction.message_id)  # type: ignore[arg-type]
        interaction.original = target  # @original of a component interaction is the clicked message
        if kind == 6:
            return None
        self._apply_edit(target, data)
        self._bot_wrote(target)
        if not target["flags"] & P.EPHEMERAL:
            self._echo("MESSAGE_UPDATE", target)
        return target
