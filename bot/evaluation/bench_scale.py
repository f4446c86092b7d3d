"""`python -m bot bench --sources DIR --index DIR --scale-to N`: retrieval at N chunks, scoped
and unscoped, on the vector store the settings name (a Chroma server with CHROMA_HOST).

A base of N chunks is made of copies of the corpus (`copy-1/`, `copy-2/`, …), each page with
a line "Copy n." after its first heading (at the end of a text file), since a page with the same text as another is
skipped as a duplicate. Embedding N chunks on two cores takes hours, so
the chunks' vectors are replayed from the corpus's built index in `--index`: the first copy
gets each chunk's stored vector, every later copy that vector moved by a small random
perturbation (cosine ≈ 0.95 to the original), so the vector index holds N distinct points
as it would for N real chunks. Questions are embedded by the real model. Everything else —
the catalogue, BM25, the sentence pass — is built the usual way over the N chunks.

Timed, in turns, each question in a form no cache has seen: unscoped retrieval, retrieval
with HIDDEN_SOURCES sources hidden (a server's staff documents) and with one whole copy
hidden (a sixth of the base, the hardest case for dropping hidden chunks from the dense
ranking).
"""

from __future__ import annotations

import math
import shutil
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.evaluation.bench_corpus import HIDDEN_SOURCES, _ingest_with_progress, _ms, bench_components, timed
from bot.evaluation.bench_inputs import derive_questions, load_questions, timed_questions
from bot.rag.embeddings import MiniLMEmbeddings, build_embeddings
from bot.rag.errors import RagError
from bot.rag.index.live import LiveIndex
from bot.rag.index.retrieval import HybridRetriever
from bot.rag.service import RagService
from bot.settings import Settings

PERTURBATION = 0.23  # norm of the random step added to a copy's vector before renormalising (cos ≈ 0.95)


class ReplayedEmbeddings(MiniLMEmbeddings):
    """The real model, except for texts whose vector is known: those get the known vector the
    first time and a perturbed one (its own random step) each later time."""

    def __init__(self, model: MiniLMEmbeddings, known: dict[str, np.ndarray], seed: int = 11) -> None:
        self.__dict__.update(model.__dict__)
        self._known, self._seen, self._rng = known, Counter[str](), np.random.default_rng(seed)
        self.embedded_for_real = self.replayed = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        unknown = [t for t in texts if t not in self._known]
        fresh = dict(zip(unknown, super().encode(unknown))) if unknown else {}
        self.embedded_for_real += len(unknown)
        self.replayed += len(texts) - len(unknown)
        rows = []
        for text in texts:
            if text in fresh:
                rows.append(fresh[text])
                continue
            vector, copy = self._known[text], self._seen[text]
            self._seen[text] += 1
            if copy:
                step = self._rng.standard_normal(vector.shape[0]).astype(np.float32)
                vector = vector + PERTURBATION * step / np.linalg.norm(step)
                vector = vector / np.linalg.norm(vector)
            rows.append(vector)
        return np.stack(rows).astype(np.float32)


def stored_vectors(live: LiveIndex, batch: int = 2000) -> dict[str, np.ndarray]:
    """search text -> vector of every chunk of a built index."""
    ids = list(live.version.chunks)
    known: dict[str, np.ndarray] = {}
    for lo in range(0, len(ids), batch):
        part = ids[lo:lo + batch]
        got = live.version.collection.get(ids=part, include=["embeddings"])
        vectors = dict(zip(got["ids"], got["embeddings"]))
        for chunk in live.version.chunks.get_many(part):
            known[chunk.search_text] = np.asarray(vectors[chunk.id], dtype=np.float32)
    return known


def write_copies(sources: Path, folder: Path, copies: int) -> None:
    """`copies` copies of `sources`, each HTML page marked with its copy's number."""
    for n in range(1, copies + 1):
        target = folder / f"copy-{n}"
        if not target.exists():
            shutil.copytree(sources, target, copy_function=lambda src, dst, n=n: _marked_copy(Path(src), Path(dst), n))


def _marked_copy(src: Path, dst: Path, n: int) -> None:
    suffix = src.suffix.lower()
    if suffix in (".txt", ".md", ".rst"):
        dst.write_bytes(src.read_bytes() + f"\n\nCopy {n}.\n".encode())
        return
    if suffix not in (".html", ".htm"):  # a PDF or office file is copied as it is (and skipped as a duplicate)
        shutil.copy2(src, dst)
        return
    page = src.read_bytes()
    mark = f"<p>Copy {n}.</p>".encode()
    at = page.find(b"</h1>")
    at = at + len(b"</h1>") if at >= 0 else max(page.rfind(b"</body>"), 0)
    dst.write_bytes(page[:at] + mark + page[at:])


def time_scopes(retriever: HybridRetriever, questions: Sequence[str],
                hidden: dict[str, frozenset[str]]) -> dict[str, list[float]]:
    """Seconds per retrieval, unscoped ("none") and with each hidden set, asked in turns (each
    scope first in turn), each question in a form no question-vector cache has seen."""
    forms = [str.title, str.swapcase, str.upper, str.lower, lambda q: q + " ?", lambda q: "? " + q]
    scopes = {"none": retriever} | {name: retriever.hiding(h) for name, h in hidden.items()}
    if len(scopes) > len(forms):
        raise ValueError("more scopes than question forms")
    seconds: dict[str, list[float]] = {name: [] for name in scopes}
    turns = list(zip(forms, scopes.items()))
    for i, q in enumerate(questions):
        for form, (name, scoped) in turns[i % len(turns):] + turns[:i % len(turns)]:  # each goes first in turn
            phrased = form(q)
            seconds[name].append(timed(lambda p=phrased, r=scoped: r.invoke(p))[0])
    return seconds


def run_scale_bench(settings: Settings, chunks_wanted: int, questions_file: Path | None,
                    repeats: int) -> dict[str, Any]:
    """Scoped vs unscoped retrieval at about `chunks_wanted` chunks (see the module docstring)."""
    model = build_embeddings(settings)
    if not isinstance(model, MiniLMEmbeddings):
        raise RagError("--scale-to replays the embedded model's vectors: it needs the embedded default.")
    own = settings.model_copy(update={"chroma_host": None})  # the corpus's own index, in --index
    corpus = RagService(own, components=bench_components(own, model))
    if corpus.base.index.active_name() is None:
        raise RagError(f"--scale-to needs the corpus's index built in {settings.vectorstore_dir} "
                       "(run the bench once without --scale-to).")
    live = corpus.start()
    per_copy = len(live.version.chunks)
    copies = max(1, math.ceil(chunks_wanted / per_copy))
    scaled_dir = settings.vectorstore_dir.with_name(f"{settings.vectorstore_dir.name}-x{copies}")
    write_copies(settings.sources_dir, scaled_dir / "sources", copies)
    replayed = ReplayedEmbeddings(model, stored_vectors(live))
    scaled = settings.model_copy(update={  # the bench's own base: its size limit is what was asked for
        "sources_dir": scaled_dir / "sources", "vectorstore_dir": scaled_dir / "index",
        "max_chunks_per_base": max(settings.max_chunks_per_base, 2 * copies * per_copy)})
    service = RagService(scaled, components=bench_components(scaled, replayed))
    build_s, report = timed(lambda: _ingest_with_progress(service, f"building {copies} copies"))
    big = service.start()
    names = sorted(big.version.source_names)
    hidden = {"sources": frozenset(names[:HIDDEN_SOURCES]),
              "copy": frozenset(n for n in names if n.startswith(f"copy-{copies}/"))}
    asked_base = load_questions(questions_file) if questions_file else derive_questions(big.version.chunks.values())
    asked = timed_questions(asked_base, ["{q}", "Please tell me: {q}", "Quick question. {q}"], repeats)
    big.retriever.invoke("What is this about?")  # warm-up
    seconds = time_scopes(big.retriever, asked, hidden)
    plain = _ms(seconds["none"], 50)
    return {
        "mode": "scaled", "store": f"chroma server {settings.chroma_host}:{settings.chroma_port}"
        if settings.uses_chroma_server else f"embedded chroma in {scaled.vectorstore_dir}",
        "copies": copies, "chunks": len(big.version.chunks), "sources": len(names),
        "index_status": "built" if report.rebuilt else "reused", "build_s": build_s,
        "embedded_for_real": replayed.embedded_for_real, "replayed": replayed.replayed, "timed": len(asked),
        "hidden_sources": len(hidden["sources"]),
        "hidden_copy_chunks": sum(len(big.version.chunk_ids_of_source(n)) for n in hidden["copy"]),
        "retrieval_p50_ms": plain, "retrieval_p95_ms": _ms(seconds["none"], 95),
        "scoped_sources_p50_ms": _ms(seconds["sources"], 50),
        "scoped_sources_vs_unscoped": _ms(seconds["sources"], 50) / plain,
        "scoped_copy_p50_ms": _ms(seconds["copy"], 50),
        "scoped_copy_vs_unscoped": _ms(seconds["copy"], 50) / plain,
        "per_question_ratio_median": statistics.median(
            s / p for s, p in zip(seconds["sources"], seconds["none"])),
    }


def format_scale(result: dict[str, Any]) -> str:
    return "\n".join([
        f"{result['chunks']:,} chunks ({result['copies']} copies of the corpus, {result['sources']:,} sources) "
        f"on {result['store']}; index {result['index_status']} in {result['build_s']:.0f}s; "
        f"{result['timed']} questions timed",
        f"retrieval p50 / p95 (ms):                 {result['retrieval_p50_ms']:.1f} / {result['retrieval_p95_ms']:.1f}",
        f"scoped, {result['hidden_sources']} sources hidden p50 (ms):   {result['scoped_sources_p50_ms']:.1f}"
        f"  ({result['scoped_sources_vs_unscoped']:.2f}x unscoped)",
        f"scoped, one copy hidden ({result['hidden_copy_chunks']:,} chunks) p50 (ms): {result['scoped_copy_p50_ms']:.1f}"
        f"  ({result['scoped_copy_vs_unscoped']:.2f}x unscoped)",
    ])
