"""The bot object (commands.Bot with the cogs, command sync; an AutoShardedBot when SHARD_COUNT
is set) and `python -m bot run`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.discord_bot.audience import reply_audience
from bot.discord_bot.feedback import FeedbackView
from bot.discord_bot.pacing import pacing_trace
from bot.discord_bot.render import NO_MENTIONS, describe_error
from bot.rag.access import Readers
from bot.rag.errors import RagError
from bot.rag.service import RagService
from bot.settings import Settings
from bot.state.conversations import ConversationLog
from bot.state.handled import HandledMessages
from bot.state.server_config import ServerConfig

log = logging.getLogger(__name__)
EXIT_CONFIG_ERROR = 2
EXTENSIONS = (
    "bot.discord_bot.cogs.questions",  # mentions, replies, /ask
    "bot.discord_bot.cogs.knowledge",  # /summary, /sources, /reload
    "bot.discord_bot.cogs.sources",  # /source: each server's own sources
    "bot.discord_bot.cogs.refresh",  # web sources fetched again on their schedule (after sources: its refresher)
    "bot.discord_bot.cogs.conversations",  # /config, /stats, /forget-me, the retention purge
    "bot.discord_bot.cogs.channel_sources",  # Discord channels as sources: kept in step with edits
    "bot.discord_bot.cogs.catch_up",  # on start: the questions missed while the bot was down
    "bot.discord_bot.cogs.corrections",  # moderators correct answers: "Correct this answer", "Teach the bot"
)


def bot_intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    return intents


class SourceBot(commands.Bot):
    """Holds the settings and the shared service; the cogs do the talking. Unsharded: one
    gateway connection. With SHARD_COUNT set use `build_bot`, which makes a ShardedSourceBot."""

    def __init__(self, settings: Settings, service: RagService, **options: object) -> None:
        if settings.shard_count is not None and not isinstance(self, commands.AutoShardedBot):
            raise TypeError("SHARD_COUNT is set: build the bot with build_bot(settings, service) (a ShardedSourceBot)")
        trace, self.pacer = pacing_trace(settings.discord_requests_per_second)  # under Discord's global rate limit
        options.setdefault("http_trace", trace)
        super().__init__(
            command_prefix=commands.when_mentioned,  # no prefix commands: questions go to the cog
            intents=bot_intents(),
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            tree_cls=SourceTree,
            **options,  # type: ignore[arg-type]
        )
        self.settings = settings
        self.service = service
        database = service.components.database
        self.conversations = ConversationLog(database)
        self.server_config = ServerConfig(database, settings.answer_in_thread)
        self.handled = HandledMessages(database, run_id=uuid.uuid4().hex[:16],  # this run's claims on messages
                                       lock_dir=settings.data_dir / "locks")
        self.feedback_view: FeedbackView | None = None  # made in setup_hook (a View needs the running loop)
        self.draining = False  # set on shutdown: new questions are turned away
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def readers(self, place: discord.abc.Messageable | None, asker: discord.Member | discord.User,
                      ephemeral: bool = False) -> Readers:
        """Who will read a reply posted in `place`, or by the asker alone: what it may draw on."""
        readers = await reply_audience(place, asker, ephemeral=ephemeral, moderator_role_ids=self.settings.moderator_role_ids)
        return dataclasses.replace(readers, asker_id=asker.id)  # never quoted their own messages

    @contextlib.asynccontextmanager
    async def tracked(self) -> AsyncIterator[None]:
        """Marks a request in progress, so shutdown waits for it."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def until_idle(self, timeout: float) -> bool:
        """Wait until no request is in progress (False if `timeout` passed first)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def shutdown(self, grace: float = 30.0) -> None:
        """Stop taking questions, let the ones in flight finish (up to `grace` s), then close."""
        if self.draining:
            return
        self.draining = True
        log.info("shutting down: waiting for %d request(s) in flight", self._in_flight)
        if not await self.until_idle(grace):
            log.warning("shutdown: %d request(s) still running after %.0fs; closing anyway", self._in_flight, grace)
        await self.close()

    @property
    def syncs_commands(self) -> bool:
        """Whether this process registers the slash commands with Discord. With several sharded
        processes only one should (each sync replaces the whole command list: from every process
        it is wasted requests, rate limits and a race): the one running shard 0, or all shards."""
        return not self.settings.shard_ids or 0 in self.settings.shard_ids

    def describe_shards(self) -> str:
        return ""

    async def setup_hook(self) -> None:
        await asyncio.to_thread(self.handled.start)  # other runs now see this one alive: its claims are kept
        self.feedback_view = FeedbackView(self)
        self.add_view(self.feedback_view)  # persistent: clicks on answers sent before a restart still arrive
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if not self.syncs_commands:
            log.info("not syncing slash commands: the process running shard 0 does (this one runs %s)",
                     self.describe_shards())
            return
        if self.settings.discord_guild_id:
            guild = discord.Object(id=self.settings.discord_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("synced %d slash command(s) %s", len(synced),
                 f"to guild {self.settings.discord_guild_id}" if self.settings.discord_guild_id else "globally")

    async def close(self) -> None:
        """Disconnect; this run's unfinished claims then pass to the next run at once."""
        try:
            await super().close()
        finally:
            await asyncio.to_thread(self.handled.stop)

    async def on_message(self, message: discord.Message) -> None:
        """Questions are handled by QuestionsCog; there are no prefix commands."""

    async def on_ready(self) -> None:
        log.info("connected as %s (%s) to %d guild(s)%s", self.user, getattr(self.user, "id", "?"), len(self.guilds),
                 f" on {self.describe_shards()}" if self.describe_shards() else "")


class ShardedSourceBot(SourceBot, commands.AutoShardedBot):
    """SourceBot on an AutoShardedBot: one gateway connection per shard in SHARD_IDS (all
    SHARD_COUNT shards when empty). Discord sends a guild's events only to shard
    `(guild_id >> 22) % SHARD_COUNT` and DMs to shard 0, so several processes, each with its
    own SHARD_IDS, split the guilds between them. Cogs, command tree and shutdown are SourceBot's."""

    def __init__(self, settings: Settings, service: RagService, **options: object) -> None:
        if settings.shard_count is None:
            raise ValueError("a ShardedSourceBot needs SHARD_COUNT")
        options.setdefault("shard_count", settings.shard_count)
        options.setdefault("shard_ids", list(settings.shard_ids) or None)  # None: every shard
        super().__init__(settings, service, **options)

    def describe_shards(self) -> str:
        ids = self.shard_ids if self.shard_ids is not None else range(self.shard_count or 0)
        return f"shard(s) {','.join(map(str, ids))} of {self.shard_count}"

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("shard %d of %s ready", shard_id, self.shard_count)


def build_bot(settings: Settings, service: RagService, **options: object) -> SourceBot:
    """The bot for these settings: an AutoShardedBot (ShardedSourceBot) when SHARD_COUNT is set,
    else a plain commands.Bot (SourceBot)."""
    cls = ShardedSourceBot if settings.shard_count is not None else SourceBot
    return cls(settings, service, **options)


class SourceTree(app_commands.CommandTree["SourceBot"]):
    """The slash-command tree, with the one error handler of every command: check failures
    and errors become a short private message; anything unexpected is logged in full."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        if isinstance(error, app_commands.CheckFailure):
            text = str(error) or "You can't use this command here."
        else:
            if not isinstance(original, RagError):
                log.error("slash command /%s failed (guild=%s user=%s)", getattr(interaction.command, "name", "?"),
                          interaction.guild_id, interaction.user.id, exc_info=original)
            text = describe_error(original)
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        if interaction.response.type == discord.InteractionResponseType.deferred_channel_message:
            await interaction.delete_original_response()  # the public "thinking…" goes; the error is private
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def _serve(bot: SourceBot, token: str) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.shutdown()))
        except (NotImplementedError, RuntimeError):  # not on this platform / not main thread
            pass
    async with bot:
        await bot.start(token)


def run_bot(settings: Settings) -> int:
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        print("error: DISCORD_TOKEN is not set. Put it in the environment or in .env (see .env.example).", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    service = RagService(settings)
    try:
        service.refresh(wait=True)  # load the model, bring the index up to date, before going online
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    model = settings.openai_model if service.provider == "openai" else service.components.embeddings.model_id
    log.info("answering with the %s back-end (%s) from %d source(s)", service.provider, model, len(service.sources()))
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
    bot = build_bot(settings, service)
    try:
        asyncio.run(_serve(bot, settings.discord_token.get_secret_value()))
    except discord.LoginFailure:
        print("error: Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal.", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except discord.PrivilegedIntentsRequired:
        print("error: enable the Message Content intent for this bot in the Discord developer portal.", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return 0
