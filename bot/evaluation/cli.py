"""`python -m bot eval FILE.jsonl [--json] [--k K] [--no-baseline]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from bot.evaluation.baseline import BaselinePipeline
from bot.evaluation.metrics import QAItem, QuestionResult, aggregate, load_qa, score_question
from bot.rag.errors import RagError
from bot.rag.models import Answer, Chunk
from bot.rag.service import RagService
from bot.settings import Settings


def run_items(
    items: Sequence[QAItem],
    retrieve: Callable[[str], list[Chunk]],
    ask: Callable[[str], Answer],
    chunk: Callable[[str], Chunk],
    label: str,
) -> list[QuestionResult]:
    ask(items[0].question)  # warm-up: model load and caches are not what latency measures
    results = []
    for item in tqdm(items, desc=label, unit="q", disable=not sys.stderr.isatty(), leave=True):
        started = time.perf_counter()
        try:
            answer = ask(item.question)
            answered, text = answer.answerable, answer.answer
            cited = list(dict.fromkeys(chunk(c.chunk_id) for c in answer.citations))
        except RagError as exc:
            answered, text, cited = False, f"error: {exc}", []
        latency = time.perf_counter() - started
        results.append(score_question(item, retrieve(item.question), answered, text, [c.text for c in cited], latency,
                                      cited_sources=[c.source for c in cited]))
    return results


def evaluate(settings: Settings, items: Sequence[QAItem], k: int, baseline: bool) -> dict[str, Any]:
    service = RagService(settings.model_copy(update={"top_k": k}))
    service.refresh()
    live = service.start()
    ours = run_items(items, service.retrieve, service.ask, lambda cid: live.version.chunks[cid], "ours")
    sources = live.version.sources
    report: dict[str, Any] = {
        "k": k, "provider": service.provider,
        "sources": {"folder": str(service.base.folder()), "files": len(sources),
                    "chunks": sum(info.chunks for info in sources.values())},
        "ours": {"summary": aggregate(ours, k), "questions": [r.to_dict() for r in ours]},
    }
    if baseline:
        pipeline = BaselinePipeline(
            service.base.folder(), service.components.embeddings, service.components.extractive, k,
            persist_dir=settings.vectorstore_dir / "baseline",
        )
        theirs = run_items(items, pipeline.retrieve, pipeline.ask, lambda cid: pipeline.chunks[cid], "baseline")
        report["baseline"] = {"summary": aggregate(theirs, k), "questions": [r.to_dict() for r in theirs]}
    return report


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}" if value > 1.0 else f"{100 * value:.0f}%"
    return str(value)


def format_report(report: dict[str, Any]) -> str:
    info = report["sources"]
    lines = [f"sources measured: {info['folder']} ({info['files']} file(s), {info['chunks']} chunk(s)); k={report['k']}, back-end {report['provider']}", ""]
    ours = report["ours"]["questions"]
    theirs = {q["id"]: q for q in report.get("baseline", {}).get("questions", [])}
    lines.append(f"{'id':<6} {'ours':<28} {'baseline':<28}")
    for q in ours:
        cells = []
        for result in (q, theirs.get(q["id"])):
            if result is None:
                cells.append("")
                continue
            if result["answerable"]:
                verdict = "right" if result["correct_answer"] else ("refused" if not result["answered"] else "wrong")
                rank = result["first_evidence_rank"] or "-"
                cells.append(f"{verdict:<8} rank {rank!s:<3} cites {result['cited_with_evidence']}/{result['cited']} {1000 * result['latency_s']:.0f}ms")
            else:
                verdict = "refused" if not result["answered"] else "ANSWERED"
                cells.append(f"{verdict:<8} {'':<18}{1000 * result['latency_s']:.0f}ms")
        lines.append(f"{q['id']:<6} {cells[0]:<28} {cells[1]:<28}")
    lines.append("")
    lines.append(f"{'metric':<20} {'ours':>10} {'baseline':>10}")
    base = report.get("baseline", {}).get("summary", {})
    for key, value in report["ours"]["summary"].items():
        lines.append(f"{key:<20} {_fmt(value):>10} {_fmt(base.get(key)) if base else '':>10}")
    return "\n".join(lines)


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    settings = with_corpus(settings, args)
    items = load_qa(args.file)
    report = evaluate(settings, items, args.k or settings.top_k, baseline=not args.no_baseline)
    report["file"] = str(args.file)
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def with_corpus(settings: Settings, args: argparse.Namespace) -> Settings:
    """`--sources DIR` measures that folder; `--index DIR` keeps (and reuses) its index there."""
    update: dict[str, Any] = {}
    if getattr(args, "sources", None):
        update["sources_dir"] = args.sources.resolve()
    if getattr(args, "index", None):
        update["vectorstore_dir"] = args.index.resolve()
    return settings.model_copy(update=update) if update else settings
