"""Scheduled refresh from Discord: `/source add … refresh:`, `/source refresh NAME [every:]` and
the refresh cog's reports in the log channel, with the real SourceBot against the Discord
emulator, a real local web site a test edits, and the real library, state and index."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from bot.rag.index.registry import guild_base_name as guild_base
from bot.state.models import utcnow
from tests.helpers import pings_nobody
from tests.test_refresh import harbour_site
from tests.test_sources_discord import World, reply
from tests.test_sources_discord import world as world  # the fixture: two guilds and the bot (re-exported)
from tests.web_site import WebSite, page


def answer(world: World, question: str) -> str:
    return world.service.bases.get(guild_base(world.a)).start().chain.invoke(question).answer


async def test_a_moderator_refreshes_a_source_and_the_log_channel_gets_the_report(world: World) -> None:
    emulator = world.emulator
    log_channel = emulator.add_channel(world.a, "source-log")
    await emulator.settle()
    await asyncio.sleep(0.1)
    await world.run(world.mod_a, "source log-channel", channel=log_channel)
    cog: Any = world.bot.get_cog("RefreshCog")  # loaded by setup_hook, as an extension
    assert cog is not None and cog.refresher is world.bot.get_cog("SourcesCog").refresher  # type: ignore[union-attr]
    with WebSite() as site:
        harbour_site(site)
        added = await world.run(world.mod_a, "source add", url=site.url("/kb/index.html"), crawl=True, name="harbour",
                                refresh="6h")
        assert reply(added).startswith("✅ Added `harbour` (crawl, ")
        schedule = cog.refresher.schedule.get(guild_base(world.a), "harbour")
        assert schedule is not None and schedule.interval_minutes == 360

        mark = len(emulator.calls)
        quiet = await world.run(world.mod_a, "source refresh", name="harbour")
        assert reply(quiet).startswith("✅ Refreshed `harbour`: no page changed")
        assert emulator.calls_to("POST", rf"/channels/{log_channel}/messages", after=mark) == []  # nothing to report

        site.set_page("/kb/tides.html", page("Tides", body="High tide at Kestrel Harbour is at 7 am on weekdays."))
        site.remove_page("/kb/lighthouse.html")
        mark = len(emulator.calls)
        done = await world.run(world.mod_a, "source refresh", name="harbour")
        assert reply(done).startswith("✅ Refreshed `harbour`: 1 page updated, 1 removed — index: ")
        post = await emulator.wait_for_call("POST", rf"/channels/{log_channel}/messages", after=mark)
        assert post.body["content"].startswith(f"📚 <@{world.mod_a.id}> refreshed `harbour`: 1 page updated, 1 removed")
        assert pings_nobody(post.body)
        assert "7 am" in answer(world, "What time is high tide at Kestrel Harbour?")

        site.set_page("/kb/moorings.html", page("Moorings", body="Visiting yachts moor at the south quay for free."))
        mark = len(emulator.calls)
        assert [d.name for d in await cog.run_due(utcnow() + timedelta(hours=5))] == []  # not due: 6 hours
        scheduled = await cog.run_due(utcnow() + timedelta(hours=6, minutes=1))
        assert [d.report for d in scheduled] == ["🔄 `harbour`: 1 page updated"]
        post = await emulator.wait_for_call("POST", rf"/channels/{log_channel}/messages", after=mark)
        assert post.body["content"] == "🔄 `harbour`: 1 page updated" and pings_nobody(post.body)
        assert "south quay" in answer(world, "Where do visiting yachts moor?")

        never = await world.run(world.mod_a, "source refresh", name="harbour", every="never")
        assert reply(never) == "✅ `harbour` is never refreshed."
        bad = await world.run(world.mod_a, "source refresh", name="harbour", every="sometimes")
        assert reply(bad).startswith("❌ `sometimes` is not a refresh interval")
        site.down_status = 503
        failed = await world.run(world.mod_a, "source refresh", name="harbour")
        assert reply(failed).startswith("❌ Refresh failed: ") and "The stored copy keeps serving." in reply(failed)
        assert "south quay" in answer(world, "Where do visiting yachts moor?")
        listed = (await world.run(world.mod_a, "source list")).response["data"]["embeds"][0]["fields"]  # type: ignore[index]
        harbour = next(f["value"] for f in listed if f["name"] == "harbour")
        assert "never refreshed · 1 failed try in a row" in harbour and "⚠️ failed" in harbour
    file_source = await world.run(world.mod_a, "source add", attachment=emulator.attachment("notes.md", b"# Notes\n\nx y z.\n"),
                                  refresh="daily")
    assert reply(file_source) == "`refresh` goes with a `url`: a file is not fetched again."


async def test_members_cannot_refresh(world: World) -> None:
    emulator = world.emulator
    with WebSite() as site:
        harbour_site(site)
        await world.run(world.mod_a, "source add", url=site.url("/kb/tides.html"), name="tides")
        requests = sum(site.requests.values())
        emulator.commands["source"]["default_member_permissions"] = None  # an admin opened /source to everyone
        refused = await world.run(world.member_a, "source refresh", name="tides.html")
        assert "Only moderators" in reply(refused) and refused.ephemeral
        never = await world.run(world.member_a, "source refresh", name="tides.html", every="never")
        assert "Only moderators" in reply(never)
        assert sum(site.requests.values()) == requests  # nothing was fetched
        assert await emulator.inject_autocomplete(world.member_a, "source refresh", "name", "") == []
        assert await emulator.inject_autocomplete(world.mod_a, "source refresh", "name", "") == [
            {"name": "tides.html", "value": "tides.html"}]
    row = world.bot.get_cog("RefreshCog").refresher.schedule.get(guild_base(world.a), "tides.html")  # type: ignore[union-attr]
    assert row is None or row.interval_minutes is None  # the schedule is untouched
