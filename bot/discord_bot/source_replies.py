"""The replies of the moderators' `/source` commands: the deferred private reply edited with
progress while a source is fetched and indexed, the final report, the one-line audit post in
the log channel (and posting it), the list of a server's sources with who may see each, and the `visible-to`
option read from the channel and role mentions a moderator types."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import re
import threading
import time
from collections.abc import Mapping

import discord

from bot.discord_bot.render import (
    EMBED_COLOUR,
    EMBED_FIELD_LIMIT,
    EMBED_FIELD_NAME_LIMIT,
    EMBED_FIELD_VALUE_LIMIT,
    EMBED_TOTAL_LIMIT,
    MESSAGE_LIMIT,
    NO_MENTIONS,
    trim,
)
from bot.rag.access import Visibility
from bot.rag.errors import SourceError
from bot.rag.library import SourceChange
from bot.state import SourceRow

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 1.0  # seconds between edits of the reply while a source is ingested


class ProgressEdits:
    """Called from the worker thread with a progress line; edits the deferred reply on the
    event loop, at most once per `interval` seconds. `settle()` waits for edits in flight, so
    the final edit always comes last."""

    def __init__(self, interaction: discord.Interaction, interval: float = PROGRESS_INTERVAL) -> None:
        self.interaction, self.interval = interaction, interval
        self.loop = asyncio.get_running_loop()
        self._last = -math.inf
        self._lock = threading.Lock()
        self._pending: list[concurrent.futures.Future[None]] = []

    def __call__(self, text: str) -> None:
        with self._lock:
            if time.monotonic() - self._last < self.interval:
                return
            self._last = time.monotonic()
            self._pending.append(asyncio.run_coroutine_threadsafe(self._edit(text), self.loop))

    async def _edit(self, text: str) -> None:
        try:
            await self.interaction.edit_original_response(content=f"⏳ {trim(text, MESSAGE_LIMIT - 2)}",
                                                          allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:  # progress is a courtesy; the final edit still comes
            log.warning("progress edit failed: %s", exc)

    async def settle(self) -> None:
        await asyncio.gather(*(asyncio.wrap_future(f) for f in self._pending), return_exceptions=True)


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def audit_line(user: discord.abc.User, change: SourceChange) -> str:
    """The one line posted to the log channel (a mention shows who, without pinging)."""
    return trim(f"📚 {user.mention} {change.result}", MESSAGE_LIMIT)


def report_text(change: SourceChange, problem: str | None = None) -> str:
    """The moderator's final reply: what happened, then the pages or files that had problems."""
    lines = [f"✅ {change.result[:1].upper()}{change.result[1:]}."]
    lines += [f"• {note}" for note in change.notes[:10]]
    if len(change.notes) > 10:
        lines.append(f"• …and {len(change.notes) - 10} more")
    if problem:
        lines.append(f"⚠️ {problem}")
    return clip("\n".join(lines))


def sources_embed(rows: list[SourceRow], schedules: Mapping[str, str] | None = None) -> discord.Embed:
    """This server's sources: name, kind, origin, chunks, who added them and when, and how
    often a web source is refreshed (`schedules`: name -> in words)."""
    embed = discord.Embed(title="This server's sources", colour=EMBED_COLOUR)
    total = len(embed.title or "")
    for row in rows[:EMBED_FIELD_LIMIT]:
        status = "" if row.status == "ready" else f" · ⚠️ {row.status}" + (f": {row.error}" if row.error else "")
        when = discord.utils.format_dt(row.added_at, "R")
        value = (f"{row.kind} · {row.chunks} chunk{'' if row.chunks == 1 else 's'}"
                 + f" · visible to {Visibility.of(row).describe()}"
                 + (f" · {row.pages} page(s)" if row.kind == "crawl" else "")
                 + (f" · {schedules[row.name]}" if schedules and row.name in schedules else "")
                 + f" · added by {row.added_by_name or row.added_by or '?'} {when}{status}")
        origin = trim(row.origin, 55) if row.kind == "file" else f"<{trim(row.origin, 53)}>"
        origin = "" if row.origin == row.name else "\n" + origin
        value = trim(value, EMBED_FIELD_VALUE_LIMIT - 60) + origin
        name = trim(row.name, EMBED_FIELD_NAME_LIMIT)
        if total + len(name) + len(value) > EMBED_TOTAL_LIMIT - 100:
            break
        embed.add_field(name=name, value=value, inline=False)
        total += len(name) + len(value)
    if len(embed.fields) < len(rows):
        embed.set_footer(text=f"…and {len(rows) - len(embed.fields)} more")
    return embed


_MENTION = re.compile(r"<#(\d+)>|<@&(\d+)>")


def parse_visible_to(text: str | None, guild: discord.Guild) -> Visibility:
    """`visible-to`: "everyone" (or nothing), channel mentions (`#staff`), or role mentions
    (`@Staff`) of this server; anything else is a SourceError saying what to type."""
    text = (text or "").strip()
    if not text or text.lower() in {"everyone", "@everyone"}:
        return Visibility.everyone()
    found = list(_MENTION.finditer(text))
    leftover = _MENTION.sub(" ", text).replace(",", " ").split()
    if not found or leftover:
        raise SourceError("`visible-to` takes `everyone`, or channels (#name) or roles (@name) of this server.")
    channels = {int(m.group(1)) for m in found if m.group(1)}
    roles = {int(m.group(2)) for m in found if m.group(2)}
    if channels and roles:
        raise SourceError("`visible-to` takes channels or roles, not both.")
    if guild.id in roles:
        return Visibility.everyone()  # the @everyone role
    unknown = [i for i in channels if guild.get_channel_or_thread(i) is None] + [i for i in roles if guild.get_role(i) is None]
    if unknown:
        raise SourceError("`visible-to` names a channel or role that is not in this server.")
    return Visibility.channels(channels) if channels else Visibility.roles(roles)


def can_post(channel: discord.abc.GuildChannel) -> bool:
    permissions = channel.permissions_for(channel.guild.me)
    return permissions.view_channel and permissions.send_messages


async def announce(interaction: discord.Interaction, change: SourceChange) -> str | None:
    """Post the audit line in this server's log channel, if it has one; why not, if it failed."""
    if change.log_channel_id is None or interaction.guild is None:
        return None
    channel = interaction.guild.get_channel(int(change.log_channel_id))
    problem = None
    if not isinstance(channel, discord.TextChannel | discord.Thread | discord.VoiceChannel):
        problem = "the log channel no longer exists; set another with `/source log-channel`."
    elif not can_post(channel):
        problem = f"I can't post in the log channel {channel.mention} (missing permission)."
    else:
        try:
            await channel.send(audit_line(interaction.user, change), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            problem = f"posting to the log channel failed ({exc.status})."
    if problem is not None:
        log.warning("guild %s: source change not announced: %s", interaction.guild_id, problem)
    return problem
