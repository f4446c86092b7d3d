"""Retrieval ranks the best fused chunks again by their sentence closest to the question: one
sentence that answers, in a chunk about other things, is not drowned by its neighbours."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.index import retrieval
from bot.rag.service import RagService
from bot.settings import Settings

_ANSWER = "Without the -w option the server starts one worker process."
_PAGES = {
    "deployment.md": "# Deployment\n\n" + " ".join([
        "Logs go to standard error unless a log file is configured.",
        "TLS certificates are read from the paths given in the settings file.",
        "The settings file is reloaded when the process receives SIGHUP.",
        _ANSWER,
        "Static files should be served by the front proxy, not by the application.",
        "Timeouts are given in seconds and apply to each request separately.",
    ]),
    "workers.md": "# Workers\n\nWorker processes handle requests. Each worker process runs the application "
                  "and serves one request at a time. Workers are restarted when they crash.",
    "scaling.md": "# Scaling\n\nMore worker processes let the server handle more requests at once, "
                  "at the cost of memory. Worker processes share nothing.",
    "tuning.md": "# Tuning\n\nTune the server for your load: watch how busy the worker processes are "
                 "and how long requests wait before a worker takes them.",
}


@pytest.mark.parametrize("by_sentence", [True, False])
def test_a_chunk_whose_one_sentence_answers_is_retrieved(
    by_sentence: bool, make_settings: Callable[..., Settings], tmp_path: Path, embeddings: MiniLMEmbeddings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in _PAGES.items():
        (folder / name).write_text(text, encoding="utf-8")
    if not by_sentence:
        monkeypatch.setattr(retrieval, "SENTENCE_WEIGHT", 0.0)
    service = RagService(make_settings(sources_dir=folder, top_k=2), embeddings=embeddings)
    found = service.retrieve("how many worker processes does the server start by default?")
    assert ("deployment.md" in [c.source for c in found]) is by_sentence
