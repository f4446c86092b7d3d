"""What members and moderators do to messages, and the routes a bot reads channels with, for
tests/discord_emulator.py (a mixin of DiscordEmulator, like tests/discord_threads.py): enough
for channel sources (issue 21), the way Discord behaves.

What the bot can do (REST), with Discord's answers:
- GET /channels/{c}/messages/pins?limit=&before= (the paginated pins endpoint discord.py 2.6+
  uses): `{"items": [{"pinned_at", "message"}], "has_more"}`, newest pin first, `before` an ISO
  time of a pin, limit 1-50 (400 50035 otherwise); 403 50001 without View Channel or Read
  Message History.
- GET /channels/{forum}/threads/archived/public?before=&limit=: the archived threads of a
  forum or text channel, `{"threads", "members", "has_more"}`, most recently archived first;
  403 50001 without Read Message History.
- GET /channels/{c}/messages (history) is in tests/discord_threads.py. Messages read over REST
  carry their content: the bot IDENTIFYs with the MESSAGE_CONTENT intent (gateway events without
  it are stripped, as on Discord: DiscordEmulator._message_event).

What members do (test helpers), with the events Discord sends:
- edit_message(message, content): the author edits it, MESSAGE_UPDATE (content stripped for a
  session without MESSAGE_CONTENT); delete_message(message): MESSAGE_DELETE.
- pin(member, message) / unpin(member, message): needs Manage Messages (or Pin Messages) in the
  channel (PermissionError otherwise); MESSAGE_UPDATE (`pinned`), CHANNEL_PINS_UPDATE and, for a
  pin, the system message "pinned a message" (type 6, MESSAGE_CREATE) by the member.
- set_forum_tags(forum, tags): a moderator renames/deletes a forum's tags, CHANNEL_UPDATE;
  set_role_permissions(guild, role, permissions): GUILD_ROLE_UPDATE (@everyone: role == guild).
- set_tags(member, thread, tag_ids): the post's author or a moderator (Manage Threads) sets a
  forum post's applied_tags: THREAD_UPDATE. tag_id(forum, name) finds a tag's id.
- react(member, message, emoji): one reaction more on a message (the `reactions` of its payload);
  MESSAGE_REACTION_ADD reaches only sessions with the GUILD_MESSAGE_REACTIONS intent.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import re
from typing import Any

from aiohttp import web

from tests import discord_payloads as P
from tests.discord_payloads import Member, error, json_response

PIN_MESSAGES = 1 << 51
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
_PIN_CLOCK = itertools.count(1)  # pins get increasing times, as they would one after the other


class ChannelContent:
    """Mixed into DiscordEmulator; see the module docstring."""

    def _setup_content(self) -> None:
        self._pins: dict[str, str] = {}  # message id -> pinned_at (ISO)

    # --- routes -------------------------------------------------------------------------------
    def _content_route(self, method: str, path: str, query: dict[str, str]) -> web.Response | None:
        """The routes of this mixin, or None when `path` is not one of them."""
        if method == "GET" and (m := re.fullmatch(r"/channels/(\d+)/messages/pins", path)):
            return self._pins_route(m.group(1), query)
        if method == "GET" and (m := re.fullmatch(r"/channels/(\d+)/threads/archived/public", path)):
            return self._archived_route(m.group(1), query)
        return None

    def _readable(self, cid: str) -> web.Response | dict[str, Any]:
        ch = self.channels.get(cid)  # type: ignore[attr-defined]
        if ch is None:
            return error(404, 10003, "Unknown Channel")
        perms = self.permissions(self._bot_member(ch["guild_id"]), cid)  # type: ignore[attr-defined]
        if not perms & P.VIEW_CHANNEL or not perms & P.READ_MESSAGE_HISTORY:
            return error(403, 50001, "Missing Access")
        return ch

    def _pins_route(self, cid: str, query: dict[str, str]) -> web.Response:
        ch = self._readable(cid)
        if isinstance(ch, web.Response):
            return ch
        try:
            limit = int(query.get("limit", 50))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 50:
            return error(400, 50035, "Invalid Form Body: limit: int value should be between 1 and 50.")
        pinned = sorted(((at, m) for mid, at in self._pins.items()
                         if (m := self.messages.get(mid)) is not None and m["channel_id"] == cid),  # type: ignore[attr-defined]
                        key=lambda item: item[0], reverse=True)
        if "before" in query:
            before = dt.datetime.fromisoformat(query["before"])
            pinned = [(at, m) for at, m in pinned if dt.datetime.fromisoformat(at) < before]
        items = [{"pinned_at": at, "message": copy.deepcopy(m)} for at, m in pinned[:limit]]
        return json_response({"items": items, "has_more": len(pinned) > limit})

    def _archived_route(self, cid: str, query: dict[str, str]) -> web.Response:
        ch = self._readable(cid)
        if isinstance(ch, web.Response):
            return ch
        limit = max(2, min(100, int(query.get("limit", 50))))
        archived = sorted((t for t in self.threads.values()  # type: ignore[attr-defined]
                           if t["parent_id"] == cid and t["type"] != 12 and t["thread_metadata"]["archived"]),
                          key=lambda t: (t["thread_metadata"]["archive_timestamp"], int(t["id"])), reverse=True)
        if "before" in query:
            before = dt.datetime.fromisoformat(query["before"])
            archived = [t for t in archived if dt.datetime.fromisoformat(t["thread_metadata"]["archive_timestamp"]) < before]
        page = [self._thread_payload(t) for t in archived[:limit]]  # type: ignore[attr-defined]
        return json_response({"threads": page, "members": [], "has_more": len(archived) > limit})

    # --- what members and moderators do ---------------------------------------------------------
    async def edit_message(self, message: dict[str, Any], content: str) -> dict[str, Any]:
        """The author edits their message: MESSAGE_UPDATE."""
        stored = self.messages[message["id"]]  # type: ignore[attr-defined]
        stored["content"], stored["edited_timestamp"] = content, dt.datetime.now(dt.UTC).isoformat()
        self._echo("MESSAGE_UPDATE", stored)  # type: ignore[attr-defined]
        await self.settle()  # type: ignore[attr-defined]
        return stored

    async def delete_message(self, message: dict[str, Any]) -> None:
        """The author (or a moderator) deletes a message: MESSAGE_DELETE."""
        self._unstored(message["id"])  # type: ignore[attr-defined]
        self._pins.pop(message["id"], None)
        self._announce("MESSAGE_DELETE", {"id": message["id"], "channel_id": message["channel_id"],  # type: ignore[attr-defined]
                                          **({"guild_id": message["guild_id"]} if "guild_id" in message else {})})
        await self.settle()  # type: ignore[attr-defined]

    def _may_pin(self, member: Member, channel_id: str) -> None:
        if not self.permissions(member, channel_id) & (P.MANAGE_MESSAGES | PIN_MESSAGES):  # type: ignore[attr-defined]
            raise PermissionError(f"{member.user['username']} may not pin messages in {channel_id}")

    async def pin(self, member: Member, message: dict[str, Any]) -> None:
        """A moderator pins a message: MESSAGE_UPDATE, CHANNEL_PINS_UPDATE, then the system message."""
        self._may_pin(member, message["channel_id"])
        stored = self.messages[message["id"]]  # type: ignore[attr-defined]
        at = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=next(_PIN_CLOCK))).isoformat()
        self._pins[stored["id"]], stored["pinned"] = at, True
        self._echo("MESSAGE_UPDATE", stored)  # type: ignore[attr-defined]
        self._pins_changed(stored, at)
        notice = self._message(member.user, "", member=member, channel_id=stored["channel_id"],  # type: ignore[attr-defined]
                               guild_id=stored.get("guild_id"))
        notice["type"] = 6  # CHANNEL_PINNED_MESSAGE
        notice["message_reference"] = {"message_id": stored["id"], "channel_id": stored["channel_id"],
                                       **({"guild_id": stored["guild_id"]} if "guild_id" in stored else {})}
        self._stored(notice)  # type: ignore[attr-defined]
        self._echo("MESSAGE_CREATE", notice)  # type: ignore[attr-defined]
        await self.settle()  # type: ignore[attr-defined]

    async def unpin(self, member: Member, message: dict[str, Any]) -> None:
        """A moderator unpins a message: MESSAGE_UPDATE and CHANNEL_PINS_UPDATE."""
        self._may_pin(member, message["channel_id"])
        stored = self.messages[message["id"]]  # type: ignore[attr-defined]
        self._pins.pop(stored["id"], None)
        stored["pinned"] = False
        self._echo("MESSAGE_UPDATE", stored)  # type: ignore[attr-defined]
        self._pins_changed(stored, max((at for mid, at in self._pins.items()
                                        if self.messages.get(mid, {}).get("channel_id") == stored["channel_id"]),  # type: ignore[attr-defined]
                                       default=None))
        await self.settle()  # type: ignore[attr-defined]

    def _pins_changed(self, message: dict[str, Any], last: str | None) -> None:
        data: dict[str, Any] = {"channel_id": message["channel_id"], "last_pin_timestamp": last}
        if "guild_id" in message:
            data["guild_id"] = message["guild_id"]
        self._announce("CHANNEL_PINS_UPDATE", data)  # type: ignore[attr-defined]

    @staticmethod
    def tag_id(forum: dict[str, Any], name: str) -> str:
        return next(str(t["id"]) for t in forum["available_tags"] if t["name"] == name)

    async def set_tags(self, member: Member, thread_id: str, tag_ids: list[str]) -> dict[str, Any]:
        """The post's author or a moderator sets a forum post's tags: THREAD_UPDATE."""
        thread = self._thread(thread_id)  # type: ignore[attr-defined]
        forum = self.channels[thread["parent_id"]]  # type: ignore[attr-defined]
        if thread["owner_id"] != member.id and not self.permissions(member, forum["id"]) & P.MANAGE_THREADS:  # type: ignore[attr-defined]
            raise PermissionError(f"{member.user['username']} may not edit the tags of post {thread_id}")
        unknown = set(tag_ids) - {str(t["id"]) for t in forum.get("available_tags") or []}
        if unknown:
            raise ValueError(f"tags {sorted(unknown)} are not tags of forum {forum['id']}")
        thread["applied_tags"] = [str(t) for t in tag_ids]
        self._announce("THREAD_UPDATE", lambda: copy.deepcopy(thread))  # type: ignore[attr-defined]
        await self.settle()  # type: ignore[attr-defined]
        return thread

    async def set_forum_tags(self, forum_id: str, tags: list[dict[str, Any]]) -> None:
        """A moderator edits a forum's tags (renames, adds or deletes one; a tag keeps its id when
        renamed): CHANNEL_UPDATE."""
        forum = self.channels[forum_id]  # type: ignore[attr-defined]
        forum["available_tags"] = copy.deepcopy(tags)
        self._announce("CHANNEL_UPDATE", lambda: forum)  # type: ignore[attr-defined]
        await self.settle()  # type: ignore[attr-defined]

    async def set_role_permissions(self, guild: str, role_id: str, permissions: int) -> None:
        """A moderator changes a role's server permissions (role_id == guild: @everyone):
        GUILD_ROLE_UPDATE. (Members' permissions here come from their own base, not @everyone's.)"""
        role = self.guilds[guild].roles[role_id]  # type: ignore[attr-defined]
        role["permissions"] = str(permissions)
        self._announce("GUILD_ROLE_UPDATE", lambda: {"guild_id": guild, "role": copy.deepcopy(role)})  # type: ignore[attr-defined]
        await self.settle()  # type: ignore[attr-defined]

    async def react(self, member: Member, message: dict[str, Any], emoji: str = "👍") -> None:
        """A member adds a reaction: the message's `reactions` count it; MESSAGE_REACTION_ADD goes
        only to sessions with the GUILD_MESSAGE_REACTIONS intent."""
        stored = self.messages[message["id"]]  # type: ignore[attr-defined]
        reactions = stored.setdefault("reactions", [])
        entry = next((r for r in reactions if r["emoji"]["name"] == emoji), None)
        if entry is None:
            entry = {"emoji": {"id": None, "name": emoji}, "count": 0, "count_details": {"burst": 0, "normal": 0},
                     "me": False, "me_burst": False, "burst_colors": []}
            reactions.append(entry)
        entry["count"] += 1
        entry["count_details"]["normal"] += 1
        if self._wants(INTENT_GUILD_MESSAGE_REACTIONS):  # type: ignore[attr-defined]
            self._announce("MESSAGE_REACTION_ADD", {  # type: ignore[attr-defined]
                "user_id": member.id, "channel_id": stored["channel_id"], "message_id": stored["id"],
                "guild_id": stored.get("guild_id"), "emoji": entry["emoji"], "burst": False, "type": 0})
        await self.settle()  # type: ignore[attr-defined]
