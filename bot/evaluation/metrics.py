"""Quality metrics over a QA file: per-question results and their aggregate.

Text is compared with `match_key` (lower-cased letters and digits only), so punctuation,
spacing and the source's tokenisation do not matter.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.rag.errors import RagError
from bot.rag.models import Chunk
from bot.rag.text import match_key


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answerable: bool
    answers: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    page: str | None = None  # the source (path under its folder) the answer is on


def load_qa(path: Path) -> list[QAItem]:
    """Items of a JSONL QA file; raises RagError naming the bad line."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RagError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            items.append(QAItem(
                id=str(data.get("id", number)), question=data["question"], answerable=bool(data["answerable"]),
                answers=list(data.get("answers", [])), evidence=list(data.get("evidence", [])),
                page=data.get("page"),
            ))
        except (ValueError, KeyError, TypeError) as exc:
            raise RagError(f"{path}, line {number}: not a QA item ({exc}).") from exc
    if not items:
        raise RagError(f"{path} holds no questions.")
    return items


def contains_any(text: str, phrases: Sequence[str]) -> bool:
    key = match_key(text)
    return any(match_key(p) and match_key(p) in key for p in phrases)


@dataclass(frozen=True)
class QuestionResult:
    id: str
    answerable: bool  # what the QA file says
    answered: bool  # what the bot said (False: it refused)
    correct_answer: bool | None  # answerable questions only
    first_evidence_rank: int | None  # 1-based rank of the first retrieved chunk with evidence
    first_page_rank: int | None  # 1-based rank of the first retrieved chunk from `page`
    cited: int  # number of cited chunks
    cited_with_evidence: int
    latency_s: float
    answer: str = ""
    page: str | None = None  # the item's page, when the QA file names it
    evidence_in_answer: bool | None = None  # the text a member reads quotes the evidence
    page_cited: bool | None = None  # a citation is on the item's page (items naming one)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_question(item: QAItem, retrieved: Sequence[Chunk], answered: bool, answer_text: str,
                   cited_texts: Sequence[str], latency_s: float,
                   cited_sources: Sequence[str] = ()) -> QuestionResult:
    rank = next((i for i, c in enumerate(retrieved, start=1) if contains_any(c.text, item.evidence)), None)
    page_rank = next((i for i, c in enumerate(retrieved, start=1) if c.source == item.page), None)
    return QuestionResult(
        id=item.id,
        answerable=item.answerable,
        answered=answered,
        correct_answer=(answered and contains_any(answer_text, item.answers)) if item.answerable else None,
        first_evidence_rank=rank if item.answerable else None,
        first_page_rank=page_rank if item.answerable else None,
        cited=len(cited_texts),
        cited_with_evidence=sum(contains_any(t, item.evidence) for t in cited_texts) if item.answerable else 0,
        latency_s=latency_s,
        answer=answer_text,
        page=item.page,
        evidence_in_answer=(answered and contains_any(answer_text, item.evidence)) if item.answerable else None,
        page_cited=(item.page in cited_sources) if item.answerable and item.page else None,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
    return ordered[index]


def aggregate(results: Sequence[QuestionResult], k: int) -> dict[str, float | int | None]:
    """The summary of `results`; `page@k` is over the answerable items that name their page."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    citing = [r for r in answerable if r.cited]
    paged = [r for r in answerable if r.page]
    found = [r for r in answerable if r.first_evidence_rank is not None and r.first_evidence_rank <= k]
    latencies = [r.latency_s for r in results]
    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        f"recall@{k}": _mean([float(r.first_evidence_rank is not None and r.first_evidence_rank <= k) for r in answerable]),
        f"page@{k}": _mean([float(r.first_page_rank is not None and r.first_page_rank <= k) for r in paged]),
        "mrr": _mean([1.0 / r.first_evidence_rank if r.first_evidence_rank else 0.0 for r in answerable]),
        "answer_accuracy": _mean([float(bool(r.correct_answer)) for r in answerable]),
        "evidence_in_answer": _mean([float(bool(r.evidence_in_answer)) for r in answerable]),
        "page_cited": _mean([float(bool(r.page_cited)) for r in paged]),
        "accuracy_if_retrieved": _mean([float(bool(r.correct_answer)) for r in found]),
        "citation_precision": _mean([r.cited_with_evidence / r.cited for r in citing]),
        "citation_recall": _mean([float(r.cited_with_evidence > 0) for r in answerable]),
        "refusal_accuracy": _mean([float(not r.answered) for r in unanswerable]),
        "false_refusal_rate": _mean([float(not r.answered) for r in answerable]),
        "latency_p50_ms": None if not latencies else 1000 * statistics.median(latencies),
        "latency_p95_ms": None if not latencies else 1000 * (percentile(latencies, 95) or 0.0),
    }
