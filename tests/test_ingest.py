"""Ingest against a real on-disk Chroma with the real embedding model: stable ids,
idempotent re-ingest, updates, removals, model changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.service import RagService
from bot.settings import Settings
from tests.helpers import counting_chunks


def test_first_ingest_then_unchanged_reingest_embeds_nothing(settings: Settings, embeddings: MiniLMEmbeddings) -> None:
    service, counting = counting_chunks(settings, embeddings)
    first = service.ingest()
    assert first.added >= 4 and first.rebuilt
    assert counting.embedded == first.added
    name = service.base.index.active_name()

    again = RagService(settings, components=service.components).ingest()
    assert (again.added, again.updated, again.removed) == (0, 0, 0)
    assert again.unchanged == first.added
    assert not again.rebuilt
    assert counting.embedded == first.added, "unchanged chunks must not be re-embedded"
    assert service.base.index.active_name() == name


def test_chunk_ids_are_the_same_in_a_fresh_store(make_settings: Callable[..., Settings], tmp_path: Path, embeddings: MiniLMEmbeddings) -> None:
    one = RagService(make_settings(vectorstore_dir=tmp_path / "a"), embeddings=embeddings)
    two = RagService(make_settings(vectorstore_dir=tmp_path / "b"), embeddings=embeddings)
    one.ingest()
    two.ingest()
    assert sorted(one.start().version.chunks) == sorted(two.start().version.chunks)


def test_changed_source_updates_and_removed_source_disappears(settings: Settings, sources_dir: Path, embeddings: MiniLMEmbeddings) -> None:
    service, counting = counting_chunks(settings, embeddings)
    service.ingest()
    extra = sources_dir / "lighthouse.md"
    extra.write_text(
        "---\ntitle: The Lighthouse Keeper\n---\nThe old lighthouse on Skerry Point was painted "
        "bright green in 1911. Its keeper, Ada Morrow, kept a log of every ship for forty years.\n",
        encoding="utf-8",
    )
    report = service.ingest()
    assert report.added == 1 and report.unchanged >= 4
    assert counting.embedded == report.added + report.unchanged  # only the new chunk was embedded
    answer = service.ask("What colour was the lighthouse on Skerry Point painted?")
    assert answer.answerable and "green" in answer.answer
    assert answer.citations[0].source == "lighthouse.md"
    assert {s.name: s.title for s in service.sources()}["lighthouse.md"] == "The Lighthouse Keeper"

    extra.write_text("The old lighthouse on Skerry Point was painted bright red in 1911.\n", encoding="utf-8")
    report = service.ingest()
    assert report.updated == 1
    assert "red" in service.ask("What colour was the lighthouse on Skerry Point painted?").answer

    extra.unlink()
    report = service.ingest()
    assert report.removed == 1
    assert [s.name for s in service.sources()] == ["haliva-resignation.txt"]
    assert all(c.source != "lighthouse.md" for c in service.retrieve("lighthouse Skerry Point painted"))
    assert not service.ask("What colour was the lighthouse on Skerry Point painted?").answerable


def test_a_different_embedding_model_triggers_a_full_reindex(settings: Settings, embeddings: MiniLMEmbeddings) -> None:
    RagService(settings, embeddings=embeddings).ingest()
    service, other = counting_chunks(settings, embeddings, model_id="another-model")
    service.start()  # finds the old index, sees the model differs, re-indexes everything
    assert service.last_reload is not None and service.last_reload.reason
    assert "another-model" in service.last_reload.reason
    version = service.start().version
    assert version.embedding_model == "another-model"
    assert other.embedded == len(version.chunks)


def test_an_interrupted_build_is_ignored_and_cleaned_up(settings: Settings, embeddings: MiniLMEmbeddings) -> None:
    service = RagService(settings, embeddings=embeddings)
    service.ingest()
    live = service.base.index.active_name()
    service.base.index.client.create_collection("sources_v99", metadata={"state": "building"})
    assert service.base.index.active_name() == live
    (settings.sources_dir / "new.txt").write_text("A new source about tide tables in Dover harbour.", encoding="utf-8")
    service.ingest()
    names = [c.name for c in service.base.index.client.list_collections()]
    assert "sources_v99" not in names


def test_retired_versions_give_their_disk_space_back(service: RagService, sources_dir: Path) -> None:
    service.ingest()
    store = service.settings.vectorstore_dir
    for n in range(6):  # six reloads that each change a source
        (sources_dir / "note.md").write_text(f"The harbour bell rang {n + 2} times at noon.\n", encoding="utf-8")
        service.ingest()
    (sources_dir / "note.md").unlink()
    service.ingest()
    folders = [p for p in store.iterdir() if p.is_dir()]
    versions = [c.name for c in service.base.index.client.list_collections()]
    assert len(versions) == 2, "the live version and the one before it"
    assert len(folders) <= 2, f"segment folders of retired versions are deleted: {len(folders)} left"


def test_unchanged_files_are_not_converted_again(service: RagService, sources_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (sources_dir / "guide.md").write_text("# Guide\n\nThe harbour bell rings at noon.\n", encoding="utf-8")
    service.ingest()
    converted: list[str] = []
    from bot.rag.ingest import sources as loader

    original = loader.load_source
    monkeypatch.setattr(loader, "load_source", lambda path, name, *a, **k: converted.append(name) or original(path, name, *a, **k))
    again = service.ingest()
    assert converted == [] and not again.rebuilt and again.unchanged > 0
    (sources_dir / "guide.md").write_text("# Guide\n\nThe harbour bell rings at six.\n", encoding="utf-8")
    changed = service.ingest()
    assert converted == ["guide.md"] and changed.updated == 1


def test_a_changed_title_alone_reaches_the_chunks_and_the_next_ingest_reads_nothing(
    service: RagService, sources_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (sources_dir / "guide.md").write_text("# Guide\n\nThe harbour bell rings at noon.\n", encoding="utf-8")
    service.ingest()
    (sources_dir / "guide.md.source.json").write_text('{"title": "Harbour guide"}', encoding="utf-8")
    retitled = service.ingest()  # same text, same chunks: nothing embedded, but a new version
    assert retitled.rebuilt and retitled.updated == 0 and retitled.added == 0
    top = service.retrieve("When does the harbour bell ring?")[0]
    assert top.source == "guide.md" and top.title == "Harbour guide"
    converted: list[str] = []
    from bot.rag.ingest import sources as loader

    original = loader.load_source
    monkeypatch.setattr(loader, "load_source", lambda path, name, *a, **k: converted.append(name) or original(path, name, *a, **k))
    again = service.ingest()
    assert converted == [] and not again.rebuilt, "the new file hash was recorded: nothing is read again"
