"""The Discord side of moderators' corrections: the "Correct this answer" form (a modal with the
question, the right answer and what it rests on), the 👎 queue's select menu under /stats that
opens it for a topic, and `Corrector`, which turns a submitted form into a curated answer
(`SourceLibrary.add_curated`, in a worker thread) and marks the queue items it answers resolved.

A curated answer has the visibility of the place it was corrected in (see the README's "Correcting
the bot"): a channel everyone in the server can read makes it visible to everyone; any other
channel limits it to that channel (a thread or forum post: its parent channel, whose readers are
the thread's; a private thread: that thread alone); an answer only its asker saw (`/ask
private:True`), or a place that cannot be found any more, makes it visible to moderators only.
A moderator widens or narrows it afterwards with `/source visibility`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from bot.discord_bot.channel_reader import jump_link
from bot.discord_bot.render import NO_MENTIONS, trim
from bot.discord_bot.source_replies import announce
from bot.rag.access import NO_ROLE, Visibility
from bot.rag.curated import ANSWER_LIMIT, QUESTION_LIMIT, SOURCES_LIMIT, Correction
from bot.rag.errors import RagError, SourceError
from bot.rag.index.registry import guild_base_name
from bot.rag.library import SourceExistsError, SourceLibrary
from bot.state.corrections import Corrections, QueueItem, QueueTopic

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
QUESTION_FIELD_ID = "sourcebot:correct:question"
ANSWER_FIELD_ID, SOURCES_FIELD_ID = "sourcebot:correct:answer", "sourcebot:correct:sources"
QUEUE_SELECT_ID = "sourcebot:queue:correct"
MODERATORS_ONLY = Visibility.roles({NO_ROLE})  # a role no member holds: moderators see every source
SELECT_LIMIT = 25  # options of one select menu


def describe(visibility: Visibility) -> str:
    return "moderators only" if visibility == MODERATORS_ONLY else visibility.describe()


class Corrector:
    """Makes corrections: built once by the corrections cog, used by its context menus and /stats."""

    def __init__(self, bot: SourceBot, library: SourceLibrary) -> None:
        self.bot, self.library, self.log = bot, library, Corrections(library.db)

    async def visibility_of(self, place: discord.abc.Messageable | None, moderator: discord.Member | discord.User,
                            private: bool = False) -> Visibility:
        """The visibility of a place (module docstring)."""
        if place is None or private or getattr(place, "guild", None) is None:
            return MODERATORS_ONLY
        readers = await self.bot.readers(place, moderator)
        if readers.public:
            return Visibility.everyone()
        if isinstance(place, discord.Thread):
            private_thread = place.type is discord.ChannelType.private_thread
            return Visibility.channels({place.id if private_thread or place.parent_id is None else place.parent_id})
        return Visibility.channels({place.id})  # type: ignore[attr-defined]

    async def place_of(self, item: QueueItem) -> discord.abc.Messageable | None:
        """The channel or thread an answer was posted in (None: unknown, gone, or only its asker saw it)."""
        if item.channel_id is None or item.private:
            return None
        channel = self.bot.get_channel(int(item.channel_id))
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(int(item.channel_id))
            except discord.HTTPException:
                return None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def correct(self, interaction: discord.Interaction, correction: Correction, answer_ids: Sequence[int],
                      place: discord.abc.Messageable | None, private: bool = False) -> str:
        """Store the correction as a curated answer and resolve its queue items; what to tell the moderator."""
        assert interaction.guild_id is not None
        visibility = await self.visibility_of(place, interaction.user, private)
        try:
            change = await asyncio.to_thread(self.library.add_curated, guild_base_name(interaction.guild_id), correction,
                                             visibility=visibility, actor_id=str(interaction.user.id),
                                             actor_name=str(interaction.user))
            resolved = await asyncio.to_thread(self.log.resolve, answer_ids, guild_id=interaction.guild_id,
                                               source_name=change.name, by=interaction.user.id)
        except (SourceError, SourceExistsError) as exc:
            return f"❌ The correction was not saved: {exc}"
        except RagError as exc:
            log.warning("a correction could not be saved: %s", exc)
            return f"❌ The correction was not saved: {exc}"
        problem = await announce(interaction, change)  # in the log channel, as every source change
        verb = "Replaced" if change.action == "replace" else "Saved"
        return trim(f"✅ {verb} the curated answer `{change.name}` (visible to {describe(visibility)}). From now on it "
                    f"answers this question and similar ones, cited as answered by the moderators; "
                    f"{resolved} queue item{'' if resolved == 1 else 's'} resolved. "
                    "`/source visibility` changes who sees it, `/source remove` takes it back."
                    + (f"\n⚠️ Not announced: {problem}" if problem else ""), 2000)


class CorrectionModal(discord.ui.Modal, title="Correct this answer"):
    """The right answer to a question, and what it rests on."""

    question: discord.ui.TextInput[CorrectionModal] = discord.ui.TextInput(
        label="Question", max_length=QUESTION_LIMIT, custom_id=QUESTION_FIELD_ID)
    answer: discord.ui.TextInput[CorrectionModal] = discord.ui.TextInput(
        label="The right answer", style=discord.TextStyle.paragraph, max_length=ANSWER_LIMIT, custom_id=ANSWER_FIELD_ID)
    sources: discord.ui.TextInput[CorrectionModal] = discord.ui.TextInput(
        label="Sources it rests on (optional)", style=discord.TextStyle.paragraph, required=False,
        max_length=SOURCES_LIMIT, custom_id=SOURCES_FIELD_ID, placeholder="source names, links")

    def __init__(self, corrector: Corrector, question: str, answer_ids: Sequence[int],
                 place: discord.abc.Messageable | None, link: str | None, private: bool = False) -> None:
        super().__init__(timeout=900)  # discord.py gives each form its own id: two moderators' never mix
        self.corrector, self.answer_ids, self.place, self.link, self.private = corrector, list(answer_ids), place, link, private
        self.question.default = " ".join(question.split())[:QUESTION_LIMIT]

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        correction = Correction(self.question.value, self.answer.value, self.sources.value or "", self.link)
        said = await self.corrector.correct(interaction, correction, self.answer_ids, self.place, self.private)
        await interaction.edit_original_response(content=said, allowed_mentions=NO_MENTIONS)


class QueueView(discord.ui.View):
    """Under /stats: pick a topic of the 👎 queue to correct (opens the form for its newest question)."""

    def __init__(self, corrector: Corrector, topics: Sequence[QueueTopic]) -> None:
        super().__init__(timeout=900)
        self.corrector, self.topics = corrector, list(topics)[:SELECT_LIMIT]
        self.pick.options = [
            discord.SelectOption(label=trim(f"{i + 1}. {topic.topic}", 100), value=str(i),
                                 description=trim(topic.items[0].question, 100))
            for i, topic in enumerate(self.topics)]

    @discord.ui.select(placeholder="Correct the answer of a topic…", custom_id=QUEUE_SELECT_ID, min_values=1, max_values=1)
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select[QueueView]) -> None:
        topic = self.topics[int(select.values[0])]
        first = topic.items[0]
        place = await self.corrector.place_of(first)
        link = None
        if not first.private and first.guild_id and first.channel_id and first.message_id:
            link = jump_link(int(first.guild_id), int(first.channel_id), int(first.message_id))
        await interaction.response.send_modal(
            CorrectionModal(self.corrector, first.question, topic.answer_ids, place, link, private=place is None))
