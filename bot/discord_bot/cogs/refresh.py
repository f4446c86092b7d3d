"""The scheduled refresh of web sources in the bot process: every minute, the sources that are due
are fetched again (`SourceRefresher.run_due`, in a worker thread), and a short report goes to
the server's log channel when a source changed, failed, or works again.

Owns only the loop and the posting. The schedule, the claims that let one process of several
refresh a source, the back-off and the reports' wording are `bot.rag.refresh`'s. The log
channel is reached by id (a partial messageable), so the process that refreshed posts even for a
server another shard serves; a post that fails is logged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks

from bot.discord_bot.render import MESSAGE_LIMIT, NO_MENTIONS, trim
from bot.rag.errors import RagError
from bot.rag.library_steps import guild_of
from bot.rag.refresh import Refreshed, SourceRefresher

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
TICK_SECONDS = 60.0


class RefreshCog(commands.Cog):
    """Runs the due refreshes every TICK_SECONDS and posts their reports."""

    def __init__(self, bot: SourceBot, refresher: SourceRefresher) -> None:
        self.bot, self.refresher = bot, refresher

    async def cog_load(self) -> None:
        self.tick.start()

    async def cog_unload(self) -> None:
        self.tick.cancel()

    @tasks.loop(seconds=TICK_SECONDS)
    async def tick(self) -> None:
        await self.run_due()

    @tick.before_loop
    async def _ready(self) -> None:
        await self.bot.wait_until_ready()

    async def run_due(self, now: datetime | None = None) -> list[Refreshed]:
        """Refresh what is due at `now` (default: now) and post the reports; what was refreshed."""
        try:
            done = await asyncio.to_thread(self.refresher.run_due, now)
        except RagError as exc:  # the state database is down: the next tick tries again
            log.warning("scheduled refresh skipped: %s", exc)
            return []
        except Exception:  # an unexpected error must not stop the loop
            log.exception("scheduled refresh failed")
            return []
        for item in done:
            if item.report is not None and item.log_channel_id is not None:
                await self._post(item)
        return done

    async def _post(self, item: Refreshed) -> None:
        guild = guild_of(item.base)
        channel = self.bot.get_partial_messageable(int(item.log_channel_id or 0),
                                                   guild_id=int(guild) if guild else None)
        try:
            await channel.send(trim(f"{item.report}", MESSAGE_LIMIT), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.warning("guild %s: refresh report not posted in the log channel (%s)", guild, exc.status)


async def setup(bot: SourceBot) -> None:
    """Over the sources cog's refresher (one per process); without it (no state database) no refresh runs."""
    sources = bot.get_cog("SourcesCog")
    refresher: SourceRefresher | None = getattr(sources, "refresher", None)
    if refresher is None:
        log.error("scheduled refresh is off: the state database is unavailable")
        return
    await bot.add_cog(RefreshCog(bot, refresher))
