"""Symbolic links in the sources folder: nothing outside the folder is ever read. Real links in
a temporary folder point at a secret file and a secret folder beside it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.rag.ingest.sources import load_sources
from bot.settings import Settings
from tests.helpers import run_cli

SECRET = "root:$6$hunter2hash:19000:0:99999:7:::"
OUTSIDE = "a link to outside the sources folder (not read)"


@pytest.fixture
def linked_folder(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "shadow").write_text(SECRET + "\n", encoding="utf-8")
    (outside / "private" / "keys.md").write_text(f"# Keys\n\n{SECRET}\n", encoding="utf-8")
    sources = tmp_path / "linked-sources"
    (sources / "guides").mkdir(parents=True)
    (sources / "guides" / "ferry.md").write_text("# Ferry\n\nThe ferry leaves at nine from pier four.\n")
    (sources / "shadow.txt").symlink_to(outside / "shadow")
    (sources / "private").symlink_to(outside / "private", target_is_directory=True)
    (sources / "guides" / "sneaky.md").symlink_to("../../outside/private/keys.md")  # relative link
    (sources / "guides.md").symlink_to(sources / "guides" / "ferry.md")  # inside: allowed
    return sources


def test_links_out_of_the_folder_are_skipped_with_a_warning(
    linked_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.rag.ingest.sources"):
        loaded = load_sources(linked_folder, max_bytes=100_000)
    assert [d.name for d in loaded.documents] == ["guides/ferry.md"]
    assert ("guides.md", "same text as guides/ferry.md") in loaded.skipped  # read: its target is inside
    assert sorted(loaded.skipped) == [("guides.md", "same text as guides/ferry.md"), ("guides/sneaky.md", OUTSIDE),
                                      ("private", OUTSIDE), ("shadow.txt", OUTSIDE)]
    assert all(SECRET not in d.text for d in loaded.documents)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3 and all("a link to outside the sources folder" in m for m in warned)


def test_ingest_never_indexes_a_link_to_a_secret(linked_folder: Path, make_settings: object) -> None:
    settings: Settings = make_settings(sources_dir=linked_folder)  # type: ignore[operator]
    ingest = run_cli(settings, "ingest")
    assert ingest.returncode == 0, ingest.stderr
    assert "shadow.txt" in ingest.stdout + ingest.stderr and SECRET not in ingest.stdout + ingest.stderr
    listing = run_cli(settings, "sources")
    assert "shadow.txt" not in listing.stdout and "keys.md" not in listing.stdout
    summary = run_cli(settings, "summary", "shadow.txt")
    assert SECRET not in summary.stdout + summary.stderr and "hunter2" not in summary.stdout
