"""Two CLI processes on one index, as two shells share a folder: a question asked while another
process builds the index is answered at once from the version ready now (stderr says an update
is in progress), neither waiting for that build nor starting one of its own."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bot.settings import PROJECT_ROOT, Settings
from tests.held_build import HOLD_MARKER
from tests.helpers import cli_env, run_cli

LIGHTHOUSE = f"The old lighthouse on Skerry Point was painted bright green in 1911. {HOLD_MARKER}\n"
NOTE = "another process is updating the index"


def _wait_until_building(hold: Path, ingest: subprocess.Popen[str], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not (hold / "building").exists():
        assert ingest.poll() is None, ingest.communicate()
        assert time.monotonic() < deadline, "the ingest never reached its build"
        time.sleep(0.1)


def test_ask_answers_from_the_served_version_while_another_process_ingests(settings: Settings, tmp_path: Path) -> None:
    assert run_cli(settings, "ingest").returncode == 0
    (settings.sources_dir / "lighthouse.md").write_text(LIGHTHOUSE, encoding="utf-8")
    hold = tmp_path / "hold"
    hold.mkdir()
    ingest = subprocess.Popen([sys.executable, "-m", "tests.held_build", "ingest"], env=cli_env(settings, HOLD_DIR=str(hold)),
                              cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_building(hold, ingest)
        # The ingest is held until released: an `ask` that waited for it, or embedded the new
        # file itself (held the same way), would not return before the subprocess timeout.
        asked = run_cli(settings, "ask", "Who is the IDF chief of staff?", module="tests.held_build", timeout=90,
                        HOLD_DIR=str(hold))
        assert asked.returncode == 0, asked.stderr
        assert "halevi" in asked.stdout.lower()
        assert f"note: {NOTE}; answering from the version ready now" in asked.stderr
        listing = run_cli(settings, "sources", module="tests.held_build", timeout=90, HOLD_DIR=str(hold))
        assert listing.returncode == 0 and "haliva-resignation.txt" in listing.stdout
        assert "lighthouse.md" not in listing.stdout, "the version being built is not served yet"
        assert ingest.poll() is None, "the ingest was still building all along"
    finally:
        (hold / "release").touch()
        out, err = ingest.communicate(timeout=180)
    assert ingest.returncode == 0, err
    assert "1 chunk(s) added" in out, out
    after = run_cli(settings, "ask", "What colour was the lighthouse on Skerry Point painted?")
    assert "green" in after.stdout and NOTE not in after.stderr
