"""Server mode: the same ingest/ask/reload code against a real `chroma run` server."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.errors import IndexUnavailableError
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings
from tests.chroma_server import ChromaServer, free_port


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server")).start()
    yield server
    server.stop()


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings], chroma_server: ChromaServer) -> Settings:
    return make_settings(chroma_host="127.0.0.1", chroma_port=chroma_server.port,
                         collection_prefix=f"t{uuid.uuid4().hex[:8]}")


def test_ingest_ask_reload_against_the_server(server_settings: Settings, sources_dir: Path, embeddings: MiniLMEmbeddings) -> None:
    service = RagService(server_settings, embeddings=embeddings)
    assert service.settings.uses_chroma_server
    first = service.ingest()
    assert first.added >= 4
    assert not server_settings.vectorstore_dir.exists(), "server mode writes nothing locally"
    assert "253" in service.ask("How many hostages were taken back to Gaza?").answer
    assert not service.ingest().rebuilt  # unchanged: nothing re-embedded
    (sources_dir / "lighthouse.md").write_text("The old lighthouse on Skerry Point was painted bright green in 1911.\n", encoding="utf-8")
    assert service.ingest().added == 1
    assert "green" in service.ask("What colour was the lighthouse on Skerry Point painted?").answer


def test_two_processes_share_one_index(server_settings: Settings, embeddings: MiniLMEmbeddings) -> None:
    RagService(server_settings, embeddings=embeddings).ingest()
    other = RagService(server_settings, embeddings=embeddings)  # e.g. a second shard
    answer = other.ask("Who is the IDF chief of staff?")
    assert "halevi" in answer.answer.lower()
    assert other.last_reload is None, "the second process used the shared index, it did not rebuild it"


def test_a_reload_by_one_process_reaches_the_others(server_settings: Settings, sources_dir: Path, embeddings: MiniLMEmbeddings) -> None:
    reloader = RagService(server_settings, embeddings=embeddings)
    reloader.ingest()
    follower = RagService(server_settings.model_copy(update={"index_refresh_seconds": 0.01}), embeddings=embeddings)
    assert not follower.ask("What colour was the lighthouse on Skerry Point painted?").answerable
    (sources_dir / "lighthouse.md").write_text("The old lighthouse on Skerry Point was painted bright green in 1911.\n", encoding="utf-8")
    reloader.ingest()
    time.sleep(0.02)
    assert "green" in follower.ask("What colour was the lighthouse on Skerry Point painted?").answer
    assert follower.start().version.name == reloader.start().version.name


def test_server_down_at_start_is_a_clear_error_then_recovers(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(chroma_host="127.0.0.1", chroma_port=port)
    service = RagService(settings, embeddings=embeddings)
    with pytest.raises(IndexUnavailableError, match=f"Chroma server at 127.0.0.1:{port}"):
        service.ask("Who is the IDF chief of staff?")
    server = ChromaServer(tmp_path / "late-server", port=port).start()
    try:
        assert "halevi" in service.ask("Who is the IDF chief of staff?").answer.lower()
    finally:
        server.stop()


def test_cli_with_server_down(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(chroma_host="127.0.0.1", chroma_port=free_port())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(settings.vectorstore_dir.parent), "SOURCES_DIR": str(settings.sources_dir),
           "CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(settings.chroma_port), "LLM_PROVIDER": "extractive"}
    result = subprocess.run([sys.executable, "-m", "bot", "ask", "Who is the IDF chief of staff?"], env=env,
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Chroma server" in result.stderr and "Traceback" not in result.stderr


def test_server_going_away_mid_traffic_then_recovering(make_settings: Callable[..., Settings], embeddings: MiniLMEmbeddings, tmp_path: Path) -> None:
    server = ChromaServer(tmp_path / "own-server").start()
    try:
        settings = make_settings(chroma_host="127.0.0.1", chroma_port=server.port)
        service = RagService(settings, embeddings=embeddings)
        service.ingest()
        assert service.ask("How many hostages were taken back to Gaza?").answerable
        server.stop()
        with pytest.raises(IndexUnavailableError, match="cannot be reached"):
            service.ask("How many hostages were taken back to Gaza?")
        server.start()
        assert "253" in service.ask("How many hostages were taken back to Gaza?").answer
    finally:
        server.stop()


def test_two_processes_starting_at_once_on_an_empty_server_build_one_index(server_settings: Settings) -> None:
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(server_settings.data_dir.parent), "LLM_PROVIDER": "extractive",
        "SOURCES_DIR": str(server_settings.sources_dir), "DATA_DIR": str(server_settings.data_dir),
        "CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(server_settings.chroma_port),
        "COLLECTION_PREFIX": server_settings.collection_prefix,
    }
    both = [subprocess.Popen([sys.executable, "-m", "bot", "ask", "Who is the IDF chief of staff?"], env=env,
                             cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [process.communicate(timeout=180) for process in both]
    assert [process.returncode for process in both] == [0, 0], [err for _, err in results]
    assert all("halevi" in out.lower() for out, _ in results)
    prefix = server_settings.collection_prefix
    names = [c.name for c in RagService(server_settings).base.index.client.list_collections() if c.name.startswith(prefix)]
    assert names == [f"{prefix}_v1"], "one process built, the other waited and used it"


def test_a_collection_bigger_than_one_server_query_is_read_in_pages(chroma_server: ChromaServer) -> None:
    """A Chroma server refuses one `get` of more than ~32k records ("too many SQL variables");
    the catalogue of a 150k-chunk version must still load. Vectors are made up: no model needed."""
    import chromadb

    from bot.rag.index.version import load_catalogue

    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server.port)
    collection = client.create_collection(f"big{uuid.uuid4().hex[:8]}", embedding_function=None)
    n, rng = 40_000, np.random.default_rng(7)
    for lo in range(0, n, 5000):
        ids = [f"doc-{i // 100}.txt#{i % 100}-x" for i in range(lo, lo + 5000)]
        metas = [{"source": f"doc-{i // 100}.txt", "chunk_index": i % 100, "start": 10 * (i % 100),
                  "end": 10 * (i % 100) + 9, "source_hash": "h"} for i in range(lo, lo + 5000)]
        collection.add(ids=ids, embeddings=rng.random((5000, 8), dtype=np.float32), metadatas=metas)
    catalogue = load_catalogue(collection, None)
    assert len(catalogue) == n and len(catalogue.sources) == n // 100
    assert [c.index for c in catalogue.sources["doc-7.txt"].chunks] == list(range(100))
