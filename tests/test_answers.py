"""Answers from the embedded default: the dev set's bar, citations, quotes, refusals."""

from __future__ import annotations

import re

import pytest

from bot.rag.answer.key_terms import key_terms, missing_key_terms
from bot.rag.ingest.sources import load_source
from bot.rag.models import Answer
from bot.rag.service import RagService
from bot.rag.text import match_key
from tests.helpers import ARTICLE, DEV_SET, OWN_SET, read_jsonl


def is_correct(item: dict, answer: Answer) -> bool:
    if not item["answerable"]:
        return not answer.answerable
    text = match_key(answer.answer)
    has_answer = any(match_key(a) in text for a in item["answers"])
    cites_evidence = any(match_key(e) in match_key(c.quote) for c in answer.citations for e in item["evidence"])
    return answer.answerable and has_answer and cites_evidence


def test_dev_set_meets_the_bar(shared_service: RagService) -> None:
    items = read_jsonl(DEV_SET)
    answers = {i["id"]: shared_service.ask(i["question"]) for i in items}
    answerable_ok = [i["id"] for i in items if i["answerable"] and is_correct(i, answers[i["id"]])]
    refused_ok = [i["id"] for i in items if not i["answerable"] and is_correct(i, answers[i["id"]])]
    assert len(answerable_ok) >= 9, answerable_ok
    assert len(refused_ok) >= 3, refused_ok


def test_own_question_set(shared_service: RagService) -> None:
    items = read_jsonl(OWN_SET)
    answerable = [i for i in items if i["answerable"]]
    unanswerable = [i for i in items if not i["answerable"]]
    assert len(items) >= 30 and len(unanswerable) >= 8
    right = sum(is_correct(i, shared_service.ask(i["question"])) for i in answerable)
    refused = sum(is_correct(i, shared_service.ask(i["question"])) for i in unanswerable)
    assert right / len(answerable) >= 0.9
    assert refused / len(unanswerable) >= 0.9


def test_quotes_are_exact_substrings_of_the_stored_text(shared_service: RagService) -> None:
    stored = load_source(ARTICLE, ARTICLE.name, 10_000_000).text
    live = shared_service.start()
    assert live.source_text(ARTICLE.name) == stored
    for question in ["How many hostages were taken?", "Who is the IDF chief of staff?", "Who said an inquiry should wait?"]:
        answer = shared_service.ask(question)
        assert answer.answerable and answer.citations
        for citation in answer.citations:
            assert stored[citation.start:citation.end] == citation.quote
            chunk = live.version.chunks[citation.chunk_id]
            assert chunk.source == citation.source
            assert chunk.start <= citation.end and citation.start <= chunk.end


def test_citation_markers_match_the_citations(shared_service: RagService) -> None:
    answer = shared_service.ask("Why did the intelligence chief resign?")
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)]
    assert markers and sorted(set(markers)) == [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for citation in answer.citations:
        assert citation.quote in answer.answer  # extractive answers quote their evidence verbatim


@pytest.mark.parametrize(
    "question",
    ["What is the capital of Australia?", "Give me a recipe for banana bread.", "Who won the 2018 World Cup?", "asdf qwerty zxcv"],
)
def test_off_topic_questions_are_refused(shared_service: RagService, question: str) -> None:
    answer = shared_service.ask(question)
    assert not answer.answerable
    assert answer.citations == []
    assert answer.answer == shared_service.components.prompts.refusal


@pytest.mark.parametrize(
    "question",
    [
        "What did Joe Biden say about the resignation?",
        "How do I register a blueprint in Flask?",
        "how do i use pandas dropna on the hostages figures",
    ],
)
def test_questions_about_what_the_sources_never_name_are_refused(shared_service: RagService, question: str) -> None:
    answer = shared_service.ask(question)
    assert not answer.answerable and answer.citations == []
    assert missing_key_terms(question, shared_service.start().mentions)  # refused for that reason


@pytest.mark.parametrize(
    "question",
    [
        "Who directs the shin bet?",  # "directs": the article has "director"
        "whats the name of the IDF cheif of staff?",  # a chat spelling and a typo
        "Why did Haliva resign from his post?",
    ],
)
def test_rare_words_the_sources_hold_in_another_form_are_not_unknown(shared_service: RagService, question: str) -> None:
    assert not missing_key_terms(question, shared_service.start().mentions)


def test_key_terms_leave_out_code_quotes_and_common_words() -> None:
    assert key_terms("how do i register a blueprint in flask?") == ["blueprint", "flask"]
    assert key_terms("tomllib.load(open('pyproject.toml')) errors out, how do i open it?") == []
    assert "test" not in key_terms("'test_test_file'.lstrip('test_') removed too much")
    assert key_terms("whats the best mechanical keyboard?") == []


def test_summary_bullets_are_cited_source_sentences(shared_service: RagService) -> None:
    summary = shared_service.summary()
    stored = shared_service.start().source_text(ARTICLE.name)
    settings = shared_service.settings
    assert settings.summary_min_bullets <= len(summary.bullets) <= settings.summary_max_bullets
    for bullet in summary.bullets:
        assert bullet.text in stored
        for n in bullet.citations:
            citation = summary.citations[n - 1]
            assert stored[citation.start:citation.end] == citation.quote
    assert shared_service.summary("haliva-resignation") is shared_service.summary("haliva-resignation.txt")


def test_a_pronoun_subject_answers_for_the_person_named(shared_service: RagService) -> None:
    """"He also called for a state commission of inquiry" answers "What did Haliva call for?"
    better than a sentence that names him but says nothing of calling for anything."""
    answer = shared_service.ask("What did Haliva call for?")
    assert answer.answerable and "commission of inquiry" in answer.answer, answer.answer
    assert "requested to end his position" not in answer.answer


def test_an_answer_is_a_short_passage_of_clean_prose(shared_service: RagService) -> None:
    answer = shared_service.ask("What did Haliva call for?")
    quote = answer.citations[0].quote
    assert quote.startswith("He also called for") and quote.count(". ") + quote.count('," ') >= 1
    assert "  " not in quote and "`" not in quote and "**" not in quote


def test_one_unknown_word_does_not_refuse_what_the_rest_finds(shared_service: RagService) -> None:
    question = "how many hostages were taken back to gaza? sorry for the missing umlauts on my keyboard"
    assert missing_key_terms(question, shared_service.start().mentions) == ["umlauts"]
    answer = shared_service.ask(question)
    assert answer.answerable and "253" in answer.answer, answer.answer
    # a question about nothing the sources name is still refused
    assert not shared_service.ask("what did the umlauts committee decide about kayaks?").answerable
