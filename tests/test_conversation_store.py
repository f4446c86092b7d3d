"""Conversations below Discord: follow-ups made standalone (offline: with the previous
question; with a model: rewritten through the real `openai` client against the local
server), and what the state database keeps — answers, one vote per member, statistics,
forgetting a member, the retention purge — on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot.rag.answer.chatter import is_question
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.models import Answer, Citation
from bot.rag.service import RagService
from bot.settings import Settings
from bot.state import Database
from bot.state.conversations import ConversationLog, Turn, UnknownAnswerError
from bot.state.handled import HandledMessages
from bot.state.models import utcnow
from tests.openai_server import OpenAICompatibleServer

LIGHTHOUSE = "# Skerry Point\n\nKeeper Tomas Berg ran the Skerry Point lighthouse for thirty years. He retired in 1987, when the light was automated.\n"
FERRY = "# The island ferry\n\nCaptain Ivo Alder commanded the island ferry from the harbour. He retired in 2003, when the route closed.\n"
FIRST = "Who ran the Skerry Point lighthouse?"
FOLLOW_UP = "When did he retire?"


@pytest.fixture
def stories(tmp_path: Path) -> Path:
    folder = tmp_path / "stories"
    folder.mkdir()
    (folder / "lighthouse.md").write_text(LIGHTHOUSE, encoding="utf-8")
    (folder / "ferry.md").write_text(FERRY, encoding="utf-8")
    return folder


def test_an_offline_follow_up_is_asked_with_the_previous_question(
    make_settings: Callable[..., Settings], stories: Path, embeddings: MiniLMEmbeddings
) -> None:
    service = RagService(make_settings(sources_dir=stories), embeddings=embeddings)
    alone = service.ask(FOLLOW_UP)
    assert "ferry.md" in {c.source for c in alone.citations}  # on its own, "he" could be either keeper
    first = service.ask(FIRST)
    assert first.answerable and "tomas berg" in first.answer.lower()
    answer = service.ask(FOLLOW_UP, history=[Turn(FIRST, first.answer, True)])
    assert answer.answerable and "1987" in answer.answer
    assert {c.source for c in answer.citations} == {"lighthouse.md"}


def test_a_model_rewrites_the_follow_up_from_the_conversation(
    make_settings: Callable[..., Settings], stories: Path, embeddings: MiniLMEmbeddings, server: OpenAICompatibleServer
) -> None:
    settings = make_settings(sources_dir=stories, llm_provider=None, openai_base_url=server.base_url,
                             openai_api_key="sk-test", max_retries=0)
    service = RagService(settings, embeddings=embeddings)
    answer = service.ask(FOLLOW_UP, history=[Turn(FIRST, "Keeper Tomas Berg ran it [1].", True)])
    rewrite, answered = server.requests[-2]["body"]["messages"], server.requests[-1]["body"]["messages"]
    assert "Member: Who ran the Skerry Point lighthouse?" in rewrite[-1]["content"]  # the history went to the model
    assert "Question: When did the Skerry Point lighthouse retire?" in answered[-1]["content"]  # its rewrite was asked
    assert answer.answerable and {c.source for c in answer.citations} == {"lighthouse.md"}  # retrieved by the rewrite


def test_history_stays_bounded_by_turns_and_tokens(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings) -> None:
    service = RagService(make_settings(history_turns=3, history_tokens=50), embeddings=embeddings)
    history = [Turn(f"question {n} " + "word " * 30, "answer " * 30, True) for n in range(50)]
    kept = service.components.followups.budget.bound(history)
    assert kept == history[-1:]  # one long turn fills the 50-token budget
    assert len(service.components.followups.budget.bound([Turn("q", "a", True)] * 50)) == 3


@pytest.mark.parametrize(("text", "asks"), [
    ("thanks!", False), ("Thank you so much", False), ("ok that worked", False), ("hi all", False), ("👍", False),
    ("<:party:123456> lol", False), ("how do I open a file in binary mode", True), ("is csv thread-safe?", True),
    ("my csv writer leaves a blank line between every row on windows", True), ("explain heapq", True),
])
def test_chatter_is_not_a_question(text: str, asks: bool) -> None:
    assert is_question(text) is asks


def _answer(question: str, answered: bool, source: str = "guide.md") -> Answer:
    cites = [Citation(1, source, f"{source}#0", 0, 5, "quote")] if answered else []
    return Answer(question, "“quote” [1]" if answered else "The sources don't say.", answered, cites)


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> ConversationLog:
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database(url)
    db.create_schema()
    store = ConversationLog(db)
    if request.param == "postgres":  # one server for the session: start from empty tables
        with db.session() as session:
            from bot.state.models import AnswerRecord, ConversationRecord, HandledMessage, VoteRecord

            for table in (VoteRecord, AnswerRecord, ConversationRecord, HandledMessage):
                session.query(table).delete()
    return store


def test_votes_stats_forgetting_and_retention(log: ConversationLog) -> None:
    guild = 555
    log.start_conversation(900, guild, 800)
    a = log.record_answer(_answer("how do I open a file?", True), user_id=1, guild_id=guild, thread_id=900, message_id=1001, latency_ms=100)
    log.record_answer(_answer("how do I use flask?", False), user_id=2, guild_id=guild, thread_id=None, message_id=1002, latency_ms=300)
    log.record_answer(_answer("How do I use Flask?", False), user_id=1, guild_id=guild, thread_id=None, message_id=1003, latency_ms=200)
    log.record_answer(_answer("elsewhere", True), user_id=1, guild_id=777, thread_id=None, message_id=1004, latency_ms=50)
    assert a > 0 and [t.question for t in log.history(900, 5)] == ["how do I open a file?"]

    assert log.vote(1001, user_id=2, value=1) is False
    assert log.vote(1001, user_id=2, value=-1, reason="wrong page") is True  # one vote per member: changed
    assert log.vote(1001, user_id=3, value=1) is False
    with pytest.raises(UnknownAnswerError):
        log.vote(4242, user_id=2, value=1)

    report = log.stats(guild, since=None)
    assert (report.questions, report.answered, report.refused, report.up, report.down) == (3, 1, 2, 1, 1)
    assert report.p50_ms == 200 and report.top_sources == [("guide.md", 1)]
    assert report.top_refused == [("how do i use flask?", 2)]  # the docs gap, counted across spellings
    assert report.top_down == [("how do i open a file?", 1)]
    assert log.stats(guild, since=utcnow() + timedelta(hours=1)).questions == 0

    assert log.forget(user_id=2) == (1, 1)  # their question and their vote
    assert log.stored_for(2) == 0 and log.stats(guild, since=None).questions == 2
    assert log.stored_for(1) == 3

    assert log.purge_texts(retention_days=30, now=utcnow() + timedelta(days=31)) == 3
    assert log.history(900, 5) == []  # texts gone ...
    assert log.stats(guild, since=None).questions == 2  # ... figures kept


def test_user_ids_are_stored_hashed(log: ConversationLog) -> None:
    log.record_answer(_answer("q", True), user_id=123456789012345678, guild_id=1, thread_id=None, message_id=1, latency_ms=1)
    with log.db.session() as session:
        from bot.state.models import AnswerRecord

        stored = session.query(AnswerRecord.user_hash).scalar()
    assert "123456789012345678" not in stored and len(stored) == 64
    assert ConversationLog(log.db).user_hash(123456789012345678) == stored  # the salt is kept: same hash after a restart


def test_the_same_reply_recorded_twice_is_one_answer_and_a_message_is_claimed_once(log: ConversationLog) -> None:
    first = log.record_answer(_answer("q", True), user_id=1, guild_id=1, thread_id=None, message_id=77, latency_ms=1)
    again = log.record_answer(_answer("q", True), user_id=1, guild_id=1, thread_id=None, message_id=77, latency_ms=1)
    assert first == again and log.stats(1, since=None).questions == 1  # was: IntegrityError on answers.message_id

    earlier, now = HandledMessages(log.db, "run-1"), HandledMessages(log.db, "run-2")
    assert earlier.claim(10, 5, 1) and not earlier.claim(10, 5, 1)  # a replay in the same run
    assert earlier.claim(11, 5, 1)
    earlier.finish(11)
    assert now.resume_points([5], since=utcnow() - timedelta(minutes=5)) == {5: 9}  # before the unfinished one
    assert now.claim(10, 5, 1) and not now.claim(11, 5, 1)  # a crashed run's claim passes on; a done one does not
    now.finish(10)
    assert now.resume_points([5, 6], since=utcnow() - timedelta(minutes=5)) == {5: 11}
    assert now.forget_before(utcnow() + timedelta(seconds=1)) == 2


def test_a_live_runs_claim_is_kept_until_it_dies_or_its_lease_runs_out(log: ConversationLog, tmp_path: Path) -> None:
    from sqlalchemy import update

    from bot.state.handled import CLAIM_LEASE
    from bot.state.models import HandledMessage

    old, new = (HandledMessages(log.db, run, lock_dir=tmp_path / "locks") for run in ("run-old", "run-new"))
    assert old.start() and new.start()
    assert old.claim(20, 5, 1) and old.claim(21, 5, 1)  # the old run is still answering both (a rolling restart)
    since = utcnow() - timedelta(minutes=5)
    assert new.resume_points([5], since=since) == {5: 21}  # not read again for the live run's claims...
    assert not new.claim(20, 5, 1)  # ...nor taken over: one answer, not two
    with log.db.session() as session:  # the old run hangs: its claim on 21 outlives the lease
        session.execute(update(HandledMessage).where(HandledMessage.message_id == "21")
                        .values(claimed_at=utcnow() - CLAIM_LEASE - timedelta(seconds=1)))
    assert new.resume_points([5], since=since) == {5: 20}
    assert new.claim(21, 5, 1) and not old.claim(21, 5, 1)  # taken over once, and the new run has it now
    old.stop()  # the old run is gone (closed, or killed: the lock goes with the process)
    assert new.resume_points([5], since=since) == {5: 19}
    assert new.claim(20, 5, 1) and not new.claim(20, 5, 1)
    new.stop()
