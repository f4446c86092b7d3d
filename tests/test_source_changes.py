"""Source changes as the host makes them from the command line (in a subprocess, over real
Chroma, SQLite and the embedding model): an add killed mid-index is registered and then undone,
never left as an orphan; the chunk budget; replacing a source of the same name; adding a
folder's files; and readable crawl names (against tests/web_site.py)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT, Settings
from tests.helpers import run_cli

GUIDE = "# Lantern Club handbook\n\nThe Lantern Club meets every Thursday evening in the old boathouse on Mill Lane.\n"
FEES = "# Fees\n\nMembership of the Lantern Club costs twelve euros per year.\n"
BASE = ("--base", "guild-7")


def rows(settings: Settings, *base: str) -> dict[str, dict]:
    listing = run_cli(settings, "source", "list", "--json", *base)
    assert listing.returncode == 0, listing.stderr
    return {r["name"]: r for r in json.loads(listing.stdout)}


def ask(settings: Settings, question: str) -> str:
    """The answer from a server's base, read in a fresh process."""
    code = ("import sys; from bot.settings import Settings; from bot.rag.service import RagService; "
            "s = RagService(Settings()); print(s.bases.get('guild-7').start().chain.invoke(sys.argv[1]).answer)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(settings.vectorstore_dir.parent), "SOURCES_DIR": str(settings.sources_dir),
           "VECTORSTORE_DIR": str(settings.vectorstore_dir), "DATA_DIR": str(settings.data_dir), "LLM_PROVIDER": "extractive"}
    done = subprocess.run([sys.executable, "-c", code, question], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def audit(settings: Settings) -> list[tuple[str, str, str]]:
    from bot.state import Database, SourceRegistry, database_url

    db = Database(database_url(settings))
    try:
        return [(a.action, a.target or "", a.result) for a in SourceRegistry(db).audit_log("guild-7")]
    finally:
        db.dispose()


def content_hash(settings: Settings, name: str) -> str | None:
    from bot.state import Database, SourceRegistry, database_url

    db = Database(database_url(settings))
    try:
        row = SourceRegistry(db).get("guild-7", name)
        return row.content_hash if row else None
    finally:
        db.dispose()


def test_an_add_killed_mid_index_is_registered_then_undone(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(GUIDE, encoding="utf-8")
    assert run_cli(settings, "source", "add", str(tmp_path / "guide.md"), *BASE).returncode == 0
    big = tmp_path / "almanac.md"
    big.write_text("".join(f"## Entry {n}\n\nThe almanac entry {n} tells of tide {n * 7} on shore {n}.\n\n"
                           for n in range(1500)), encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SOURCES_DIR": str(settings.sources_dir),
           "VECTORSTORE_DIR": str(settings.vectorstore_dir), "DATA_DIR": str(settings.data_dir), "LLM_PROVIDER": "extractive"}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "-v", "source", "add", str(big), *BASE], env=env,
                            cwd=PROJECT_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        while "new chunk(s) embedded" not in (line := proc.stderr.readline()):
            assert line and time.monotonic() < deadline, "the add never started embedding"
        os.kill(proc.pid, signal.SIGKILL)  # mid-index: some chunks embedded, the add not recorded
    finally:
        proc.kill()
        proc.wait()
    folder = settings.data_dir / "bases" / "guild-7" / "files"
    assert (folder / "almanac.md").exists()  # the kill left the file behind...
    listed = rows(settings, *BASE)
    assert listed["almanac.md"]["status"] == "pending"  # ...but registered: the listing shows it
    assert ("add", "almanac.md", "pending") in audit(settings)
    (tmp_path / "fees.md").write_text(FEES, encoding="utf-8")
    after = run_cli(settings, "source", "add", str(tmp_path / "fees.md"), *BASE)
    assert after.returncode == 0, after.stderr
    assert "almanac" not in after.stdout  # the orphan was not ingested along with the next add
    assert set(rows(settings, *BASE)) == {"guide.md", "fees.md"} and not (folder / "almanac.md").exists()
    assert audit(settings)[:3] == [("add", "fees.md", "ok"), ("add", "fees.md", "pending"), ("add", "almanac.md", "failed")]
    assert "twelve euros" in ask(settings, "How much does membership of the Lantern Club cost?")
    again = run_cli(settings, "source", "remove", "almanac.md", *BASE)
    assert again.returncode == 2 and "no source called 'almanac.md'" in again.stderr


def test_the_chunk_budget_names_its_limit_and_the_old_index_keeps_serving(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(GUIDE, encoding="utf-8")
    headings = tmp_path / "headings.md"
    headings.write_text("".join(f"# Heading {n}\n\nLine {n}.\n\n" for n in range(5000)), encoding="utf-8")
    limits = {"MAX_CHUNKS_PER_SOURCE": "40", "MAX_CHUNKS_PER_BASE": "60"}
    assert run_with(settings, limits, "source", "add", str(tmp_path / "guide.md"), *BASE).returncode == 0
    started = time.monotonic()
    refused = run_with(settings, limits, "source", "add", str(headings), *BASE)
    assert refused.returncode == 2 and "over the limit of 40 chunks per source (MAX_CHUNKS_PER_SOURCE)" in refused.stderr
    assert time.monotonic() - started < 60  # refused before embedding thousands of chunks
    several = tmp_path / "several"
    several.mkdir()
    for n in range(3):
        (several / f"part{n}.md").write_text("".join(f"# Part {n} heading {k}\n\nText {k}.\n\n" for k in range(30)),
                                             encoding="utf-8")
    over = run_with(settings, limits, "source", "add", str(several), *BASE)
    assert over.returncode == 2 and "over its limit of 60 (MAX_CHUNKS_PER_BASE)" in over.stderr
    assert set(rows(settings, *BASE)) == {"guide.md", "part0.md"}  # the third part would pass 60
    assert "boathouse on Mill Lane" in ask(settings, "Where does the Lantern Club meet?")


def test_a_replacement_over_the_source_limit_is_refused_and_the_old_version_stays(settings: Settings,
                                                                                  tmp_path: Path) -> None:
    limits = {"MAX_CHUNKS_PER_SOURCE": "40", "MAX_CHUNKS_PER_BASE": "200"}
    (tmp_path / "guide.md").write_text(GUIDE, encoding="utf-8")
    assert run_with(settings, limits, "source", "add", str(tmp_path / "guide.md"), *BASE).returncode == 0
    first = rows(settings, *BASE)["guide.md"]
    bigger = tmp_path / "new" / "guide.md"
    bigger.parent.mkdir()
    bigger.write_text(GUIDE.replace("Thursday", "Friday") + "".join(f"# Rule {n}\n\nRule {n} applies.\n\n"
                                                                  for n in range(60)), encoding="utf-8")
    refused = run_with(settings, limits, "source", "add", str(bigger), "--replace", *BASE)
    assert refused.returncode == 2, refused.stdout
    assert "replaced" not in refused.stdout
    assert "over the limit of 40 chunks per source (MAX_CHUNKS_PER_SOURCE)" in refused.stderr
    row = rows(settings, *BASE)["guide.md"]
    assert (row["chunks"], row["status"], row["updated_at"]) == (first["chunks"], "ready", first["updated_at"])
    assert content_hash(settings, "guide.md") == hashlib.sha256(GUIDE.encode()).hexdigest()
    folder = settings.data_dir / "bases" / "guild-7" / "files"
    assert (folder / "guide.md").read_text(encoding="utf-8") == GUIDE  # the old file is back
    assert audit(settings)[0] == ("replace", "guide.md", "failed")
    assert "Thursday" in ask(settings, "When does the Lantern Club meet?")
    (tmp_path / "fees.md").write_text(FEES, encoding="utf-8")
    again = run_with(settings, limits, "source", "add", str(tmp_path / "fees.md"), *BASE)
    assert again.returncode == 0 and "MAX_CHUNKS" not in again.stderr  # later changes carry no left-over failure


def test_sources_kept_over_their_limit_count_against_the_base(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "club"
    folder.mkdir()
    sections = lambda name, n: "".join(f"# {name} heading {k}\n\n{name} text {k}.\n\n" for k in range(n))  # noqa: E731
    (folder / "a.md").write_text(sections("Alpha", 30), encoding="utf-8")
    limits = {"MAX_CHUNKS_PER_SOURCE": "40", "MAX_CHUNKS_PER_BASE": "60"}
    limits = {**limits, "SOURCES_DIR": str(folder)}
    first = run_with(settings, limits, "ingest")
    assert first.returncode == 0, first.stderr
    (folder / "a.md").write_text(sections("Alpha", 50), encoding="utf-8")  # over 40: its 30 chunks keep serving
    (folder / "b.md").write_text(sections("Beta", 35), encoding="utf-8")  # 30 + 35 is over 60
    over = run_with(settings, limits, "ingest")
    assert over.returncode == 2 and "would hold 65 chunks, over its limit of 60 (MAX_CHUNKS_PER_BASE)" in over.stderr
    listed = run_with(settings, limits, "sources")
    assert listed.returncode == 0 and "a.md" in listed.stdout and "b.md" not in listed.stdout


def run_with(settings: Settings, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(settings.vectorstore_dir.parent), "SOURCES_DIR": str(settings.sources_dir),
           "VECTORSTORE_DIR": str(settings.vectorstore_dir), "DATA_DIR": str(settings.data_dir),
           "LLM_PROVIDER": "extractive", **extra}
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=180)


def test_a_file_of_the_same_name_replaces_the_old_one_when_asked(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(GUIDE, encoding="utf-8")
    assert run_cli(settings, "source", "add", str(tmp_path / "guide.md"), *BASE).returncode == 0
    first = rows(settings, *BASE)["guide.md"]
    (tmp_path / "guide.md").write_text(GUIDE.replace("Thursday", "Friday"), encoding="utf-8")
    refused = run_cli(settings, "source", "add", str(tmp_path / "guide.md"), *BASE)
    assert refused.returncode == 2 and "already exists" in refused.stderr and "--replace" in refused.stderr
    assert "Thursday" in ask(settings, "When does the Lantern Club meet?")
    replaced = run_cli(settings, "source", "add", str(tmp_path / "guide.md"), "--replace", *BASE)
    assert replaced.returncode == 0 and "replaced `guide.md`" in replaced.stdout, replaced.stderr
    assert "Friday" in ask(settings, "When does the Lantern Club meet?")
    row = rows(settings, *BASE)["guide.md"]
    assert row["status"] == "ready" and row["added_at"] == first["added_at"]  # one source, its history kept
    (tmp_path / "broken.md").write_text("   \n", encoding="utf-8")
    bad = run_cli(settings, "source", "add", str(tmp_path / "broken.md"), "--name", "guide", "--replace", *BASE)
    assert bad.returncode == 2 and "empty" in bad.stderr
    assert "Friday" in ask(settings, "When does the Lantern Club meet?")  # a bad new version changes nothing
    missing = run_cli(settings, "source", "add", str(tmp_path / "broken.md"), "--replace", *BASE)
    assert missing.returncode == 2


def test_adding_a_folder_adds_each_of_its_files(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "club"
    folder.mkdir()
    (folder / "guide.md").write_text(GUIDE, encoding="utf-8")
    (folder / "fees.md").write_text(FEES, encoding="utf-8")
    (folder / "tool.exe").write_bytes(b"MZ\x90\x00")
    done = run_cli(settings, "source", "add", str(folder), *BASE)
    assert done.returncode == 2 and "tool.exe" in done.stderr and "unsupported" in done.stderr
    assert "no such file" not in done.stderr
    assert set(rows(settings, *BASE)) == {"guide.md", "fees.md"}
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_cli(settings, "source", "add", str(empty), *BASE)
    assert nothing.returncode == 2 and "is a folder with no files" in nothing.stderr


@pytest.mark.parametrize("args", [("--name", "x")])
def test_a_folder_of_several_files_takes_no_name(settings: Settings, tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "a.md").write_text(GUIDE, encoding="utf-8")
    (tmp_path / "b.md").write_text(FEES, encoding="utf-8")
    done = run_cli(settings, "source", "add", str(tmp_path), *args, *BASE)
    assert done.returncode == 2 and "--name goes with one file" in done.stderr
