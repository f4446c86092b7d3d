"""Where the bot answers a message and with what conversation: which messages it answers
without a mention (follow-ups in its threads, posts in auto-answer channels and forums), the
thread it opens on a channel question, and the turns of history a follow-up goes with.

Every database read here degrades: if the state database is down, mentions are still
answered (without history, not in a new conversation) and the failure is logged once per
message, never raised into the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from cachetools import TTLCache

from bot.rag.answer.chatter import is_question
from bot.rag.errors import RagError
from bot.state.conversations import Conversation, Turn

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
T = TypeVar("T")
THREAD_NAME_LIMIT = 100  # Discord's limit on a thread's name


class Why(Enum):
    """Why the bot answers a message."""

    MENTION = "mention"  # @mention or a reply to the bot
    FOLLOW_UP = "follow-up"  # a question in a thread the bot answers in
    AUTO_ANSWER = "auto-answer"  # a question in an auto-answer channel
    FORUM_POST = "forum post"  # a new post in an auto-answer forum


@dataclass
class Place:
    """Where the answer goes: `thread` (the conversation) or, without one, a reply in the channel."""

    thread: discord.Thread | None
    history: list[Turn] = field(default_factory=list)


class KeyedLocks:
    """One asyncio lock per key (a conversation), dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def thread_name(question: str) -> str:
    name = " ".join(question.split()) or "Question"
    return name if len(name) <= THREAD_NAME_LIMIT else name[: THREAD_NAME_LIMIT - 1].rstrip() + "…"


def is_moderator_message(message: discord.Message, moderator_role_ids: list[int]) -> bool:
    author = message.author
    if not isinstance(author, discord.Member):
        return False
    perms = message.channel.permissions_for(author)  # type: ignore[union-attr]
    return perms.manage_messages or perms.manage_guild or any(r.id in moderator_role_ids for r in author.roles)


class ConversationGate:
    """Decides whether and where the bot answers, over the per-server settings and the
    conversations on record (looked up in worker threads, cached briefly)."""

    def __init__(self, bot: SourceBot) -> None:
        self.bot = bot
        self._threads: TTLCache[int, Conversation | None] = TTLCache(maxsize=20_000, ttl=30)

    async def _db(self, work: Callable[..., T], *args: Any, default: T | None = None) -> T | None:
        try:
            return await asyncio.to_thread(work, *args)
        except RagError as exc:
            log.warning("state database unavailable (%s): %s", getattr(work, "__name__", "query"), exc)
            return default

    async def conversation(self, thread_id: int) -> Conversation | None:
        if thread_id in self._threads:
            return self._threads[thread_id]
        found = await self._db(self.bot.conversations.conversation, thread_id)
        self._threads[thread_id] = found
        return found

    async def why(self, message: discord.Message, addressed: bool) -> Why | None:
        """Why to answer this member's message, or None to stay quiet."""
        if addressed:
            return Why.MENTION
        channel, guild = message.channel, message.guild
        if guild is None:
            return None
        if isinstance(channel, discord.Thread):
            conversation = await self.conversation(channel.id)
            if conversation is not None:
                if is_moderator_message(message, self.bot.settings.moderator_role_ids):
                    self._threads[channel.id] = Conversation(conversation.thread_id, True)  # before the write: no race
                    await self._db(self.bot.conversations.hand_over, channel.id)
                    return None
                return Why.FOLLOW_UP if not conversation.handed_over and is_question(message.content) else None
            starter = message.id == channel.id
            if starter and isinstance(channel.parent, discord.ForumChannel) and channel.parent_id in await self.auto_answer(guild.id):
                return Why.FORUM_POST
            return None
        if channel.id in await self.auto_answer(guild.id) and is_question(message.content):
            return Why.AUTO_ANSWER
        return None

    async def auto_answer(self, guild_id: int) -> frozenset[int]:
        return await self._db(self.bot.server_config.auto_answer_channels, guild_id, default=frozenset())

    async def place(self, message: discord.Message, question: str, why: Why) -> Place:
        """The thread to answer in (opened on the message when the server wants threads), with
        the conversation's earlier turns. A thread becomes a conversation (follow-ups without a
        mention) when the bot opened it or answers a forum post; a mention in someone else's
        thread is answered there, and the thread stays theirs."""
        channel = message.channel
        thread: discord.Thread | None = channel if isinstance(channel, discord.Thread) else None
        opened = False
        if thread is None and message.thread is not None:  # opened before a restart (the catch-up): answer there
            thread = message.thread
        if thread is None and message.guild is not None and isinstance(channel, discord.TextChannel):
            if await self._db(self.bot.server_config.answer_in_thread, message.guild.id, default=False):
                thread = await self._open_thread(message, question)
                opened = thread is not None
        if thread is None:
            return Place(None)
        known = await self.conversation(thread.id)
        if known is None:
            me = self.bot.user
            if opened or why is Why.FORUM_POST or (me is not None and thread.owner_id == me.id):
                await self._db(self.bot.conversations.start_conversation, thread.id, thread.guild.id, thread.parent_id)
                self._threads[thread.id] = Conversation(str(thread.id), False)
            return Place(thread)
        history = await self._db(self.bot.conversations.history, thread.id, self.bot.settings.history_turns, default=[])
        return Place(thread, history)

    async def _open_thread(self, message: discord.Message, question: str) -> discord.Thread | None:
        try:
            return await message.create_thread(name=thread_name(question))
        except discord.HTTPException as exc:  # no permission, or a thread exists already
            log.warning("could not open a thread on message %s in channel %s (%s %s): answering in the channel",
                        message.id, message.channel.id, exc.status, exc.text or "")
            return None
