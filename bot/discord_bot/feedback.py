"""👍 / 👎 under every answer: a persistent view (registered once in `setup_hook`, so a click
after a restart still records) and, on 👎, an optional "what was wrong?" modal. The answer a
click is about is the message it is on; one vote per member per answer (a second click
changes it). Saving happens in a worker thread; a database that is down is reported to the
member, never raised into the gateway."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord

from bot.discord_bot.render import NO_MENTIONS
from bot.rag.errors import RagError
from bot.state.conversations import ConversationLog, UnknownAnswerError

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
UP_ID, DOWN_ID, REASON_ID = "sourcebot:vote:up", "sourcebot:vote:down", "sourcebot:vote:reason"
REASON_FIELD_ID = "sourcebot:vote:reason:text"
THANKS = {1: "Thanks, noted: 👍", -1: "Thanks, noted: 👎 — moderators see which answers miss."}
CHANGED = {1: "Changed your vote to 👍.", -1: "Changed your vote to 👎."}
NOT_SAVED = "Your feedback could not be saved right now; please try again later."


async def record_vote(log_: ConversationLog, interaction: discord.Interaction, message_id: int, value: int,
                      reason: str | None = None) -> str:
    """Saves the vote and says what happened, in words for the member."""
    try:
        changed = await asyncio.to_thread(log_.vote, message_id, interaction.user.id, value, reason)
    except UnknownAnswerError as exc:
        return str(exc)
    except RagError as exc:
        log.warning("a vote could not be saved: %s", exc)
        return NOT_SAVED
    return CHANGED[value] if changed else THANKS[value]


class ReasonModal(discord.ui.Modal, title="What was wrong with the answer?"):
    """Optional detail after a 👎."""

    reason: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(
        label="What was wrong? (optional)", style=discord.TextStyle.paragraph, required=False,
        max_length=500, custom_id=REASON_FIELD_ID,
    )

    def __init__(self, bot: SourceBot, message_id: int) -> None:
        super().__init__(custom_id=REASON_ID, timeout=600)
        self.bot = bot
        self.message_id = message_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        text = (self.reason.value or "").strip() or None
        said = await record_vote(self.bot.conversations, interaction, self.message_id, -1, text)
        await interaction.response.send_message(said, ephemeral=True, allowed_mentions=NO_MENTIONS)


class FeedbackView(discord.ui.View):
    """The two buttons under an answer. One instance serves every answer's buttons (the
    custom ids are fixed; the message says which answer)."""

    def __init__(self, bot: SourceBot) -> None:
        super().__init__(timeout=None)
        self.bot = bot

    @discord.ui.button(emoji="👍", style=discord.ButtonStyle.secondary, custom_id=UP_ID)
    async def up(self, interaction: discord.Interaction, button: discord.ui.Button[FeedbackView]) -> None:
        assert interaction.message is not None
        said = await record_vote(self.bot.conversations, interaction, interaction.message.id, 1)
        await interaction.response.send_message(said, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @discord.ui.button(emoji="👎", style=discord.ButtonStyle.secondary, custom_id=DOWN_ID)
    async def down(self, interaction: discord.Interaction, button: discord.ui.Button[FeedbackView]) -> None:
        assert interaction.message is not None
        # Recorded at once (the modal is optional); the reason, if given, is added on submit.
        said = await record_vote(self.bot.conversations, interaction, interaction.message.id, -1)
        if said in (THANKS[-1], CHANGED[-1]):
            await interaction.response.send_modal(ReasonModal(self.bot, interaction.message.id))
        else:
            await interaction.response.send_message(said, ephemeral=True, allowed_mentions=NO_MENTIONS)
