"""Discord channels as sources, kept in step: a channel source (added with `/source add
channel:`) is read again a few seconds (CHANNEL_SYNC_DELAY) after anything that may change what
it takes — a message posted, edited or deleted, a pin, a forum post's tags or title, the
channel's permissions (its visibility) — with the changes of that time read together (in a forum,
only the posts touched; the full read keeps the newest CHANNEL_SOURCE_LIMIT), and every
CHANNEL_SWEEP_MINUTES (and on start) for what the bot missed while it was offline. `/forget-me`
removes the member's messages from every channel source and keeps them out from then on.

A channel's visibility (its permissions, or @everyone's role losing View Channel) is applied at
once as a registry-only change, never behind a re-index. One lock per source is held across
the read and the write of every sync (debounced, sweep) and of /forget-me, so an older read is
never written over a newer one.

Owns the watching (which channel ids belong to which source), the debounce and the sweep;
reading Discord is `ChannelReader`'s, storing and indexing `SourceLibrary`'s (in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands, tasks

from bot.discord_bot.channel_reader import (
    ChannelReader,
    ChannelSpec,
    LeftOut,
    channel_visibility,
    check_take,
    jump_link,
)
from bot.rag.access import Visibility
from bot.rag.errors import RagError, SourceError
from bot.rag.index.registry import guild_base_name
from bot.rag.library import SourceChange, SourceLibrary
from bot.rag.library_files import Progress
from bot.state.forgotten import ForgottenAuthors

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (base, source name)


class ChannelSourcesCog(commands.Cog):
    """Keeps every channel source of the servers this process serves in step with its channel."""

    def __init__(self, bot: SourceBot, library: SourceLibrary) -> None:
        self.bot, self.library = bot, library
        self.forgotten = ForgottenAuthors(library.db)
        self.reader = ChannelReader(bot.settings.channel_source_limit, bot.settings.moderator_role_ids)
        self.watched: dict[int, tuple[Key, str]] = {}  # channel id -> its source, and what it takes
        self._pending: dict[Key, asyncio.Task[None]] = {}
        self._again: set[Key] = set()
        self._posts: dict[Key, set[int] | None] = {}  # the forum posts touched since the last read (None: all)
        self._locks: dict[Key, asyncio.Lock] = {}  # one per source: a read and its write go together

    async def cog_load(self) -> None:
        self.sweep.change_interval(minutes=self.bot.settings.channel_sweep_minutes)
        self.sweep.start()

    async def cog_unload(self) -> None:
        self.sweep.cancel()
        for task in self._pending.values():
            task.cancel()

    # --- adding one (called by /source add channel:) --------------------------------------------
    async def add(self, channel: discord.abc.GuildChannel | None, take: str | None, solved_tag: str | None,
                  name: str | None, actor: discord.abc.User, progress: Progress, *, others: bool = False) -> SourceChange:
        """Read a channel and store it as a new source of its server (SourceError: why not).
        `others`: the command also gave options of a file or web source."""
        if channel is None:
            raise SourceError("`take` and `solved-tag` go with a `channel`.")
        if others:
            raise SourceError("a `channel` is a source on its own: no attachment, url, crawl, replace or visible-to "
                              "(it is seen where the channel is seen).")
        spec = check_take(channel, take, solved_tag)
        progress(f"Reading {channel.mention}…")
        documents = await self.reader.read(channel, spec, await self._left_out())
        base = guild_base_name(channel.guild.id)
        change = await asyncio.to_thread(
            self.library.add_channel, base, name=name or channel.name, origin=jump_link(channel.guild.id, channel.id),
            channel=spec.option(), documents=documents, visibility=channel_visibility(channel), actor_id=str(actor.id),
            actor_name=str(actor), progress=progress)
        self.watched[channel.id] = ((base, change.name), spec.take)
        return change

    # --- gateway events: what may change a source ------------------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not message.author.bot:  # the bot's own answers are never sources; a pin has its own event
            self._touched(message.channel.id, new_message=True)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        author: dict[str, Any] = payload.data.get("author") or {}
        if not author.get("bot"):  # the bot editing its streamed answers changes no source
            self._touched(payload.channel_id)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self._touched(payload.channel_id)

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self._touched(payload.channel_id)

    @commands.Cog.listener()
    async def on_guild_channel_pins_update(self, channel: discord.abc.GuildChannel | discord.Thread, _: Any) -> None:
        self._touched(channel.id)

    @commands.Cog.listener()
    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:  # tags, title, archived
        self._touched(payload.thread_id, payload.parent_id)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        self._touched(payload.thread_id, payload.parent_id)

    @commands.Cog.listener()
    async def on_guild_channel_update(self, before: discord.abc.GuildChannel, after: discord.abc.GuildChannel) -> None:
        """Its permissions may have changed: the source's visibility follows at once (privacy waits
        neither for the debounce nor for a re-index), then the channel is read again."""
        if (found := self.watched.get(after.id)) is not None:
            await self._follow_visibility(found[0], after)
        self._touched(after.id)

    @commands.Cog.listener()
    async def on_guild_role_update(self, before: discord.Role, after: discord.Role) -> None:
        """@everyone (or a role a channel's overwrites name) changed: every channel source of the
        server follows its channel's visibility at once."""
        base = guild_base_name(after.guild.id)
        for channel_id, (key, _) in list(self.watched.items()):
            if key[0] == base and (channel := after.guild.get_channel(channel_id)) is not None:
                await self._follow_visibility(key, channel)

    async def _follow_visibility(self, key: Key, channel: discord.abc.GuildChannel) -> None:
        """The source's visibility, the channel's as it is when the registry is written (registry only)."""
        try:
            await asyncio.to_thread(lambda: self.library.set_channel_visibility(*key, channel_visibility(channel)))
        except RagError as exc:
            log.warning("%s: channel source %s: its visibility was not updated: %s", *key, exc)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        self._touched(channel.id)

    @commands.Cog.listener()
    async def on_sources_changed(self, base: str) -> None:
        """A /source change in this process: which channels are watched may have changed."""
        await self._watch(base)

    @commands.Cog.listener()
    async def on_member_forgotten(self, user_id: int) -> None:
        """/forget-me: the member's messages leave every channel source now and stay out."""
        try:
            await asyncio.to_thread(lambda: self.forgotten.forget(self.bot.conversations.user_hash(user_id)))
            async with contextlib.AsyncExitStack() as held:  # no sync of ours reads or writes meanwhile
                for key in sorted({key for key, _ in self.watched.values()} | set(self._locks)):
                    await held.enter_async_context(self._lock(key))
                changed = await asyncio.to_thread(self.library.forget_author, user_id)
        except RagError as exc:
            log.warning("forget-me: channel sources not updated: %s", exc)
            return
        if changed:
            log.info("forget-me: a member's messages were removed from %d channel source(s)", len(changed))

    def _touched(self, channel_id: int, parent_id: int | None = None, *, new_message: bool = False) -> None:
        if parent_id is None and (channel := self.bot.get_channel(channel_id)) is not None:
            parent_id = getattr(channel, "parent_id", None)
        found = self.watched.get(channel_id)
        post = None
        if found is None and parent_id and (found := self.watched.get(parent_id)) is not None and found[1] == "solved":
            post = channel_id  # a forum post: only it is read again
        if found is not None and not (new_message and found[1] == "pinned"):  # a new message is not pinned yet
            self._schedule(found[0], post)

    # --- debounced syncs ----------------------------------------------------------------------
    def _schedule(self, key: Key, post: int | None = None) -> None:
        posts = self._posts.get(key, set())
        self._posts[key] = None if post is None or posts is None else {*posts, post}
        task = self._pending.get(key)
        if task is not None and not task.done():
            self._again.add(key)  # read once more when the pending read is over
            return
        self._pending[key] = asyncio.create_task(self._sync_soon(key))

    async def _sync_soon(self, key: Key) -> None:
        while True:
            await asyncio.sleep(self.bot.settings.channel_sync_delay)
            self._again.discard(key)
            await self._sync_logged(*key, self._posts.pop(key, None))
            if key not in self._again:
                return

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def sync(self, base: str, name: str, posts: set[int] | None = None) -> SourceChange | None:
        """Read one channel source again (`posts`: only these posts of a forum) and store what
        changed (None: nothing did, or it could not be read), holding the source's lock from the
        read to the write."""
        async with self._lock((base, name)):
            return await self._sync(base, name, posts)

    async def _sync(self, base: str, name: str, posts: set[int] | None) -> SourceChange | None:
        try:
            row = await asyncio.to_thread(self.library.registry.get, base, name)
            if row is None or row.kind != "discord":
                return None
            try:
                spec = ChannelSpec.of(row)
            except (KeyError, TypeError, ValueError):
                log.warning("%s: channel source %s does not say which channel it reads", base, name)
                return None
            guild = self.bot.get_guild(spec.guild_id)
            if guild is None:
                return None  # another process (shard) serves that server
            channel = guild.get_channel(spec.channel_id)
            if channel is None:  # deleted: so are its messages; no one reads it any more
                documents = []
                await asyncio.to_thread(self.library.set_channel_visibility, base, name,
                                        Visibility.channels([spec.channel_id]))
            else:
                await self._follow_visibility((base, name), channel)  # missed while offline, say
                if posts is None or not isinstance(channel, discord.ForumChannel):
                    posts = None
                    documents = await self.reader.read(channel, spec, await self._left_out())
                else:
                    documents = await self.reader.read_posts(channel, spec, posts, await self._left_out())
            change = await asyncio.to_thread(self.library.sync_channel, base, name, documents, self._forgotten_now,
                                             posts)
        except (discord.HTTPException, RagError) as exc:
            log.warning("%s: channel source %s not synced (it keeps serving as it was): %s", base, name, exc)
            return None
        if change is not None:
            log.info("%s: %s", base, change.result)
        return change

    async def _sync_logged(self, base: str, name: str, posts: set[int] | None = None) -> None:
        """`sync`, with anything unexpected logged: one source's bug stops neither the sweep nor the others."""
        try:
            await self.sync(base, name, posts)
        except Exception:  # noqa: BLE001 - logged with its traceback
            log.exception("%s: channel source %s: the sync failed", base, name)

    # --- the sweep ----------------------------------------------------------------------------
    @tasks.loop(minutes=30)
    async def sweep(self) -> None:
        """Every channel source of the servers this process serves, read again (and on start)."""
        for guild in list(self.bot.guilds):
            base = guild_base_name(guild.id)
            for name in await self._watch(base):
                await self._sync_logged(base, name)

    @sweep.before_loop
    async def _ready(self) -> None:
        await self.bot.wait_until_ready()

    async def _watch(self, base: str) -> list[str]:
        """Watch the channels of `base`'s channel sources; their names."""
        try:
            rows = await asyncio.to_thread(self.library.channel_sources, base)
        except RagError as exc:
            log.warning("%s: channel sources not read: %s", base, exc)
            return []
        for channel_id, ((watched_base, _), _) in list(self.watched.items()):
            if watched_base == base:
                del self.watched[channel_id]
        for row in rows:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                spec = ChannelSpec.of(row)
                self.watched[spec.channel_id] = ((base, row.name), spec.take)
        return [row.name for row in rows]

    async def _left_out(self) -> LeftOut:
        """Whether an author asked to be forgotten (their messages are never taken)."""
        return await asyncio.to_thread(self._forgotten_now)

    def _forgotten_now(self) -> LeftOut:
        """`_left_out`, read now (in a worker thread: the write of a sync asks it under its lock)."""
        hashes = self.forgotten.hashes()
        if not hashes:
            return lambda _: False
        user_hash = self.bot.conversations.user_hash
        user_hash(0)  # reads the salt once
        return lambda user_id: user_hash(user_id) in hashes


async def setup(bot: SourceBot) -> None:
    """Over the source library the /source cog built; without it (no state database) there are
    no channel sources to keep."""
    sources = bot.get_cog("SourcesCog")
    library = getattr(sources, "library", None)
    if not isinstance(library, SourceLibrary):
        log.error("channel sources are not kept in step: /source is unavailable")
        return
    await bot.add_cog(ChannelSourcesCog(bot, library))

