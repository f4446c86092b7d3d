"""Normalising the tokenised article, sentence spans and chunking (no model needed)."""

from __future__ import annotations

from bot.rag.ingest.chunking import chunk_document
from bot.rag.ingest.sources import load_source
from bot.rag.text import normalise_text, split_sentences
from tests.helpers import ARTICLE


def test_tokenised_text_is_rejoined_for_display() -> None:
    raw = 'israel \' s army said 1 , 200 were killed . the israel defense forces ( idf ) said " we failed ". it was 1 . 5 million .'
    text = normalise_text(raw)
    assert "Israel's army said 1,200 were killed." in text
    assert "(idf)" in text
    assert '"we failed".' in text
    assert "1.5 million" in text


def test_ordinary_prose_passes_unchanged() -> None:
    prose = "The U.S. Army, said Dr. Smith, isn't here (yet). It's 3.5 km away."
    assert normalise_text(prose) == prose


def test_sentence_offsets_point_into_the_text() -> None:
    text = normalise_text(ARTICLE.read_text(encoding="utf-8"))
    spans = split_sentences(text)
    assert len(spans) > 20
    for span in spans:
        assert text[span.start:span.end] == span.text
    assert not any(s.text.lower().endswith(("maj.", "gen.", "mr.")) for s in spans)


def test_chunks_have_stable_ids_exact_offsets_and_overlap() -> None:
    doc = load_source(ARTICLE, ARTICLE.name, 10_000_000)
    first = chunk_document(doc, 800, 160)
    again = chunk_document(load_source(ARTICLE, ARTICLE.name, 10_000_000), 800, 160)
    assert [c.id for c in first] == [c.id for c in again]
    assert len(first) >= 4
    for chunk in first:
        assert doc.text[chunk.start:chunk.end] == chunk.text
        assert len(chunk.text) <= 800
    assert all(b.start < a.end for a, b in zip(first, first[1:])), "consecutive chunks overlap"
    covered = set()
    for chunk in first:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered or doc.text[i].isspace() for i in range(len(doc.text)))


def test_changing_one_sentence_changes_only_nearby_chunk_ids() -> None:
    doc = load_source(ARTICLE, ARTICLE.name, 10_000_000)
    chunks = chunk_document(doc, 800, 160)
    edited = doc.text.replace("He has said that a full inquiry", "He has said that a complete inquiry")
    from dataclasses import replace

    new_chunks = chunk_document(replace(doc, text=edited), 800, 160)
    same = sum(a.id == b.id for a, b in zip(chunks, new_chunks))
    assert 0 < same < len(chunks)


def test_readable_quote_is_clean_prose_or_one_code_block() -> None:
    from bot.rag.text import is_code_block, readable_quote

    shown = readable_quote("Run **update-passwd** with `--dry-run`\n\n- to   see the\n- changes.")
    assert shown == "Run update-passwd with --dry-run to see the changes."
    table = readable_quote("| Tip |\n| --- |\n| Execute `mount`(8) with *no* arguments. |")
    assert table == "Tip Execute mount(8) with no arguments."
    assert readable_quote("## 3.1 Shells\nThe shell reads `x * y * z`.") == "3.1 Shells The shell reads x * y * z."
    code = readable_quote("```python\nfor i in range(3):\n    print(i)\n```")
    assert is_code_block(code) and code == "```\nfor i in range(3):\n    print(i)\n```"
