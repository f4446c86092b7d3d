"""Questions: @mentions (or replies to the bot) in channels and threads, and /ask."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot.guards import CooldownHit, QuestionCooldown, channel_allowed
from bot.discord_bot.render import NO_MENTIONS, Reply, describe_error, render_answer
from bot.rag.errors import QuestionError, RagError

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
RESTARTING = "I'm restarting; please ask again in a minute."


class QuestionsCog(commands.Cog):
    def __init__(self, bot: SourceBot) -> None:
        self.bot = bot
        self.cooldown = QuestionCooldown(bot.settings)

    async def answer(self, question: str, user: int) -> list[Reply]:
        """The rendered answer; the blocking work runs in a worker thread."""
        answer = await asyncio.to_thread(self.bot.service.ask, question, user)
        return render_answer(answer)

    # --- mentions --------------------------------------------------------------------------
    def _addressed(self, message: discord.Message) -> bool:
        me = self.bot.user
        if me is None or message.author.bot or message.guild is None:
            return False
        if any(user.id == me.id for user in message.mentions):
            return True
        replied = message.reference.resolved if message.reference else None
        return isinstance(replied, discord.Message) and replied.author.id == me.id

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not self._addressed(message) or not channel_allowed(message.channel, self.bot.settings):
            return
        assert self.bot.user is not None
        if self.bot.draining:
            await message.reply(RESTARTING, allowed_mentions=NO_MENTIONS)
            return
        async with self.bot.tracked():
            await self._answer_message(message)

    async def _answer_message(self, message: discord.Message) -> None:
        assert self.bot.user is not None
        question = re.sub(rf"<@!?{self.bot.user.id}>", " ", message.content).strip()
        retry = self.cooldown.retry_after(message)
        if retry:
            await message.reply(str(CooldownHit(retry)), allowed_mentions=NO_MENTIONS)
            return
        try:
            self.bot.service.validate_question(question)
            async with message.channel.typing():
                replies = await self.answer(question, message.author.id)
        except Exception as exc:
            if not isinstance(exc, RagError):
                log.exception("answering a mention failed (guild=%s channel=%s message=%s)",
                              message.guild and message.guild.id, message.channel.id, message.id)
            await message.reply(describe_error(exc), allowed_mentions=NO_MENTIONS)
            return
        first, *rest = replies
        await message.reply(first.content, embed=first.embed, allowed_mentions=NO_MENTIONS)
        for reply in rest:
            await message.channel.send(reply.content, embed=reply.embed, allowed_mentions=NO_MENTIONS)

    # --- /ask ------------------------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask a question about the sources")
    @app_commands.describe(question="What do you want to know?")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        if self.bot.draining:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
            return
        async with self.bot.tracked():
            await self._answer_interaction(interaction, question)

    async def _answer_interaction(self, interaction: discord.Interaction, question: str) -> None:
        retry = self.cooldown.retry_after(interaction)
        if retry:
            raise CooldownHit(retry)
        try:
            self.bot.service.validate_question(question)
        except QuestionError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        try:
            replies = await self.answer(question, interaction.user.id)
        except Exception as exc:
            if not isinstance(exc, RagError):
                log.exception("/ask failed (guild=%s user=%s)", interaction.guild_id, interaction.user.id)
            await interaction.delete_original_response()
            await interaction.followup.send(describe_error(exc), ephemeral=True)
            return
        for reply in replies:
            await interaction.followup.send(reply.content, embed=reply.embed or discord.utils.MISSING, allowed_mentions=NO_MENTIONS)

    async def cog_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await self.bot.report_command_error(interaction, error)
