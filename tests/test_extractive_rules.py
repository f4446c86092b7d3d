"""The answer-type rules of the extractive answerer, on sentences of their own."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bot.rag.answer.answer_types import expected_answer_type, has_answer_type, names_someone_new
from bot.rag.answer.extractive import ScoredCandidate, select_evidence
from bot.rag.answer.sentences import Candidate, continues_previous
from bot.rag.embeddings import MiniLMEmbeddings, VectorCache
from bot.rag.models import Chunk
from bot.rag.text import Span


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How old is the minister?", "age"),
        ("In what year was the bridge built?", "year"),
        ("How many ferries run?", "number"),
        ("When did the ferry leave?", "date"),
        ("Who repainted the lighthouse?", "person"),
        ("Why was the bridge closed?", None),
        ("what timeout does the client use if i dont pass one", "default"),
        ("Which user agent is sent by default?", "default"),
        ("How many retries are made by default?", "number"),  # the more exact kind wins
    ],
)
def test_expected_answer_type(question: str, kind: str | None) -> None:
    assert expected_answer_type(question) == kind


@pytest.mark.parametrize(
    ("kind", "sentence", "question", "holds"),
    [
        ("number", "The ferry carried 40 people on 7 october.", "How many people did the ferry carry?", True),
        ("number", "The ferry sank on 7 october.", "How many people did the ferry carry?", False),  # a date, not a count
        ("number", "He said so 10 days later.", "How many years did he serve?", False),  # days are not years
        ("number", "He served for 12 years.", "How many years did he serve?", True),
        ("year", "The bridge opened in 1911.", "In what year did the bridge open?", True),
        ("year", "The bridge opened on monday.", "In what year did the bridge open?", False),
        ("age", "The keeper, 64-year-old Ada Morrow, retired.", "How old is the keeper?", True),
        ("age", "The keeper retired after 40 years.", "How old is the keeper?", False),
        ("date", "He will retire once a successor is chosen.", "When will he retire?", True),
        ("date", "He decided to stay on for the war.", "When did he resign?", False),
        ("default", "The default tolerance is 1e-09.", "What tolerance is used if I don't give one?", True),
        ("default", "If omitted, the current directory is used.", "Which folder without passing one?", True),
        ("default", "The tolerance must be greater than zero.", "What tolerance is used by default?", False),
    ],
)
def test_has_answer_type(kind: str, sentence: str, question: str, holds: bool) -> None:
    assert has_answer_type(kind, sentence, question) is holds


def test_a_person_must_be_someone_the_question_does_not_name() -> None:
    asked = {"who", "has", "been", "named", "as", "haliva", "s", "successor"}
    assert not names_someone_new("the idf said major general aharon haliva would retire", asked)
    assert names_someone_new("the chief of staff, lt gen herzi halevi, and others", {"who", "is", "the", "chief"})
    assert names_someone_new("the prime minister, benjamin netanyahu, said", {"who", "is", "the", "prime", "minister"})
    assert not names_someone_new("the us and un have warned", {"who", "warned"})


@pytest.mark.parametrize(
    ("sentence", "continues"),
    [("He also called for an inquiry.", True), ('"Everything I did," he added.', True),
     ("However, his departure is expected.", True), ("The idf said he would retire.", False)],
)
def test_continues_previous(sentence: str, continues: bool) -> None:
    assert continues_previous(sentence) is continues


def _scored(text: str, score: float, typed: bool, position: int) -> ScoredCandidate:
    chunk = Chunk(f"doc#{position}", "doc.txt", position, 0, len(text), text, "")
    return ScoredCandidate(Candidate(chunk, Span(0, len(text), text), None, position), score, score, score, typed, False)


@pytest.mark.parametrize(("typed_score", "shown"), [(0.45, True), (0.25, False)])
def test_a_sentence_saying_what_the_default_is_is_preferred_not_required(typed_score: float, shown: bool) -> None:
    other = _scored("The tolerance is the allowed difference between two values.", 0.6, False, 0)
    default = _scored("The default tolerance is 1e-09.", typed_score, True, 1)
    picked = select_evidence(sorted([other, default], key=lambda s: (not s.typed, -s.score)), 0.3, "default")
    texts = [s.candidate.span.text for s in picked]
    assert (default.candidate.span.text in texts) is shown
    assert texts[0] == (default if shown else other).candidate.span.text


def test_a_passage_ends_at_a_sentence_end() -> None:
    from bot.rag.answer.sentences import PASSAGE_MAX_CHARS, passage_end

    chosen = "The cookie is removed when the browser is closed."
    long_next = "It " + " ".join(f"word{i}" for i in range(200)) + " ends here."
    text = chosen + " It lasts for the session. The end. Not this one."
    assert text[:passage_end(text, len(chosen), code_wanted=False)].endswith("session. The end.")
    text = chosen + " " + long_next + " The end."  # the next sentence is too long to join, even in part
    assert passage_end(text, len(chosen), code_wanted=False) == len(chosen)
    assert len(long_next) > PASSAGE_MAX_CHARS
    text = chosen + "\n\nIf you need it longer, set an expiry.\n\n## Expiry\n\nOther things."
    assert text[:passage_end(text, len(chosen), False)].endswith("set an expiry.")  # its section, not the next
    text = "Use the following command:\n\n```\nflask run\n```\n\nThen open the page."
    assert passage_end(text, 27, code_wanted=False) == 27  # code is not prose to quote


def test_a_listing_of_names_is_not_prose() -> None:
    from bot.rag.answer.sentences import is_prose

    assert not is_prose("- `Chunk.isatty()` - `Chunk.seek()` - `Chunk.tell()` - `Chunk.read()`")  # a contents page
    assert is_prose("Use `hashlib.file_digest()` to hash a file.")
    assert is_prose("Pass `a`, `b` or `c` as the mode, each of them described in the table of modes below.")


def test_a_sentence_introducing_code_answers_only_a_question_asking_for_code() -> None:
    from bot.rag.answer.sentences import answers_something, candidates_of

    text = ("Use the following command to start it:\n\n```\nflask run\n```\n\n"
            "The server reloads the code when it changes, for example:\n\nIt watches every module.")
    chunk = Chunk("doc#0", "doc.md", 0, 0, len(text), text, "")
    by_text = {c.span.text: c for c in candidates_of([chunk], lambda source: text)}
    lead_in = by_text["Use the following command to start it:"]
    assert lead_in.introduces_code
    assert not answers_something(lead_in, code_wanted=False)
    assert answers_something(lead_in, code_wanted=True)
    prose_follows = by_text["The server reloads the code when it changes, for example:"]
    assert not prose_follows.introduces_code and answers_something(prose_follows, code_wanted=False)


class _Pages:
    """A corpus of two pages, each naming what its set holds."""

    def __init__(self, names: dict[str, set[str]]) -> None:
        self.names = names

    def page_mentions(self, source: str, name: str) -> bool:
        return name in self.names[source]


def test_an_error_name_does_not_pick_the_page_but_a_tool_name_does() -> None:
    from bot.rag.answer.extractive import on_pages_naming

    windows = _scored("Windows historically has limited path lengths to 260 characters.", 0.5, False, 0)
    windows = replace(windows, candidate=replace(windows.candidate, chunk=replace(windows.candidate.chunk, source="windows.html")))
    corpus = _Pages({"windows.html": {"windows"}})
    asked = "python raises FileNotFoundError for a file with a 280 character path, is there a limit?"
    assert on_pages_naming(asked, [windows], corpus) == [windows]  # the symptom's name is not on the page
    assert on_pages_naming("how do pytest fixtures work on windows?", [windows], corpus) == []


def test_a_section_title_counts_as_said_by_its_sentences(embeddings: MiniLMEmbeddings) -> None:
    from bot.rag.answer.extractive import score_candidates

    sentence = "Without them it is removed when the browser is closed."
    question = "when is the session cookie removed if i set no expiry options?"
    scored = {}
    for heading in ("Security › Set-Cookie options", "Security › Background"):
        chunk = Chunk(f"doc#{heading}", "doc.md", 0, 0, len(sentence), sentence, "", heading=heading)
        candidate = Candidate(chunk, Span(0, len(sentence), sentence), None, 0)
        vector = embeddings.embed_query(question)
        (result,) = score_candidates(question, np.asarray(vector), [candidate], VectorCache(embeddings),
                                     lambda source, term: 1.0)
        scored[heading] = result
    titled, untitled = scored.values()
    assert titled.lexical > untitled.lexical and titled.score > untitled.score
