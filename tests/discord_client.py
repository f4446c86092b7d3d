"""A plain discord.py client for the emulator's role and permission tests: the bot's intents
(and GUILD_MEMBERS if asked) and one command, /where, recording the interactions and messages
it gets, without the bot around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import discord
import pytest
from discord import app_commands

from bot.discord_bot.app import bot_intents
from tests.helpers import connect, disconnect_all


class RecordingClient(discord.Client):
    def __init__(self, members_intent: bool = False) -> None:
        intents = bot_intents()
        intents.members = members_intent
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.asked: list[discord.Interaction] = []
        self.seen: list[discord.Message] = []

        @self.tree.command(name="where", description="Record where I am")
        async def where(interaction: discord.Interaction) -> None:
            self.asked.append(interaction)
            await interaction.response.send_message("noted", ephemeral=True)

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)


StartClient = Callable[..., Awaitable[RecordingClient]]


@pytest.fixture
async def start_client() -> AsyncIterator[StartClient]:
    """Start RecordingClients against the emulator (`members_intent=` per client); all stop after the test."""
    running: list[tuple[RecordingClient, asyncio.Task[None]]] = []

    async def start(members_intent: bool = False) -> RecordingClient:
        client = RecordingClient(members_intent)
        await connect(client, running)
        return client

    yield start
    await disconnect_all(running)
