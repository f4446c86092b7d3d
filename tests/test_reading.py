"""What members read: an answer shown once with its citations saying where they are from,
"summarize the article" asked as a question getting the summary, summaries covering every
source, and summary bullets that never open with a dangling "he"."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from bot.discord_bot.render import EMBED_TOTAL_LIMIT, MESSAGE_LIMIT, QUOTED_ABOVE, render_answer, render_summary
from bot.rag.answer.intent import SummaryRequest, summary_request
from bot.rag.answer.sentences import continues_previous, starts_with_pronoun
from bot.rag.answer.summary import extractive_summary
from bot.rag.embeddings import MiniLMEmbeddings, VectorCache
from bot.rag.models import Answer, Chunk, Citation
from bot.rag.service import RagService
from bot.rag.text import split_sentences
from tests.discord_emulator import DiscordEmulator, Member
from tests.helpers import ARTICLE, StartBot, field_values, followup, pings_nobody

SEED = ARTICLE.name
FERRY = (
    "# Island ferry guide\n\n"
    "The island ferry leaves the south pier every hour between seven in the morning and ten at night.\n"
    "A single crossing to the mainland takes forty minutes in calm weather.\n"
    "Tickets are sold at the harbour kiosk and on board, and children under five travel free.\n"
    "Bicycles may be taken on the lower deck for a small extra fare.\n"
    "In winter storms the crossing is cancelled and the harbour master posts notices at the pier.\n"
)


def bullets_of(content: str) -> list[str]:
    return [line for line in content.splitlines() if line.startswith("•")]


def dangles(text: str) -> bool:
    return starts_with_pronoun(text) or continues_previous(text)


# --- the answer once, its citations saying where they are from --------------------------------
async def test_mention_answer_is_quoted_once_and_the_embed_names_its_source(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    question = "How many hostages were taken back to Gaza?"
    expected = await asyncio.to_thread(shared_service.ask, question)
    quote = expected.citations[0].quote
    await start_bot(shared_service)
    mark = len(emulator.calls)
    await emulator.inject_message(member, question, mention_bot=True)
    call = await emulator.wait_for_call("POST", rf"/channels/{emulator.channel_id}/messages", after=mark)
    assert quote in call.body["content"] and call.body["content"].count(quote) == 1
    embed = call.body["embeds"][0]
    assert [f["name"] for f in embed["fields"]] == [f"[{c.n}] {c.label}" for c in expected.citations]
    assert embed["fields"][0]["name"] == f"[1] {SEED}"
    assert all(quote not in value and "253" not in value for value in field_values(call.body))
    assert all(value == QUOTED_ABOVE for value in field_values(call.body))
    assert pings_nobody(call.body)


def test_model_answer_keeps_its_quote_with_title_and_link() -> None:
    quote = "The old lighthouse on Skerry Point was painted bright green in 1911."
    citation = Citation(1, "guides/lighthouse.md", "guides/lighthouse.md#0", 0, len(quote), quote,
                        label="lighthouse.md › History", link="https://example.org/lighthouse#history")
    prose = Answer("What colour is the lighthouse?", "It was painted green, in 1911 [1].", True, [citation], provider="openai")
    [reply] = render_answer(prose, {"guides/lighthouse.md": "Skerry Point Lighthouse"})
    assert reply.content == prose.answer
    assert reply.embed is not None
    field = reply.embed.fields[0]
    assert field.name == "[1] lighthouse.md › History"
    assert field.value == f"Skerry Point Lighthouse\n“{quote}”\n<https://example.org/lighthouse#history>"

    quoted = Answer("What colour is the lighthouse?", f"“{quote}” [1]", True, [citation])
    [reply] = render_answer(quoted, {"guides/lighthouse.md": "Skerry Point Lighthouse"})
    assert reply.embed is not None
    value = reply.embed.fields[0].value or ""
    assert quote not in value and "Skerry Point Lighthouse" in value and "<https://example.org/lighthouse#history>" in value
    # The title is not repeated when the label already says it; nothing else to say: "Quoted above."
    same = Citation(1, "lighthouse.md", "lighthouse.md#0", 0, len(quote), quote, label="lighthouse.md")
    [reply] = render_answer(Answer("q", f"“{quote}” [1]", True, [same]), {"lighthouse.md": "lighthouse.md"})
    assert reply.embed is not None and reply.embed.fields[0].value == QUOTED_ABOVE


def test_citation_fields_stay_within_discord_limits() -> None:
    title, link = "T" * 5000, "https://example.org/" + "p" * 270
    citations = [Citation(n, f"s{n}.md", f"s{n}.md#0", 0, 5000, "q " * 2500, label="L" * 400, link=link) for n in range(1, 31)]
    replies = render_answer(Answer("q", "word " * 1000, True, citations, provider="openai"), {f"s{n}.md": title for n in range(1, 31)})
    assert all(len(r.content) <= MESSAGE_LIMIT for r in replies) and all(r.embed is None for r in replies[:-1])
    embed = replies[-1].embed
    assert embed is not None and 0 < len(embed.fields) <= 25 and len(embed) <= EMBED_TOTAL_LIMIT
    assert all(len(f.name or "") <= 256 and 0 < len(f.value or "") <= 1024 for f in embed.fields)
    assert all((f.value or "").endswith(f"<{link}>") for f in embed.fields)
    assert embed.footer.text == f"…and {30 - len(embed.fields)} more source(s) not shown"


# --- "summarize the article" asked as a question --------------------------------------------------
@pytest.mark.parametrize(("question", "source"), [
    ("Summarize the article", SEED),
    ("summarise the article please", SEED),
    ("Can you summarize the article for me?", SEED),
    ("Give me a summary of the article.", SEED),
    ("tl;dr", SEED),
    ("TL;DR of the article?", SEED),
    ("What are the key points of the article?", SEED),
    ("Sum up what the article says", SEED),
    ("sum it up", SEED),
    ("What is the article about?", SEED),
    ("Summarize everything", None),
    ("give me a quick recap of all the documents", None),
])
def test_requests_to_summarise_are_recognised(question: str, source: str | None) -> None:
    assert summary_request(question, [SEED]) == SummaryRequest(source)


@pytest.mark.parametrize("question", [
    "What does the summary function return?",
    "How do I summarize a dataframe in pandas?",
    "how do I summarize a dataframe in pandas",
    "summarize a dataframe in pandas",
    "Who wrote the summary of the inquiry?",
    "What does the summary say about Rafah?",
    "Give me a summary of how the attack happened",
    "Summarize the war in Gaza",
    "What is the resignation about?",
    "What are the key points of the agreement?",
    "Why did the intelligence chief resign?",
    "Is there a summary?",
])
def test_questions_about_summaries_are_not_routed(question: str) -> None:
    assert summary_request(question, [SEED, "ferry.md"], {"ferry.md": "Island ferry guide"}) is None


def test_a_summary_request_names_its_source_loosely() -> None:
    names = ["haliva-resignation.txt", "guides/ferry.md", "notes.txt"]
    titles = {"guides/ferry.md": "Island ferry guide"}
    assert summary_request("summarize ferry", names, titles) == SummaryRequest("guides/ferry.md")
    assert summary_request("Summarize guides/ferry.md", names, titles) == SummaryRequest("guides/ferry.md")
    assert summary_request("give me a summary of the island ferry guide", names, titles) == SummaryRequest("guides/ferry.md")
    assert summary_request("what are the key points of the haliva article?", names, titles) == SummaryRequest("haliva-resignation.txt")
    assert summary_request("summarize the article", names, titles) == SummaryRequest(None)  # which one? all of them
    assert summary_request("summarize the sources", names, titles) == SummaryRequest(None)
    assert summary_request("summarize the lighthouse", names, titles) is None  # not a source: a question


async def test_summarize_the_article_by_ask_gets_the_summary(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="Summarize the article")
    defer = await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
    assert defer.body["type"] == 5
    body = await followup(emulator, interaction.token, mark)
    refusal = shared_service.components.prompts.refusal
    assert refusal not in body["content"]
    assert body["content"].startswith(f"**Summary of {SEED}**")
    bullets = bullets_of(body["content"])
    summary = shared_service.summary(SEED)
    assert len(bullets) == len(summary.bullets) >= 3
    assert all(b.text in body["content"] for b in summary.bullets)
    assert len(field_values(body)) == len(bullets)
    assert pings_nobody(body)


async def test_summarize_the_article_by_mention_gets_the_summary(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service, question_cooldown_count=1, question_cooldown_seconds=60)
    mark = len(emulator.calls)
    message = await emulator.inject_message(member, "Summarize the article", mention_bot=True)
    call = await emulator.wait_for_call("POST", rf"/channels/{emulator.channel_id}/messages", after=mark)
    assert str(call.body["message_reference"]["message_id"]) == message["id"]
    assert shared_service.components.prompts.refusal not in call.body["content"]
    assert len(bullets_of(call.body["content"])) >= 3 and call.body["embeds"][0]["fields"]
    assert pings_nobody(call.body)
    # The summary counted as a question for the cooldown.
    mark = len(emulator.calls)
    await emulator.inject_message(member, "Who is the IDF chief of staff?", mention_bot=True)
    call = await emulator.wait_for_call("POST", rf"/channels/{emulator.channel_id}/messages", after=mark)
    assert "too quickly" in call.body["content"]


async def test_questions_about_summaries_are_answered_as_questions(emulator: DiscordEmulator, start_bot: StartBot, shared_service: RagService, member: Member) -> None:
    await start_bot(shared_service)
    refusal = shared_service.components.prompts.refusal
    mark = len(emulator.calls)
    await emulator.inject_message(member, "What does the summary function return?", mention_bot=True)
    call = await emulator.wait_for_call("POST", rf"/channels/{emulator.channel_id}/messages", after=mark)
    assert "Summary of" not in call.body["content"] and call.body["content"] == refusal
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "ask", question="How do I summarize a dataframe in pandas?")
    body = await followup(emulator, interaction.token, mark)
    assert "Summary of" not in body["content"] and body["content"] == refusal


# --- summaries: every source covered, no dangling pronouns ------------------------------------------
async def test_a_two_source_summary_covers_both(service: RagService, sources_dir: Path, emulator: DiscordEmulator, start_bot: StartBot, member: Member) -> None:
    (sources_dir / "ferry.md").write_text(FERRY, encoding="utf-8")
    await asyncio.to_thread(service.start)
    summary = await asyncio.to_thread(service.summary)
    covered = {c.source for c in summary.citations}
    assert covered == {SEED, "ferry.md"}
    settings = service.settings
    assert settings.summary_min_bullets <= len(summary.bullets) <= settings.summary_max_bullets
    for bullet, citation in zip(summary.bullets, summary.citations):
        assert service.start().source_text(citation.source)[citation.start:citation.end] == citation.quote == bullet.text
    [reply] = render_summary(summary)
    assert reply.content.splitlines()[0] == f"**Summary of all sources** — covering 2 sources: ferry.md, {SEED}"

    await start_bot(service)
    mark = len(emulator.calls)
    interaction = await emulator.inject_slash(member, "summary")
    body = await followup(emulator, interaction.token, mark)
    assert "covering 2 sources" in body["content"]
    names = [f["name"] for f in body["embeds"][0]["fields"]]
    assert any(n.endswith("ferry.md › Island ferry guide") for n in names) and any(n.endswith(SEED) for n in names)


def _synthetic(sources: dict[str, list[str]]) -> tuple[list[Chunk], dict[str, str]]:
    texts = {name: " ".join(sentences) for name, sentences in sources.items()}
    chunks = [
        Chunk(f"{name}#0", name, 0, 0, len(text), text, hashlib.sha256(text.encode()).hexdigest())
        for name, text in texts.items()
    ]
    return chunks, texts


def test_more_sources_than_bullets_the_largest_each_get_one(embeddings: MiniLMEmbeddings) -> None:
    topics = ["the harbour", "the lighthouse", "the ferry", "the market", "the school", "the museum", "the bakery", "the library"]
    sources = {
        f"s{k}.md": [f"Fact number {i} about {topic} is recorded here for the visitors of the island." for i in range(k + 1)]
        for k, topic in enumerate(topics)
    }
    chunks, texts = _synthetic(sources)
    summary = extractive_summary(None, chunks, VectorCache(embeddings), texts.__getitem__, 3, 6)
    assert len(summary.bullets) == 6
    assert {c.source for c in summary.citations} == {f"s{k}.md" for k in range(2, 8)}  # the six largest


def test_a_dangling_pronoun_is_shown_with_its_antecedent(embeddings: MiniLMEmbeddings) -> None:
    sentences = []
    for name, place in [("Ada Brown", "Skerry Point"), ("Tom Reid", "the harbour"), ("Mia Lund", "the north pier"),
                        ("Ola Berg", "the island school"), ("Ivo Marsh", "the museum"), ("Kai Dunn", "the ferry")]:
        sentences += [f"{name} has worked at {place} for many years and knows every corner of it.",
                      f"She said the work at {place} changed completely when the new road was opened."]
    sentences.insert(0, "It was the windiest winter the island had seen since the records began long ago.")
    chunks, texts = _synthetic({"island.md": sentences})
    summary = extractive_summary(None, chunks, VectorCache(embeddings), texts.__getitem__, 3, 6)
    assert summary.bullets
    text = texts["island.md"]
    for bullet, citation in zip(summary.bullets, summary.citations):
        assert text[citation.start:citation.end] == citation.quote == bullet.text
        assert not dangles(bullet.text), bullet.text  # "She said ..." comes with who she is
    assert not any(b.text.startswith("It was the windiest") for b in summary.bullets)  # no antecedent: gives way


def test_seed_summary_bullets_do_not_start_with_a_dangling_pronoun(shared_service: RagService) -> None:
    summary = shared_service.summary()
    stored = shared_service.start().source_text(SEED)
    assert summary.bullets
    for bullet, citation in zip(summary.bullets, summary.citations):
        assert not dangles(bullet.text), bullet.text
        assert stored[citation.start:citation.end] == citation.quote == bullet.text
        # A bullet spanning sentences is whole sentences of the source, in order.
        spans = [s for s in split_sentences(stored) if citation.start <= s.start and s.end <= citation.end]
        assert spans and spans[0].start == citation.start and spans[-1].end == citation.end
