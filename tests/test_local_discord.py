"""`python -m tests.local_discord`, the way to try the bot without Discord, driven through its
stdin by a scripted session: a mention answered in the thread the bot opens, a follow-up there,
/ask, a moderator's ephemeral /stats, a 👍 click; each printed as a member reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.settings import PROJECT_ROOT, Settings
from tests.test_conversation_store import FERRY, FIRST, FOLLOW_UP, LIGHTHOUSE

SCRIPT = f"""@bot {FIRST}
:in thread
{FOLLOW_UP}
:in #questions
/ask When did Captain Ivo Alder retire?
:click 3 👍
:as mod
/stats
:quit
"""


def test_a_scripted_session_reads_the_bots_answers(settings: Settings, sources_dir: Path, tmp_path: Path) -> None:
    for name, text in (("lighthouse.md", LIGHTHOUSE), ("ferry.md", FERRY)):
        (sources_dir / name).write_text(text, encoding="utf-8")
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SOURCES_DIR": str(settings.sources_dir),
        "VECTORSTORE_DIR": str(settings.vectorstore_dir), "DATA_DIR": str(settings.data_dir),
        "LLM_PROVIDER": "extractive", "ANSWER_IN_THREAD": "true",
    }
    log = tmp_path / "bot.log"
    done = subprocess.run([sys.executable, "-m", "tests.local_discord", "--log", str(log), "--patience", "30"],
                          input=SCRIPT, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=240)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr + log.read_text()
    assert f"sourcebot opened the thread “{FIRST}” in #questions" in out
    first, follow_up, asked = (out.split(f"[{n}] sourcebot in {where}", 1)[1]
                               for n, where in ((1, "thread"), (2, "thread"), (3, "#questions")))
    assert "tomas berg" in first.split("\n> ")[0].lower()
    assert "1987" in follow_up.split("\n> ")[0]  # the follow-up, no mention needed in the thread
    assert "sourcebot is thinking…" in asked and "(edited)" in asked  # /ask: deferred, then the answer
    assert "2003" in asked and "┃ [1] ferry.md" in asked  # its sources embed, as text
    assert "[👍] [👎]" in first and "(only you can see this)" in out.split("> :click 3 👍")[1]
    stats = out.split("> /stats")[1]
    assert "(only you can see this)" in stats and "questions: 3" in stats
    assert "Traceback" not in done.stderr and "Traceback" not in log.read_text()
