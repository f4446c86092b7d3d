"""Moderators correct the bot: two message context-menu commands (right-click a message → Apps).

- "Correct this answer" on any of the bot's answers opens the correction form for its question;
  the moderator's answer becomes a curated answer, linked to the corrected message.
- "Teach the bot" on a moderator's own reply in a thread where the bot answered takes that reply
  as the answer to the thread's last question, linked to the reply.

Both are moderators only (`moderator_only`: hidden from members by default, checked again when
run). The work is `bot.discord_bot.corrections.Corrector`'s; /stats uses it for the 👎 queue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot.checks import moderator_only
from bot.discord_bot.corrections import CorrectionModal, Corrector, QueueView
from bot.discord_bot.render import NO_MENTIONS
from bot.rag.curated import QUESTION_LIMIT, Correction
from bot.rag.errors import RagError
from bot.rag.library import SourceLibrary
from bot.state.corrections import QueueTopic

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
CORRECT, TEACH = "Correct this answer", "Teach the bot"
NOT_AN_ANSWER = "\"Correct this answer\" works on my answers; that message is not one I have on record."
NOT_OWN_REPLY = "\"Teach the bot\" takes your own reply in a thread where I answered a question."
NO_QUESTION = "I haven't answered a question in this thread before that reply, so there is nothing to teach."


class CorrectionsCog(commands.Cog):
    def __init__(self, bot: SourceBot, corrector: Corrector) -> None:
        self.bot, self.corrector = bot, corrector
        self.menus = [app_commands.ContextMenu(name=CORRECT, callback=self.correct_answer),
                      app_commands.ContextMenu(name=TEACH, callback=self.teach)]
        for menu in self.menus:
            bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)
        await asyncio.to_thread(self.corrector.library.db.dispose)

    def queue_view(self, topics: list[QueueTopic]) -> QueueView | None:
        """The select menu /stats shows under the 👎 queue (None: nothing to correct)."""
        return QueueView(self.corrector, topics) if topics else None

    @moderator_only()
    async def correct_answer(self, interaction: discord.Interaction, message: discord.Message) -> None:
        item = None
        if self.bot.user is not None and message.author.id == self.bot.user.id:
            try:
                item = await asyncio.to_thread(self.corrector.log.item, message.id)
            except RagError as exc:
                log.warning("correct: the answer could not be read: %s", exc)
        if item is None or not item.question:
            await interaction.response.send_message(NOT_AN_ANSWER, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.send_modal(
            CorrectionModal(self.corrector, item.question, [item.answer_id], interaction.channel, message.jump_url,
                            private=item.private))

    @moderator_only()
    async def teach(self, interaction: discord.Interaction, message: discord.Message) -> None:
        thread = interaction.channel
        if message.author.id != interaction.user.id or not isinstance(thread, discord.Thread) or not message.content.strip():
            await interaction.response.send_message(NOT_OWN_REPLY, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        try:
            item = await asyncio.to_thread(self.corrector.log.thread_item, thread.id, message.id)
        except RagError as exc:
            log.warning("teach: the thread's question could not be read: %s", exc)
            item = None
        if item is None:
            await interaction.response.send_message(NO_QUESTION, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        question = " ".join(item.question.split())[:QUESTION_LIMIT]  # a member's question may be longer
        correction = Correction(question, message.content, "", message.jump_url)
        said = await self.corrector.correct(interaction, correction, [item.answer_id], thread)
        await interaction.edit_original_response(content=said, allowed_mentions=NO_MENTIONS)


async def setup(bot: SourceBot) -> None:
    """Over the source library the /source cog built (one per process); without it (no state
    database) there is nothing to correct into (logged)."""
    library = getattr(bot.get_cog("SourcesCog"), "library", None)
    if not isinstance(library, SourceLibrary):
        log.error("corrections are unavailable: /source is unavailable")
        return
    await bot.add_cog(CorrectionsCog(bot, Corrector(bot, library)))
