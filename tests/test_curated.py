"""Curated answers in the core: a moderators' correction stored through the source library is
a "curated" source (listed, audited, removable, kept by a restart) that answers the same
question and a paraphrase of it first, cited as "answered by the moderators" with its link,
only to readers who may see it. Real Chroma, the real model, the real state database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.rag.access import EVERYONE, Readers, Visibility
from bot.rag.curated import CURATED, MODERATORS, Correction
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.errors import SourceError
from bot.rag.index.registry import guild_base_name
from bot.rag.library import SourceLibrary
from bot.rag.service import RagService
from bot.settings import Settings
from bot.state import SourceRegistry

GUILD, HELP_CHANNEL, OTHER_CHANNEL = 222, 701, 702
FAQ = "# Ferry FAQ\n\nThe ferry to Skerry Island leaves at nine every morning from the south pier.\n"
QUESTION = "Can I bring my dog on the ferry?"
PARAPHRASE = "Are pets allowed on the ferry?"
UNRELATED = "Where does the ferry to Skerry Island leave from?"
RIGHT = "Dogs travel free on the ferry if they stay on a lead on the open deck."
LINK = "https://discord.com/channels/222/701/9001"
ACTOR = {"actor_id": "42", "actor_name": "mod"}


@pytest.fixture
def world(service: RagService, server_library: SourceLibrary) -> Iterator[tuple[RagService, SourceLibrary]]:
    server_library.add_file(guild_base_name(GUILD), "faq.md", FAQ.encode(), **ACTOR)
    yield service, server_library


def test_a_correction_answers_the_question_and_a_paraphrase_first(world: tuple[RagService, SourceLibrary]) -> None:
    service, library = world
    base = guild_base_name(GUILD)
    before = service.ask(QUESTION, guild_id=GUILD)
    assert RIGHT not in before.answer
    change = library.add_curated(base, Correction(QUESTION, RIGHT, "ferry rules, deck notice", LINK),
                                 visibility=Visibility.everyone(), **ACTOR)
    assert change.kind == CURATED and change.chunks >= 1
    for asked in (QUESTION, PARAPHRASE, QUESTION.lower().rstrip("?")):
        answer = service.ask(asked, guild_id=GUILD)
        assert answer.answerable and answer.answer.startswith(RIGHT), asked
        cited, = answer.citations
        assert (cited.label, cited.link, cited.source) == (MODERATORS, LINK, change.name)
        assert service.bases.get(base).live_if_built().source_text(change.name)[cited.start:cited.end] == RIGHT
    other = service.ask(UNRELATED, guild_id=GUILD)  # not a curated question: the sources answer it
    assert "south pier" in other.answer and other.citations[0].source == "faq.md"
    streamed = list(service.stream(PARAPHRASE, guild_id=GUILD))[-1].answer
    assert streamed.startswith(RIGHT) and streamed.endswith(f"similar question: “{QUESTION}”*")  # what it answers
    assert "similar question" not in service.ask(QUESTION.lower(), guild_id=GUILD).answer

    row, = [r for r in library.list(base) if r.kind == CURATED]
    assert row.name == change.name and row.origin == LINK and row.added_by == "42"
    assert Correction.of(row.options) == Correction(QUESTION, RIGHT, "ferry rules, deck notice", LINK)
    audit = SourceRegistry(library.db).audit_log(base)
    assert any(a.action == "add" and a.target == change.name and a.result == "ok" for a in audit)


def test_a_correction_keeps_the_visibility_of_where_it_was_made(world: tuple[RagService, SourceLibrary]) -> None:
    service, library = world
    base = guild_base_name(GUILD)
    library.add_curated(base, Correction(QUESTION, RIGHT, "", LINK), visibility=Visibility.channels({HELP_CHANNEL}),
                        **ACTOR)
    there = Readers(GUILD, frozenset({HELP_CHANNEL}), public=True)
    elsewhere = Readers(GUILD, frozenset({OTHER_CHANNEL}), public=True)
    assert service.ask(PARAPHRASE, guild_id=GUILD, audience=there).answer.startswith(RIGHT)
    for audience in (elsewhere, EVERYONE):
        answer = service.ask(QUESTION, guild_id=GUILD, audience=audience)
        assert RIGHT not in answer.answer and all(c.label != MODERATORS for c in answer.citations)


def test_a_correction_is_replaced_removed_and_survives_a_restart(
        world: tuple[RagService, SourceLibrary], settings: Settings, embeddings: MiniLMEmbeddings) -> None:
    service, library = world
    base = guild_base_name(GUILD)
    first = library.add_curated(base, Correction(QUESTION, "Dogs are not allowed.", "", LINK),
                                visibility=Visibility.everyone(), **ACTOR)
    second = library.add_curated(base, Correction(QUESTION, RIGHT, "", LINK), visibility=Visibility.everyone(), **ACTOR)
    assert (first.action, second.action, second.name) == ("add", "replace", first.name)
    assert [r.name for r in library.list(base) if r.kind == CURATED] == [first.name]

    restarted = RagService(settings, embeddings=embeddings)  # a new process: index and registry read back
    restarted.start()
    assert restarted.ask(PARAPHRASE, guild_id=GUILD).answer.startswith(RIGHT)

    library.remove(base, first.name, **ACTOR)
    assert RIGHT not in service.ask(QUESTION, guild_id=GUILD).answer
    assert all(r.kind != CURATED for r in library.list(base))


def test_bad_corrections_are_refused_and_change_nothing(world: tuple[RagService, SourceLibrary]) -> None:
    service, library = world
    base = guild_base_name(GUILD)
    for bad in (Correction("  ", RIGHT), Correction(QUESTION, " \n "), Correction("x" * 400, RIGHT)):
        with pytest.raises(SourceError):
            library.add_curated(base, bad, visibility=Visibility.everyone(), **ACTOR)
    with pytest.raises(SourceError):
        library.add_curated("shared", Correction(QUESTION, RIGHT), visibility=Visibility.everyone(), **ACTOR)
    assert [r.name for r in library.list(base)] == ["faq.md"]


def test_questions_whose_names_would_meet_stay_two_corrections(world: tuple[RagService, SourceLibrary]) -> None:
    """Names are cut and their symbols replaced, so "C++" and "C#" would give one name: the
    question's digest keeps them apart, and the same question in one place."""
    _, library = world
    base = guild_base_name(GUILD)
    names = [library.add_curated(base, Correction(q, a, "", LINK), visibility=Visibility(), **ACTOR).name
             for q, a in (("How do I build it with C++?", "Run make with the cpp target."),
                          ("How do I build it with C#?", "Run dotnet build in the project folder."),
                          ("How do I build it with  C#?", "Run dotnet build in the solution folder."))]
    assert names[0] != names[1] and names[1] == names[2]
    assert len([r for r in library.list(base) if r.kind == CURATED]) == 2
