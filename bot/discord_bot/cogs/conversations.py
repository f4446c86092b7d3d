"""Conversations, feedback and privacy: `/config` (moderators: answer in threads, auto-answer
channels and forums), `/stats` (moderators: this server's questions, answers, votes,
latency, most-cited sources and the docs-gap report, the 👎 queue by topic with its
correct-answer menu, and a chart of questions and votes per day), `/forget-me` (anyone: delete what is
stored about them), and the hourly purge of texts older than RETENTION_DAYS (and of the
record of handled messages older than a day, or the catch-up window if longer)."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.discord_bot.checks import moderator_only
from bot.discord_bot.render import NO_MENTIONS, render_queue, render_report
from bot.rag.errors import RagError
from bot.state.models import utcnow
from bot.stats_chart import chart_png

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "all": None}
CHART_FILE = "stats.png"
NOT_AVAILABLE = "The bot's database is unavailable right now, so that cannot be done; please try again later."


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ConfigGroup(app_commands.Group, name="config", description="How the bot answers in this server (moderators)"):
    def __init__(self, bot: SourceBot) -> None:
        super().__init__()
        self.bot = bot

    @app_commands.command(name="answer-in-thread", description="Answer channel questions in a thread opened on them")
    @app_commands.describe(enabled="On: open a thread on each question; off: reply in the channel")
    @moderator_only()
    async def answer_in_thread(self, interaction: discord.Interaction, enabled: bool) -> None:
        assert interaction.guild_id is not None
        await asyncio.to_thread(self.bot.server_config.set_answer_in_thread, interaction.guild_id, enabled)
        said = "I'll answer channel questions in a thread." if enabled else "I'll reply in the channel, without threads."
        await interaction.response.send_message(said, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="auto-answer", description="Answer every question in a channel or forum, no mention needed")
    @app_commands.describe(channel="A text channel or a forum", enabled="On (default) or off")
    @moderator_only()
    async def auto_answer(self, interaction: discord.Interaction,
                          channel: discord.TextChannel | discord.ForumChannel, enabled: bool = True) -> None:
        assert interaction.guild_id is not None
        channels = await asyncio.to_thread(self.bot.server_config.set_auto_answer, interaction.guild_id, channel.id, enabled)
        what = "new post" if isinstance(channel, discord.ForumChannel) else "question"
        said = (f"I'll answer every {what} in {channel.mention} without a mention (greetings and thanks excepted)."
                if enabled else f"I'll answer in {channel.mention} only when mentioned.")
        listed = ", ".join(f"<#{c}>" for c in sorted(channels)) or "none"
        await interaction.response.send_message(f"{said}\nAuto-answer channels: {listed}", ephemeral=True,
                                                allowed_mentions=NO_MENTIONS)


class ConversationsCog(commands.Cog):
    def __init__(self, bot: SourceBot) -> None:
        self.bot = bot
        self.config = ConfigGroup(bot)
        bot.tree.add_command(self.config)

    async def cog_load(self) -> None:
        self.purge.start()

    async def cog_unload(self) -> None:
        self.purge.cancel()
        self.bot.tree.remove_command(self.config.name)

    @tasks.loop(hours=1)
    async def purge(self) -> None:
        try:
            cleared = await asyncio.to_thread(self.bot.conversations.purge_texts, self.bot.settings.retention_days)
        except RagError as exc:
            log.warning("retention purge skipped: %s", exc)
            return
        if cleared:
            log.info("retention: cleared the texts of %d answer(s) older than %d days", cleared, self.bot.settings.retention_days)
        kept = timedelta(minutes=max(self.bot.settings.catch_up_minutes, 24 * 60))  # what a catch-up may still read
        try:
            await asyncio.to_thread(self.bot.handled.forget_before, utcnow() - kept)
        except RagError as exc:
            log.warning("handled-message purge skipped: %s", exc)

    @app_commands.command(name="stats", description="This server's questions, answers, votes and what the sources miss")
    @app_commands.describe(period="Over the last 24 hours, 7 days, or all time")
    @app_commands.choices(period=[app_commands.Choice(name=n, value=n) for n in PERIODS])
    @app_commands.guild_only()
    @moderator_only()
    async def stats(self, interaction: discord.Interaction, period: str = "7d") -> None:
        span = PERIODS.get(period, PERIODS["7d"])
        since = utcnow() - span if span is not None else None
        try:
            report = await asyncio.to_thread(self.bot.conversations.stats, interaction.guild_id, since)
        except RagError as exc:
            log.warning("/stats unavailable: %s", exc)
            await interaction.response.send_message(NOT_AVAILABLE, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        # The 👎 queue with its correct-answer menu, and the chart of questions and votes per day.
        chart = await asyncio.to_thread(chart_png, report.daily)
        corrections = self.bot.get_cog("CorrectionsCog")
        view = corrections.queue_view(report.queue) if corrections is not None else None  # type: ignore[attr-defined]
        queue = render_queue(report.queue)
        await interaction.response.send_message(render_report(report, period, self.bot.service.provider),
                                                embed=queue or discord.utils.MISSING, view=view or discord.utils.MISSING,
                                                file=discord.File(io.BytesIO(chart), filename=CHART_FILE),
                                                ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="forget-me", description="Delete the questions and votes the bot stored about you")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        try:
            questions, votes = await asyncio.to_thread(self.bot.conversations.forget, interaction.user.id)
        except RagError as exc:
            log.warning("/forget-me failed: %s", exc)
            await interaction.response.send_message(NOT_AVAILABLE, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        log.info("forget-me: deleted %d question(s) and %d vote(s) of a member", questions, votes)
        self.bot.dispatch("member_forgotten", interaction.user.id)  # channel sources: bot.discord_bot.cogs.channel_sources
        await interaction.response.send_message(
            f"Done: I deleted {questions} question{'' if questions == 1 else 's'} and {votes} vote{'' if votes == 1 else 's'} "
            "stored about you, and I'm removing your messages from the channels this server's sources are read from "
            "(I won't take them again). (Messages in the channels are Discord's; delete those yourself.)",
            ephemeral=True, allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: SourceBot) -> None:
    """The cog over the state database (its tables created if missing). If that database
    cannot be reached, questions are still answered; these commands report it when used."""
    try:
        await asyncio.to_thread(bot.service.components.database.create_schema)
    except RagError as exc:
        log.error("conversations and feedback are not stored: %s", exc)
    await bot.add_cog(ConversationsCog(bot))
