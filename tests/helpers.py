"""Helpers the test modules share (fixtures live in conftest.py): the seed article and QA
sets, running the CLI in a subprocess, and reading what the bot sent to Discord."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.discord_bot.app import SourceBot
from bot.rag.components import Components
from bot.rag.embeddings import MiniLMEmbeddings, VectorCache
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings
from tests.discord_emulator import DiscordEmulator

ARTICLE = PROJECT_ROOT / "sources" / "haliva-resignation.txt"
DEV_SET = PROJECT_ROOT / "tests" / "data" / "haliva_dev.jsonl"  # a copy of the team's shared dev set
OWN_SET = PROJECT_ROOT / "tests" / "data" / "haliva_own.jsonl"


class StartBot(Protocol):
    """The `start_bot` fixture: a connected SourceBot over `service`, settings overridden."""

    async def __call__(self, service: RagService, **overrides: Any) -> SourceBot: ...


class CountingEmbeddings(MiniLMEmbeddings):
    """The real model, recording the texts it embeds (to prove what is not re-embedded); with
    `fail_after`, the call after that many texts raises `failure`, as a crash would."""

    def __init__(self, model: MiniLMEmbeddings, model_id: str | None = None, fail_after: int | None = None,
                 failure: BaseException | None = None) -> None:
        self.__dict__.update(model.__dict__)
        if model_id:
            self.model_id = model_id
        self.texts: list[str] = []
        self._fail_after, self._failure = fail_after, failure

    @property
    def embedded(self) -> int:
        return len(self.texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._fail_after is not None and len(self.texts) + len(texts) > self._fail_after:
            raise self._failure or RuntimeError("the embedder crashed")
        self.texts.extend(texts)
        return super().encode(texts)


def counting_chunks(settings: Settings, embeddings: MiniLMEmbeddings, **counting: Any) -> tuple[RagService, CountingEmbeddings]:
    """A service whose index build embeds chunks with a CountingEmbeddings (returned), while
    sentences and questions go through the uncounted model: the count is the chunks embedded."""
    model = CountingEmbeddings(embeddings, **counting)
    components = Components(settings, embeddings=model)
    components.vectors = VectorCache(embeddings, store_dir=settings.cache_dir / "sentence-vectors")
    return RagService(settings, components=components), model


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a CLI subprocess runs in: `settings`' folders, the offline answerer."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(settings.vectorstore_dir.parent),
        "SOURCES_DIR": str(settings.sources_dir),
        "VECTORSTORE_DIR": str(settings.vectorstore_dir),
        "DATA_DIR": str(settings.data_dir),
        "LLM_PROVIDER": "extractive",
        **extra,
    }


def run_cli(settings: Settings, *args: str, stdin: str = "", module: str = "bot", timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` (or another `module` that runs the CLI) in a subprocess; `env`: more variables."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], input=stdin, capture_output=True, text=True,
        env=cli_env(settings, **env), cwd=PROJECT_ROOT, timeout=timeout,
    )


def pings_nobody(body: dict) -> bool:
    """Discord pings only what allowed_mentions lists; replied_user defaults to false."""
    allowed = body.get("allowed_mentions")
    return allowed is not None and allowed.get("parse") == [] and not allowed.get("users") \
        and not allowed.get("roles") and not allowed.get("replied_user")


def field_values(body: dict) -> list[str]:
    return [f["value"] for embed in body.get("embeds") or [] for f in embed.get("fields", [])]


async def followup(emulator: DiscordEmulator, token: str, after: int) -> dict:
    call = await emulator.wait_for_call("POST", rf"/webhooks/{emulator.app_id}/{token}", after=after)
    return call.body


async def connect(bot: Any, running: list[tuple[Any, asyncio.Task[None]]]) -> None:
    """Log a discord.py client in against the emulator and wait until it is ready."""
    await bot.login("test-token")
    task = asyncio.create_task(bot.connect())
    await asyncio.wait_for(bot.wait_until_ready(), 10)
    running.append((bot, task))


async def disconnect_all(running: list[tuple[Any, asyncio.Task[None]]]) -> None:
    for bot, task in running:
        await bot.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """`check()`'s first truthy result, polled every 20 ms (AssertionError after `timeout` s)."""
    for _ in range(int(timeout / 0.02)):
        if result := check():
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")
