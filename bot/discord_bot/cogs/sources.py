"""The moderators' `/source` commands: add (a file, a web page or a crawl of a site's folder; a
Discord channel or forum is handed to `bot.discord_bot.cogs.channel_sources`), remove, list,
reload and refresh (one web source now, or how often) the sources of this server's own
knowledge base (`guild-<id>`), and choose the channel where changes are announced.

Owns the Discord side of source changes: option checks, the deferred private reply edited with
progress while a source is fetched and indexed, the final report, and the one-line audit post
in the server's log channel (never pinging anyone; a channel the bot cannot post in is logged
and skipped). The changes themselves are `SourceLibrary`'s, run in a worker thread. Nothing here
reaches another server's base: every command works on the base of the server it was run in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_bot.channel_reader import TAKES
from bot.discord_bot.checks import is_moderator, moderator_only
from bot.discord_bot.render import AUTOCOMPLETE_LIMIT, MESSAGE_LIMIT, NO_MENTIONS
from bot.discord_bot.source_replies import (
    ProgressEdits,
    announce,
    can_post,
    clip,
    parse_visible_to,
    report_text,
    sources_embed,
)
from bot.rag.access import Visibility
from bot.rag.errors import ReloadInProgressError, SourceError, UnknownSourceError
from bot.rag.index.registry import guild_base_name
from bot.rag.library import SourceChange, SourceExistsError, SourceLibrary
from bot.rag.refresh import SourceRefresher, describe_interval, parse_interval
from bot.state import Database, StateUnavailableError, database_url

if TYPE_CHECKING:
    from bot.discord_bot.app import SourceBot

log = logging.getLogger(__name__)
MAX_PAGES_LIMIT = 500
# What a moderator can fix: worded in the reply. Anything else goes to the tree's error handler.
USER_ERRORS = (SourceError, SourceExistsError, UnknownSourceError, ReloadInProgressError)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class SourcesCog(commands.GroupCog, group_name="source", group_description="This server's own sources (moderators)"):
    """`/source add|remove|list|reload|refresh|log-channel`, for moderators of the server they run in."""

    def __init__(self, bot: SourceBot, library: SourceLibrary) -> None:
        self.bot, self.library = bot, library
        self.refresher = SourceRefresher(library)  # the refresh schedule: /source refresh, and the refresh cog's loop
        super().__init__()

    async def cog_unload(self) -> None:
        await asyncio.to_thread(self.library.db.dispose)

    @staticmethod
    def _base(interaction: discord.Interaction) -> str:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        return guild_base_name(interaction.guild_id)

    @staticmethod
    def _actor(interaction: discord.Interaction) -> dict[str, str]:
        return {"actor_id": str(interaction.user.id), "actor_name": str(interaction.user)}

    @app_commands.command(name="add", description="Add a file or a web page (or crawl a site) to this server's sources")
    @app_commands.describe(
        attachment="A file: .txt .md .rst .html .pdf .docx .pptx .xlsx .csv",
        url="A web page (http:// or https://)",
        crawl="Also add the pages under the URL's folder on that site",
        max_pages="Most pages a crawl fetches",
        name="The source's name (default: the file name, or the first page's title)",
        replace="Put the file in the place of the source of that name (the old one serves until it is indexed)",
        visible_to="Who may see it: everyone (default), #channels or @roles",
        channel="A channel or forum whose messages become sources (seen where the channel is)",
        take="From a channel: pinned (default) or all messages; from a forum: solved posts",
        solved_tag="The forum tag that marks a post solved",
        refresh="A URL: how often it is fetched again: daily (default), hourly, weekly, 6h, 2d or never",
    )
    @app_commands.rename(visible_to="visible-to", solved_tag="solved-tag")
    @app_commands.choices(take=[app_commands.Choice(name=t, value=t) for t in TAKES])
    @moderator_only()
    async def add(self, interaction: discord.Interaction, attachment: discord.Attachment | None = None,
                  url: str | None = None, crawl: bool = False,
                  max_pages: app_commands.Range[int, 1, MAX_PAGES_LIMIT] | None = None,
                  name: app_commands.Range[str, 1, 100] | None = None, replace: bool = False,
                  visible_to: str | None = None, refresh: str | None = None,
                  channel: discord.TextChannel | discord.ForumChannel | None = None, take: str | None = None,
                  solved_tag: app_commands.Range[str, 1, 20] | None = None) -> None:
        if channel is not None or take is not None or solved_tag is not None:  # Discord channels as sources
            others = bool(attachment or url or crawl or max_pages or replace or visible_to or refresh)
            await self._add_channel(interaction, channel, take, solved_tag, name, others)
            return
        base, limit = self._base(interaction), self.bot.settings.max_source_bytes
        problem = None
        if (attachment is None) == (url is None):
            problem = "Give exactly one of `attachment` (a file), `url` (a web page) or `channel`."
        elif attachment is not None and (crawl or max_pages is not None):
            problem = "`crawl` and `max_pages` go with a `url`, not with a file."
        elif url is not None and replace:
            problem = "`replace` goes with a file; `/source reload` fetches web sources again."
        elif attachment is not None and attachment.size > limit:
            problem = f"{attachment.filename} is {attachment.size:,} bytes; the limit is {limit:,}."
        elif attachment is not None and refresh is not None:
            problem = "`refresh` goes with a `url`: a file is not fetched again."
        visibility, interval = None, None
        try:
            interval = parse_interval(refresh) if problem is None else None
            if problem is None and visible_to is not None and interaction.guild is not None:
                visibility = parse_visible_to(visible_to, interaction.guild)
        except SourceError as exc:
            problem = str(exc)
        if problem is not None:
            await interaction.response.send_message(problem, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress = ProgressEdits(interaction)
        try:
            if attachment is not None:
                progress(f"Downloading {attachment.filename}…")
                try:
                    data = await attachment.read()
                except discord.HTTPException as exc:
                    why = f"Couldn't download {attachment.filename} ({exc.status}); try again."
                    await self._failed(interaction, progress, why)
                    return
                change = await asyncio.to_thread(self.library.add_file, base, attachment.filename, data, name=name,
                                                 replace=replace, progress=progress, visibility=visibility,
                                                 **self._actor(interaction))
            else:
                assert url is not None
                change = await asyncio.to_thread(self.library.add_url, base, url.strip(), crawl=crawl, max_pages=max_pages,
                                                 name=name, progress=progress, visibility=visibility,
                                                 **self._actor(interaction))
                if refresh is not None:  # its own refresh interval (else the default)
                    await asyncio.to_thread(self.refresher.set_interval, base, change.name, interval)
        except USER_ERRORS as exc:
            await self._failed(interaction, progress, f"Couldn't add that source: {exc}")
            return
        await self._done(interaction, progress, change)

    async def _add_channel(self, interaction: discord.Interaction, channel: discord.TextChannel | discord.ForumChannel | None,
                           take: str | None, solved_tag: str | None, name: str | None, others: bool) -> None:
        """`/source add channel:`: checking, reading and keeping it are the channel sources cog's."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress, keeper = ProgressEdits(interaction), self.bot.get_cog("ChannelSourcesCog")
        try:
            if keeper is None:
                raise SourceError("channel sources are unavailable right now.")
            change = await keeper.add(channel, take, solved_tag, name, interaction.user, progress,  # type: ignore[attr-defined]
                                      others=others)
        except (*USER_ERRORS, discord.HTTPException) as exc:
            await self._failed(interaction, progress, f"Couldn't add that channel: {exc}")
            return
        await self._done(interaction, progress, change)

    @app_commands.command(name="remove", description="Remove one of this server's sources")
    @app_commands.describe(name="The source to remove")
    @moderator_only()
    async def remove(self, interaction: discord.Interaction, name: str) -> None:
        await self._change(interaction, "Couldn't remove it", self.library.remove, name)

    @app_commands.command(name="visibility", description="Who may see one of this server's sources")
    @app_commands.describe(name="The source", visible_to="everyone, #channels or @roles (leave empty to see it)")
    @app_commands.rename(visible_to="visible-to")
    @moderator_only()
    async def visibility(self, interaction: discord.Interaction, name: str, visible_to: str | None = None) -> None:
        base = self._base(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            if visible_to is None:
                row = await asyncio.to_thread(self.library.registry.get, base, name)
                if row is None:
                    raise UnknownSourceError(f"There is no source called '{name}' in this server.")
                text = f"✅ `{row.name}` is visible to {Visibility.of(row).describe()}."
            else:
                assert interaction.guild is not None
                wanted = parse_visible_to(visible_to, interaction.guild)
                row = await asyncio.to_thread(self.library.set_visibility, base, name, wanted, **self._actor(interaction))
                text = f"✅ `{row.name}` is now visible to {wanted.describe()}; answers follow from the next question."
        except USER_ERRORS as exc:
            text = f"❌ {exc}"
        await interaction.edit_original_response(content=clip(text), allowed_mentions=NO_MENTIONS)

    @visibility.autocomplete("name")
    @remove.autocomplete("name")
    async def remove_name(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None or not is_moderator(interaction, self.bot.settings):
            return []
        names = await asyncio.to_thread(self.library.names, guild_base_name(interaction.guild_id), current)
        return [app_commands.Choice(name=n[:100], value=n) for n in names][:AUTOCOMPLETE_LIMIT]

    @app_commands.command(name="list", description="List this server's sources")
    @moderator_only()
    async def list_sources(self, interaction: discord.Interaction) -> None:
        rows = await asyncio.to_thread(self.library.list, self._base(interaction))
        schedules = await asyncio.to_thread(self.refresher.schedules, self._base(interaction))
        if not rows:
            await interaction.response.send_message(
                "This server has no sources of its own yet; add one with `/source add`.", ephemeral=True,
                allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.send_message(f"{len(rows)} source(s):", embed=sources_embed(rows, schedules), ephemeral=True,
                                                allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="reload", description="Re-fetch this server's web sources and re-read its files")
    @moderator_only()
    async def reload(self, interaction: discord.Interaction) -> None:
        await self._change(interaction, "Reload failed", self.library.reload, with_progress=True)

    # --- scheduled refresh (issue 21) ------------------------------------------------------------
    @app_commands.command(name="refresh", description="Fetch a web source again now (or set how often it is)")
    @app_commands.describe(name="The web page or crawl", every="Set how often instead: daily, hourly, weekly, 6h, 2d, "
                           "never or default")
    @moderator_only()
    async def refresh(self, interaction: discord.Interaction, name: str, every: str | None = None) -> None:
        base = self._base(interaction)
        if every is not None:
            try:
                row = await asyncio.to_thread(self.refresher.set_interval, base, name, parse_interval(every))
            except USER_ERRORS as exc:
                text = f"❌ {exc}"
            else:
                minutes = self.refresher.interval(row.interval_minutes)
                when = f"; next {discord.utils.format_dt(row.next_due, 'R')}" if minutes else ""
                text = f"✅ `{row.name}` is {describe_interval(minutes)}{when}."
            await interaction.response.send_message(clip(text), ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress = ProgressEdits(interaction)
        try:
            change = await asyncio.to_thread(self.refresher.refresh_now, base, name, progress=progress,
                                             **self._actor(interaction))
        except USER_ERRORS as exc:
            await self._failed(interaction, progress, f"Refresh failed: {exc}")
            return
        problem = await announce(interaction, change) if change.pages else None  # only a change is announced
        await progress.settle()
        await interaction.edit_original_response(content=report_text(change, problem), allowed_mentions=NO_MENTIONS)

    @refresh.autocomplete("name")
    async def refresh_name(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self.remove_name(interaction, current)

    @app_commands.command(name="log-channel", description="Where source changes are announced (no channel: nowhere)")
    @app_commands.describe(channel="The channel (leave empty to stop announcing)")
    @moderator_only()
    async def log_channel(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        base = self._base(interaction)
        await asyncio.to_thread(self.library.set_log_channel, base, channel.id if channel else None,
                                **self._actor(interaction))
        if channel is None:
            text = "Source changes are no longer announced in a channel."
        else:
            text = f"Source changes will be announced in {channel.mention}."
            if not can_post(channel):
                text += " I can't post there yet: give me View Channel and Send Messages in it."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # --- replies and the log channel ------------------------------------------------------
    async def _change(self, interaction: discord.Interaction, failure: str, change_of: Callable[..., SourceChange],
                      *args: Any, with_progress: bool = False) -> None:
        """Defer privately, run one library change in a worker thread, report how it went."""
        base = self._base(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress = ProgressEdits(interaction)
        extra: dict[str, Any] = {"progress": progress} if with_progress else {}
        try:
            change = await asyncio.to_thread(change_of, base, *args, **extra, **self._actor(interaction))
        except USER_ERRORS as exc:
            await self._failed(interaction, progress, f"{failure}: {exc}")
            return
        await self._done(interaction, progress, change)

    async def _failed(self, interaction: discord.Interaction, progress: ProgressEdits, text: str) -> None:
        await progress.settle()
        await interaction.edit_original_response(content=f"❌ {clip(text, MESSAGE_LIMIT - 2)}",
                                                  allowed_mentions=NO_MENTIONS)

    async def _done(self, interaction: discord.Interaction, progress: ProgressEdits, change: SourceChange) -> None:
        self.bot.dispatch("sources_changed", change.base)  # e.g. the channel sources watched
        problem = await announce(interaction, change)
        await progress.settle()
        await interaction.edit_original_response(content=report_text(change, problem), allowed_mentions=NO_MENTIONS)


async def setup(bot: SourceBot) -> None:
    """Add the cog over the state database (tables created if missing). If that database cannot
    be reached, the bot still answers questions: /source is left out and the reason logged."""
    try:
        db = Database(database_url(bot.settings))
        await asyncio.to_thread(db.create_schema)
    except StateUnavailableError as exc:
        log.error("/source is unavailable: %s", exc)
        return
    library = SourceLibrary(bot.settings, bot.service.bases, db)
    try:  # adds a killed process left half done: their files and rows go (audited)
        if undone := await asyncio.to_thread(library.recover_all):
            log.warning("interrupted source adds undone: %s", ", ".join(undone))
    except Exception as exc:  # noqa: BLE001 - the next change of that base undoes them too
        log.warning("interrupted source adds not checked at start: %s", exc)
    await bot.add_cog(SourcesCog(bot, library))
