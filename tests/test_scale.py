"""What a big knowledge base needs: work done once is kept — sentence vectors across
processes and restarts, the lexical index beside its version — so a start-up or a repeated
question does not redo it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.rag.answer.sentences import sentence_texts
from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.errors import RagError
from bot.rag.index.lexical import LEXICAL_FORMAT, LexicalIndex
from bot.rag.models import Chunk
from bot.rag.service import RagService
from bot.settings import Settings
from tests.helpers import CountingEmbeddings, counting_chunks

QUESTION = "What did the general call for in his resignation letter?"


def test_sentence_vectors_are_made_at_ingest_not_per_question_or_process(
    make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings
) -> None:
    settings = make_settings()
    ingesting = CountingEmbeddings(embeddings)
    service = RagService(settings, embeddings=ingesting)
    report = service.ingest()
    chunks = service.start().version.chunks.values()
    texts = service.start().version.source_text
    sentences = {t for chunk in chunks for t in sentence_texts(chunk, texts)}
    assert report.sentences_s is not None and report.live_after_s is not None
    assert sentences <= set(ingesting.texts)  # the chunks, then every sentence of them, at ingest

    for question in (QUESTION, "Who is the IDF chief of staff?"):  # new questions, in a new process
        asking = CountingEmbeddings(embeddings)
        answer = RagService(settings, embeddings=asking).ask(question)
        assert answer.answerable
        assert asking.texts[0] == question  # questions are embedded, never stored
        assert not sentences & set(asking.texts)  # no sentence is embedded again

    again = CountingEmbeddings(embeddings)
    assert RagService(settings, embeddings=again).ingest().sentences_s is None  # unchanged: nothing to do
    assert again.texts == []


def test_the_catalogue_and_lexical_index_are_saved_beside_their_version_and_read_back(
    make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    first = RagService(settings, embeddings=embeddings)
    expected = first.ask(QUESTION)
    saved = list((settings.cache_dir / "index").iterdir())
    assert [p.name.split("-")[0] for p in saved] == [first.start().version.name]
    assert {p.name for p in saved[0].iterdir()} == {"catalogue.json", f"lexical-{LEXICAL_FORMAT}"}

    def no_rebuild(chunks: object) -> LexicalIndex:
        raise AssertionError("the saved lexical index should have been read")

    monkeypatch.setattr(LexicalIndex, "build", staticmethod(no_rebuild))
    later = RagService(settings, embeddings=embeddings)  # a new process on the same index
    assert later.ask(QUESTION).answer == expected.answer
    assert later.retrieve("Rafah displaced Palestinians")  # BM25 over the memory-mapped matrix


def test_a_new_version_replaces_the_saved_data_of_the_one_before_last(
    make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, sources_dir: Path
) -> None:
    settings = make_settings()
    service = RagService(settings, embeddings=embeddings)
    names = [service.start().version.name]
    for n in range(2):
        (sources_dir / f"note-{n}.txt").write_text(f"The harbour ferry number {n} leaves at noon.", encoding="utf-8")
        service.ingest()
        names.append(service.start().version.name)
    saved = sorted(p.name.split("-")[0] for p in (settings.cache_dir / "index").iterdir())
    assert saved == sorted(names[-2:])  # the live version and the previous one (kept for in-flight questions)
    answer = service.ask("When does the harbour ferry leave?")
    assert answer.answerable and "noon" in answer.answer


def _notes(folder: Path, count: int) -> None:
    for n in range(count):
        (folder / f"harbour-{n:02d}.txt").write_text(
            " ".join(f"Pier {n}-{i} of the harbour opens at {i % 12 + 1} o'clock for the ferry." for i in range(12)),
            encoding="utf-8",
        )


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), RuntimeError("the embedder crashed")])
def test_an_interrupted_ingest_resumes_without_re_embedding_and_never_serves_half(
    make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, sources_dir: Path, failure: BaseException
) -> None:
    settings = make_settings(chunk_size=200, chunk_overlap=0)
    service = RagService(settings, embeddings=embeddings)
    before = service.start().version
    _notes(sources_dir, 30)  # ~180 new chunks: a write batch and a half
    crashing_service, crashing = counting_chunks(settings, embeddings, fail_after=150, failure=failure)
    with pytest.raises((KeyboardInterrupt, RagError)):
        crashing_service.ingest()
    assert crashing.embedded > 0
    # what was embedded is not served: readers still see the version from before
    assert RagService(settings, embeddings=embeddings).base.index.active_name() == before.name

    service, resumed = counting_chunks(settings, embeddings)
    report = service.ingest()
    live = service.start().version
    assert live.name != before.name and len(live.chunks) == report.added + report.unchanged
    assert set(crashing.texts).isdisjoint(resumed.texts)  # nothing embedded twice
    assert len(crashing.texts) + len(resumed.texts) >= report.added
    assert service.ask("When does pier 7-3 of the harbour open?").answerable


def test_a_resumed_build_gives_the_chunks_it_already_held_their_new_title(
    make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, sources_dir: Path
) -> None:
    settings = make_settings(chunk_size=200, chunk_overlap=0)
    _notes(sources_dir, 30)
    crashing_service, crashing = counting_chunks(settings, embeddings, fail_after=150, failure=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        crashing_service.ingest()
    assert crashing.embedded > 0
    for n in range(30):  # retitled before the resume: same text, same chunk ids
        (sources_dir / f"harbour-{n:02d}.txt.source.json").write_text(f'{{"title": "Harbour notes {n}"}}', encoding="utf-8")
    service, resumed = counting_chunks(settings, embeddings)
    service.ingest()
    assert set(crashing.texts).isdisjoint(resumed.texts)  # still nothing embedded twice
    chunks = service.start().version.chunks
    titles = {c.source: c.title for c in chunks.values() if c.source.startswith("harbour-")}
    assert titles == {f"harbour-{n:02d}.txt": f"Harbour notes {n}" for n in range(30)}


def _chunk(n: int, text: str) -> Chunk:
    return Chunk(id=f"c{n}", source=f"page-{n}.md", index=0, start=0, end=len(text), text=text, source_hash="h")


def test_bm25_leaves_excluded_chunks_out_even_when_they_fill_the_deeper_ranking() -> None:
    """Excluded chunks are dropped from a deeper ranking; when they fill all of it, the
    ranking is made again without them, so a visible match is still found."""
    hidden = [_chunk(n, "The ferry timetable for the harbour ferry and the ferry fares.") for n in range(40)]
    visible = [_chunk(40, "Ferry tickets are sold at the pier."), _chunk(41, "Bicycles ride free.")]
    lexical = LexicalIndex.build(hidden + visible)
    excluded = {c.id for c in hidden}
    assert {cid for cid, _ in lexical.search("ferry timetable", 4)} <= excluded  # the hidden ones rank first
    assert [cid for cid, _ in lexical.search("ferry timetable", 4, excluded)] == ["c40"]  # past 4 + 3 x 4 hidden ones
    few = excluded - {"c0", "c1"}
    assert {cid for cid, _ in lexical.search("ferry timetable", 3, few)} == {"c0", "c1", "c40"}
