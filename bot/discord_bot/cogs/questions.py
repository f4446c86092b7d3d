"""Questions: @mentions (or replies to the bot) in channels and threads, and /ask. Answers
come from the service's `astream` (the chain's own async stream): a streaming back-end's
text appears progressively (edits throttled); others arrive whole. A request to summarise
("Summarize the article", "tl;dr", "key points of X") gets the source's summary, as /summary
gives it, instead of a refusal."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot.checks import CooldownHit, QuestionCooldown, channel_allowed
from bot.discord_bot.render import (
    MESSAGE_LIMIT,
    NO_MENTIONS,
    Reply,
    describe_error,
    render_answer,
    render_summary,
    trim,
)
from bot.rag.answer.intent import summary_request
from bot.rag.errors import QuestionError, RagError
from bot.rag.models import Answer, SourceInfo

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
RESTARTING = "I'm restarting; please ask again in a minute."
WRITING = " …"  # shown after a partial answer while it is still being written


class QuestionsCog(commands.Cog):
    """Members' questions, by mention, reply or /ask."""

    def __init__(self, bot: SourceBot) -> None:
        self.bot = bot
        self.cooldown = QuestionCooldown(bot.settings)

    async def _known_sources(self, guild_id: int | None) -> list[SourceInfo]:
        """The sources a question in this server may name; none when the index cannot say
        (the question then goes the usual way, which reports the problem)."""
        try:
            return await asyncio.to_thread(self.bot.service.sources, guild_id)
        except RagError:
            return []

    async def reply_for(
        self, question: str, user: int, guild_id: int | None, show: Callable[[str], Awaitable[None]]
    ) -> tuple[list[Reply], bool]:
        """The rendered reply to a question, and whether anything partial was shown: the
        summary when the question asks for one, else the streamed answer."""
        infos = await self._known_sources(guild_id)
        titles = {info.name: info.title for info in infos if info.title}
        request = summary_request(self.bot.service.validate_question(question), [i.name for i in infos], titles)
        if request is not None:
            log.info("question routed to the summary of %s (guild=%s)", request.source or "all sources", guild_id)
            summary = await asyncio.to_thread(self.bot.service.summary, request.source, guild_id)
            return render_summary(summary, titles), False
        return await self.answer_progressively(question, user, guild_id, show, titles)

    async def answer_progressively(
        self, question: str, user: int, guild_id: int | None, show: Callable[[str], Awaitable[None]],
        titles: Mapping[str, str | None] | None = None,
    ) -> tuple[list[Reply], bool]:
        """Consume the stream, calling `show` with partial text at most every interval.
        Returns the rendered final answer and whether anything partial was shown."""
        interval = self.bot.settings.stream_edit_interval
        shown, last = False, 0.0
        async for item in self.bot.service.astream(question, user, guild_id):
            if isinstance(item, Answer):
                return render_answer(item, titles), shown
            now = time.monotonic()
            if item.strip() and now - last >= interval:
                await show(trim(item, MESSAGE_LIMIT - len(WRITING)) + WRITING)
                shown, last = True, now
        raise RagError("The answer stream ended without an answer.")

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
        sent: discord.Message | None = None

        async def show(partial: str) -> None:
            nonlocal sent
            if sent is None:
                sent = await message.reply(partial, allowed_mentions=NO_MENTIONS)
            else:
                await sent.edit(content=partial, allowed_mentions=NO_MENTIONS)

        try:
            self.bot.service.validate_question(question)
            async with message.channel.typing():
                replies, _ = await self.reply_for(
                    question, message.author.id, message.guild.id if message.guild else None, show
                )
        except Exception as exc:
            if not isinstance(exc, RagError):
                log.exception("answering a mention failed (guild=%s channel=%s message=%s)",
                              message.guild and message.guild.id, message.channel.id, message.id)
            if sent is not None:
                await sent.edit(content=describe_error(exc), allowed_mentions=NO_MENTIONS)
            else:
                await message.reply(describe_error(exc), allowed_mentions=NO_MENTIONS)
            return
        first, *rest = replies
        if sent is not None:
            await sent.edit(content=first.content, embed=first.embed, allowed_mentions=NO_MENTIONS)
        else:
            await message.reply(first.content, embed=first.embed, allowed_mentions=NO_MENTIONS)
        for reply in rest:
            await message.channel.send(reply.content, embed=reply.embed, allowed_mentions=NO_MENTIONS)

    # --- /ask ------------------------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask a question about the sources")
    @app_commands.describe(question="What do you want to know?")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        if self.bot.draining:
            await interaction.response.send_message(RESTARTING, ephemeral=True, allowed_mentions=NO_MENTIONS)
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
            await interaction.response.send_message(str(exc), ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(thinking=True)

        async def show(partial: str) -> None:
            await interaction.edit_original_response(content=partial, allowed_mentions=NO_MENTIONS)

        replies, shown = await self.reply_for(question, interaction.user.id, interaction.guild_id, show)
        first, *rest = replies
        if shown:
            await interaction.edit_original_response(content=first.content, embed=first.embed, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.followup.send(first.content, embed=first.embed or discord.utils.MISSING, allowed_mentions=NO_MENTIONS)
        for reply in rest:
            await interaction.followup.send(reply.content, embed=reply.embed or discord.utils.MISSING, allowed_mentions=NO_MENTIONS)


async def setup(bot: SourceBot) -> None:
    await bot.add_cog(QuestionsCog(bot))
