"""The figures of one corpus for `python -m bot bench`, ours beside the baseline.

Throughput (raw embedding vs our ingest vs the baseline's ingest) is timed on a folder given
as the sample: the whole corpus for the built-in corpora, a copy of some of its files for
`--sources`. Everything else is measured on the full corpus with its index in the index
folder, which is built only when it holds no index yet: unchanged re-ingest, retrieval and
answer latency, cold start to a first answer in a fresh process and that process's peak RSS.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import chromadb
from chromadb.config import Settings as ChromaSettings

from bot.cli import ingest_progress_bar
from bot.evaluation.baseline import BaselinePipeline
from bot.evaluation.bench_inputs import derive_questions, timed_questions
from bot.evaluation.metrics import percentile
from bot.rag.components import Components
from bot.rag.embeddings import EmbeddingModel, VectorCache
from bot.rag.errors import RagError
from bot.rag.ingest.sources import load_sources
from bot.rag.models import IngestReport
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings

T = TypeVar("T")
WARM_UP = "What is this about?"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _ms(seconds: Sequence[float], q: float) -> float:
    return 1000 * (statistics.median(seconds) if q == 50 else (percentile(seconds, q) or 0.0))


def bench_components(settings: Settings, embeddings: EmbeddingModel, sentence_store: Path | None = None) -> Components:
    """Components of a new process: question vectors are never kept on disk, so each timed
    question pays for its own embedding. Sentence vectors belong to the index (ingest makes
    them); with `sentence_store`, they are kept there instead of in the data folder, so an
    ingest being timed embeds every sentence rather than finding it from an earlier run."""
    components = Components(settings, embeddings=embeddings)
    if sentence_store is not None:
        components.vectors = VectorCache(embeddings, store_dir=sentence_store)  # before anything takes it
    return components


@dataclass
class Throughput:
    figures: dict[str, Any]
    pipeline: BaselinePipeline  # the baseline over the sample (reused when it is the whole corpus)


def measure_throughput(sample: Path, index_dir: Path, embeddings: EmbeddingModel, settings: Settings,
                       rounds: int = 1) -> Throughput:
    """Raw embedding of the texts our ingest embeds for the chunks (each with its heading
    path), our ingest into a new index (timed until the new version serves; the sentence
    pass after it is reported apart), and the baseline's in-memory build, of `sample`.
    Raw embedding and our ingest alternate for `rounds` rounds and their medians are
    reported (a shared machine's noise moves one round's ratio by 20 points); the last
    round's index is left in `index_dir`. Both start warm: the model has run and the
    answerer's modules are loaded, as in a bot that reloads its sources."""
    loaded = load_sources(sample, settings.max_source_bytes)
    chunker = Components(settings, embeddings=embeddings).chunker
    texts = [c.search_text for d in loaded.documents for c in chunker(d)]
    embeddings.encode(texts[:2])  # warm-up
    raw: list[float] = []
    ours: list[float] = []
    with_sentences: list[float] = []
    sentences_s: list[float] = []
    for round_ in range(rounds):
        folder = index_dir if round_ == rounds - 1 else index_dir.with_name(f"{index_dir.name}-round{round_}")
        base = settings.model_copy(update={"sources_dir": sample, "vectorstore_dir": folder})
        components = bench_components(base, embeddings, sentence_store=folder / "sentence-vectors")
        components.answerer  # noqa: B018  # its modules load once per process, not per ingest
        raw_s, _ = timed(partial(embeddings.encode, texts))
        ingest_s, report = timed(RagService(base, components=components).ingest)
        raw.append(len(texts) / raw_s)
        ours.append(report.added / (report.live_after_s or ingest_s))  # the new version serves from then on
        with_sentences.append(report.added / ingest_s)
        sentences_s.append(report.sentences_s or 0.0)
        if folder != index_dir:
            shutil.rmtree(folder, ignore_errors=True)
    baseline_s, pipeline = timed(lambda: BaselinePipeline(sample, embeddings, components.extractive, base.top_k))
    figures = {
        "sample": {"files": len(loaded.documents) + len(loaded.failed), "chunks": len(texts),
                   "baseline_chunks": len(pipeline.chunks)},
        "throughput_rounds": rounds,
        "raw_embedding_chunks_per_s": statistics.median(raw),
        "ingest_chunks_per_s": statistics.median(ours),
        "ingest_vs_raw": statistics.median(o / r for o, r in zip(ours, raw)),
        "sentence_pass_s": statistics.median(sentences_s),
        "ingest_with_sentences_chunks_per_s": statistics.median(with_sentences),
        "baseline_ingest_chunks_per_s": len(pipeline.chunks) / baseline_s,
    }
    return Throughput(figures, pipeline)


def index_status(report: IngestReport) -> str:
    """"built" (no usable index was there), "updated" (some sources changed) or "reused"."""
    if report.rebuilt and report.unchanged == 0:
        return "built"
    return "updated" if report.rebuilt else "reused"


def _ingest_with_progress(service: RagService, label: str) -> IngestReport:
    with ingest_progress_bar(label) as progress:
        return service.ingest(progress=progress)


def _baseline_collections(persist_dir: Path) -> set[str]:
    if not persist_dir.exists():
        return set()
    client = chromadb.PersistentClient(path=str(persist_dir), settings=ChromaSettings(anonymized_telemetry=False))
    return {c.name for c in client.list_collections()}


def _ask_s(ask: Callable[[str], object], question: str) -> float:
    started = time.perf_counter()
    try:
        ask(question)
    except RagError:
        pass  # a refusal by error (e.g. a question over the length limit) still took this long
    return time.perf_counter() - started


HIDDEN_SOURCES = 10  # sources a scoped retrieval leaves out


def measure_serving(
    settings: Settings, embeddings: EmbeddingModel, questions: Sequence[str] | None, phrasings: Sequence[str],
    repeats: int, cold_starts: int, pipeline: BaselinePipeline | None = None,
) -> dict[str, Any]:
    """Figures on the full corpus (`settings.sources_dir`) with its index in
    `settings.vectorstore_dir`; `questions` None: derived from the index's headings. The
    baseline is `pipeline` if given, else built over the corpus with its collection kept in
    <index>/baseline, as `eval` keeps it (so one built by `eval` is reused)."""
    components = bench_components(settings, embeddings)
    service = RagService(settings, components=components)
    if service.base.index.active_name() is None:
        print(f"note: no index in {settings.vectorstore_dir} yet: building it (every chunk is embedded)",
              file=sys.stderr)
    first_s, first = timed(lambda: _ingest_with_progress(service, "building the index"))
    figures: dict[str, Any] = {"index_dir": str(settings.vectorstore_dir), "index_status": index_status(first)}
    if figures["index_status"] == "built":
        figures["full_ingest_chunks_per_s"] = first.added / (first.live_after_s or first_s)
        figures["full_sentence_pass_s"] = first.sentences_s or 0.0
    reingest_s, again = timed(lambda: RagService(settings, embeddings=embeddings).ingest())
    if again.added or again.updated or again.rebuilt:
        raise RuntimeError(f"an unchanged re-ingest changed the index: {again}")
    live = service.start()
    base_questions = list(questions) if questions is not None else derive_questions(live.version.chunks.values())
    asked = timed_questions([service.validate_question(q) for q in base_questions], phrasings, repeats)
    unseen = [q.upper() for q in asked]  # same meaning, in no question-vector cache
    _ask_s(service.ask, WARM_UP)
    answers = [_ask_s(service.ask, q) for q in asked]
    retrieval = [timed(lambda q=q: service.retrieve(q))[0] for q in unseen]
    # A reply whose readers may not see some sources (a server's staff documents): the same
    # retrieval with HIDDEN_SOURCES of them filtered out in every ranking.
    scoped_retriever = live.retriever.hiding(frozenset(sorted(live.version.source_names)[:HIDDEN_SOURCES]))
    plain, scoped = [], []
    for q in asked:  # in turns, each question in a form no cache has seen
        plain.append(timed(lambda q=q: live.retriever.invoke(q.title()))[0])
        scoped.append(timed(lambda q=q: scoped_retriever.invoke(q.swapcase()))[0])

    if pipeline is None:
        persist_dir = settings.vectorstore_dir / "baseline"
        before = _baseline_collections(persist_dir)
        baseline_s, pipeline = timed(lambda: BaselinePipeline(
            settings.sources_dir, embeddings, components.extractive, settings.top_k, persist_dir=persist_dir))
        built = bool(_baseline_collections(persist_dir) - before)
        figures["baseline_index_status"] = "built" if built else "reused"
        if built:
            figures["baseline_full_ingest_chunks_per_s"] = len(pipeline.chunks) / baseline_s
    _ask_s(pipeline.ask, WARM_UP)
    base_answers = [_ask_s(pipeline.ask, q) for q in asked]
    base_retrieval = [timed(lambda q=q: pipeline.retrieve(q))[0] for q in unseen]

    cold = cold_start(settings, asked[0], cold_starts)
    figures.update({
        "chunks": len(live.version.chunks),
        "files": len(live.version.sources),
        "baseline_chunks": len(pipeline.chunks),
        "questions": {"given": questions is not None, "origin": "given" if questions is not None else "derived",
                      "count": len(base_questions), "timed": len(asked), "texts": base_questions},
        "reingest_unchanged_s": reingest_s,
        "retrieval_p50_ms": _ms(retrieval, 50), "retrieval_p95_ms": _ms(retrieval, 95),
        "scoped_retrieval_p50_ms": _ms(scoped, 50), "scoped_vs_unscoped": _ms(scoped, 50) / _ms(plain, 50),
        "hidden_sources": min(HIDDEN_SOURCES, len(live.version.sources)),
        "baseline_retrieval_p50_ms": _ms(base_retrieval, 50), "baseline_retrieval_p95_ms": _ms(base_retrieval, 95),
        "answer_p50_ms": _ms(answers, 50), "answer_p95_ms": _ms(answers, 95),
        "baseline_answer_p50_ms": _ms(base_answers, 50), "baseline_answer_p95_ms": _ms(base_answers, 95),
        "cold_start_to_answer_s": cold["seconds"],
        "cold_start_peak_rss_mib": cold["peak_rss_mib"],
    })
    return figures


# Runs `python -m bot ask QUESTION`, then reports the process's own peak RSS (VmHWM is per
# address space, so unlike getrusage it does not count the parent's pages from before exec).
_CHILD = """
import sys
from bot.cli import main
code = main(["ask", sys.argv[1]])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(hwm.split()[1], file=sys.stderr)
raise SystemExit(code)
"""


def cold_start(settings: Settings, question: str, repeats: int) -> dict[str, float]:
    """A fresh process answering one question from the built index of `settings`' sources
    folder and vector store (as `ask` would: it checks the folder for changes first)."""
    env = {**os.environ, "SOURCES_DIR": str(settings.sources_dir), "VECTORSTORE_DIR": str(settings.vectorstore_dir),
           "LLM_PROVIDER": "extractive"}
    times, rss = [], []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, question], env=env, cwd=PROJECT_ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"cold start failed: {proc.stderr.strip()}")
        rss.append(int(proc.stderr.split()[-1]) / 1024)
    return {"seconds": statistics.median(times), "peak_rss_mib": max(rss)}
