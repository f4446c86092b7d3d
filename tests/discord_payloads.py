"""Payload builders, record types and Discord rule checks for tests/discord_emulator.py.

The records the emulator keeps (Call, Member, Interaction, Guild, Expectation; import them from
tests.discord_emulator as before) and pure functions: the JSON objects Discord sends (users, roles, channels, messages,
attachments), the permission arithmetic Discord applies, and the validation Discord runs on
what a bot sends (message/embed limits, autocomplete choices, command schemas, slash options).
Every shape here was checked against what discord.py 2.7.1 parses (see
/work/shared/notes/discord-emulator*.md): a missing required key crashes the client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
from aiohttp import web

# --- permission bits, intents --------------------------------------------------------------------
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
MANAGE_MESSAGES = 1 << 13
MANAGE_ROLES = 1 << 28
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1
# Discord's default @everyone grants the thread permissions too.
EVERYONE_PERMISSIONS = (VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | USE_APPLICATION_COMMANDS
                        | CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | EMBED_LINKS | ATTACH_FILES | (1 << 6)  # + add reactions

INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15

EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
HAS_THREAD = 1 << 5
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15
SENDABLE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2  # what a create body may set
NON_TEXT_CHANNELS = {4, 13, 15, 16}  # category, stage, forum, media: no messages of their own
THREAD_TYPES = {10, 11, 12}  # announcement, public, private thread
FORUM_TYPES = {15, 16}  # forum, media: posts are threads
ARCHIVE_DURATIONS = {60, 1440, 4320, 10080}
TIMESTAMP = "2026-11-25T12:00:00+00:00"
_last_id = 0


def snowflake() -> str:
    """A new id as Discord makes them: the milliseconds since Discord's epoch (2015) shifted left
    22 bits, so `discord.utils.snowflake_time(id)` is when it was made (history reads with
    `after=` a time, catch-up windows). Strictly increasing within the process."""
    global _last_id
    _last_id = max(_last_id + 1, discord.utils.time_snowflake(datetime.now(UTC)))
    return str(_last_id)


def json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py only decodes an exact "application/json" (no charset suffix).
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


def error(status: int, code: int, message: str) -> web.Response:
    return json_response({"code": code, "message": message}, status)


# --- records the emulator keeps ----------------------------------------------------------------
@dataclass
class Call:
    method: str
    path: str
    body: Any
    at: float
    status: int = 0
    query: dict[str, str] = field(default_factory=dict)
    code: int | None = None  # Discord's JSON error code, for 4xx answers
    expected: bool = False  # matched an emulator.expect_error(...)


@dataclass
class Member:
    user: dict[str, Any]
    roles: list[str] = field(default_factory=list)
    permissions: int = EVERYONE_PERMISSIONS  # what @everyone and per-member grants give; roles add to it
    guild_id: str | None = None  # None: the emulator's default guild

    @property
    def id(self) -> str:
        return str(self.user["id"])

    def payload(self, with_permissions: bool = False, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user": self.user, "roles": self.roles, "flags": 0, "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False, "mute": False, "nick": None, "avatar": None, "pending": False, "premium_since": None,
            "communication_disabled_until": None,
        }
        if with_permissions:
            data["permissions"] = str(self.permissions if permissions is None else permissions)
        return data


@dataclass
class Interaction:
    id: str
    token: str
    created: float
    command: str  # the full name as invoked, e.g. "source add"
    acknowledged: bool = False
    late: bool = False
    kind: int = 2  # 2 application command, 4 autocomplete
    guild_id: str | None = None
    channel_id: str = ""
    user_id: str = ""
    response: dict[str, Any] | None = None  # the callback body
    original: dict[str, Any] | None = None  # the original response message as it is now
    edits: list[dict[str, Any]] = field(default_factory=list)  # the original after each PATCH, in order
    followups: list[dict[str, Any]] = field(default_factory=list)  # followup messages (live objects)
    choices: list[dict[str, Any]] | None = None  # an autocomplete answer
    custom_id: str | None = None  # a component click (type 3) or modal submit (type 5)
    message_id: str | None = None  # the message whose component was used (types 3, and 5 from a component)
    modal: dict[str, Any] | None = None  # the modal the bot opened with callback type 9 (its `data`)
    modal_at: float = 0.0  # when that callback was answered
    submitted: Interaction | None = None  # the modal-submit interaction that closed `modal`

    @property
    def response_type(self) -> int | None:
        return None if self.response is None else self.response["type"]

    @property
    def ephemeral(self) -> bool:
        return bool(self.original and self.original["flags"] & EPHEMERAL)


@dataclass
class Guild:
    id: str
    name: str
    owner_id: str
    default_channel: str = ""
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> role object (incl. @everyone == id)
    channels: list[str] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)  # not counting the bot


@dataclass
class Expectation:
    status: int
    code: int | None = None
    method: str | None = None
    path: str | None = None  # regex, full match
    calls: list[Call] = field(default_factory=list)

    def matches(self, call: Call) -> bool:
        return (call.status == self.status and self.code in (None, call.code) and self.method in (None, call.method)
                and (self.path is None or re.fullmatch(self.path, call.path) is not None))


# --- objects ---------------------------------------------------------------------------------------
def user(name: str, bot: bool = False, user_id: str | None = None) -> dict[str, Any]:
    return {"id": user_id or snowflake(), "username": name, "discriminator": "0", "avatar": None,
            "global_name": name, "bot": bot, "public_flags": 0}


def role(role_id: str, name: str, permissions: int, position: int = 0) -> dict[str, Any]:
    return {"id": role_id, "name": name, "permissions": str(permissions), "position": position, "color": 0,
            "hoist": False, "managed": False, "mentionable": False, "flags": 0, "icon": None, "unicode_emoji": None}


def channel(channel_id: str, guild_id: str, name: str, type: int = 0, position: int = 0, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": channel_id, "type": type, "name": name, "position": position, "guild_id": guild_id,
                            "permission_overwrites": [], "nsfw": False, "parent_id": None, "flags": 0}
    if type in (0, 5):
        data.update(topic=None, last_message_id=None, rate_limit_per_user=0)
    if type == 15:  # forum: GUILD_CREATE needs no more, these are what Discord sends
        data.update(topic=None, available_tags=[], default_reaction_emoji=None, default_sort_order=None,
                    default_forum_layout=0, default_auto_archive_duration=1440, default_thread_rate_limit_per_user=0)
    data.update(extra)
    return data


def thread(thread_id: str, guild_id: str, parent_id: str, owner_id: str, name: str, *, type: int = 11,
           auto_archive_duration: int = 1440, rate_limit_per_user: int = 0,
           applied_tags: list[str] | None = None) -> dict[str, Any]:
    """A thread channel object as Discord sends it (REST, THREAD_CREATE, GUILD_CREATE.threads).
    discord.py needs parent_id, owner_id, message_count, member_count and thread_metadata
    (archived, auto_archive_duration, archive_timestamp): a missing one is a KeyError that stops the client."""
    return {"id": thread_id, "type": type, "guild_id": guild_id, "parent_id": parent_id, "owner_id": owner_id,
            "name": name, "last_message_id": None, "message_count": 0, "member_count": 0, "total_message_sent": 0,
            "rate_limit_per_user": rate_limit_per_user, "flags": 0, "applied_tags": applied_tags or [],
            "thread_metadata": {"archived": False, "auto_archive_duration": auto_archive_duration,
                                "archive_timestamp": TIMESTAMP, "locked": False, "create_timestamp": TIMESTAMP,
                                **({"invitable": True} if type == 12 else {})}}


def forum_tag(name: str, *, moderated: bool = False, emoji_name: str | None = None) -> dict[str, Any]:
    """A forum tag for add_channel(..., type=15, available_tags=[...]) (discord.py needs emoji_name, even null)."""
    return {"id": snowflake(), "name": name, "moderated": moderated, "emoji_id": None, "emoji_name": emoji_name}


def thread_member(thread_id: str, user_id: str) -> dict[str, Any]:
    return {"id": thread_id, "user_id": user_id, "join_timestamp": TIMESTAMP, "flags": 0}


def dm_channel(channel_id: str, recipient: dict[str, Any]) -> dict[str, Any]:
    return {"id": channel_id, "type": 1, "recipients": [recipient], "last_message_id": None, "flags": 0}


def attachment(attachment_id: str, filename: str, size: int, url: str, proxy_url: str,
               content_type: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": attachment_id, "filename": filename, "size": size, "url": url, "proxy_url": proxy_url}
    if content_type:
        data["content_type"] = content_type
    return data


def message(author: dict[str, Any], content: str, *, channel_id: str, guild_id: str | None,
            member: dict[str, Any] | None = None, embeds: list[dict[str, Any]] | None = None,
            attachments: list[dict[str, Any]] | None = None, flags: int = 0,
            components: list[dict[str, Any]] | None = None, message_id: str | None = None) -> dict[str, Any]:
    mid = message_id or snowflake()
    data: dict[str, Any] = {
        "id": mid, "channel_id": channel_id, "author": author, "content": content,
        "timestamp": discord.utils.snowflake_time(int(mid)).isoformat(), "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
        "mention_roles": [], "attachments": attachments or [], "embeds": embeds or [], "pinned": False, "type": 0,
        "flags": flags, "components": components or [],
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
        if member is not None:
            data["member"] = {k: v for k, v in member.items() if k != "user"}
    return data


def strip_content(data: dict[str, Any]) -> dict[str, Any]:
    """What a bot without the MESSAGE_CONTENT intent receives."""
    return {**data, "content": "", "embeds": [], "attachments": [], "components": []}


# --- permissions -----------------------------------------------------------------------------------
def permissions_in(base: int, overwrites: list[dict[str, Any]], *, everyone_id: str, role_ids: list[str],
                   member_id: str) -> int:
    """Discord's channel permission algorithm: @everyone overwrite, role overwrites, member overwrite."""
    if base & ADMINISTRATOR:
        return ALL_PERMISSIONS
    by_id = {o["id"]: o for o in overwrites}
    perms = base
    if everyone_id in by_id:
        perms = (perms & ~int(by_id[everyone_id]["deny"])) | int(by_id[everyone_id]["allow"])
    allow = deny = 0
    for rid in role_ids:
        if rid in by_id:
            allow |= int(by_id[rid]["allow"])
            deny |= int(by_id[rid]["deny"])
    perms = (perms & ~deny) | allow
    if member_id in by_id:
        perms = (perms & ~int(by_id[member_id]["deny"])) | int(by_id[member_id]["allow"])
    return perms


# --- what Discord rejects in a message the bot sends ----------------------------------------------
def check_message(body: dict[str, Any] | None, *, edit: bool = False, current: dict[str, Any] | None = None
                  ) -> tuple[int, int, str] | None:
    """(status, code, message) if Discord would refuse this create/edit body, else None."""
    body = body or {}
    content = body.get("content") or ""
    if len(content) > 2000:
        return 400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length."
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        return 400, 50035, "Invalid Form Body: embeds: Must be 10 or fewer in length."
    total = 0
    for embed in embeds:
        fields = embed.get("fields") or []
        limits = [("title", embed.get("title"), 256), ("description", embed.get("description"), 4096),
                  ("footer.text", (embed.get("footer") or {}).get("text"), 2048),
                  ("author.name", (embed.get("author") or {}).get("name"), 256)]
        if len(fields) > 25:
            return 400, 50035, "Invalid Form Body: embeds.fields: Must be 25 or fewer in length."
        for f in fields:
            if not f.get("name") or not f.get("value"):
                return 400, 50035, "Invalid Form Body: embeds.fields: This field is required"
            limits += [("fields.name", f["name"], 256), ("fields.value", f["value"], 1024)]
        for key, text, limit in limits:
            if text and len(text) > limit:
                return 400, 50035, f"Invalid Form Body: embeds.{key}: Must be {limit} or fewer in length."
            total += len(text or "")
    if total > 6000:
        return 400, 50035, "Invalid Form Body: embeds: Embed size exceeds maximum size of 6000"
    flags = int(body.get("flags") or 0) | (int(current.get("flags") or 0) if current else 0)
    v2 = bool(flags & IS_COMPONENTS_V2)
    if v2 and (content or embeds):
        return 400, 50035, "Invalid Form Body: content: content and embeds cannot be used with the IS_COMPONENTS_V2 flag"
    if body.get("components") is not None and (why := check_components(body["components"], v2=v2)):
        return 400, 50035, f"Invalid Form Body: {why}"
    has = lambda d: bool((d.get("content") or "") or d.get("embeds") or d.get("files") or d.get("attachments")  # noqa: E731
                         or d.get("components") or d.get("sticker_ids") or d.get("poll"))
    if not edit and not has(body):
        return 400, 50006, "Cannot send an empty message"
    if edit and current is not None and not has({**current, **{k: v for k, v in body.items() if k != "files"},
                                                  "files": body.get("files")}):
        return 400, 50006, "Cannot send an empty message"
    return None


# --- message components and modals -----------------------------------------------------------------
BUTTON_STYLES = {1, 2, 3, 4, 5, 6}  # primary, secondary, success, danger, link, premium
SELECT_TYPES = {3, 5, 6, 7, 8}  # string, user, role, mentionable, channel select
LAYOUT_TYPES = {9, 10, 11, 12, 13, 14, 17}  # section, text display, thumbnail, media gallery, file, separator, container


def walk_components(components: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Every component of a message or modal, depth first (rows, containers, sections, labels)."""
    found: list[dict[str, Any]] = []
    for component in components or []:
        found.append(component)
        found += walk_components(component.get("components"))
        found += walk_components([c for c in (component.get("accessory"), component.get("component")) if c])
    return found


def find_component(components: list[dict[str, Any]] | None, custom_id: str) -> dict[str, Any] | None:
    return next((c for c in walk_components(components) if c.get("custom_id") == custom_id), None)


def check_components(components: Any, *, v2: bool = False) -> str | None:
    """Discord's validation of a message's `components` (the `errors` path and message of its 50035)."""
    if not isinstance(components, list):
        return "components: Must be an array."
    if not v2 and len(components) > 5:
        return "components: Must be 5 or fewer in length."
    if v2 and len(walk_components(components)) > 40:
        return "components: Must be 40 or fewer in total."
    seen: set[str] = set()
    for i, component in enumerate(components):
        where, kind = f"components.{i}", component.get("type")
        if kind == 1:
            why = _check_row(component, where, seen)
        elif v2 and kind in LAYOUT_TYPES:
            why = _check_layout(component, where, seen)
        else:
            why = f"{where}.type: Value must be one of (1,)." if not v2 else f"{where}.type: Invalid component type {kind}"
        if why:
            return why
    return None


def _check_row(row: dict[str, Any], where: str, seen: set[str]) -> str | None:
    children = row.get("components") or []
    if not 1 <= len(children) <= 5:
        return f"{where}.components: Must be between 1 and 5 in length."
    if any(c.get("type") in SELECT_TYPES for c in children) and len(children) > 1:
        return f"{where}.components: A select menu must be the only component of its action row."
    for j, child in enumerate(children):
        at = f"{where}.components.{j}"
        if child.get("type") == 2:
            why = _check_button(child, at, seen)
        elif child.get("type") in SELECT_TYPES:
            why = _check_select(child, at, seen)
        else:
            why = f"{at}.type: Component type {child.get('type')} is not valid in a message's action row."
        if why:
            return why
    return None


def _check_layout(component: dict[str, Any], where: str, seen: set[str]) -> str | None:
    for key in ("components", "accessory"):
        value = component.get(key)
        for j, child in enumerate(value if isinstance(value, list) else [value] if value else []):
            at = f"{where}.{key}" + (f".{j}" if key == "components" else "")
            kind = child.get("type")
            why = (_check_row(child, at, seen) if kind == 1 else _check_button(child, at, seen) if kind == 2
                   else _check_layout(child, at, seen) if kind in LAYOUT_TYPES else f"{at}.type: Invalid component type {kind}")
            if why:
                return why
    return None


def _check_custom_id(component: dict[str, Any], where: str, seen: set[str]) -> str | None:
    custom_id = component.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return f"{where}.custom_id: This field is required"
    if len(custom_id) > 100:
        return f"{where}.custom_id: Must be 100 or fewer in length."
    if custom_id in seen:
        return f"{where}.custom_id: Component custom id cannot be duplicated"
    seen.add(custom_id)
    return None


def _too_long(component: dict[str, Any], where: str, key: str, limit: int, low: int = 0) -> str | None:
    value = component.get(key)
    if value is not None and not low <= len(value) <= limit:
        return f"{where}.{key}: Must be between {low} and {limit} in length." if low else f"{where}.{key}: Must be {limit} or fewer in length."
    return None


def _check_button(button: dict[str, Any], where: str, seen: set[str]) -> str | None:
    style = button.get("style")
    if style not in BUTTON_STYLES:
        return f"{where}.style: Value must be one of (1, 2, 3, 4, 5, 6)."
    if why := _too_long(button, where, "label", 80):
        return why
    if style == 5:
        if not button.get("url"):
            return f"{where}.url: A link button needs a url"
        if button.get("custom_id") is not None:
            return f"{where}.custom_id: A link button cannot have a custom_id"
        return None
    if style == 6:
        return None if button.get("sku_id") else f"{where}.sku_id: A premium button needs a sku_id"
    if button.get("url") is not None:
        return f"{where}.url: Only link buttons can have a url"
    if not button.get("label") and not button.get("emoji"):
        return f"{where}.label: A button needs a label or an emoji"
    return _check_custom_id(button, where, seen)


def _check_select(select: dict[str, Any], where: str, seen: set[str]) -> str | None:
    if why := _check_custom_id(select, where, seen) or _too_long(select, where, "placeholder", 150):
        return why
    low, high = select.get("min_values", 1), select.get("max_values", 1)
    if not 0 <= low <= 25:
        return f"{where}.min_values: int value should be between 0 and 25."
    if not 1 <= high <= 25 or low > high:
        return f"{where}.max_values: int value should be between {max(low, 1)} and 25."
    if select.get("type") != 3:
        return None
    options = select.get("options") or []
    if not 1 <= len(options) <= 25:
        return f"{where}.options: Must be between 1 and 25 in length."
    if high > len(options):
        return f"{where}.max_values: Must be at most the number of options ({len(options)})."
    values: set[str] = set()
    for k, option in enumerate(options):
        at = f"{where}.options.{k}"
        for key, limit, low_len in (("label", 100, 1), ("value", 100, 1), ("description", 100, 0)):
            if key != "description" and not option.get(key):
                return f"{at}.{key}: This field is required"
            if why := _too_long(option, at, key, limit, low_len):
                return why
        if option["value"] in values:
            return f"{at}.value: Select option values must be unique"
        values.add(option["value"])
    return None


def check_modal(data: dict[str, Any]) -> str | None:
    """Discord's validation of a modal (callback type 9 `data`): custom_id, a title of 1-45
    characters and 1-5 rows, each an action row with one text input (or a label wrapping one)."""
    seen: set[str] = set()
    if why := _check_custom_id(data, "data", set()) or _too_long(data, "data", "title", 45, 1):
        return why
    if not data.get("title"):
        return "data.title: This field is required"
    components = data.get("components") or []
    if not 1 <= len(components) <= 5:
        return "data.components: Must be between 1 and 5 in length."
    for i, component in enumerate(components):
        where, kind = f"data.components.{i}", component.get("type")
        if kind == 1:
            children = component.get("components") or []
            if len(children) != 1:
                return f"{where}.components: Must be 1 in length."
            if children[0].get("type") != 4:
                return f"{where}.components.0.type: A modal's action row holds one text input (type 4)"
            why = _check_text_input(children[0], f"{where}.components.0", seen, labelled=True)
        elif kind == 18:  # Label
            inner = component.get("component") or {}
            why = _too_long(component, where, "label", 45, 1) or _too_long(component, where, "description", 100)
            if not why and not component.get("label"):
                why = f"{where}.label: This field is required"
            if not why:
                why = (_check_text_input(inner, f"{where}.component", seen, labelled=False) if inner.get("type") == 4
                       else _check_select(inner, f"{where}.component", seen) if inner.get("type") in SELECT_TYPES
                       else None if inner.get("type") in (19, 21, 22, 23) and inner.get("custom_id")
                       else f"{where}.component.type: Invalid component type {inner.get('type')} in a label")
        elif kind == 10:  # TextDisplay
            why = _too_long(component, where, "content", 4000, 1)
        else:
            why = f"{where}.type: Invalid component type {kind} in a modal"
        if why:
            return why
    return None


def _check_text_input(text: dict[str, Any], where: str, seen: set[str], *, labelled: bool) -> str | None:
    if why := _check_custom_id(text, where, seen):
        return why
    if text.get("style") not in (1, 2):
        return f"{where}.style: Value must be one of (1, 2)."
    if labelled and not text.get("label"):
        return f"{where}.label: This field is required"
    if not labelled and text.get("label") is not None:
        return f"{where}.label: A text input inside a label cannot have its own label"
    low, high = text.get("min_length", 0), text.get("max_length", 4000)
    if not 0 <= low <= 4000:
        return f"{where}.min_length: int value should be between 0 and 4000."
    if not 1 <= high <= 4000 or low > high:
        return f"{where}.max_length: int value should be between {max(low, 1)} and 4000."
    return (_too_long(text, where, "label", 45, 1) or _too_long(text, where, "value", 4000)
            or _too_long(text, where, "placeholder", 100))


def modal_inputs(modal: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The inputs of a modal as (wrapper type: 1 action row / 18 label, input component)."""
    inputs = []
    for component in modal.get("components") or []:
        if component.get("type") == 1:
            inputs += [(1, c) for c in component.get("components") or []]
        elif component.get("type") == 18 and component.get("component"):
            inputs.append((18, component["component"]))
    return inputs


def check_choices(data: dict[str, Any]) -> str | None:
    choices = data.get("choices")
    if not isinstance(choices, list):
        return "choices: This field is required"
    if len(choices) > 25:
        return "choices: Must be 25 or fewer in length."
    for c in choices:
        if not 1 <= len(str(c.get("name", ""))) <= 100:
            return "choices.name: Must be between 1 and 100 in length."
        if isinstance(c.get("value"), str) and len(c["value"]) > 100:
            return "choices.value: Must be 100 or fewer in length."
    return None


# --- application command schemas -------------------------------------------------------------------
_NAME = re.compile(r"[-_\w]{1,32}")


def check_commands(commands: list[dict[str, Any]]) -> str | None:
    """Discord's validation of a bulk-overwrite body (the parts a bot gets wrong)."""
    if len(commands) > 100:
        return "Must be 100 or fewer in length."
    seen: set[tuple[int, str]] = set()
    for cmd in commands:
        kind = cmd.get("type", 1)
        if (kind, cmd["name"]) in seen:
            return f"Application command names must be unique ({cmd['name']})"
        seen.add((kind, cmd["name"]))
        problem = _check_options(cmd, top=True) if kind == 1 else _check_context_menu(cmd)
        if problem:
            return problem
    for kind, what in ((2, "user"), (3, "message")):  # Discord: at most 5 of each context-menu kind
        if sum(cmd.get("type", 1) == kind for cmd in commands) > 5:
            return f"Maximum number of {what} commands reached (5)"
    return None


def _check_context_menu(cmd: dict[str, Any]) -> str | None:
    """A user (type 2) or message (type 3) command: a name of 1-32 characters (spaces and
    capitals allowed), no description, no options."""
    if cmd.get("type") not in (2, 3):
        return f"{cmd['name']}.type: Value must be one of (1, 2, 3)."
    if not 1 <= len(cmd["name"]) <= 32:
        return f"{cmd['name']}: Must be between 1 and 32 in length."
    if cmd.get("description"):
        return f"{cmd['name']}.description: Context menu commands cannot have description"
    if cmd.get("options"):
        return f"{cmd['name']}.options: Context menu commands cannot have options"
    return None


def _check_options(node: dict[str, Any], top: bool = False) -> str | None:
    name = node["name"]
    if not _NAME.fullmatch(name) or name != name.lower():
        return f"{name}: Command name is invalid"
    if not 1 <= len(node.get("description") or "") <= 100:
        return f"{name}.description: Must be between 1 and 100 in length."
    options = node.get("options") or []
    if len(options) > 25:
        return f"{name}.options: Must be 25 or fewer in length."
    if len({o["name"] for o in options}) != len(options):
        return f"{name}.options: Option names must be unique"
    optional_seen = False
    for opt in options:
        if opt["type"] in (1, 2):
            if opt["type"] == 2 and not top:
                return f"{name}.{opt['name']}: subcommand groups cannot be nested"
            problem = _check_options(opt)
        else:
            if opt.get("required"):
                if optional_seen:
                    return f"{name}.options: Required options must be placed before non-required options"
            else:
                optional_seen = True
            problem = _check_options({**opt, "options": []})
            if len(opt.get("choices") or []) > 25:
                problem = f"{opt['name']}.choices: Must be 25 or fewer in length."
            if opt.get("choices") and opt.get("autocomplete"):
                problem = f"{opt['name']}: Autocomplete cannot be set if there are choices"
        if problem:
            return problem
    return None


Resolver = Callable[[dict[str, Any], Any], tuple[Any, dict[str, dict[str, Any]]]]


def build_options(command: dict[str, Any], path: list[str], values: dict[str, Any], resolve: Resolver,
                  focused: str | None = None) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The nested `data.options` Discord sends for `/command path... key=value`, validated against
    the synced schema, and the `data.resolved` maps. Raises LookupError for an unknown
    subcommand, ValueError for options Discord's client would not let through."""
    node, trail, kinds = command, [command["name"]], []
    for sub in path:
        subs = {o["name"]: o for o in node.get("options") or [] if o["type"] in (1, 2)}
        if sub not in subs:
            raise LookupError(f"/{' '.join(trail)} has no subcommand {sub!r} (synced: {sorted(subs) or 'none'})")
        node = subs[sub]
        trail.append(sub)
        kinds.append(node["type"])  # 2 SUB_COMMAND_GROUP, 1 SUB_COMMAND
    groups = [o["name"] for o in node.get("options") or [] if o["type"] in (1, 2)]
    if groups:
        raise LookupError(f"/{' '.join(trail)} cannot be invoked itself; pick one of {groups}")
    schema = {o["name"]: o for o in node.get("options") or []}
    if focused is not None and not (schema.get(focused) or {}).get("autocomplete"):
        raise ValueError(f"option {focused!r} of /{' '.join(trail)} has no autocomplete")
    for opt in schema.values():
        if focused is None and opt.get("required") and opt["name"] not in values:
            raise ValueError(f"option {opt['name']} is required")
    leaf: list[dict[str, Any]] = []
    resolved: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key not in schema:
            raise ValueError(f"unknown option {key} for /{' '.join(trail)} (synced: {sorted(schema)})")
        opt = schema[key]
        if key == focused:  # what the member has typed so far, always raw text
            leaf.append({"name": key, "type": opt["type"], "value": str(value), "focused": True})
            continue
        wire, extra = _option_value(opt, value, resolve)
        for kind, objects in extra.items():
            resolved.setdefault(kind, {}).update(objects)
        leaf.append({"name": key, "type": opt["type"], "value": wire})
    options = leaf
    for sub, kind in zip(reversed(path), reversed(kinds), strict=True):
        options = [{"name": sub, "type": kind, "options": options}]
    return options, resolved


def _option_value(opt: dict[str, Any], value: Any, resolve: Resolver) -> tuple[Any, dict[str, dict[str, Any]]]:
    kind, name = opt["type"], opt["name"]
    if kind == 3:
        if not isinstance(value, str):
            raise ValueError(f"option {name} must be a string")
        if len(value) > 6000 or not opt.get("min_length", 0) <= len(value) <= opt.get("max_length", 6000):
            raise ValueError(f"option {name}: length out of range" if len(value) <= 6000 else "option too long")
    elif kind in (4, 10):
        if isinstance(value, bool) or not isinstance(value, int if kind == 4 else (int, float)):
            raise ValueError(f"option {name} must be {'an integer' if kind == 4 else 'a number'}")
        if "min_value" in opt and value < opt["min_value"] or "max_value" in opt and value > opt["max_value"]:
            raise ValueError(f"option {name} out of range")
    elif kind == 5:
        if not isinstance(value, bool):
            raise ValueError(f"option {name} must be a boolean")
    else:  # 6 user, 7 channel, 8 role, 9 mentionable, 11 attachment: ids looked up in data.resolved
        return resolve(opt, value)
    if opt.get("choices") and value not in [c["value"] for c in opt["choices"]]:
        raise ValueError(f"option {name} must be one of {[c['value'] for c in opt['choices']]}")
    return value, {}
