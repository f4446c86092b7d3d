"""`python -m bot bench`: speed and memory, measured in one run, ours beside the baseline.

Figures: raw embedding throughput vs ingest throughput on the same texts, unchanged
re-ingest time, retrieval and answer latency (p50/p95 after warm-up), cold start to first
answer in a fresh process, and peak resident memory; for the seed article and for a
scaled corpus (the article plus generated filler documents up to ~N chunks).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.evaluation.baseline import BaselinePipeline
from bot.evaluation.metrics import percentile
from bot.rag.components import Components
from bot.rag.embeddings import EmbeddingModel, build_embeddings
from bot.rag.ingest.sources import load_sources
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings

QUESTIONS = [
    "Who resigned as head of Israel's military intelligence?",
    "How many hostages were taken back to Gaza?",
    "Who is the IDF chief of staff?",
    "What did the general call for in his resignation letter?",
    "How many displaced Palestinians are sheltering in Rafah?",
    "Which Jewish festival did Netanyahu mention?",
    "How did Yair Lapid describe the decision to resign?",
    "When did Hamas attack Israel?",
    "Who said a full inquiry should wait until the war is over?",
    "What is the capital of Australia?",
]
# Each timed question is asked once (cached question vectors would flatter the figures).
PHRASINGS = ["{q}", "Please tell me: {q}", "Quick question. {q}", "According to the article, {q}"]
FILLER_WORDS = {
    "adj": "northern quiet ancient busy coastal narrow wooden modern flooded rural".split(),
    "noun": "harbour council library orchard railway market bridge museum ferry school".split(),
    "verb": "restored closed expanded inspected reopened funded mapped repainted surveyed moved".split(),
    "place": "Alderney Brackwater Carrow Dunmore Elsby Fenwick Garrow Hollin Ivel Jarrow".split(),
}


def _ms(seconds: Sequence[float], q: float) -> float:
    return 1000 * (statistics.median(seconds) if q == 50 else (percentile(seconds, q) or 0.0))


def write_filler(folder: Path, target_chars: int, seed: int = 7) -> int:
    """Deterministic filler documents about made-up towns, ~40 chunks each."""
    rng = random.Random(seed)
    written, index = 0, 0
    while written < target_chars:
        sentences = []
        for _ in range(280):
            w = {k: rng.choice(v) for k, v in FILLER_WORDS.items()}
            sentences.append(f"The {w['adj']} {w['noun']} of {w['place']} was {w['verb']} in {rng.randint(1850, 2020)} "
                             f"after {rng.randint(2, 900)} residents asked the {rng.choice(FILLER_WORDS['noun'])} board.")
        text = " ".join(sentences)
        (folder / f"filler-{index:03d}.txt").write_text(text, encoding="utf-8")
        written += len(text)
        index += 1
    return index


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def measure_corpus(label: str, sources: Path, work: Path, embeddings: EmbeddingModel, settings: Settings, repeats: int) -> dict[str, Any]:
    base = settings.model_copy(update={"sources_dir": sources, "vectorstore_dir": work / "vs"})
    components = Components(base, embeddings=embeddings)
    documents = load_sources(sources, base.max_source_bytes)
    texts = [c.text for d in documents for c in components.chunker(d)]
    embeddings.encode(texts[:2])  # warm-up
    raw_s, _ = timed(lambda: embeddings.encode(texts))
    service = RagService(base, components=components)
    ingest_s, report = timed(service.ingest)
    reingest_s, again = timed(lambda: RagService(base, embeddings=embeddings).ingest())
    assert again.added == 0 and not again.rebuilt
    questions = [p.format(q=q) for p in PHRASINGS for q in QUESTIONS][: max(len(QUESTIONS), repeats)]
    service.ask("What is this article about?")  # warm-up
    answers = [timed(lambda q=q: service.ask(q))[0] for q in questions]
    unseen = [q.upper() for q in questions]  # same meaning, not in the question-vector cache
    retrieval = [timed(lambda q=q: service.retrieve(q))[0] for q in unseen]

    baseline_build_s, pipeline = timed(lambda: BaselinePipeline(sources, embeddings, components.extractive, base.top_k))
    pipeline.ask("What is this article about?")
    base_answers = [timed(lambda q=q: pipeline.ask(q))[0] for q in questions]
    base_retrieval = [timed(lambda q=q: pipeline.retrieve(q))[0] for q in unseen]

    cold = cold_start(base, repeats=3)
    return {
        "corpus": label,
        "sources": f"{sources.name}/ ({len(documents)} file(s))",
        "chunks": len(texts),
        "baseline_chunks": len(pipeline.chunks),
        "raw_embedding_chunks_per_s": len(texts) / raw_s,
        "ingest_chunks_per_s": report.added / ingest_s,
        "ingest_vs_raw": (report.added / ingest_s) / (len(texts) / raw_s),
        "baseline_ingest_chunks_per_s": len(pipeline.chunks) / baseline_build_s,
        "reingest_unchanged_s": reingest_s,
        "retrieval_p50_ms": _ms(retrieval, 50), "retrieval_p95_ms": _ms(retrieval, 95),
        "baseline_retrieval_p50_ms": _ms(base_retrieval, 50), "baseline_retrieval_p95_ms": _ms(base_retrieval, 95),
        "answer_p50_ms": _ms(answers, 50), "answer_p95_ms": _ms(answers, 95),
        "baseline_answer_p50_ms": _ms(base_answers, 50), "baseline_answer_p95_ms": _ms(base_answers, 95),
        "cold_start_to_answer_s": cold["seconds"],
        "cold_start_peak_rss_mib": cold["peak_rss_mib"],
    }


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


def cold_start(settings: Settings, repeats: int) -> dict[str, float]:
    """A fresh process answering one question from the built index: wall time, peak RSS."""
    env = {**os.environ, "SOURCES_DIR": str(settings.sources_dir), "VECTORSTORE_DIR": str(settings.vectorstore_dir),
           "LLM_PROVIDER": "extractive"}
    times, rss = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, QUESTIONS[1]], env=env, cwd=PROJECT_ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"cold start failed: {proc.stderr.strip()}")
        rss.append(int(proc.stderr.split()[-1]) / 1024)
    return {"seconds": statistics.median(times), "peak_rss_mib": max(rss)}


def run_bench(settings: Settings, scaled_chunks: int, repeats: int) -> dict[str, Any]:
    load_s, embeddings = timed(lambda: build_embeddings(settings))
    corpora = []
    with tempfile.TemporaryDirectory(prefix="sourcebot-bench-") as tmp:
        work = Path(tmp)
        article = work / "article"
        shutil.copytree(settings.sources_dir, article)
        corpora.append(measure_corpus("article", article, work / "a", embeddings, settings, repeats))
        scaled = work / "scaled"
        shutil.copytree(settings.sources_dir, scaled)
        write_filler(scaled, target_chars=scaled_chunks * (settings.chunk_size - settings.chunk_overlap // 2))
        corpora.append(measure_corpus("scaled", scaled, work / "s", embeddings, settings, repeats))
    return {
        "embedding_model": embeddings.model_id,
        "model_load_s": load_s,
        "cpu_count": os.cpu_count(),
        "sources_dir": str(settings.sources_dir),
        "embedding_threads": settings.embedding_threads,
        "bench_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # whole bench, both corpora
        "corpora": corpora,
    }


ROWS = [
    ("chunks", "chunks", "baseline_chunks", "{:.0f}"),
    ("ingest (chunks/s)", "ingest_chunks_per_s", "baseline_ingest_chunks_per_s", "{:.1f}"),
    ("raw embedding (chunks/s)", "raw_embedding_chunks_per_s", None, "{:.1f}"),
    ("ingest / raw embedding", "ingest_vs_raw", None, "{:.0%}"),
    ("unchanged re-ingest (s)", "reingest_unchanged_s", None, "{:.2f}"),
    ("retrieval p50 (ms)", "retrieval_p50_ms", "baseline_retrieval_p50_ms", "{:.1f}"),
    ("retrieval p95 (ms)", "retrieval_p95_ms", "baseline_retrieval_p95_ms", "{:.1f}"),
    ("answer p50 (ms)", "answer_p50_ms", "baseline_answer_p50_ms", "{:.1f}"),
    ("answer p95 (ms)", "answer_p95_ms", "baseline_answer_p95_ms", "{:.1f}"),
    ("cold start to answer (s)", "cold_start_to_answer_s", None, "{:.2f}"),
    ("cold start peak RSS (MiB)", "cold_start_peak_rss_mib", None, "{:.0f}"),
]


def format_bench(result: dict[str, Any]) -> str:
    header = f"{'figure':<28}" + "".join(f"{c['corpus'] + ' ours':>16}{c['corpus'] + ' baseline':>18}" for c in result["corpora"])
    lines = [f"model {result['embedding_model']}, loaded in {result['model_load_s']:.2f}s; "
             f"{result['cpu_count']} CPUs, {result['embedding_threads']} embedding threads",
             f"sources measured: {result['sources_dir']} (" + "; ".join(f"{c['corpus']}: {c['sources']}" for c in result["corpora"]) + ")",
             header]
    for label, ours, theirs, fmt in ROWS:
        row = f"{label:<28}"
        for corpus in result["corpora"]:
            row += f"{fmt.format(corpus[ours]):>16}"
            row += f"{fmt.format(corpus[theirs]) if theirs else '':>18}"
        lines.append(row)
    lines.append(f"bench process peak RSS: {result['bench_peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    result = run_bench(settings, args.scaled_chunks, args.repeats)
    print(json.dumps(result) if args.json else format_bench(result))
    return 0
