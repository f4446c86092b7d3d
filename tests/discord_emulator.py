"""A local emulator of Discord's REST API and gateway, enough for the unmodified discord.py
client to log in, sync slash commands, receive messages and interactions, and answer them.

It enforces the Discord rules the bot must respect (2,000-character messages, no empty
messages, the 3-second first-response deadline, no double acknowledgement, default member
permissions on commands, options checked against the synced schema) and records every REST
call so tests can assert on what a member would see.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl
from aiohttp import WSMsgType, web

MANAGE_GUILD = 1 << 5
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31)  # view, send, read history, use app commands
INTERACTION_DEADLINE = 3.0
_ids = itertools.count(1_300_000_000_000_000_000)


def snowflake() -> str:
    return str(next(_ids))


def json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py only decodes an exact "application/json" (no charset suffix).
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


def error(status: int, code: int, message: str) -> web.Response:
    return json_response({"code": code, "message": message}, status)


@dataclass
class Call:
    method: str
    path: str
    body: Any
    at: float
    status: int = 0


@dataclass
class Member:
    user: dict[str, Any]
    roles: list[str] = field(default_factory=list)
    permissions: int = EVERYONE_PERMISSIONS

    @property
    def id(self) -> str:
        return str(self.user["id"])

    def payload(self, with_permissions: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user": self.user, "roles": self.roles, "flags": 0, "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False, "mute": False, "nick": None, "avatar": None,
        }
        if with_permissions:
            data["permissions"] = str(self.permissions)
        return data


@dataclass
class Interaction:
    id: str
    token: str
    created: float
    command: str
    acknowledged: bool = False
    late: bool = False


class DiscordEmulator:
    def __init__(self) -> None:
        self.app_id = snowflake()
        self.guild_id = snowflake()
        self.channel_id = snowflake()
        self.moderator_role_id = snowflake()
        self.bot_user = self.user("sourcebot", bot=True, user_id=self.app_id)
        self.owner = self.user("owner")
        self.calls: list[Call] = []
        self.commands: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.interactions: dict[str, Interaction] = {}
        self.sockets: list[web.WebSocketResponse] = []
        self.sessions = 0
        self.resumes = 0
        self.heartbeat_interval_ms = 41250
        self.heartbeats: list[float] = []  # when each client heartbeat arrived
        self._seq = 0
        self._sent: list[dict[str, Any]] = []  # dispatched events, for RESUME replay
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self.port = 0

    # --- fixtures of the world -------------------------------------------------------------
    @staticmethod
    def user(name: str, bot: bool = False, user_id: str | None = None) -> dict[str, Any]:
        return {"id": user_id or snowflake(), "username": name, "discriminator": "0", "avatar": None,
                "global_name": name, "bot": bot, "public_flags": 0}

    def member(self, name: str, permissions: int = EVERYONE_PERMISSIONS, roles: list[str] | None = None) -> Member:
        return Member(self.user(name), roles or [], permissions)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def point_client_here(self) -> None:
        """The two attributes that send an unmodified discord.py to this emulator."""
        discord.http.Route.BASE = f"http://127.0.0.1:{self.port}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{self.port}/")

    # --- gateway ---------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None})
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
                    self.sessions += 1
                    await self._send(ws, "READY", self._ready())
                    await self._send(ws, "GUILD_CREATE", self._guild())
                elif op == 6:
                    self.resumes += 1
                    last = payload["d"].get("seq") or 0
                    for event in self._sent:
                        if event["s"] > last:
                            await ws.send_json(event)
                    await self._send(ws, "RESUMED", {})
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
        return ws

    async def _send(self, ws: web.WebSocketResponse, event: str, data: Any) -> None:
        self._seq += 1
        frame = {"op": 0, "t": event, "s": self._seq, "d": data}
        self._sent.append(frame)
        await ws.send_json(frame)

    async def dispatch(self, event: str, data: Any) -> None:
        for _ in range(200):  # wait for a connected socket (e.g. during a reconnect)
            if self.sockets:
                break
            await asyncio.sleep(0.01)
        await self._send(self.sockets[-1], event, data)

    async def request_reconnect(self) -> None:
        """Op 7: the client must reconnect and RESUME."""
        ws = self.sockets[-1]
        await ws.send_json({"op": 7, "d": None, "s": None, "t": None})

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10, "user": self.bot_user, "guilds": [{"id": self.guild_id, "unavailable": True}],
            "session_id": f"session-{self.sessions}", "resume_gateway_url": f"ws://127.0.0.1:{self.port}/",
            "application": {"id": self.app_id, "flags": 0}, "private_channels": [], "relationships": [],
        }

    def _guild(self) -> dict[str, Any]:
        role = lambda rid, name, perms: {  # noqa: E731
            "id": rid, "name": name, "permissions": str(perms), "position": 0, "color": 0, "hoist": False,
            "managed": False, "mentionable": False, "flags": 0,
        }
        return {
            "id": self.guild_id, "name": "Test Server", "owner_id": self.owner["id"], "unavailable": False,
            "member_count": 3, "large": False, "features": [], "emojis": [], "stickers": [], "threads": [],
            "voice_states": [], "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "roles": [role(self.guild_id, "@everyone", EVERYONE_PERMISSIONS), role(self.moderator_role_id, "Moderators", EVERYONE_PERMISSIONS)],
            "channels": [{"id": self.channel_id, "type": 0, "name": "questions", "position": 0,
                          "permission_overwrites": [], "guild_id": self.guild_id, "nsfw": False, "topic": None}],
            "members": [Member(self.bot_user).payload()], "premium_tier": 0, "verification_level": 0,
            "explicit_content_filter": 0, "default_message_notifications": 0, "mfa_level": 0, "system_channel_flags": 0,
            "preferred_locale": "en-US", "nsfw_level": 0, "premium_progress_bar_enabled": False,
        }

    # --- things members do -------------------------------------------------------------------
    async def inject_message(
        self, author: Member, content: str, *, mention_bot: bool = False, reply_to: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if mention_bot:
            content = f"<@{self.app_id}> {content}"
        message = self._message(author.user, content, member=author)
        message["mentions"] = [self.bot_user] if mention_bot else []
        if reply_to is not None:
            message["type"] = 19
            message["message_reference"] = {"message_id": reply_to["id"], "channel_id": self.channel_id, "guild_id": self.guild_id}
            message["referenced_message"] = reply_to
        self.messages[message["id"]] = message
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def inject_slash(self, member: Member, name: str, **options: Any) -> Interaction:
        """Deliver a slash command as Discord would; raises PermissionError where Discord
        would not deliver it (default member permissions) and ValueError for bad options."""
        command = self.commands.get(name)
        if command is None:
            raise LookupError(f"/{name} is not synced")
        required = command.get("default_member_permissions")
        if required is not None and int(required) & member.permissions != int(required):
            raise PermissionError(f"/{name} needs permissions {required}")
        schema = {o["name"]: o for o in command.get("options", [])}
        for opt in schema.values():
            if opt.get("required") and opt["name"] not in options:
                raise ValueError(f"option {opt['name']} is required")
        for key, value in options.items():
            if key not in schema:
                raise ValueError(f"unknown option {key}")
            if schema[key]["type"] == 3 and not isinstance(value, str):
                raise ValueError(f"option {key} must be a string")
            if schema[key]["type"] == 3 and len(value) > 6000:
                raise ValueError("option too long")
        token = f"itoken-{snowflake()}"
        interaction_id = snowflake()
        self.interactions[token] = Interaction(interaction_id, token, time.monotonic(), name)
        await self.dispatch("INTERACTION_CREATE", {
            "id": interaction_id, "application_id": self.app_id, "type": 2, "token": token, "version": 1,
            "guild_id": self.guild_id, "channel_id": self.channel_id,
            "channel": {"id": self.channel_id, "type": 0, "guild_id": self.guild_id, "name": "questions"},
            "member": member.payload(with_permissions=True), "app_permissions": str(EVERYONE_PERMISSIONS),
            "locale": "en-US", "guild_locale": "en-US", "entitlements": [], "authorizing_integration_owners": {},
            "context": 0, "attachment_size_limit": 8 * 1024 * 1024,
            "data": {"id": command["id"], "name": name, "type": 1, "guild_id": self.guild_id,
                     "options": [{"name": k, "type": schema[k]["type"], "value": v} for k, v in options.items()]},
        })
        return self.interactions[token]

    # --- REST ------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json":
                body = json.loads(raw)
            elif request.content_type.startswith("multipart/"):
                body = {"multipart": True}
        call = Call(request.method, path, body, time.monotonic())
        self.calls.append(call)
        response = self._route(request.method, path, body)
        call.status = response.status
        async with self._changed:
            self._changed.notify_all()
        return response

    def _route(self, method: str, path: str, body: Any) -> web.Response:
        app = self.app_id
        if (method, path) == ("GET", "/users/@me"):
            return json_response(self.bot_user)
        if (method, path) == ("GET", "/oauth2/applications/@me"):
            return json_response({"id": app, "name": "sourcebot", "description": "", "icon": None, "bot_public": True,
                                  "bot_require_code_grant": False, "owner": self.owner, "verify_key": "00", "flags": 0})
        if method == "PUT" and re.fullmatch(rf"/applications/{app}(/guilds/\d+)?/commands", path):
            self.commands = {}
            for command in body:
                self.commands[command["name"]] = {**command, "id": snowflake(), "application_id": app, "version": "1"}
            return json_response(list(self.commands.values()))
        if method == "POST" and re.fullmatch(r"/channels/\d+/typing", path):
            return web.Response(status=204)
        if method == "POST" and (m := re.fullmatch(r"/channels/(\d+)/messages", path)):
            problem = self._check_message(body)
            if problem:
                return problem
            message = self._message(self.bot_user, body.get("content") or "", embeds=body.get("embeds") or [])
            message["channel_id"] = m.group(1)
            if body.get("message_reference"):
                message["type"] = 19
                message["message_reference"] = body["message_reference"]
            self.messages[message["id"]] = message
            return json_response(message)
        if method == "PATCH" and (m := re.fullmatch(r"/channels/(\d+)/messages/(\d+)", path)):
            message = self.messages.get(m.group(2))
            if message is None:
                return error(404, 10008, "Unknown Message")
            problem = self._check_message(body, edit=True)
            if problem:
                return problem
            message.update({k: body[k] for k in ("content", "embeds") if k in body})
            return json_response(message)
        if method == "POST" and (m := re.fullmatch(r"/interactions/(\d+)/([\w-]+)/callback", path)):
            return self._callback(m.group(2), body)
        if (m := re.fullmatch(rf"/webhooks/{app}/([\w-]+)(/messages/(@original|\d+))?", path)):
            token = m.group(1)
            if token not in self.interactions:
                return error(404, 10015, "Unknown Webhook")
            if method == "DELETE":
                return web.Response(status=204)
            problem = self._check_message(body, edit=method == "PATCH")
            if problem:
                return problem
            message = self._message(self.bot_user, (body or {}).get("content") or "", embeds=(body or {}).get("embeds") or [])
            message["flags"] = (body or {}).get("flags", 0)
            return json_response(message)
        return error(404, 0, f"emulator has no route for {method} {path}")

    def _check_message(self, body: Any, edit: bool = False) -> web.Response | None:
        body = body or {}
        content = body.get("content") or ""
        if len(content) > 2000:
            return error(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.")
        embeds = body.get("embeds") or []
        for embed in embeds:
            size = len(embed.get("title", "")) + len(embed.get("description", "")) + sum(
                len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
            if size > 6000 or len(embed.get("fields", [])) > 25 or any(len(f["value"]) > 1024 for f in embed.get("fields", [])):
                return error(400, 50035, "Invalid Form Body: embed too large")
        if not edit and not content and not embeds:
            return error(400, 50006, "Cannot send an empty message")
        return None

    def _callback(self, token: str, body: Any) -> web.Response:
        interaction = self.interactions.get(token)
        if interaction is None:
            return error(404, 10062, "Unknown interaction")
        if time.monotonic() - interaction.created > INTERACTION_DEADLINE:
            interaction.late = True
            return error(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            return error(400, 40060, "Interaction has already been acknowledged.")
        kind = body["type"]
        data = body.get("data") or {}
        if kind == 4:
            problem = self._check_message(data)
            if problem:
                return problem
        interaction.acknowledged = True
        ephemeral = bool(data.get("flags", 0) & 64)
        message = self._message(self.bot_user, data.get("content") or "", embeds=data.get("embeds") or [])
        return json_response({
            "interaction": {"id": interaction.id, "type": 2, "response_message_id": message["id"],
                            "response_message_loading": kind == 5, "response_message_ephemeral": ephemeral},
            "resource": {"type": kind, "message": message} if kind in (4, 5) else {"type": kind},
        })

    def _message(self, author: dict[str, Any], content: str, *, member: Member | None = None,
                 embeds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": snowflake(), "channel_id": self.channel_id, "guild_id": self.guild_id, "author": author,
            "content": content, "timestamp": "2026-11-25T12:00:00+00:00", "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [], "embeds": embeds or [],
            "pinned": False, "type": 0, "flags": 0, "components": [],
        }
        if member is not None:
            message["member"] = {k: v for k, v in member.payload().items() if k != "user"}
        return message

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

    def calls_to(self, method: str, pattern: str, after: int = 0) -> list[Call]:
        return [c for c in self.calls[after:] if c.method == method and re.fullmatch(pattern, c.path)]
