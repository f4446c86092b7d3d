"""/source end to end: the real SourceBot (unmodified discord.py) against the Discord emulator in
two guilds, with the real SourceLibrary, state database, Chroma and embedding model. Answers are
checked on the guild's knowledge base itself (service.bases), not through /ask."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.discord_bot.app import SourceBot
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.index.registry import guild_base_name as guild_base
from bot.rag.service import RagService
from bot.settings import Settings
from tests.discord_emulator import EPHEMERAL, MANAGE_GUILD, DiscordEmulator, Interaction, Member
from tests.helpers import StartBot, pings_nobody
from tests.web_site import WebSite

GUIDE = b"# Lantern Club handbook\n\nThe Lantern Club meets every Thursday evening in the old boathouse on Mill Lane.\n"
NOTES = b"# Kite notes\n\nThe kite festival on Gull Beach is held every August.\n"
MOD = MANAGE_GUILD | (1 << 10) | (1 << 11)  # Manage Server, View Channel, Send Messages


class World:
    """Two guilds, A (the emulator's default) and B, each with a moderator; A also has a member."""

    def __init__(self, emulator: DiscordEmulator, bot: SourceBot, service: RagService) -> None:
        self.emulator, self.bot, self.service = emulator, bot, service
        self.a, self.b = emulator.guild_id, emulator.add_guild("Other Server")
        self.mod_a = emulator.member("mod-a", permissions=MOD)
        self.mod_b = emulator.member("mod-b", permissions=MOD, guild=self.b)
        self.member_a = emulator.member("alice")

    async def run(self, member: Member, command: str, **options: Any) -> Interaction:
        """Run a /source command and wait for its last reply: a direct answer, or the final edit."""
        mark = len(self.emulator.calls)
        interaction = await self.emulator.inject_slash(member, command, **options)
        first = await self.emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
        if first.body["type"] == 5:  # deferred: wait for the final edit
            await self.emulator.wait_for_call(
                "PATCH", rf"/webhooks/{self.emulator.app_id}/{interaction.token}/messages/@original", after=mark,
                timeout=60, where=lambda call: call.body.get("content", "")[:1] in ("✅", "❌"))
        return interaction


def reply(interaction: Interaction) -> str:
    original = interaction.original or {}
    return original.get("content") or (interaction.response or {}).get("data", {}).get("content", "")


@pytest.fixture
async def world(emulator: DiscordEmulator, start_bot: StartBot, make_settings: Callable[..., Settings],
                embeddings: MiniLMEmbeddings, tmp_path: Path) -> World:
    settings = make_settings(data_dir=tmp_path / "data", allow_private_urls="true")
    service = RagService(settings, embeddings=embeddings)
    bot = await start_bot(service, discord_guild_id=None)  # global commands: every guild has /source
    world = World(emulator, bot, service)
    await emulator.settle()
    await asyncio.sleep(0.1)  # guild B's GUILD_CREATE reaches the bot
    return world


async def test_moderator_adds_a_file_with_progress_then_the_report(world: World) -> None:
    emulator = world.emulator
    command = emulator.commands["source"]
    assert command["default_member_permissions"] in (MANAGE_GUILD, str(MANAGE_GUILD))
    assert {o["name"] for o in command["options"]} == {"add", "remove", "list", "reload", "log-channel", "visibility", "refresh"}
    interaction = await world.run(world.mod_a, "source add", attachment=emulator.attachment("guide.md", GUIDE))
    assert interaction.response is not None and interaction.response["type"] == 5 and interaction.ephemeral
    edits = [edit["content"] for edit in emulator.original_edits(interaction.token)]
    assert len(edits) >= 2 and all(e.startswith("⏳") for e in edits[:-1]) and edits[-1] == reply(interaction)
    assert reply(interaction).startswith("✅ Added `guide.md` (file, ") and "chunk(s) added" in reply(interaction)
    assert "0 removed" in reply(interaction)
    base = world.service.bases.get(guild_base(world.a))
    assert {s.name for s in base.sources()} == {"guide.md"}
    assert "boathouse" in base.start().chain.invoke("Where does the Lantern Club meet?").answer

    listing = await world.run(world.mod_a, "source list")
    data = listing.response["data"]  # type: ignore[index]
    assert data["flags"] & EPHEMERAL and data["embeds"][0]["fields"][0]["name"] == "guide.md"
    assert "file · " in data["embeds"][0]["fields"][0]["value"] and "added by mod-a" in data["embeds"][0]["fields"][0]["value"]


async def test_a_big_file_shows_indexing_progress_at_most_once_a_second(world: World) -> None:
    emulator = world.emulator
    places = ["harbour", "lighthouse", "boathouse", "market", "chapel", "quay", "mill", "bridge"]
    text = "# Parish records\n\n" + "\n\n".join(
        f"## Entry {i}\n\nIn year {1700 + i} the {places[i % 8]} keeper number {i} logged {i * 7} visitors, "
        f"{i % 13} storms and a catch of {i * 3} herring, noting that the {places[(i + 3) % 8]} roof needed {i % 5} "
        f"new slates before the winter of {1701 + i}." for i in range(400))
    mark = len(emulator.calls)
    interaction = await world.run(world.mod_a, "source add", attachment=emulator.attachment("records.md", text.encode()))
    edits = [edit["content"] for edit in emulator.original_edits(interaction.token)]
    assert edits[-1].startswith("✅ Added `records.md`") and len(edits) >= 3
    assert any("new chunk(s) embedded" in e for e in edits[:-1]) and all(e.startswith("⏳") for e in edits[:-1])
    patches = emulator.calls_to("PATCH", rf"/webhooks/{emulator.app_id}/{interaction.token}/messages/@original", mark)
    progress_times = [c.at for c in patches[:-1]]
    assert all(b - a >= 0.9 for a, b in zip(progress_times, progress_times[1:]))  # throttled


async def test_members_are_refused(world: World) -> None:
    emulator = world.emulator
    with pytest.raises(PermissionError):  # Discord itself does not deliver it (Manage Server by default)
        await emulator.inject_slash(world.member_a, "source list")
    emulator.commands["source"]["default_member_permissions"] = None  # an admin opened it to everyone
    interaction = await world.run(world.member_a, "source add", attachment=emulator.attachment("guide.md", GUIDE))
    assert interaction.response is not None and interaction.response["data"]["flags"] & EPHEMERAL
    assert "Only moderators" in reply(interaction)
    assert await emulator.inject_autocomplete(world.member_a, "source remove", "name", "") == []
    assert not world.service.settings.data_dir.joinpath("bases").exists()  # nothing stored
    await world.run(world.mod_a, "source add", attachment=emulator.attachment("guide.md", GUIDE))
    assert await emulator.inject_autocomplete(world.mod_a, "source remove", "name", "") != []
    assert await emulator.inject_autocomplete(world.member_a, "source remove", "name", "") == []  # names stay hidden


async def test_option_mistakes_get_a_clear_private_message(world: World) -> None:
    emulator = world.emulator
    both = await world.run(world.mod_a, "source add", attachment=emulator.attachment("a.md", GUIDE), url="https://example.com/")
    neither = await world.run(world.mod_a, "source add")
    assert "exactly one" in reply(both) and "exactly one" in reply(neither)
    crawl_file = await world.run(world.mod_a, "source add", attachment=emulator.attachment("a.md", GUIDE), crawl=True)
    assert "go with a `url`" in reply(crawl_file)
    big = emulator.attachment("big.md", b"# Big\n\n" + b"words " * 1_000_000)
    too_big = await world.run(world.mod_a, "source add", attachment=big)
    assert "the limit is 5,000,000" in reply(too_big)
    assert not any(call.path.endswith("/big.md") for call in emulator.cdn_calls)  # never downloaded
    bad = await world.run(world.mod_a, "source add", attachment=emulator.attachment("tool.exe", b"MZ\x90\x00"))
    assert reply(bad).startswith("❌ Couldn't add that source: tool.exe: unsupported file type")
    with pytest.raises(ValueError, match="out of range"):  # max_pages has bounds in the synced schema
        await emulator.inject_slash(world.mod_a, "source add", url="https://example.com/", crawl=True, max_pages=0)


async def test_guilds_see_and_touch_only_their_own_sources(world: World) -> None:
    emulator = world.emulator
    await world.run(world.mod_a, "source add", attachment=emulator.attachment("guide.md", GUIDE))
    await world.run(world.mod_a, "source add", attachment=emulator.attachment("kite notes.md", NOTES))
    assert await emulator.inject_autocomplete(world.mod_a, "source remove", "name", "") == [
        {"name": "guide.md", "value": "guide.md"}, {"name": "kite_notes.md", "value": "kite_notes.md"}]
    assert await emulator.inject_autocomplete(world.mod_b, "source remove", "name", "") == []
    assert await emulator.inject_autocomplete(world.mod_b, "source remove", "name", "gui") == []
    listing = await world.run(world.mod_b, "source list")
    assert "no sources of its own yet" in reply(listing) and not listing.response["data"].get("embeds")  # type: ignore[index]
    refused = await world.run(world.mod_b, "source remove", name="guide.md")
    assert reply(refused) == "❌ Couldn't remove it: There is no source called 'guide.md' in this knowledge base."
    base_a = world.service.bases.get(guild_base(world.a))
    assert {s.name for s in base_a.sources()} == {"guide.md", "kite_notes.md"}
    removed = await world.run(world.mod_a, "source remove", name="kite_notes.md")
    assert reply(removed).startswith("✅ Removed `kite_notes.md` (file) — index: ") and "1 removed" in reply(removed)
    assert {s.name for s in base_a.sources()} == {"guide.md"}


async def test_changes_are_announced_in_the_log_channel(world: World, caplog: pytest.LogCaptureFixture) -> None:
    emulator = world.emulator
    log_channel = emulator.add_channel(world.a, "source-log")
    await emulator.settle()
    await asyncio.sleep(0.1)
    chosen = await world.run(world.mod_a, "source log-channel", channel=log_channel)
    assert reply(chosen) == f"Source changes will be announced in <#{log_channel}>."
    mark = len(emulator.calls)
    added = await world.run(world.mod_a, "source add", attachment=emulator.attachment("guide.md", GUIDE))
    assert reply(added).startswith("✅ Added")
    post = await emulator.wait_for_call("POST", rf"/channels/{log_channel}/messages", after=mark)
    assert post.body["content"].startswith(f"📚 <@{world.mod_a.id}> added `guide.md` (file, ") and pings_nobody(post.body)
    assert "\n" not in post.body["content"]
    assert emulator.messages_in(emulator.channel_id, from_bot=True) == []  # nothing public anywhere else

    emulator.deny_bot(log_channel)
    await emulator.settle()
    await asyncio.sleep(0.1)
    mark = len(emulator.calls)
    with caplog.at_level(logging.WARNING, logger="bot.discord_bot.cogs.sources"):
        second = await world.run(world.mod_a, "source add", attachment=emulator.attachment("notes.md", NOTES))
    assert reply(second).startswith("✅ Added `notes.md`") and "can't post in the log channel" in reply(second)
    assert emulator.calls_to("POST", rf"/channels/{log_channel}/messages", after=mark) == []  # no 403 provoked
    assert any("not announced" in r.getMessage() for r in caplog.records)
    assert {s.name for s in world.service.bases.get(guild_base(world.a)).sources()} == {"guide.md", "notes.md"}
    unset = await world.run(world.mod_a, "source log-channel")
    assert "no longer announced" in reply(unset)


async def test_web_page_and_reload_from_discord(world: World) -> None:
    with WebSite() as site:
        added = await world.run(world.mod_a, "source add", url=site.url("/docs/unlinked.html"))
        assert reply(added).startswith("✅ Added `Unlinked.html` (url, ")  # the page's title, not its URL
        crawled = await world.run(world.mod_a, "source add", url=site.url("/libffi/index.html"), crawl=True)
        assert reply(crawled).startswith("✅ Added `libffi docs` (crawl, ")
        reloaded = await world.run(world.mod_a, "source reload")
        assert reply(reloaded).startswith("✅ Reloaded the sources — index: ") and "0 chunk(s) added" in reply(reloaded)
        assert site.statuses["/docs/unlinked.html"] == [200, 304]
        empty = await world.run(world.mod_b, "source reload")
        assert reply(empty).startswith("❌ Reload failed: This knowledge base has no sources yet")


def test_the_list_embed_keeps_within_discord_limits() -> None:
    from datetime import UTC, datetime

    from bot.discord_bot.source_replies import sources_embed
    from bot.state import SourceRow

    now = datetime.now(UTC)
    rows = [SourceRow(id=i, base="guild-1", name=f"{'n' * 99}{i}", kind="crawl", origin="https://example.com/" + "p" * 3000,
                      content_hash=None, added_by="1", added_by_name="m" * 300, added_at=now, updated_at=now, etag=None,
                      last_modified=None, status="failed", error="e" * 3000, chunks=i, pages=i) for i in range(40)]
    embed = sources_embed(rows)
    assert 0 < len(embed.fields) <= 25 and len(embed) <= 6000
    assert all(len(f.name or "") <= 256 and len(f.value or "") <= 1024 for f in embed.fields)
    assert embed.footer.text == f"…and {40 - len(embed.fields)} more"
