"""Offline follow-ups in a conversation, through RagService with real documents, Chroma and the
embedding model: a follow-up is never answered worse than the same question asked alone, and
the history only helps a question that leans on it ("and when did she retire?")."""

from __future__ import annotations

import asyncio

import pytest

from bot.rag.answer.followup import needs_history
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.models import Answer
from bot.rag.service import RagService
from bot.settings import Settings
from bot.state.conversations import Turn
from tests.helpers import ARTICLE

FORMAT = """# The Sable archive format

This document is version 2.4 of the specification of the Sable archive format, published in March 2021.

## Header

Every Sable archive starts with the magic string `SBLA` followed by a zero byte. Readers must reject a file whose first four bytes differ.

## Records

After the header come the records. Each record holds a name, a length and the compressed bytes of one member file.

## Checksums

The archive ends with a CRC-32 checksum of every byte before it.
"""
PEOPLE = """# People of the Sable project

Marta Lindqvist designed the Sable archive format in 2015. She retired in 2022 and now lives in Uppsala.

Jonas Weber maintains the reference reader. He joined the project in 2018.
"""
MAGIC, VERSION = "what magic string does the file start with?", "and what is the version of the specification?"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, embeddings: MiniLMEmbeddings) -> RagService:
    root = tmp_path_factory.mktemp("follow-ups")
    (root / "sources").mkdir()
    (root / "sources" / "format.md").write_text(FORMAT, encoding="utf-8")
    (root / "sources" / "people.md").write_text(PEOPLE, encoding="utf-8")
    (root / "sources" / ARTICLE.name).write_bytes(ARTICLE.read_bytes())
    settings = Settings(_env_file=None, sources_dir=root / "sources", vectorstore_dir=root / "vectorstore",
                        data_dir=root / "data", llm_provider="extractive")
    service = RagService(settings, embeddings=embeddings)
    service.start()
    return service


def turn(service: RagService, question: str) -> Turn:
    answer = service.ask(question)
    return Turn(answer.question, answer.answer, answer.answerable)


def test_a_follow_up_asking_something_new_does_not_get_the_previous_answer(service: RagService) -> None:
    first = turn(service, MAGIC)
    assert "SBLA" in first.answer
    answer = service.ask(VERSION, history=[first])
    assert answer.answerable and "version 2.4" in answer.answer and "SBLA" not in answer.answer
    assert answer.question == VERSION  # the conversation keeps the member's words, not the query asked


@pytest.mark.parametrize("question", ["Who maintains the reference reader?", "Where does Marta Lindqvist live?",
                                      "What does each record hold?"])
def test_after_three_turns_a_follow_up_is_answered_as_well_as_alone(service: RagService, question: str) -> None:
    history = [turn(service, q) for q in ("How does the archive end?", "Why did Haliva resign?", MAGIC)]
    alone = service.ask(question)
    assert alone.answerable
    answer = service.ask(question, history=history)
    assert (answer.answerable, answer.answer, answer.citations) == (True, alone.answer, alone.citations)


def test_history_still_helps_a_question_that_needs_it(service: RagService) -> None:
    first = turn(service, "Who designed the Sable archive format?")
    assert "Marta Lindqvist" in first.answer
    answer = service.ask("and when did she retire?", history=[first])
    assert answer.answerable and "2022" in answer.answer and {c.source for c in answer.citations} == {"people.md"}


def test_the_streams_choose_as_ask_does(service: RagService) -> None:
    history = [turn(service, MAGIC)]
    streamed = [event for event in service.stream(VERSION, history=history) if isinstance(event, Answer)]

    async def collect() -> list[Answer]:
        return [event async for event in service.astream(VERSION, history=history) if isinstance(event, Answer)]

    for events in (streamed, asyncio.run(collect())):
        assert len(events) == 1 and "version 2.4" in events[0].answer


@pytest.mark.parametrize(("question", "needs"), [
    ("and when did he retire?", True), ("What does it hold?", True), ("and why?", True), ("when?", True),
    (VERSION, False), ("Who maintains the reference reader?", False),
])
def test_what_counts_as_leaning_on_the_history(question: str, needs: bool) -> None:
    assert needs_history(question) is needs

