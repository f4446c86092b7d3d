"""One truth for what a knowledge base holds: `source list` and `sources` (the CLI, in a
subprocess) and /source list agree on every source's status and chunk count, the shared
sources folder's own files included, over real Chroma, SQLite and the embedding model."""

from __future__ import annotations

import json
from pathlib import Path

from bot.settings import Settings
from tests.helpers import ARTICLE, run_cli

GUIDE = (b"# Lantern Club handbook\n\nThe Lantern Club meets every Thursday evening in the old boathouse on Mill Lane.\n\n"
         b"## Fees\n\nMembership costs twelve euros per year, paid to the treasurer, Ingrid Okafor.\n")


def listed(settings: Settings, *base: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """(`source list --json`, `sources --json`) by name."""
    registry = run_cli(settings, "source", "list", "--json", *base)
    assert registry.returncode == 0, registry.stderr
    index = run_cli(settings, "sources", "--json", *base)
    assert index.returncode == 0, index.stderr
    return {r["name"]: r for r in json.loads(registry.stdout)}, {r["name"]: r for r in json.loads(index.stdout)}


def test_source_list_and_sources_agree_on_the_shared_base(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_bytes(GUIDE)
    assert run_cli(settings, "source", "add", str(tmp_path / "guide.md")).returncode == 0
    pending = run_cli(settings, "source", "list")
    assert "guide.md\tfile\t0 chunk(s)" in pending.stdout and "pending" in pending.stdout
    assert ingest_ok(settings)
    registry, index = listed(settings)
    assert set(registry) == set(index) == {"guide.md", ARTICLE.name}  # the seed article is listed, not "no sources"
    for name in registry:
        assert registry[name]["status"] == index[name]["status"] == "ready"
        assert registry[name]["chunks"] == index[name]["chunks"] >= 1
    assert registry[ARTICLE.name]["added_by"] == "host" and registry["guide.md"]["added_by"] == "cli"
    text = run_cli(settings, "source", "list").stdout
    assert "pending" not in text and f"{ARTICLE.name}\tfile\t{registry[ARTICLE.name]['chunks']} chunk(s)" in text


def test_a_server_base_lists_alike_even_with_an_empty_shared_folder(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_bytes(GUIDE)
    for file in settings.sources_dir.iterdir():
        file.unlink()  # the shared folder is empty: a server's base is still listed
    added = run_cli(settings, "source", "add", str(tmp_path / "guide.md"), "--base", "guild-5")
    assert added.returncode == 0, added.stderr
    registry, index = listed(settings, "--base", "guild-5")
    assert list(registry) == list(index) == ["guide.md"]
    assert registry["guide.md"]["chunks"] == index["guide.md"]["chunks"] >= 1 and index["guide.md"]["status"] == "ready"
    empty = run_cli(settings, "sources", "--json", "--base", "guild-6")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []


def ingest_ok(settings: Settings) -> bool:
    done = run_cli(settings, "ingest")
    assert done.returncode == 0, done.stderr
    return True
