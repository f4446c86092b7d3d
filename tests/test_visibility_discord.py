"""Sources limited to a role, end to end in Discord: the real SourceBot against the emulator with
a public channel, a staff-only channel (Discord's permission overwrites), a private thread and
members with and without the role. A reply uses a source only if everyone who can read it may see
it; role and channel permission changes hold from the next question; nothing of a hidden source
reaches a reply's text, embeds or components."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.discord_bot.app import SourceBot
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.service import RagService
from bot.settings import Settings
from tests.discord_emulator import (
    CREATE_PRIVATE_THREADS,
    EPHEMERAL,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    DiscordEmulator,
    Member,
)
from tests.helpers import StartBot, followup, pings_nobody
from tests.test_sources_discord import World, reply

RUNBOOK = (b"# Outage runbook\n\nWhen the ferry booking server is down, restart it with the command "
           b"ferryctl restart --force on host quartz-gate-7, then page the on-call captain Morwenna.\n")
FAQ = b"# Ferry FAQ\n\nThe ferry to Skerry Island leaves at nine every morning from the south pier.\n"
SECRETS = ("ferryctl", "quartz-gate-7", "morwenna", "runbook", "outage")
ASKED = "How do I restart the ferry booking server when it is down?"
AIMED = [  # questions aimed at the hidden runbook, worded as members would
    ASKED, "which host runs the ferry booking server?", "who do i page when the booking server is down",
    "what's the restart command for the booking server", "is there a force flag to restart the booking server?",
    "the booking server is down again, what do staff do", "who is the on-call captain?",
    "what is quartz-gate-7?", "how do I use ferryctl", "where is the outage runbook",
    "booking server down help", "what should I do during a ferry booking outage?",
    "tell me about the booking server restart procedure", "what does ferryctl restart --force do?",
    "which captain is on call for outages", "summarize the outage runbook", "what's in the staff runbook?",
    "how do staff bring the booking server back", "can you quote the runbook", "host name of the booking server",
    "who is Morwenna?", "what happens when the ferry booking server goes down", "list the restart steps",
    "what command fixes the booking server", "give me the on-call procedure",
]


class Staffed(World):
    """Guild A with a Staff role, a channel only Staff may view, and members with and without Staff."""

    def __init__(self, emulator: DiscordEmulator, bot: SourceBot, service: RagService) -> None:
        super().__init__(emulator, bot, service)
        self.staff = emulator.add_role(self.a, "Staff", CREATE_PRIVATE_THREADS)
        self.general = emulator.channel_id
        self.staff_room = emulator.add_channel(self.a, "staff-room")
        emulator.set_overwrite(self.staff_room, self.a, deny=VIEW_CHANNEL)  # @everyone may not view it
        emulator.set_overwrite(self.staff_room, self.staff, allow=VIEW_CHANNEL)
        emulator.set_overwrite(self.staff_room, emulator.app_id, allow=VIEW_CHANNEL | SEND_MESSAGES)  # the bot
        self.sam = emulator.member("sam", roles=[self.staff])

    async def mention(self, member: Member, question: str, channel: str) -> dict[str, Any]:
        """Ask by mention in `channel`; the bot's reply there."""
        mark = len(self.emulator.calls)
        await self.emulator.inject_message(member, question, mention_bot=True, channel=channel)
        return (await self.emulator.wait_for_call("POST", rf"/channels/{channel}/messages", after=mark, timeout=30)).body

    async def slash_ask(self, member: Member, question: str, channel: str, **options: Any) -> dict[str, Any]:
        mark = len(self.emulator.calls)
        asked = await self.emulator.inject_command(member, "ask", {"question": question, **options}, channel=channel)
        return await followup(self.emulator, asked.token, mark)


def replied(world: Staffed, body: dict[str, Any]) -> bool:
    """The reply is an answer with citations or the refusal, not an error message."""
    return "[1]" in body["content"] or world.service.components.prompts.refusal in body["content"]


def leaks(body: dict[str, Any]) -> list[str]:
    """Secrets of the hidden source in what a reader is shown: text, embeds, components."""
    shown = json.dumps({k: body.get(k) for k in ("content", "embeds", "components")}, ensure_ascii=False).lower()
    return [s for s in SECRETS if s in shown]


@pytest.fixture
async def staffed(emulator: DiscordEmulator, start_bot: StartBot, make_settings: Callable[..., Settings],
                  embeddings: MiniLMEmbeddings, tmp_path: Path) -> Staffed:
    service = RagService(make_settings(data_dir=tmp_path / "data"), embeddings=embeddings)
    bot = await start_bot(service, discord_guild_id=None)
    world = Staffed(emulator, bot, service)
    await emulator.settle()
    await asyncio.sleep(0.1)
    added = await world.run(world.mod_a, "source add", attachment=emulator.attachment("staff-runbook.md", RUNBOOK),
                            **{"visible-to": f"<@&{world.staff}>"})
    assert reply(added).startswith("✅ Added `staff-runbook.md`"), reply(added)
    added = await world.run(world.mod_a, "source add", attachment=emulator.attachment("faq.md", FAQ))
    assert reply(added).startswith("✅"), reply(added)
    return world


async def test_a_role_source_answers_only_where_every_reader_holds_the_role(staffed: Staffed) -> None:
    in_public = await staffed.mention(staffed.sam, ASKED, staffed.general)
    assert not leaks(in_public) and pings_nobody(in_public)  # sam holds Staff, but everyone reads #general
    in_staff_room = await staffed.mention(staffed.sam, ASKED, staffed.staff_room)
    assert "ferryctl" in in_staff_room["content"], in_staff_room["content"]
    assert "ferryctl" in (await staffed.slash_ask(staffed.sam, ASKED, staffed.staff_room))["content"]
    assert not leaks(await staffed.slash_ask(staffed.member_a, ASKED, staffed.general))
    public = await staffed.mention(staffed.member_a, "Where does the ferry to Skerry Island leave from?", staffed.general)
    assert "south pier" in public["content"]  # sources everyone may see still answer


async def test_a_private_answer_may_use_what_the_asker_alone_may_see(staffed: Staffed) -> None:
    mine = await staffed.slash_ask(staffed.sam, ASKED, staffed.general, private=True)
    assert "ferryctl" in mine["content"] and mine["flags"] & EPHEMERAL  # read by sam alone, who holds Staff
    assert not leaks(await staffed.slash_ask(staffed.member_a, ASKED, staffed.general, private=True))


async def test_fifty_questions_aimed_at_the_hidden_source_get_nothing_of_it(staffed: Staffed) -> None:
    for question in AIMED:
        for member in (staffed.member_a, staffed.sam):
            body = await staffed.mention(member, question, staffed.general)
            assert replied(staffed, body) and not leaks(body), (question, member.user["username"], body)


async def test_permission_and_role_changes_hold_from_the_next_question(staffed: Staffed) -> None:
    emulator = staffed.emulator
    # The staff room opened to everyone: its replies are public, so the runbook stays out.
    emulator.set_overwrite(staffed.staff_room, staffed.a, allow=VIEW_CHANNEL)
    await emulator.settle()
    await asyncio.sleep(0.2)  # CHANNEL_UPDATE reaches the bot's cache
    opened = await staffed.mention(staffed.sam, ASKED, staffed.staff_room)
    assert replied(staffed, opened) and not leaks(opened)
    # A private thread read by sam alone (and the moderators) is answered from it ...
    thread = await emulator.start_private_thread(staffed.sam, staffed.general, "outage help")
    assert "ferryctl" in (await staffed.mention(staffed.sam, ASKED, thread["id"]))["content"]
    # ... until sam loses the role: at once, without a restart.
    emulator.set_member_roles(staffed.a, staffed.sam.id, [])
    after = await staffed.mention(staffed.sam, ASKED, thread["id"])
    assert replied(staffed, after) and not leaks(after)


async def test_moderators_see_each_sources_visibility_and_change_it(staffed: Staffed) -> None:
    listing = await staffed.run(staffed.mod_a, "source list")
    fields = {f["name"]: f["value"] for f in listing.response["data"]["embeds"][0]["fields"]}  # type: ignore[index]
    assert f"visible to roles <@&{staffed.staff}>" in fields["staff-runbook.md"] and "visible to everyone" in fields["faq.md"]
    shown = await staffed.run(staffed.mod_a, "source visibility", name="staff-runbook.md")
    assert f"roles <@&{staffed.staff}>" in reply(shown)
    wrong = await staffed.run(staffed.mod_a, "source visibility", name="staff-runbook.md", **{"visible-to": "staff"})
    assert "takes `everyone`" in reply(wrong)
    opened = await staffed.run(staffed.mod_a, "source visibility", name="staff-runbook.md", **{"visible-to": "everyone"})
    assert "now visible to everyone" in reply(opened)
    assert "ferryctl" in (await staffed.mention(staffed.member_a, ASKED, staffed.general))["content"]
    choices = await staffed.emulator.inject_autocomplete(staffed.member_a, "summary", "source", "")
    assert "staff-runbook.md" in [c["value"] for c in choices]
