"""What the bot knows: /summary, /sources, and the host's /reload of the shared sources."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot.checks import host_only, moderator_only
from bot.discord_bot.render import (
    AUTOCOMPLETE_LIMIT,
    NO_MENTIONS,
    render_reload,
    render_sources,
    render_summary,
)
from bot.rag.errors import RagError

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)


class KnowledgeCog(commands.Cog):
    """What the bot knows: its sources, their summaries, reloads and question stats."""

    def __init__(self, bot: SourceBot) -> None:
        self.bot = bot

    @app_commands.command(name="summary", description="Key points of one source, or of all sources")
    @app_commands.describe(source="Which source (default: all)")
    async def summary(self, interaction: discord.Interaction, source: str | None = None) -> None:
        await interaction.response.defer(thinking=True)
        audience = await self.bot.readers(interaction.channel, interaction.user)
        summary = await asyncio.to_thread(self.bot.service.summary, source, interaction.guild_id, audience)
        infos = await asyncio.to_thread(self.bot.service.sources, interaction.guild_id, audience)
        for reply in render_summary(summary, {info.name: info.title for info in infos}):
            await interaction.followup.send(reply.content, embed=reply.embed or discord.utils.MISSING, allowed_mentions=NO_MENTIONS)

    @summary.autocomplete("source")
    async def summary_source(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The sources a summary posted here may use (what the channel's readers may see)."""
        readers = await self.bot.readers(interaction.channel, interaction.user)
        infos = await asyncio.to_thread(self.bot.service.sources, interaction.guild_id, readers)
        wanted = current.lower()
        return [
            app_commands.Choice(name=(info.title or info.name)[:100], value=info.name)
            for info in infos
            if wanted in info.name.lower() or wanted in (info.title or "").lower()
        ][:AUTOCOMPLETE_LIMIT]

    @app_commands.command(name="sources", description="List the sources I answer from")
    async def sources(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)  # a private thread's readers take REST calls
        readers = await self.bot.readers(interaction.channel, interaction.user)
        infos = await asyncio.to_thread(self.bot.service.sources, interaction.guild_id, readers)
        reply = render_sources(infos, self.bot.service.last_reload)
        await interaction.followup.send(reply.content, embed=reply.embed, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="reload", description="Re-read the shared sources folder (the bot's host)")
    @host_only()  # runs after the moderator check: a member is told "moderators only" first
    @moderator_only()
    async def reload(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            "Reloading the sources… I keep answering from the current index meanwhile.", ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        log.info("reload requested (guild=%s user=%s)", interaction.guild_id, interaction.user.id)
        try:
            report = await asyncio.to_thread(self.bot.service.ingest)
        except RagError as exc:
            log.warning("reload failed (guild=%s user=%s): %s", interaction.guild_id, interaction.user.id, exc)
            await interaction.edit_original_response(
                content=f"Reload failed: {exc}\nI'm still answering from the previous index.", allowed_mentions=NO_MENTIONS
            )
            return
        await interaction.edit_original_response(content=render_reload(report), allowed_mentions=NO_MENTIONS)


async def setup(bot: SourceBot) -> None:
    await bot.add_cog(KnowledgeCog(bot))
