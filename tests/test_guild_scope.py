"""One knowledge base per server: a server's questions are answered from its own base plus
the shared one; another server and DMs never see it. Real Chroma, the real model, and (for
the Discord side) the real client against the emulator with two guilds."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.rag.index.registry import guild_base_name
from bot.rag.service import RagService
from bot.state import SourceRegistry
from tests.discord_emulator import DiscordEmulator
from tests.helpers import StartBot, followup

FERRY = "The ferry to Skerry Island leaves at nine every morning from the south pier.\n"
FERRY_QUESTION = "Where does the ferry to Skerry Island leave from?"
SHARED_QUESTION = "How many hostages were taken back to Gaza?"


def give_guild_a_source(service: RagService, guild_id: int) -> None:
    base = service.bases.get(guild_base_name(guild_id))
    base.sources_dir.mkdir(parents=True, exist_ok=True)
    (base.sources_dir / "ferry.md").write_text(FERRY, encoding="utf-8")
    base.ingest()


@pytest.fixture
def scoped_service(service: RagService) -> RagService:
    service.start()
    give_guild_a_source(service, 111)
    return service


def test_a_server_is_answered_from_its_own_base_and_the_shared_one(scoped_service: RagService) -> None:
    own = scoped_service.ask(FERRY_QUESTION, guild_id=111)
    assert own.answerable and "south pier" in own.answer and own.citations[0].source == "ferry.md"
    shared = scoped_service.ask(SHARED_QUESTION, guild_id=111)
    assert shared.answerable and "253" in shared.answer


@pytest.mark.parametrize("guild_id", [222, None], ids=["another server", "DM"])
def test_another_server_and_dms_never_see_it(scoped_service: RagService, guild_id: int | None) -> None:
    answer = scoped_service.ask(FERRY_QUESTION, guild_id=guild_id)
    assert not any(c.source == "ferry.md" for c in answer.citations)
    assert "south pier" not in answer.answer
    assert [s.name for s in scoped_service.sources(guild_id)] == ["haliva-resignation.txt"]


def test_a_servers_sources_and_summary(scoped_service: RagService) -> None:
    assert [s.name for s in scoped_service.sources(111)] == ["ferry.md", "haliva-resignation.txt"]
    summary = scoped_service.summary("ferry", guild_id=111)
    assert summary.citations and summary.citations[0].source == "ferry.md"


def test_stream_uses_the_same_scope(scoped_service: RagService) -> None:
    final = list(scoped_service.stream(FERRY_QUESTION, guild_id=111))[-1]
    assert not isinstance(final, str) and final.citations[0].source == "ferry.md"


async def test_two_guilds_in_discord(emulator: DiscordEmulator, start_bot: StartBot, service: RagService, tmp_path: Path) -> None:
    other = emulator.add_guild("other server")
    await start_bot(service, discord_guild_id=None)  # commands synced globally: both guilds have them
    give_guild_a_source(service, int(emulator.guild_id))
    # The bot keeps a registry now: a file of a server's base with no row is for moderators only.
    SourceRegistry(service.components.database).add(guild_base_name(int(emulator.guild_id)), "ferry.md", "file", "ferry.md")
    here, there = emulator.member("alice"), emulator.member("bob", guild=other)
    mark = len(emulator.calls)
    asked_here = await emulator.inject_slash(here, "ask", question=FERRY_QUESTION)
    body = await followup(emulator, asked_here.token, mark)
    assert "south pier" in body["content"] and "ferry.md" in str(body.get("embeds"))
    mark = len(emulator.calls)
    asked_there = await emulator.inject_slash(there, "ask", question=FERRY_QUESTION)
    body = await followup(emulator, asked_there.token, mark)
    assert "south pier" not in body["content"] and "ferry.md" not in str(body.get("embeds"))


@pytest.mark.parametrize("name", ["guild_123", "Guild-123", "guild-12a", "../shared", "shared "])
def test_only_two_spellings_of_a_base_name_exist(service: RagService, name: str) -> None:
    from bot.rag.errors import UnknownSourceError

    if name.strip() == "shared":
        assert service.bases.get(name) is service.bases.shared
        return
    with pytest.raises(UnknownSourceError, match="is not a knowledge base"):
        service.bases.get(name)
    assert service.bases.get("123") is service.bases.get("guild-123")
