"""Questions: @mentions (or replies to the bot), follow-ups in the threads it answers in,
questions in auto-answer channels and forums, and /ask. A channel question is answered in a
thread opened on it (per server, `/config answer-in-thread`); a follow-up there goes with the
conversation's last turns. Answers come from the service's `astream` (the chain's own async
stream): a streaming back-end's text appears progressively (edits throttled); others arrive
whole. Every answer carries 👍/👎 and is recorded (who asked, hashed) for /stats. A request
to summarise ("Summarize the article", "tl;dr") gets the source's summary instead. A message
is claimed in the database before it is answered and marked done after: an event delivered
twice gets one answer, and the catch-up on start (cogs/catch_up.py) redoes what a crash cut off."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import aiohttp
import discord
from cachetools import TTLCache
from discord import app_commands
from discord.ext import commands

from bot.discord_bot.checks import CooldownHit, QuestionCooldown, channel_allowed
from bot.discord_bot.conversation import ConversationGate, KeyedLocks, Why
from bot.discord_bot.destination import Destination
from bot.discord_bot.render import (
    MESSAGE_LIMIT,
    NO_MENTIONS,
    Reply,
    describe_error,
    render_answer,
    render_summary,
    trim,
)
from bot.rag.access import EVERYONE, Audience
from bot.rag.answer.intent import summary_request
from bot.rag.errors import QuestionError, RagError
from bot.rag.models import Answer, SourceInfo
from bot.state.conversations import Turn

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
RESTARTING = "I'm restarting; please ask again in a minute."
ASK_AGAIN = "I was offline when you asked this and could not catch up with every question; please ask again."
SEEN_FOR = 3600  # seconds a message id is remembered in memory (replays come within minutes)
WRITING = " …"  # shown after a partial answer while it is still being written
# Failures that say nothing of the message (the connection, Discord's 5xx): it stays to redo on start.
TRANSIENT = (aiohttp.ClientError, OSError, TimeoutError, discord.DiscordServerError)


class QuestionsCog(commands.Cog):
    """Members' questions, by mention, reply or /ask."""

    def __init__(self, bot: SourceBot) -> None:
        self.bot = bot
        self.cooldown = QuestionCooldown(bot.settings)
        self.gate = ConversationGate(bot)
        self._turns = KeyedLocks()
        self._seen: TTLCache[int, bool] = TTLCache(maxsize=50_000, ttl=SEEN_FOR)
        self.feedback = bot.feedback_view

    async def _known_sources(self, guild_id: int | None, audience: Audience) -> list[SourceInfo]:
        """The sources a question in this server may name; none when the index cannot say
        (the question then goes the usual way, which reports the problem)."""
        try:
            return await asyncio.to_thread(self.bot.service.sources, guild_id, audience)
        except RagError:
            return []

    async def reply_for(
        self, question: str, user: int, guild_id: int | None, show: Callable[[str], Awaitable[None]],
        history: Sequence[Turn] = (), audience: Audience = EVERYONE,
    ) -> tuple[list[Reply], bool, Answer | None]:
        """The rendered reply to a question, whether anything partial was shown, and the
        answer (None for a summary): the summary when the question asks for one, else the
        streamed answer; from the sources all of the reply's readers (`audience`) may see."""
        infos = await self._known_sources(guild_id, audience)
        titles = {info.name: info.title for info in infos if info.title}
        request = summary_request(self.bot.service.validate_question(question), [i.name for i in infos], titles)
        if request is not None:
            log.info("question routed to the summary of %s (guild=%s)", request.source or "all sources", guild_id)
            summary = await asyncio.to_thread(self.bot.service.summary, request.source, guild_id, audience)
            return render_summary(summary, titles), False, None
        return await self.answer_progressively(question, user, guild_id, show, titles, history, audience)

    async def answer_progressively(
        self, question: str, user: int, guild_id: int | None, show: Callable[[str], Awaitable[None]],
        titles: Mapping[str, str | None] | None = None, history: Sequence[Turn] = (), audience: Audience = EVERYONE,
    ) -> tuple[list[Reply], bool, Answer]:
        """Consume the stream, calling `show` with partial text at most every interval.
        Returns the rendered final answer, whether anything partial was shown, the answer."""
        interval = self.bot.settings.stream_edit_interval
        shown, last = False, 0.0
        async for item in self.bot.service.astream(question, user, guild_id, history, audience):
            if isinstance(item, Answer):
                return render_answer(item, titles), shown, item
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
        await self.handle(message)

    async def handle(self, message: discord.Message, *, late: bool = False) -> Why | None:
        """Answer the message if it is addressed to the bot (late: only tell the member to ask
        again). Idempotent: a message already taken on, by this run or a finished earlier one
        (a replayed event, the catch-up reading it again), gets nothing more. Returns why it was
        answered, None when it was not."""
        if not self._may_answer(message):
            return None
        self._seen[message.id] = True  # marked before any await: a replay racing the original finds it
        why = await self.gate.why(message, self._addressed(message))
        if why is None or not await self._claim(message):
            return None
        if self.bot.draining or late:
            text = RESTARTING if self.bot.draining else ASK_AGAIN
            try:
                if message.thread is not None:  # opened on it before a crash: not left empty
                    await message.thread.send(text, allowed_mentions=NO_MENTIONS)
                else:
                    await message.reply(text, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as exc:
                log.warning("could not tell message %s to ask again (%s %s)", message.id, exc.status, exc.text)
        else:
            try:
                async with self.bot.tracked():
                    await self._answer_message(message, why)
            except Exception as exc:  # one that would fail again (or repeat a partial answer) on every restart: done
                if not self.bot.is_closed() and not isinstance(exc, TRANSIENT):  # cut off, as by a crash: redone
                    await self._finish(message)
                raise
        await self._finish(message)
        return why

    async def why(self, message: discord.Message) -> Why | None:
        """Why the bot would answer this message now (None: not addressed to it, or handled)."""
        if not self._may_answer(message):
            return None
        why = await self.gate.why(message, self._addressed(message))
        if why is None:
            return None
        try:
            done = await asyncio.to_thread(self.bot.handled.is_done, message.id)
        except RagError:
            done = False
        return None if done else why

    def _may_answer(self, message: discord.Message) -> bool:
        """A member's message, in a channel the bot serves, not yet seen by this run."""
        return (self.bot.user is not None and not message.author.bot and message.id not in self._seen
                and channel_allowed(message.channel, self.bot.settings))

    async def _claim(self, message: discord.Message) -> bool:
        """Take the message on in the database (False: done already, or another run has it).
        Without the database the message is answered: an answer twice beats none."""
        try:
            return await asyncio.to_thread(self.bot.handled.claim, message.id, message.channel.id,
                                           message.guild and message.guild.id)
        except RagError as exc:
            log.warning("message %s not claimed, answering anyway: %s", message.id, exc)
            return True

    async def _finish(self, message: discord.Message) -> None:
        try:
            await asyncio.to_thread(self.bot.handled.finish, message.id)
        except RagError as exc:
            log.warning("message %s not marked handled: %s", message.id, exc)

    def _question_of(self, message: discord.Message, why: Why) -> str:
        assert self.bot.user is not None
        text = re.sub(rf"<@!?{self.bot.user.id}>", " ", message.content).strip()
        if why is Why.FORUM_POST and isinstance(message.channel, discord.Thread):
            return f"{message.channel.name}\n{text}".strip()  # a post's title is part of its question
        return text

    async def _answer_message(self, message: discord.Message, why: Why) -> None:
        question = self._question_of(message, why)
        retry = self.cooldown.retry_after(message)
        if retry:
            await message.reply(str(CooldownHit(retry)), allowed_mentions=NO_MENTIONS)
            return
        try:
            self.bot.service.validate_question(question)
        except QuestionError as exc:
            if why is Why.MENTION:  # unprompted answers stay quiet about a message they cannot use
                await message.reply(str(exc), allowed_mentions=NO_MENTIONS)
            return
        # One answer at a time per conversation: a follow-up waits for the answer before it
        # (and so sees it in the history). A thread opened on a question has the question's id.
        key = message.channel.id if isinstance(message.channel, discord.Thread) else message.id
        async with self._turns.hold(key):
            await self._answer_in_place(message, question, why)

    async def _answer_in_place(self, message: discord.Message, question: str, why: Why) -> None:
        started = time.perf_counter()
        place = await self.gate.place(message, question, why)
        where = Destination(message, place.thread)

        try:
            async with where.typing():
                audience = await self.bot.readers(place.thread or message.channel, message.author)
                replies, _, answer = await self.reply_for(
                    question, message.author.id, message.guild.id if message.guild else None, where.show, place.history,
                    audience,
                )
        except Exception as exc:
            if not isinstance(exc, RagError):
                log.exception("answering a message failed (guild=%s channel=%s message=%s)",
                              message.guild and message.guild.id, message.channel.id, message.id)
            await where.finish(Reply(describe_error(exc), None), None)
            return
        first, *rest = replies
        sent = await where.finish(first, self.feedback if answer is not None else None)
        for reply in rest:
            await where.send(reply)
        if answer is not None and sent is not None:
            await self.record(answer, question, message.author.id, message.guild and message.guild.id,
                              place.thread and place.thread.id, sent.id, started, channel_id=sent.channel.id)

    async def record(self, answer: Answer, question: str, user: int, guild_id: int | None, thread_id: int | None,
                     message_id: int, started: float, *, channel_id: int | None = None, private: bool = False) -> None:
        """Keep the answer for the conversation, the votes and /stats (the member's own words
        as the question, not the standalone form it was asked in), and where it was posted."""
        kept = replace(answer, question=question)
        try:
            await asyncio.to_thread(
                self.bot.conversations.record_answer, kept, user_id=user, guild_id=guild_id, thread_id=thread_id,
                message_id=message_id, latency_ms=1000 * (time.perf_counter() - started), channel_id=channel_id,
                private=private,
            )
        except RagError as exc:
            log.warning("answer %s not recorded: %s", message_id, exc)

    # --- /ask ------------------------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask a question about the sources")
    @app_commands.describe(question="What do you want to know?",
                           private="Only you see the answer (it may then use sources only your roles may see)")
    async def ask(self, interaction: discord.Interaction, question: str, private: bool = False) -> None:
        if self.bot.draining:
            await interaction.response.send_message(RESTARTING, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        async with self.bot.tracked():
            await self._answer_interaction(interaction, question, private)

    async def _answer_interaction(self, interaction: discord.Interaction, question: str, private: bool = False) -> None:
        retry = self.cooldown.retry_after(interaction)
        if retry:
            raise CooldownHit(retry)
        try:
            self.bot.service.validate_question(question)
        except QuestionError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(ephemeral=private, thinking=True)
        started = time.perf_counter()

        async def show(partial: str) -> None:
            await interaction.edit_original_response(content=partial, allowed_mentions=NO_MENTIONS)

        audience = await self.bot.readers(interaction.channel, interaction.user, ephemeral=private)
        replies, shown, answer = await self.reply_for(question, interaction.user.id, interaction.guild_id, show,
                                                      audience=audience)
        first, *rest = replies
        view = self.feedback if answer is not None else discord.utils.MISSING
        sent: discord.Message
        if shown:
            sent = await interaction.edit_original_response(content=first.content, embed=first.embed, view=view,
                                                            allowed_mentions=NO_MENTIONS)
        else:
            sent = await interaction.followup.send(first.content, embed=first.embed or discord.utils.MISSING,
                                                   view=view, allowed_mentions=NO_MENTIONS, wait=True, ephemeral=private)
        for reply in rest:
            await interaction.followup.send(reply.content, embed=reply.embed or discord.utils.MISSING,
                                            allowed_mentions=NO_MENTIONS, ephemeral=private)
        if answer is not None:
            await self.record(answer, question, interaction.user.id, interaction.guild_id, None, sent.id, started,
                              channel_id=interaction.channel_id, private=private)


async def setup(bot: SourceBot) -> None:
    await bot.add_cog(QuestionsCog(bot))
