"""Shared fixtures: the real embedding model (loaded once), a temp sources folder holding
the seed article, settings/services pointing at a temp on-disk Chroma, the local
OpenAI-compatible server, and the Discord emulator with a bot connected to it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import discord
import pytest
import yarl

from bot.discord_bot.app import SourceBot
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.library import SourceLibrary
from bot.rag.service import RagService
from bot.settings import Settings
from bot.state import Database, database_url
from tests.discord_client import start_client  # noqa: F401  (a fixture: a plain client for the emulator tests)
from tests.discord_emulator import MANAGE_GUILD, DiscordEmulator, Member
from tests.helpers import ARTICLE, StartBot, connect, disconnect_all
from tests.openai_server import OpenAICompatibleServer
from tests.postgres_server import start_postgres, stop_postgres


@pytest.fixture(scope="session")
def embeddings() -> MiniLMEmbeddings:
    return MiniLMEmbeddings(threads=2)


@pytest.fixture
def sources_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "sources"
    folder.mkdir()
    shutil.copy(ARTICLE, folder / ARTICLE.name)
    return folder


@pytest.fixture
def make_settings(tmp_path: Path, sources_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "sources_dir": sources_dir,
            "vectorstore_dir": tmp_path / "vectorstore",
            "data_dir": tmp_path / "data",
            "llm_provider": "extractive",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def service(settings: Settings, embeddings: MiniLMEmbeddings) -> RagService:
    return RagService(settings, embeddings=embeddings)


@pytest.fixture
def stories_service(make_settings: Callable[..., Settings], tmp_path: Path, embeddings: MiniLMEmbeddings) -> RagService:
    """A service over two short stories (a lighthouse keeper, a ferry captain), ingested."""
    from tests.test_conversation_store import FERRY, LIGHTHOUSE

    folder = tmp_path / "stories"
    folder.mkdir()
    (folder / "lighthouse.md").write_text(LIGHTHOUSE, encoding="utf-8")
    (folder / "ferry.md").write_text(FERRY, encoding="utf-8")
    service = RagService(make_settings(sources_dir=folder), embeddings=embeddings)
    service.start()
    return service


@pytest.fixture
def server_library(service: RagService, settings: Settings) -> Iterator[SourceLibrary]:
    """The source library over `service`'s bases (started) and the settings' state database."""
    service.start()
    db = Database(database_url(settings))
    db.create_schema()
    yield SourceLibrary(settings, service.bases, db)
    db.dispose()


@pytest.fixture(scope="session")
def shared_service(tmp_path_factory: pytest.TempPathFactory, embeddings: MiniLMEmbeddings) -> RagService:
    """One ingested service for read-only tests (questions, summaries)."""
    root = tmp_path_factory.mktemp("shared")
    (root / "sources").mkdir()
    shutil.copy(ARTICLE, root / "sources" / ARTICLE.name)
    settings = Settings(
        _env_file=None, sources_dir=root / "sources", vectorstore_dir=root / "vectorstore", data_dir=root / "data",
        llm_provider="extractive",
    )
    service = RagService(settings, embeddings=embeddings)
    service.start()
    return service


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    server = OpenAICompatibleServer().start()
    yield server
    server.stop()


# --- Discord: the emulator and a bot connected to it ------------------------------------
ORIGINAL_BASE = discord.http.Route.BASE
ORIGINAL_GATEWAY = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    emu = DiscordEmulator()
    await emu.start()
    emu.point_client_here()
    yield emu
    await emu.stop()
    rejected = [(c.method, c.path, c.status) for c in emu.unexpected_errors()]
    assert rejected == [], "the bot broke a Discord rule (a refusal a test expects is declared with expect_error)"
    discord.http.Route.BASE = ORIGINAL_BASE
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = ORIGINAL_GATEWAY or yarl.URL("wss://gateway.discord.gg/")


@pytest.fixture
async def start_bot(emulator: DiscordEmulator) -> AsyncIterator[StartBot]:
    running: list[tuple[SourceBot, asyncio.Task[None]]] = []

    async def start(service: RagService, **overrides: Any) -> SourceBot:
        settings = service.settings.model_copy(update={
            "discord_guild_id": int(emulator.guild_id), "question_cooldown_count": 100,
            "answer_in_thread": False,  # answers are read in the channel; the conversation tests turn threads on
            **overrides,
        })
        bot = SourceBot(settings, service, guild_ready_timeout=0.05)
        await connect(bot, running)
        return bot

    yield start
    await disconnect_all(running)


@pytest.fixture
def member(emulator: DiscordEmulator) -> Member:
    return emulator.member("alice")


@pytest.fixture
def moderator(emulator: DiscordEmulator) -> Member:
    return emulator.member("mod", permissions=MANAGE_GUILD | (1 << 10) | (1 << 11))


# --- a real PostgreSQL server for the DATABASE_URL path ----------------------------------
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the `postgres` database on a throwaway server for the whole session."""
    try:
        server = start_postgres()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.url()
    finally:
        stop_postgres(server)
