"""Reading a Discord channel or forum a moderator added as a source into documents
(`bot.rag.library_channels.ChannelDocument`), and the visibility it gets: the channel's own.

What is taken (`take`):
- "pinned": the channel's pinned messages, one document each;
- "all": its newest messages (the newest CHANNEL_SOURCE_LIMIT that are taken, of at most
  READ_FACTOR times as many read), one document each;
- "solved": a forum's posts carrying the tag the moderator named (e.g. "solved"), each one
  document: its opening message (the question) and title as its headings, its accepted
  answer as its text.
  Discord has no "accepted answer", so the rule is the one Q&A sites use, votes: among the
  replies by members other than the post's author, the one with the most positive reactions
  (POSITIVE: 👍 ✅ ✔️ ☑️ ❤️ 🎉 💯 🙏 ⬆️; a 👎 or ❌ is no vote); a tie goes to a moderator's reply,
  then to the latest. A post with no such reply is not taken. (Who reacted is not read: that
  is one more request per reaction.) The tag is matched by its id (stored when the source was
  added; renaming it changes nothing); when it is deleted the sync fails and keeps what is stored.

Never taken: messages of bots and webhooks, messages that mention a bot (questions to it),
messages a bot replied to or started a thread on (questions asked in an auto-answer channel),
system messages (pins, joins), messages under MIN_CHARS characters ("thanks!"), and messages
of members who ran /forget-me (`left_out`);
a forum post whose question is theirs is left out whole. Member mentions become "@member".
Authors are not named, except a moderator, in the document's title ("answered by NAME,
moderator"). Each document's link is its message's jump link (the answer's, for a post).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import discord

from bot.discord_bot.checks import member_is_moderator
from bot.rag.access import Visibility
from bot.rag.errors import SourceError
from bot.rag.library_channels import CHANNEL_OPTION, ChannelDocument
from bot.rag.library_files import source_name
from bot.state import SourceRow

TAKES = ("pinned", "all", "solved")
MIN_CHARS = 20
THREAD_MESSAGES = 100  # the messages of a forum post read to find its answer
READ_FACTOR = 5  # a channel's newest limit x this many messages are read at most, to find `limit` to keep
QUESTION_CHARS = 300  # of a post's question, kept in its heading
_MENTION = re.compile(r"<@!?\d+>")
_ROLE_MENTION = re.compile(r"<@&\d+>")
_TEXT_TYPES = (discord.MessageType.default, discord.MessageType.reply)
LeftOut = Callable[[int], bool]
_VS16 = "\ufe0f"  # the variation selector some emoji carry (✔️ is ✔ + it)
POSITIVE = frozenset(e.replace(_VS16, "") for e in ("👍", "✅", "✔️", "☑️", "❤️", "🎉", "💯", "🙏", "⬆️"))


@dataclass(frozen=True)
class ChannelSpec:
    """Which channel a source reads, and what it takes from it (kept in the source's options)."""

    guild_id: int
    channel_id: int
    take: str
    solved_tag: str | None = None
    solved_tag_id: int | None = None  # None: a source stored before ids were kept (matched by name)

    def option(self) -> dict[str, Any]:
        return {"guild_id": str(self.guild_id), "id": str(self.channel_id), "take": self.take,
                "solved_tag": self.solved_tag,
                "solved_tag_id": str(self.solved_tag_id) if self.solved_tag_id is not None else None}

    @classmethod
    def of(cls, row: SourceRow) -> ChannelSpec:
        spec = row.options.get(CHANNEL_OPTION) or {}
        tag_id = spec.get("solved_tag_id")
        return cls(int(spec["guild_id"]), int(spec["id"]), str(spec["take"]), spec.get("solved_tag"),
                   int(tag_id) if tag_id else None)


def jump_link(guild_id: int, channel_id: int, message_id: int | None = None) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}" + (f"/{message_id}" if message_id else "")


def channel_visibility(channel: discord.abc.GuildChannel) -> Visibility:
    """Everyone, when @everyone may view the channel; else that channel only (its threads and
    forum posts too): a private channel's messages never answer outside it."""
    if channel.permissions_for(channel.guild.default_role).view_channel:
        return Visibility.everyone()
    return Visibility.channels([channel.id])


def check_take(channel: discord.abc.GuildChannel, take: str | None, solved_tag: str | None) -> ChannelSpec:
    """What to read (`take` default: "solved" in a forum, "pinned" elsewhere), or SourceError saying what is wrong."""
    forum = isinstance(channel, discord.ForumChannel)
    take = take or ("solved" if forum else "pinned")
    if take not in TAKES:
        raise SourceError(f"`take` is one of {', '.join(TAKES)}.")
    if forum and take != "solved":
        raise SourceError("a forum's posts are taken when they are marked solved: `take:solved solved-tag:NAME`.")
    if not forum and take == "solved":
        raise SourceError("`take:solved` is for a forum; in a text channel take `pinned` or `all` messages.")
    if forum and not solved_tag:
        raise SourceError("name the forum tag that marks a post solved: `solved-tag:NAME`.")
    tag = _tag(channel, solved_tag, None) if forum else None  # type: ignore[arg-type]
    if forum and tag is None:
        tags = ", ".join(t.name for t in channel.available_tags) or "none"  # type: ignore[attr-defined]
        raise SourceError(f"{channel.mention} has no tag called `{solved_tag}` (its tags: {tags}).")
    me = channel.guild.me
    permissions = channel.permissions_for(me)
    if not (permissions.view_channel and permissions.read_message_history):
        raise SourceError(f"I can't read {channel.mention}: give me View Channel and Read Message History there.")
    return ChannelSpec(channel.guild.id, channel.id, take, tag.name if tag else None, tag.id if tag else None)


def _tag(forum: discord.ForumChannel, name: str | None, tag_id: int | None) -> discord.ForumTag | None:
    if tag_id is not None:
        return forum.get_tag(tag_id)
    wanted = (name or "").strip().casefold()
    return next((t for t in forum.available_tags if t.name.casefold() == wanted), None)


def _solved_tag(forum: discord.ForumChannel, spec: ChannelSpec) -> discord.ForumTag:
    """The source's solved tag; when deleted, SourceError: failing keeps the stored posts serving
    (not "nothing is solved any more")."""
    tag = _tag(forum, spec.solved_tag, spec.solved_tag_id)
    if tag is None:
        raise SourceError(f"{forum.mention} has no tag `{spec.solved_tag}` any more (deleted?): the posts "
                          "stored keep serving; add the forum again with the tag that now marks a post solved.")
    return tag


def _votes(message: discord.Message) -> int:
    """The positive reactions on a message (see POSITIVE)."""
    return sum(r.count for r in message.reactions
               if isinstance(r.emoji, str) and r.emoji.replace(_VS16, "") in POSITIVE)


def _bot_thread(message: discord.Message) -> bool:
    """Whether a bot started a thread on the message (to answer it there)."""
    thread = message.thread
    if thread is None or message.guild is None:
        return False
    return thread.owner_id == message.guild.me.id or (thread.owner is not None and thread.owner.bot)


def _answered(message: discord.Message) -> int | None:
    """The message a bot's message answers (a reply to it), or None."""
    ref = message.reference
    return ref.message_id if message.author.bot and ref is not None and ref.channel_id == message.channel.id else None


def _clean(text: str) -> str:
    return _ROLE_MENTION.sub("@role", _MENTION.sub("@member", text)).strip()


def _usable(message: discord.Message, left_out: LeftOut) -> bool:
    return (message.type in _TEXT_TYPES and not message.author.bot and message.webhook_id is None
            and not any(user.bot for user in message.mentions)  # a question to a bot, not an answer
            and not left_out(message.author.id) and len(_clean(message.content)) >= MIN_CHARS)


def _file(words_of: str, message_id: int) -> str:
    words = re.findall(r"\w+", words_of.lower())[:8]
    return source_name("-".join(words)[:60].strip("-") + f"-{message_id}", ".md")


class ChannelReader:
    """Reads one channel source's documents from Discord (REST, through discord.py)."""

    def __init__(self, limit: int, moderator_role_ids: Collection[int]) -> None:
        self.limit, self.moderator_role_ids = limit, moderator_role_ids

    def _moderator(self, author: discord.abc.User) -> bool:
        return member_is_moderator(author if isinstance(author, discord.Member) else None, self.moderator_role_ids)

    def _title(self, base: str, author: discord.abc.User, verb: str) -> str:
        named = self._moderator(author)
        return f"{base} — {verb} by {author.display_name}, moderator" if named else base

    async def read(self, channel: discord.abc.GuildChannel, spec: ChannelSpec, left_out: LeftOut) -> list[ChannelDocument]:
        if spec.take == "solved" and isinstance(channel, discord.ForumChannel):
            return await self._solved(channel, spec, left_out)
        if not isinstance(channel, discord.TextChannel | discord.VoiceChannel | discord.StageChannel):
            raise SourceError("that channel cannot be read as a source.")
        documents: list[ChannelDocument] = []
        read = channel.pins if spec.take == "pinned" else channel.history
        answered: set[int] = set()  # questions a bot replied to: a reply is newer, so read first
        async for message in read(limit=self.limit * READ_FACTOR):  # newest first
            if (question := _answered(message)) is not None:
                answered.add(question)
            if message.id in answered or _bot_thread(message):
                continue
            if _usable(message, left_out):
                documents.append(self._message(channel, message))
                if len(documents) == self.limit:
                    break
        return documents

    def _message(self, channel: discord.abc.GuildChannel, message: discord.Message) -> ChannelDocument:
        text = _clean(message.content)
        return ChannelDocument(_file(text, message.id), text + "\n", message.jump_url,
                               self._title(f"#{channel.name}", message.author, "written"), (message.author.id,))

    async def _solved(self, forum: discord.ForumChannel, spec: ChannelSpec, left_out: LeftOut) -> list[ChannelDocument]:
        tag = _solved_tag(forum, spec)
        threads = {t.id: t for t in forum.threads}
        async for thread in forum.archived_threads(limit=self.limit):
            threads.setdefault(thread.id, thread)
        solved = sorted((t for t in threads.values() if tag in t.applied_tags), key=lambda t: t.id, reverse=True)
        documents = []
        for thread in solved[:self.limit]:
            if (doc := await self._post(forum, thread, left_out)) is not None:
                documents.append(doc)
        return documents

    async def read_posts(self, forum: discord.ForumChannel, spec: ChannelSpec, posts: Collection[int],
                         left_out: LeftOut) -> list[ChannelDocument]:
        """Only these posts of a forum source (an event touched them): each one's document, or
        none when it is gone, no longer solved or has no answer. (The sweep's full read keeps the
        newest `limit`.)"""
        tag = _solved_tag(forum, spec)
        documents = []
        for post in posts:
            thread = forum.get_thread(post)
            if thread is None:
                try:
                    thread = await forum.guild.fetch_channel(post)
                except discord.NotFound:
                    continue  # deleted
            if (isinstance(thread, discord.Thread) and thread.parent_id == forum.id and tag in thread.applied_tags
                    and (doc := await self._post(forum, thread, left_out)) is not None):
                documents.append(doc)
        return documents

    async def _post(self, forum: discord.ForumChannel, thread: discord.Thread, left_out: LeftOut) -> ChannelDocument | None:
        """A solved post as question + accepted answer (see the module docstring), or None."""
        messages = [m async for m in thread.history(limit=THREAD_MESSAGES, oldest_first=True)]
        starter = next((m for m in messages if m.id == thread.id), None)
        if starter is None or starter.author.bot or left_out(starter.author.id):
            return None
        replies = [m for m in messages if m.id != thread.id and m.author.id != starter.author.id and _usable(m, left_out)]
        if not replies:
            return None
        answer = max(replies, key=lambda m: (_votes(m), self._moderator(m.author), m.id))
        question = " ".join(_clean(starter.content).split())[:QUESTION_CHARS] or thread.name
        # The question leads the heading path (retrieval reads it; an answer never quotes it), the
        # title ends it (what the citation shows), the accepted answer is the text.
        text = f"# {question}\n\n## {thread.name}\n\n{_clean(answer.content)}\n"
        title = self._title(thread.name, answer.author, "answered")
        return ChannelDocument(_file(thread.name, thread.id), text, answer.jump_url, title,
                               (starter.author.id, answer.author.id))
