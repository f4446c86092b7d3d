"""`python -m bot bench`: speed and memory, measured in one run, ours beside the baseline.

Figures: raw embedding throughput vs ingest throughput on the same texts, unchanged
re-ingest time, retrieval and answer latency (p50/p95 after warm-up), cold start to first
answer in a fresh process, and peak resident memory. Without `--sources`: for the seed
article and for a scaled corpus (the article plus generated filler documents up to ~N
chunks). With `--sources DIR`: for that one folder, its throughput on a sample of its files
and the rest on the full corpus, with the index kept (and reused) in `--index DIR`.
This module owns the command, the built-in corpora and the report's text form; measuring
one corpus is bench_corpus.py's job, choosing its sample and questions bench_inputs.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bot.evaluation.bench_corpus import measure_serving, measure_throughput, timed
from bot.evaluation.bench_inputs import SAMPLE_CHUNKS, copy_sample, load_questions
from bot.evaluation.bench_scale import format_scale, run_scale_bench
from bot.evaluation.cli import with_corpus
from bot.rag.components import Components
from bot.rag.embeddings import EmbeddingModel, build_embeddings
from bot.rag.errors import RagError
from bot.settings import Settings

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
THROUGHPUT_ROUNDS = 3  # raw embedding and ingest of a --sources sample, alternated; medians reported
DOC_PHRASINGS = ["{q}", "Please tell me: {q}", "Quick question. {q}", "According to the documentation, {q}"]
FILLER_WORDS = {
    "adj": "northern quiet ancient busy coastal narrow wooden modern flooded rural".split(),
    "noun": "harbour council library orchard railway market bridge museum ferry school".split(),
    "verb": "restored closed expanded inspected reopened funded mapped repainted surveyed moved".split(),
    "place": "Alderney Brackwater Carrow Dunmore Elsby Fenwick Garrow Hollin Ivel Jarrow".split(),
}


def write_filler(folder: Path, target_chars: int, seed: int = 7) -> int:
    """Deterministic filler documents about made-up towns, ~40 chunks each."""
    rng = random.Random(seed)
    written, index = 0, 0
    while written < target_chars:
        sentences = []
        for _ in range(280):
            w = {k: rng.choice(v) for k, v in FILLER_WORDS.items()}
            sentences.append(
                f"The {w['adj']} {w['noun']} of {w['place']} was {w['verb']} in {rng.randint(1850, 2020)} "
                f"after {rng.randint(2, 900)} residents asked the {rng.choice(FILLER_WORDS['noun'])} board."
            )
        text = " ".join(sentences)
        (folder / f"filler-{index:03d}.txt").write_text(text, encoding="utf-8")
        written += len(text)
        index += 1
    return index


def measure_builtin(label: str, sources: Path, work: Path, embeddings: EmbeddingModel, settings: Settings,
                    repeats: int, cold_starts: int) -> dict[str, Any]:
    """A small corpus measured whole: the throughput ingest's index then serves the rest."""
    throughput = measure_throughput(sources, work / "vs", embeddings, settings)
    full = settings.model_copy(update={"sources_dir": sources, "vectorstore_dir": work / "vs"})
    serving = measure_serving(full, embeddings, QUESTIONS, PHRASINGS, repeats, cold_starts,
                              pipeline=throughput.pipeline)
    serving.pop("index_dir")  # a temporary folder
    serving["questions"]["origin"] = "built-in"
    return {"corpus": label, "sources": f"{sources.name}/ ({serving['files']} file(s))",
            **throughput.figures, **serving}


def _about(settings: Settings, embeddings: EmbeddingModel, load_s: float) -> dict[str, Any]:
    return {"embedding_model": embeddings.model_id, "model_load_s": load_s, "cpu_count": os.cpu_count(),
            "sources_dir": str(settings.sources_dir), "embedding_threads": settings.embedding_threads}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(settings: Settings, scaled_chunks: int, repeats: int, cold_starts: int = 3) -> dict[str, Any]:
    load_s, embeddings = timed(lambda: build_embeddings(settings))
    corpora = []
    with tempfile.TemporaryDirectory(prefix="sourcebot-bench-") as tmp:
        work = Path(tmp)
        article = work / "article"
        shutil.copytree(settings.sources_dir, article)
        corpora.append(measure_builtin("article", article, work / "a", embeddings, settings, repeats, cold_starts))
        scaled = work / "scaled"
        shutil.copytree(settings.sources_dir, scaled)
        write_filler(scaled, target_chars=scaled_chunks * (settings.chunk_size - settings.chunk_overlap // 2))
        corpora.append(measure_builtin("scaled", scaled, work / "s", embeddings, settings, repeats, cold_starts))
    return {**_about(settings, embeddings, load_s), "mode": "built-in corpora",
            "bench_peak_rss_mib": _peak_rss_mib(),  # whole bench, both corpora
            "corpora": corpora}


def run_sources_bench(settings: Settings, questions_file: Path | None, repeats: int, cold_starts: int = 3,
                      sample_chunks: int = SAMPLE_CHUNKS, sample_files: int | None = None,
                      index_given: bool = True) -> dict[str, Any]:
    """One corpus, `settings.sources_dir`: throughput on a sample copied to a temporary
    folder, the rest with the index in `settings.vectorstore_dir` (a temporary one when no
    `--index` was given, so the configured vector store is never replaced)."""
    load_s, embeddings = timed(lambda: build_embeddings(settings))
    sources = settings.sources_dir
    questions = load_questions(questions_file) if questions_file is not None else None
    with tempfile.TemporaryDirectory(prefix="sourcebot-bench-") as tmp:
        work = Path(tmp)
        chunker = Components(settings, embeddings=embeddings).chunker
        sample = copy_sample(sources, work / "sample", chunker, settings.max_source_bytes, sample_chunks, sample_files)
        throughput = measure_throughput(sample.folder, work / "sample-vs", embeddings, settings, THROUGHPUT_ROUNDS).figures
        throughput["sample"]["paths"] = sample.files
        full = settings if index_given else settings.model_copy(update={"vectorstore_dir": work / "vs"})
        serving = measure_serving(full, embeddings, questions, DOC_PHRASINGS, repeats, cold_starts)
        if not index_given:
            serving["index_dir"] = None  # built in a temporary folder, now deleted
    corpus = {"corpus": sources.name or str(sources), "sources": f"{sources} ({serving['files']} file(s))",
              **throughput, **serving}
    return {**_about(settings, embeddings, load_s), "mode": "sources",
            "questions_file": str(questions_file) if questions_file else None,
            "bench_peak_rss_mib": _peak_rss_mib(), "corpora": [corpus]}


ROWS = [
    ("chunks", "chunks", "baseline_chunks", "{:,.0f}"),
    ("ingest (chunks/s)", "ingest_chunks_per_s", "baseline_ingest_chunks_per_s", "{:.1f}"),
    ("raw embedding (chunks/s)", "raw_embedding_chunks_per_s", None, "{:.1f}"),
    ("ingest / raw embedding", "ingest_vs_raw", None, "{:.0%}"),
    ("sentence pass after it (s)", "sentence_pass_s", None, "{:.1f}"),
    ("ingest with sentence pass (chunks/s)", "ingest_with_sentences_chunks_per_s", None, "{:.1f}"),
    ("full ingest (chunks/s)", "full_ingest_chunks_per_s", "baseline_full_ingest_chunks_per_s", "{:.1f}"),
    ("full sentence pass (s)", "full_sentence_pass_s", None, "{:.1f}"),
    ("unchanged re-ingest (s)", "reingest_unchanged_s", None, "{:.2f}"),
    ("retrieval p50 (ms)", "retrieval_p50_ms", "baseline_retrieval_p50_ms", "{:.1f}"),
    ("retrieval p95 (ms)", "retrieval_p95_ms", "baseline_retrieval_p95_ms", "{:.1f}"),
    ("scoped retrieval p50 (ms)", "scoped_retrieval_p50_ms", None, "{:.1f}"),
    ("scoped / unscoped retrieval p50", "scoped_vs_unscoped", None, "{:.2f}"),
    ("answer p50 (ms)", "answer_p50_ms", "baseline_answer_p50_ms", "{:.1f}"),
    ("answer p95 (ms)", "answer_p95_ms", "baseline_answer_p95_ms", "{:.1f}"),
    ("cold start to answer (s)", "cold_start_to_answer_s", None, "{:.2f}"),
    ("cold start peak RSS (MiB)", "cold_start_peak_rss_mib", None, "{:.0f}"),
]
OPTIONAL = {"full_ingest_chunks_per_s", "full_sentence_pass_s", "baseline_full_ingest_chunks_per_s"}  # only when built by this run


def _cell(corpus: dict[str, Any], key: str | None, fmt: str) -> str:
    if key is None:
        return ""
    value = corpus.get(key)
    return "—" if value is None else fmt.format(value)


def _describe(corpus: dict[str, Any]) -> list[str]:
    sample, asked = corpus["sample"], corpus["questions"]
    whole = sample["chunks"] == corpus["chunks"] and sample["baseline_chunks"] == corpus["baseline_chunks"]
    timed_on = "the whole corpus" if whole else (
        f"a sample of {sample['files']} file(s), {sample['chunks']:,} chunks (baseline {sample['baseline_chunks']:,})")
    lines = [f"{corpus['corpus']}: {corpus['sources']}, {corpus['chunks']:,} chunks "
             f"(baseline {corpus['baseline_chunks']:,}); throughput timed on {timed_on}"]
    if "index_dir" in corpus:
        where = corpus["index_dir"] or "a temporary folder"
        status = {"built": "built by this run", "updated": "updated (some sources had changed)",
                  "reused": "reused, nothing re-embedded"}[corpus["index_status"]]
        lines.append(f"  index in {where}: {status}; baseline index: "
                     f"{'built by this run' if corpus.get('baseline_index_status') == 'built' else 'reused'}")
    origin = {"built-in": "built-in", "given": "from the questions file"}.get(asked["origin"], "derived from headings")
    lines.append(f"  questions: {asked['count']} {origin}, {asked['timed']} timed once each")
    return lines


def format_bench(result: dict[str, Any]) -> str:
    corpora = result["corpora"]
    width = max(16, *(len(c["corpus"]) + 11 for c in corpora))
    lines = [f"model {result['embedding_model']}, loaded in {result['model_load_s']:.2f}s; "
             f"{result['cpu_count']} CPUs, {result['embedding_threads']} embedding threads"]
    for corpus in corpora:
        lines.extend(_describe(corpus))
    lines.append(f"{'figure':<28}" + "".join(f"{c['corpus'] + ' ours':>{width}}{c['corpus'] + ' baseline':>{width}}"
                                             for c in corpora))
    for label, ours, theirs, fmt in ROWS:
        if ours in OPTIONAL and not any(ours in c or (theirs or "") in c for c in corpora):
            continue
        row = f"{label:<28}"
        for corpus in corpora:
            row += f"{_cell(corpus, ours, fmt):>{width}}{_cell(corpus, theirs, fmt):>{width}}"
        lines.append(row)
    lines.append(f"bench process peak RSS: {result['bench_peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    questions = getattr(args, "questions", None)
    cold_starts = getattr(args, "cold_starts", 3)
    if getattr(args, "scale_to", None):
        if not (getattr(args, "sources", None) and getattr(args, "index", None)):
            raise RagError("--scale-to needs --sources DIR and --index DIR (the corpus and its built index).")
        scaled = run_scale_bench(with_corpus(settings, args), args.scale_to, questions, args.repeats)
        print(json.dumps(scaled) if args.json else format_scale(scaled))
        return 0
    if getattr(args, "sources", None):
        result = run_sources_bench(
            with_corpus(settings, args), questions, args.repeats, cold_starts,
            sample_chunks=getattr(args, "sample_chunks", SAMPLE_CHUNKS),
            sample_files=getattr(args, "sample_files", None),
            index_given=bool(getattr(args, "index", None)),
        )
    else:
        if questions is not None or getattr(args, "index", None):
            raise RagError("--questions and --index need --sources DIR (the corpus they belong to).")
        result = run_bench(settings, args.scaled_chunks, args.repeats, cold_starts)
    print(json.dumps(result) if args.json else format_bench(result))
    return 0
