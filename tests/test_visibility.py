"""Who may see a source: a server's source limited to some roles or channels answers only
replies all of whose readers may see it, in every way a reply is made (ask, stream, the
CLI); visibilities are stored, audited, kept by a replacement and by a restart. Real Chroma,
the real model, the real state database (SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot.rag.access import EVERYONE, Readers, Visibility
from bot.rag.errors import SourceError, UnknownSourceError
from bot.rag.index.registry import SHARED, guild_base_name
from bot.rag.library import SourceLibrary
from bot.rag.library_channels import ChannelDocument
from bot.rag.service import RagService
from bot.settings import Settings
from bot.state.conversations import Turn
from tests.helpers import run_cli

GUILD, STAFF_ROLE, MODS_CHANNEL, OTHER_CHANNEL = 111, 501, 601, 602
# Readers(GUILD), with no reader kinds, is a reply only moderators read: they see every source.
RUNBOOK = ("# Outage runbook\n\nWhen the ferry booking server is down, restart it with the command "
           "ferryctl restart --force on host quartz-gate-7, then page the on-call captain Morwenna.\n")
NOTES = ("# Moderation notes\n\nThe spam filter quarantines every message that links to the domain "
         "zanzibar-prizes.example for fourteen days before a moderator reviews it.\n")
FAQ = "# Ferry FAQ\n\nThe ferry to Skerry Island leaves at nine every morning from the south pier.\n"
SECRETS = ("ferryctl", "quartz-gate-7", "Morwenna", "zanzibar-prizes", "fourteen days", "runbook",
           "Outage", "Moderation notes", "staff-runbook", "mod-notes")
QUESTIONS = [
    "How do I restart the ferry booking server when it is down?",
    "Which host runs the ferry booking server?",
    "Who is the on-call captain to page during an outage?",
    "What does the spam filter do with links to prize domains?",
    "How long are quarantined messages kept before review?",
]


@pytest.fixture
def world(service: RagService, server_library: SourceLibrary) -> Iterator[tuple[RagService, SourceLibrary]]:
    library = server_library
    base = guild_base_name(GUILD)
    actor = {"actor_id": "tester", "actor_name": "tester"}
    library.add_file(base, "faq.md", FAQ.encode(), **actor)
    library.add_file(base, "staff-runbook.md", RUNBOOK.encode(), visibility=Visibility("roles", frozenset({STAFF_ROLE})),
                     **actor)
    library.add_file(base, "mod-notes.md", NOTES.encode(),
                     visibility=Visibility("channels", frozenset({MODS_CHANNEL})), **actor)
    yield service, library


def _shown_json(line: str) -> str:
    data = json.loads(line)
    return json.dumps({"answer": data["answer"], "citations": data["citations"]}, ensure_ascii=False)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s.lower() in text.lower()]


def _shown(answer: object) -> str:
    """What a reader is shown: the answer and its citations (not the question they asked)."""
    data = answer.to_dict()  # type: ignore[attr-defined]
    return json.dumps({"answer": data["answer"], "citations": data["citations"]}, ensure_ascii=False)


@pytest.mark.parametrize("audience", [EVERYONE, Readers(GUILD, frozenset({OTHER_CHANNEL}), public=True),
                                      Readers(GUILD, public=False, reader_roles=(frozenset({999}),))],
                         ids=["anyone", "another channel", "another role"])
def test_hidden_sources_give_nothing_to_readers_who_may_not_see_them(
    world: tuple[RagService, SourceLibrary], audience: Readers,
) -> None:
    service, _ = world
    for question in QUESTIONS:
        for answer in (service.ask(question, guild_id=GUILD, audience=audience),
                       list(service.stream(question, guild_id=GUILD, audience=audience))[-1]):
            assert not _leaks(_shown(answer)), (question, _shown(answer))
    public = service.ask("Where does the ferry to Skerry Island leave from?", guild_id=GUILD, audience=audience)
    assert public.answerable and "south pier" in public.answer  # what everyone may see still answers


def test_readers_who_may_see_a_source_are_answered_from_it(world: tuple[RagService, SourceLibrary]) -> None:
    service, _ = world
    staff = service.ask(QUESTIONS[0], guild_id=GUILD, audience=Readers(GUILD, reader_roles=(frozenset({STAFF_ROLE}),)))
    assert staff.answerable and "ferryctl" in staff.answer and staff.citations[0].source == "staff-runbook.md"
    in_channel = service.ask(QUESTIONS[3], guild_id=GUILD, audience=Readers(GUILD, frozenset({MODS_CHANNEL}), public=True))
    assert in_channel.answerable and in_channel.citations[0].source == "mod-notes.md"
    moderators = service.ask(QUESTIONS[1], guild_id=GUILD, audience=Readers(GUILD))
    assert "quartz-gate-7" in moderators.answer
    # readers of two kinds, one holding the role and one another role: not all of them may see it
    mixed = service.ask(QUESTIONS[0], guild_id=GUILD,
                        audience=Readers(GUILD, reader_roles=(frozenset({STAFF_ROLE}), frozenset({999}))))
    assert not _leaks(_shown(mixed))


def test_a_follow_up_reads_only_the_turns_its_readers_may_see(world: tuple[RagService, SourceLibrary]) -> None:
    """A thread where a staff member was answered from the runbook: once the reader is
    someone without the role (or the source is hidden since), that answer is not history."""
    service, _ = world
    staff_readers = Readers(GUILD, reader_roles=(frozenset({STAFF_ROLE}),))
    first = service.ask(QUESTIONS[0], guild_id=GUILD, audience=staff_readers)
    faq = service.ask("Where does the ferry to Skerry Island leave from?", guild_id=GUILD, audience=staff_readers)
    history = [Turn(a.question, a.answer, a.answerable, tuple(c.source for c in a.citations)) for a in (first, faq)]
    assert history[0].cited == ("staff-runbook.md",) and history[1].cited == ("faq.md",)
    assert service.readable_history(history, GUILD, staff_readers) == history
    others = Readers(GUILD, reader_roles=(frozenset({999}),))
    assert service.readable_history(history, GUILD, others) == [history[1]]
    follow_up = service.ask("And which host is it on?", guild_id=GUILD, history=history, audience=others)
    assert not _leaks(_shown(follow_up))


def test_a_channel_sources_visibility_is_its_channels(world: tuple[RagService, SourceLibrary]) -> None:
    """A moderator cannot narrow (or widen) a Discord channel source by hand: each sync sets it
    from the channel's permissions again, so a hand-made choice would silently go."""
    _, library = world
    base = guild_base_name(GUILD)
    pinned = ChannelDocument("m1.md", "# Pinned\n\nThe ferry office opens at eight on weekdays.\n",
                             f"https://discord.com/channels/{GUILD}/900/1", "Pinned", (5,))
    library.add_channel(base, name="faq-channel", origin=f"https://discord.com/channels/{GUILD}/900",
                        channel={"id": 900, "guild_id": GUILD, "take": "pinned"}, documents=[pinned],
                        visibility=Visibility(), actor_id="mod", actor_name="mod")
    with pytest.raises(SourceError, match="change who may view the channel"):
        library.set_visibility(base, "faq-channel", Visibility("roles", frozenset({STAFF_ROLE})),
                               actor_id="mod", actor_name="mod")
    assert Visibility.of(library.registry.get(base, "faq-channel")).kind == "everyone"


def test_a_change_of_visibility_holds_from_the_next_question_and_is_audited(
    world: tuple[RagService, SourceLibrary], settings: Settings,
) -> None:
    service, library = world
    base = guild_base_name(GUILD)
    library.set_visibility(base, "staff-runbook.md", Visibility(), actor_id="mod", actor_name="mod")
    assert "ferryctl" in service.ask(QUESTIONS[0], guild_id=GUILD).answer
    library.set_visibility(base, "staff-runbook.md", Visibility("roles", frozenset({STAFF_ROLE})),
                           actor_id="mod", actor_name="mod")
    assert not _leaks(_shown(service.ask(QUESTIONS[0], guild_id=GUILD)))
    entries = [e for e in library.registry.audit_log(base) if e.action == "visibility"]
    assert [e.detail for e in entries] == [f"roles <@&{STAFF_ROLE}>", "everyone"]
    # a new process (service and library) reads the stored visibility
    fresh = RagService(settings, embeddings=service.components.embeddings)
    assert not _leaks(_shown(fresh.ask(QUESTIONS[0], guild_id=GUILD)))


def test_a_replacement_keeps_the_visibility_and_the_shared_base_stays_public(
    world: tuple[RagService, SourceLibrary],
) -> None:
    service, library = world
    base = guild_base_name(GUILD)
    library.add_file(base, "staff-runbook.md", RUNBOOK.replace("Morwenna", "Morwenna Vale").encode(), replace=True,
                     actor_id="mod", actor_name="mod")
    assert Visibility.of(library.registry.get(base, "staff-runbook.md")).kind == "roles"
    assert not _leaks(_shown(service.ask(QUESTIONS[2], guild_id=GUILD)))
    with pytest.raises(SourceError, match="public"):
        library.set_visibility(SHARED, "haliva-resignation.txt", Visibility("roles", frozenset({1})),
                               actor_id="mod", actor_name="mod")


def test_the_cli_asks_as_a_role_or_in_a_channel(world: tuple[RagService, SourceLibrary], settings: Settings) -> None:
    anyone = run_cli(settings, "ask", QUESTIONS[0], "--guild", str(GUILD), "--json")
    assert anyone.returncode == 0 and not _leaks(_shown_json(anyone.stdout)), anyone.stdout
    staff = run_cli(settings, "ask", QUESTIONS[0], "--guild", str(GUILD), "--as-role", str(STAFF_ROLE), "--json")
    assert "ferryctl" in staff.stdout
    changed = run_cli(settings, "source", "visibility", "mod-notes.md", "--base", str(GUILD), "--everyone")
    assert changed.returncode == 0 and "visible to everyone" in changed.stdout
    assert "zanzibar" in run_cli(settings, "ask", QUESTIONS[3], "--guild", str(GUILD), "--json").stdout


def test_listings_and_summaries_show_only_what_the_readers_may_see(world: tuple[RagService, SourceLibrary]) -> None:
    service, _ = world
    assert [s.name for s in service.sources(GUILD)] == ["faq.md", "haliva-resignation.txt"]
    staff = Readers(GUILD, reader_roles=(frozenset({STAFF_ROLE}),))
    assert "staff-runbook.md" in [s.name for s in service.sources(GUILD, staff)]
    assert not _leaks(json.dumps(service.summary(None, GUILD).to_dict()))
    with pytest.raises(UnknownSourceError) as refused:
        service.summary("staff-runbook", GUILD)
    assert not _leaks(str(refused.value).split("Sources:")[1])  # the names it offers instead are visible ones
    assert "ferryctl" in json.dumps(service.summary("staff-runbook", GUILD, staff).to_dict())


def test_a_source_without_a_registry_row_is_for_moderators_only(world: tuple[RagService, SourceLibrary]) -> None:
    """An add undone mid-way, or a file put in a server's folder by hand: not public by default."""
    service, library = world
    base = service.bases.get(guild_base_name(GUILD))
    (base.sources_dir / "stray.md").write_text("# Stray\n\nThe vault code for the lighthouse is 7731-gull.\n", encoding="utf-8")
    base.ingest()
    asked = "What is the vault code for the lighthouse?"
    assert "7731" not in _shown(service.ask(asked, guild_id=GUILD))
    assert "7731" in service.ask(asked, guild_id=GUILD, audience=Readers(GUILD)).answer


def test_a_shared_source_of_the_same_name_never_reads_the_hidden_text(world: tuple[RagService, SourceLibrary]) -> None:
    service, _ = world
    shared = service.base
    (shared.sources_dir / "staff-runbook.md").write_text("# Public page\n\nThe harbour cafe is on Quay Street, beside the ferry office.\n",
                                                          encoding="utf-8")
    service.refresh(wait=True)
    hidden_text = ("ferryctl", "quartz-gate-7", "Morwenna")  # the shared file's name is the same, and public
    answer = service.ask("Where is the harbour cafe?", guild_id=GUILD)
    assert answer.answerable and "Quay Street" in answer.answer
    assert not any(s in _shown(answer) for s in hidden_text)
    summary = json.dumps(service.summary(None, GUILD).to_dict())
    assert "Quay Street" in summary and not any(s in summary for s in hidden_text)


def test_words_only_hidden_sources_use_are_unknown_to_readers_who_may_not_see_them(
    world: tuple[RagService, SourceLibrary],
) -> None:
    """The answerer asks more of its evidence for a word no source uses; a word only a hidden
    source uses must count as unused, or a refusal would tell that some source uses it."""
    from bot.rag.index.scope import ScopedCorpus
    from bot.rag.text import stem

    service, _ = world
    own = service.bases.get(guild_base_name(GUILD)).live_if_built()
    assert own is not None
    word = stem("ferryctl")
    assert ScopedCorpus([own, service.start()]).mentions(word)
    assert not ScopedCorpus([own, service.start()], [frozenset({"staff-runbook.md"})]).mentions(word)
    assert ScopedCorpus([own, service.start()], [frozenset({"mod-notes.md"})]).mentions(word)
