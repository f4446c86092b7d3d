"""`python -m tests.held_build COMMAND ...`: the CLI, with an embedder that holds a build mid-way
as a big corpus would for minutes. From the first text holding HOLD_MARKER on, it creates
HOLD_DIR/building and waits until HOLD_DIR/release exists; every other text is embedded at once
(questions, sources already indexed)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from bot.cli import run
from bot.rag.embeddings import MiniLMEmbeddings

HOLD_MARKER = "HELDBUILDMARKER"
_encode = MiniLMEmbeddings.encode


def _held_encode(self: MiniLMEmbeddings, texts: list[str]) -> np.ndarray:
    if any(HOLD_MARKER in text for text in texts):
        folder = Path(os.environ["HOLD_DIR"])
        (folder / "building").touch()
        while not (folder / "release").exists():
            time.sleep(0.05)
    return _encode(self, texts)


if __name__ == "__main__":
    MiniLMEmbeddings.encode = _held_encode  # type: ignore[method-assign]
    sys.exit(run(sys.argv[1:]))
