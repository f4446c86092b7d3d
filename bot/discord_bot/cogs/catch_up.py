"""Catching up on start: the questions members addressed to the bot while it was down (a crash
mid-wave, a restart) are answered, or the member is told plainly to ask again.

Once per process, when the gateway is ready, every channel and active thread the bot can read
that had a message in the last CATCH_UP_MINUTES is read with history calls
(`GET /channels/{id}/messages?after=...`) from where the bot left it: just before the oldest
message an earlier run took on and never finished (a thread it opened and left empty, say), else
after the newest one it handled there, and never before the window. Each message goes the way a
live one does (mentions, auto-answer channels, follow-ups in the bot's threads; chatter stays
unanswered; one handled already gets nothing). The first CATCH_UP_LIMIT of them, oldest first,
are answered; the rest get "please ask again". A channel is read to the end of the window, but
only its first READ_CAP messages may be answered: the questions after them (a busy channel) are
told to ask again too, never dropped silently. Channels outside ALLOWED_CHANNEL_IDS are not read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.discord_bot.checks import channel_allowed
from bot.rag.errors import RagError
from bot.state.models import utcnow

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot
    from bot.discord_bot.cogs.questions import QuestionsCog

log = logging.getLogger(__name__)
PARALLEL = 4  # missed questions answered at once
READ_CAP = 400  # per channel, questions after this many messages read are told to ask again


@dataclass(frozen=True)
class CatchUpReport:
    channels: int  # channels and threads read
    read: int  # members' messages read
    answered: int
    told: int  # asked to ask again (over the limit, or past a channel's READ_CAP)


def _readable(channel: discord.abc.GuildChannel | discord.Thread) -> bool:
    me = channel.guild.me
    perms = channel.permissions_for(me) if me is not None else None
    return perms is not None and perms.view_channel and perms.read_message_history


class CatchUpCog(commands.Cog):
    def __init__(self, bot: SourceBot) -> None:
        self.bot = bot
        self.started = False
        self.task: asyncio.Task[CatchUpReport] | None = None

    async def cog_unload(self) -> None:
        if self.task is not None:
            self.task.cancel()

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        if self.started or self.bot.settings.catch_up_minutes <= 0:
            return
        self.started = True  # on_ready comes again after a reconnect: once per process is enough
        self.task = asyncio.create_task(self.catch_up(), name="catch-up")

    def _channels(self, floor: int) -> list[discord.TextChannel | discord.Thread]:
        """Channels and active threads with a message since `floor` (a snowflake) that the bot can
        read and may answer in (ALLOWED_CHANNEL_IDS)."""
        found: list[discord.TextChannel | discord.Thread] = []
        for guild in self.bot.guilds:
            for channel in [*guild.text_channels, *guild.threads]:
                if ((channel.last_message_id or 0) > floor and channel_allowed(channel, self.bot.settings)
                        and _readable(channel)):
                    found.append(channel)
        return found

    async def catch_up(self) -> CatchUpReport:
        settings = self.bot.settings
        since = utcnow() - timedelta(minutes=settings.catch_up_minutes)
        floor = discord.utils.time_snowflake(since)
        channels = self._channels(floor)
        try:
            points = await asyncio.to_thread(self.bot.handled.resume_points, [c.id for c in channels], since)
        except RagError as exc:
            log.warning("catch-up: where the bot left off is unknown (%s); reading the whole window", exc)
            points = {}
        missed: list[discord.Message] = []
        past_cap: set[int] = set()  # read after a channel's first READ_CAP messages: told to ask again
        for channel in channels:
            after = max(floor, points.get(channel.id, 0))
            if (channel.last_message_id or 0) <= after:
                continue
            try:
                read = 0
                async for message in channel.history(limit=None, after=discord.Object(after), oldest_first=True):
                    read += 1
                    if not message.author.bot:
                        missed.append(message)
                        if read > READ_CAP:
                            past_cap.add(message.id)
            except discord.HTTPException as exc:
                log.warning("catch-up: could not read channel %s (%s %s)", channel.id, exc.status, exc.text)
        missed.sort(key=lambda m: m.id)
        report = await self._answer(missed, len(channels), past_cap)
        if report.answered or report.told:
            log.info("catch-up: %d missed question(s) answered, %d asked to ask again (%d message(s) read in %d channel(s))",
                     report.answered, report.told, report.read, report.channels)
        return report

    async def _answer(self, missed: list[discord.Message], channels: int, past_cap: set[int]) -> CatchUpReport:
        questions: QuestionsCog | None = self.bot.get_cog("QuestionsCog")  # type: ignore[assignment]
        if questions is None:
            return CatchUpReport(channels, len(missed), 0, 0)
        taken = told = 0
        limit = self.bot.settings.catch_up_limit
        conversations: dict[int, list[tuple[discord.Message, bool]]] = {}
        for message in missed:  # oldest first
            if await questions.why(message) is None:
                continue
            late = taken >= limit or message.id in past_cap
            taken, told = taken + (not late), told + late
            # A thread's question before its follow-ups (a thread opened on a question has its id).
            key = message.channel.id if isinstance(message.channel, discord.Thread) else message.id
            conversations.setdefault(key, []).append((message, late))
        gate = asyncio.Semaphore(PARALLEL)

        async def one_conversation(turns: list[tuple[discord.Message, bool]]) -> None:
            async with gate:
                for message, late in turns:
                    await questions.handle(message, late=late)

        results = await asyncio.gather(*(one_conversation(t) for t in conversations.values()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("catch-up: a missed question failed", exc_info=result)
        return CatchUpReport(channels, len(missed), taken, told)


async def setup(bot: SourceBot) -> None:
    await bot.add_cog(CatchUpCog(bot))
