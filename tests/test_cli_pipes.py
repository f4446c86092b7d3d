"""The command line as a shell user runs it: output piped into a reader that stops early
(`| head -1`) ends quietly, and `.env.example` documents only settings that exist."""

from __future__ import annotations

import re
import subprocess
import sys

from bot.settings import PROJECT_ROOT, Settings

QUESTIONS = "Why did Haliva resign?\nWho is Aharon Haliva?\nWhen did Haliva resign?\nWhat did the IDF statement say?\n"


def test_a_reader_that_stops_early_gets_no_traceback(settings: Settings) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(settings.vectorstore_dir.parent), "SOURCES_DIR": str(settings.sources_dir),
           "VECTORSTORE_DIR": str(settings.vectorstore_dir), "DATA_DIR": str(settings.data_dir),
           "LLM_PROVIDER": "extractive", "PY": sys.executable}
    for command in ('"$PY" -m bot ask --json | head -1', '"$PY" -m bot ask "Why did Haliva resign?" | head -1'):
        done = subprocess.run(["sh", "-c", command], input=QUESTIONS, capture_output=True, text=True, env=env,
                              cwd=PROJECT_ROOT, timeout=180)
        assert len(done.stdout.splitlines()) == 1 and "haliva" in done.stdout.lower()
        assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr


def test_env_example_documents_settings_that_exist() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    names = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE)
    known = {name.upper() for name in Settings.model_fields} | {"SOURCEBOT_HOME"}
    assert names and not set(names) - known, set(names) - known
    assert "# #" not in text
    moderators = text[:text.index("MODERATOR_ROLE_IDS=")].rsplit("\n\n", 1)[-1].rsplit("=", 1)[-1]
    assert "allowed to /reload" not in moderators and "/source" in moderators
