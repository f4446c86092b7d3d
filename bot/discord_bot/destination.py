"""Writing one answer where it belongs: in the conversation's thread, or as a reply to the
member's message. A partial answer is posted once and then edited; the final one replaces
it; "typing…" shows only while a slow answer is written. A thread archived while the answer
was being written is reopened (the bot opened it or may manage threads); one deleted
meanwhile, or one the bot can no longer post in, gives way to the channel it was in, unless
it was a private thread (its answer may use sources the channel's readers may not see). Every
send pings nobody."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import discord

from bot.discord_bot.render import NO_MENTIONS, Reply

log = logging.getLogger(__name__)
THREAD_ARCHIVED = 50083
TYPING_AFTER = 1.0  # seconds before "typing…" shows


class Destination:
    def __init__(self, message: discord.Message, thread: discord.Thread | None) -> None:
        self.message = message
        self.thread = thread
        self.sent: discord.Message | None = None
        # An answer written for a private thread's members never falls back to its channel,
        # whose readers are others (the sources it may use were chosen for the thread's).
        place = thread or message.channel
        self.private = isinstance(place, discord.Thread) and place.type is discord.ChannelType.private_thread

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        """"Typing…" while the answer is written, once it takes longer than TYPING_AFTER seconds
        (a quick answer needs no indicator: one REST call less)."""
        channel = self.thread or self.message.channel

        async def later() -> None:
            await asyncio.sleep(TYPING_AFTER)
            try:
                async with channel.typing():
                    await asyncio.Event().wait()  # until the answer is ready (cancelled)
            except discord.HTTPException as exc:
                log.debug("no typing indicator in %s (%s %s)", channel.id, exc.status, exc.text)

        indicator = asyncio.create_task(later())
        try:
            yield
        finally:
            indicator.cancel()
            await asyncio.gather(indicator, return_exceptions=True)

    async def show(self, partial: str) -> None:
        """A partial answer: posted first, edited after."""
        if self.sent is None:
            self.sent = await self._post(partial)
        else:
            await self._edit(partial)

    async def finish(self, reply: Reply, view: discord.ui.View | None) -> discord.Message | None:
        """The final first message of the answer (with the feedback buttons, if any)."""
        if self.sent is not None and await self._edit(reply.content, reply.embed, view):
            return self.sent
        self.sent = await self._post(reply.content, reply.embed, view)
        return self.sent

    async def send(self, reply: Reply) -> None:
        """A further message of the answer (a long answer's continuation, its sources)."""
        await self._post(reply.content, reply.embed)

    async def _post(self, content: str, embed: discord.Embed | None = None,
                    view: discord.ui.View | None = None) -> discord.Message | None:
        options: dict[str, Any] = {"embed": embed, "allowed_mentions": NO_MENTIONS}
        if view is not None:
            options["view"] = view
        if self.thread is not None:
            try:
                return await self.thread.send(content, **options)
            except discord.HTTPException as exc:
                if await self._reopened(exc):
                    return await self.thread.send(content, **options)
                self._give_up_thread(exc)
        if self.private:
            log.warning("the answer to message %s was for a private thread that is gone: not posted elsewhere",
                        self.message.id)
            return None
        in_thread = isinstance(self.message.channel, discord.Thread)
        try:
            if in_thread:  # the member's message is in the thread that is gone: its channel
                parent = self.message.channel.parent  # type: ignore[union-attr]
                if isinstance(parent, discord.TextChannel):
                    return await parent.send(content, **options)
                return None
            return await self.message.reply(content, **options)
        except discord.HTTPException as exc:
            log.warning("the answer to message %s could not be posted (%s %s)", self.message.id, exc.status, exc.text)
            return None

    async def _edit(self, content: str, embed: discord.Embed | None = None, view: discord.ui.View | None = None) -> bool:
        assert self.sent is not None
        options: dict[str, Any] = {"content": content, "embed": embed, "allowed_mentions": NO_MENTIONS}
        if view is not None:
            options["view"] = view
        try:
            await self.sent.edit(**options)
            return True
        except discord.HTTPException as exc:
            if await self._reopened(exc):
                await self.sent.edit(**options)
                return True
            log.warning("the answer %s could not be edited (%s %s): posting it anew", self.sent.id, exc.status, exc.text)
            self._give_up_thread(exc)
            self.sent = None
            return False

    async def _reopened(self, exc: discord.HTTPException) -> bool:
        """Unarchive the thread if that is what stopped the send."""
        if self.thread is None or exc.code != THREAD_ARCHIVED:
            return False
        try:
            self.thread = await self.thread.edit(archived=False)
            log.info("thread %s was archived while answering: reopened it", self.thread.id)
            return True
        except discord.HTTPException as again:
            log.warning("thread %s is archived and cannot be reopened (%s %s)", self.thread.id, again.status, again.text)
            return False

    def _give_up_thread(self, exc: discord.HTTPException) -> None:
        if self.thread is not None:
            log.warning("cannot post in thread %s (%s %s): answering in its channel", self.thread.id, exc.status, exc.text)
        self.thread = None
