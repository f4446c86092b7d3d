"""Sharding: SHARD_COUNT / SHARD_IDS make the bot an AutoShardedBot; the Discord emulator routes
each guild to the connection of its shard, `(guild_id >> 22) % shard_count` (DMs: shard 0); and
two real `python -m bot run` processes, one per shard, share one Chroma server and one Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import chromadb
import psycopg
import pytest
from discord.ext import commands

from bot.discord_bot.app import ShardedSourceBot, SourceBot, build_bot
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings
from tests.chroma_server import ChromaServer
from tests.discord_emulator import DiscordEmulator
from tests.helpers import eventually, followup

HOSTAGES = "How many hostages were taken back to Gaza?"
CHIEF = "Who is the IDF chief of staff?"


# --- settings and the bot class ---------------------------------------------------------------
def test_shard_settings_parse_and_validate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", "1, 3")
    settings = Settings(_env_file=None)
    assert settings.shard_count == 4 and settings.shard_ids == [1, 3]
    monkeypatch.setenv("SHARD_COUNT", "")  # an empty variable (compose's ${SHARD_COUNT:-}) means unset
    monkeypatch.setenv("SHARD_IDS", "")
    assert Settings(_env_file=None).shard_count is None and Settings(_env_file=None).shard_ids == []
    for count, ids, message in [("2", "2", r"SHARD_IDS \[2\] out of range: with SHARD_COUNT=2 shard ids are 0\.\.1"),
                                ("", "0", "SHARD_IDS needs SHARD_COUNT"),
                                ("2", "1,1", "lists a shard twice"),
                                ("0", "", "shard_count")]:
        monkeypatch.setenv("SHARD_COUNT", count)
        monkeypatch.setenv("SHARD_IDS", ids)
        with pytest.raises(ValueError, match=message):
            Settings(_env_file=None)


def test_build_bot_is_an_autoshardedbot_only_when_shard_count_is_set(make_settings: Callable[..., Settings],
                                                                     service: RagService) -> None:
    plain = build_bot(make_settings(), service)
    assert type(plain) is SourceBot and not isinstance(plain, commands.AutoShardedBot)
    assert plain.syncs_commands

    one = build_bot(make_settings(shard_count=2, shard_ids=[1]), service)
    assert isinstance(one, ShardedSourceBot) and isinstance(one, SourceBot) and isinstance(one, commands.AutoShardedBot)
    assert one.shard_count == 2 and one.shard_ids == [1]
    assert not one.syncs_commands  # shard 0's process syncs the commands
    assert one.describe_shards() == "shard(s) 1 of 2"

    zero = build_bot(make_settings(shard_count=3, shard_ids=[2, 0]), service)
    assert zero.shard_ids == [2, 0] and zero.syncs_commands

    every = build_bot(make_settings(shard_count=2), service, guild_ready_timeout=0.05)
    assert every.shard_ids is None and every.shard_count == 2 and every.syncs_commands  # all shards here
    assert every.describe_shards() == "shard(s) 0,1 of 2"

    with pytest.raises(TypeError, match="build_bot"):
        SourceBot(make_settings(shard_count=2), service)


def test_invalid_shard_ids_are_a_clear_error_at_start(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(settings.vectorstore_dir.parent),
           "DISCORD_TOKEN": "t", "SHARD_COUNT": "2", "SHARD_IDS": "0,2"}
    result = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "SHARD_IDS [2] out of range: with SHARD_COUNT=2 shard ids are 0..1" in result.stderr


# --- the emulator: sharded IDENTIFY, READY and routing, in process ----------------------------


def interaction_ids(emulator: DiscordEmulator, shard: int) -> set[str]:
    return {d["id"] for d in emulator.sent_on(shard, "INTERACTION_CREATE")}


def message_ids(emulator: DiscordEmulator, shard: int) -> set[str]:
    return {d["id"] for d in emulator.sent_on(shard, "MESSAGE_CREATE")}


@contextlib.asynccontextmanager
async def sharded_bots(service: RagService, *shard_ids: int, count: int) -> AsyncIterator[list[SourceBot]]:
    """One in-process ShardedSourceBot per shard id, like one process each."""
    running: list[tuple[SourceBot, asyncio.Task[None]]] = []
    try:
        for shard in shard_ids:
            settings = service.settings.model_copy(update={"shard_count": count, "shard_ids": [shard],
                                                           "question_cooldown_count": 100, "answer_in_thread": False})
            bot = build_bot(settings, service, guild_ready_timeout=0.05)
            await bot.login("test-token")
            running.append((bot, asyncio.create_task(bot.connect())))
            await asyncio.wait_for(bot.wait_until_ready(), 20)
        yield [bot for bot, _ in running]
    finally:
        for bot, task in running:
            await bot.close()
            await asyncio.gather(task, return_exceptions=True)


async def test_each_shard_connection_gets_only_its_guilds(emulator: DiscordEmulator, shared_service: RagService) -> None:
    guild_a = emulator.add_guild("Archive A", shard=0, shard_count=2)
    guild_b = emulator.add_guild("Archive B", shard=1, shard_count=2)
    assert emulator.shard_of(guild_a) == 0 and emulator.shard_of(guild_b) == 1 and emulator.shard_of(None) == 0
    alice, bob = emulator.member("alice", guild=guild_a), emulator.member("bob", guild=guild_b)

    async with sharded_bots(shared_service, 0, 1, count=2) as (bot0, bot1):
        assert [i["shard"] for i in emulator.identifies] == [[0, 2], [1, 2]]
        assert all("token" not in i for i in emulator.identifies)
        ready0, ready1 = emulator.sent_on(0, "READY")[0], emulator.sent_on(1, "READY")[0]
        assert ready0["shard"] == [0, 2] and ready1["shard"] == [1, 2]
        on_0 = {g for g in emulator.guilds if emulator.shard_of(g) == 0}
        on_1 = set(emulator.guilds) - on_0
        assert guild_a in on_0 and guild_b in on_1
        assert {g["id"] for g in ready0["guilds"]} == on_0 and {g["id"] for g in ready1["guilds"]} == on_1
        assert {g["id"] for g in emulator.sent_on(0, "GUILD_CREATE")} == on_0
        assert {g["id"] for g in emulator.sent_on(1, "GUILD_CREATE")} == on_1
        assert {str(g.id) for g in bot0.guilds} == on_0 and {str(g.id) for g in bot1.guilds} == on_1
        assert all(g.shard_id == 0 for g in bot0.guilds) and list(bot1.shards) == [1]
        # only the process running shard 0 synced the (global) commands
        assert len(emulator.calls_to("PUT", rf"/applications/{emulator.app_id}/commands")) == 1
        assert set(emulator.commands) >= {"ask", "summary", "sources", "source"}

        # a mention in guild B: MESSAGE_CREATE on shard 1 only, and shard 1's bot answers
        mark = len(emulator.calls)
        message = await emulator.inject_message(bob, CHIEF, mention_bot=True)
        channel_b = emulator.guilds[guild_b].default_channel
        reply = await emulator.wait_for_call("POST", rf"/channels/{channel_b}/messages", after=mark)
        assert "halevi" in reply.body["content"].lower()
        assert message["id"] in message_ids(emulator, 1) and message["id"] not in message_ids(emulator, 0)

        # /ask in guild A: INTERACTION_CREATE on shard 0 only
        mark = len(emulator.calls)
        asked = await emulator.inject_slash(alice, "ask", question=HOSTAGES)
        assert "253" in (await followup(emulator, asked.token, mark))["content"]
        assert asked.id in interaction_ids(emulator, 0) and asked.id not in interaction_ids(emulator, 1)

        # a DM goes to shard 0, whatever the user
        mark = len(emulator.calls)
        dm = await emulator.inject_command(bob, "ask", {"question": CHIEF}, dm=True)
        assert "halevi" in (await followup(emulator, dm.token, mark))["content"].lower()
        assert dm.id in interaction_ids(emulator, 0) and dm.id not in interaction_ids(emulator, 1)

        # a guild joined while connected arrives on its shard's connection only
        late = emulator.add_guild("Late Joiner", shard=1)
        await emulator.settle()
        await eventually(lambda: bot1.get_guild(int(late)), timeout=10.0)
        assert late in {g["id"] for g in emulator.sent_on(1, "GUILD_CREATE")}
        assert bot0.get_guild(int(late)) is None

        # a RESUME on one shard replays only that shard's session
        await emulator.request_reconnect(shard=1)
        await eventually(lambda: emulator.resumes == 1 and emulator.shard_session(1).connected, timeout=10.0)
        mark = len(emulator.calls)
        again = await emulator.inject_slash(bob, "ask", question=CHIEF)
        assert "halevi" in (await followup(emulator, again.token, mark))["content"].lower()
        assert again.id in interaction_ids(emulator, 1) and emulator.sessions == 2


async def test_identify_with_a_shard_out_of_range_is_closed_4010(emulator: DiscordEmulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{emulator.port}/") as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10
        await ws.send_json({"op": 2, "d": {"token": "t", "intents": 0, "properties": {}, "shard": [2, 2]}})
        closed = await ws.receive()
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.close_code == 4010
    assert emulator.gateway_sessions == []


# --- two real processes, one shard each, one Chroma server, one Postgres ----------------------
@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma").start()
    yield server
    server.stop()


@pytest.fixture
def state_db(postgres_url: str) -> Iterator[str]:
    """A fresh database on the session's Postgres server, dropped afterwards."""
    admin, name = postgres_url.replace("postgresql+psycopg://", "postgresql://"), f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class BotProcess:
    """`python -m bot run` with its stderr collected line by line while it runs."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def wait_for_log(self, pattern: str, timeout: float = 120.0) -> None:
        for _ in range(int(timeout / 0.05)):
            if re.search(pattern, self.log):
                return
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the log (exit {self.proc.returncode}):\n{self.log[-3000:]}")

    async def stop(self, timeout: float = 40.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._pump
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._pump.cancel()


async def test_two_processes_one_shard_each_share_chroma_and_postgres(
        emulator: DiscordEmulator, make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings,
        chroma: ChromaServer, state_db: str, tmp_path: Path) -> None:
    guild_a = emulator.add_guild("Archive A", shard=0, shard_count=2)
    guild_b = emulator.add_guild("Archive B", shard=1, shard_count=2)
    alice, bob = emulator.member("alice", guild=guild_a), emulator.member("bob", guild=guild_b)
    prefix = f"s{uuid.uuid4().hex[:8]}"
    settings = make_settings(chroma_host="127.0.0.1", chroma_port=chroma.port, collection_prefix=prefix,
                             database_url=state_db)
    # The deployment's one-off step before the bots start (compose's `ingest` service): build the
    # shared index once, so the bot processes load it instead of building it side by side.
    assert RagService(settings, embeddings=embeddings).ingest().rebuilt

    base_env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DISCORD_TOKEN": "shard-test-token",
        "DISCORD_API_BASE": f"http://127.0.0.1:{emulator.port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{emulator.port}/",
        "SOURCES_DIR": str(settings.sources_dir), "DATA_DIR": str(settings.data_dir),
        "VECTORSTORE_DIR": str(tmp_path / "unused-vectorstore"),
        "CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(chroma.port), "COLLECTION_PREFIX": prefix,
        "DATABASE_URL": state_db, "LLM_PROVIDER": "extractive", "LOG_LEVEL": "INFO",
        "SHARD_COUNT": "2", "QUESTION_COOLDOWN_COUNT": "100",
    }
    bots: list[BotProcess] = []
    try:
        for shard in (0, 1):  # started together, as compose starts bot-0 and bot-1
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=PROJECT_ROOT, env={**base_env, "SHARD_IDS": str(shard)},
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            bots.append(BotProcess(proc))
        p0, p1 = bots
        await emulator.wait_for_sessions(0, 1, timeout=120)
        for bot in bots:
            await bot.wait_for_log(r"connected as sourcebot .* on shard\(s\) \d of 2")
        assert sorted(i["shard"][0] for i in emulator.identifies) == [0, 1]
        assert all(i["shard"][1] == 2 for i in emulator.identifies)

        # only the process running shard 0 synced the slash commands
        assert len(emulator.calls_to("PUT", rf"/applications/{emulator.app_id}/commands")) == 1
        assert emulator.calls_to("PUT", rf"/applications/{emulator.app_id}/guilds/\d+/commands") == []
        assert re.search(r"synced \d+ slash command\(s\) globally", p0.log)
        assert "not syncing slash commands" in p1.log and not re.search(r"synced \d+ slash", p1.log)

        # guild A (shard 0) is answered by process 0, guild B (shard 1) by process 1
        mark = len(emulator.calls)
        in_a = await emulator.inject_slash(alice, "ask", question=HOSTAGES)
        assert "253" in (await followup(emulator, in_a.token, mark))["content"]
        mark = len(emulator.calls)
        in_b = await emulator.inject_slash(bob, "ask", question=CHIEF)
        assert "halevi" in (await followup(emulator, in_b.token, mark))["content"].lower()
        assert interaction_ids(emulator, 0) == {in_a.id} and interaction_ids(emulator, 1) == {in_b.id}
        assert {g["id"] for g in emulator.sent_on(1, "GUILD_CREATE")} == {
            g for g in emulator.guilds if emulator.shard_of(g) == 1}

        codes = [await bot.stop() for bot in bots]
        assert codes == [0, 0], [bot.log[-2000:] for bot in bots]
        for bot in bots:
            assert "shutting down" in bot.log and "Traceback" not in bot.log and "shard-test-token" not in bot.log
            assert bot.log.count('"event": "question"') == 1  # each process answered its own guild's question
    finally:
        for bot in bots:
            await bot.kill()

    # both processes answered from the one shared index: nobody rebuilt it
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma.port)
    shared_versions = [c.name for c in client.list_collections() if re.fullmatch(rf"{prefix}_v\d+", c.name)]
    assert shared_versions == [f"{prefix}_v1"]
    # and the state schema is in the shared Postgres database
    with psycopg.connect(state_db) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"schema_version", "sources", "audit_log"} <= tables
    assert not (settings.data_dir / "sourcebot.db").exists()  # Postgres, not the SQLite default
