"""`python -m bot eval` without a file: every question set on its own corpus, in one table.

The public sets (`../shared/eval/`, see its README) each name the docs corpus they ask about;
`tests/data/` holds the seed article's own. Each corpus gets its own index and data folder
under `--work`, built on first use and reused after (a changed conversion re-reads files, and
chunks whose text is unchanged keep their vectors), so the sets are judged together on one
code version. A corpus that is not there is reported with the command that fetches it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.evaluation.metrics import load_qa
from bot.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class EvalSet:
    label: str
    file: str  # a name under --sets, or a path relative to the project
    corpus: str | None  # a folder under --corpora, or None: the project's sources/ folder
    pages: bool = True  # whether the items' `page` names a file of this corpus
    beside: str | None = None  # a corpus indexed together with the project's sources (corpus None)

    @property
    def work_name(self) -> str:
        return self.corpus or ("sources+" + self.beside if self.beside else "sources")


SUITE = (
    EvalSet("haliva_dev", "haliva_dev.jsonl", None),
    EvalSet("haliva_own", str(PROJECT / "tests/data/haliva_own.jsonl"), None),
    EvalSet("pydocs_dev", "pydocs_dev.jsonl", "pydocs"),
    EvalSet("pydocs_dev2", "pydocs_dev2.jsonl", "pydocs"),
    EvalSet("flask_dev", "flask_dev.jsonl", "flask"),
    EvalSet("debref_dev", "debref_dev.jsonl", "debref"),
    EvalSet("debref_pdf", "debref_dev.jsonl", "debref-pdf", pages=False),  # `page` names the HTML chapter
    # The seed article among 500 pages of other docs: a help server's bot holds both.
    EvalSet("haliva_dev+py", "haliva_dev.jsonl", None, beside="pydocs"),
    EvalSet("haliva_own+py", str(PROJECT / "tests/data/haliva_own.jsonl"), None, beside="pydocs"),
)
COLUMNS = (  # (summary key, heading)
    ("answer_accuracy", "answers"), ("evidence_in_answer", "evid.quote"), ("page_cited", "page cited"),
    ("page@k", "page@k"), ("recall@k", "recall@k"), ("mrr", "MRR"),
    ("accuracy_if_retrieved", "acc|retr."), ("refusal_accuracy", "refusals"), ("false_refusal_rate", "false ref."),
    ("latency_p50_ms", "p50 ms"),
)


def corpus_settings(settings: Settings, spec: EvalSet, args: argparse.Namespace) -> Settings:
    """One index and data folder per corpus, so their caches never mix."""
    work = args.work.resolve() / spec.work_name
    update: dict[str, Any] = {"vectorstore_dir": work / "index", "data_dir": work / "data"}
    if spec.corpus:
        update["sources_dir"] = args.corpora.resolve() / spec.corpus
    elif spec.beside:
        update["sources_dir"] = _together(settings.sources_dir, args.corpora.resolve() / spec.beside, work,
                                          args.work.resolve() / spec.beside)
    return settings.model_copy(update=update)


def _together(sources: Path, beside: Path, work: Path, beside_work: Path) -> Path:
    """A folder holding the project's sources and the `beside` corpus (copied, kept in step).
    Its first index starts as a copy of the corpus's own, so only the sources are embedded."""
    folder = work / "corpus"
    if not (work / "index").exists() and (beside_work / "index").exists():
        for part in ("index", "data"):
            shutil.copytree(beside_work / part, work / part, dirs_exist_ok=True)
    for origin in (beside, sources):
        shutil.copytree(origin, folder, dirs_exist_ok=True)
    return folder


def run_suite(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from bot.evaluation.cli import evaluate

    wanted = set(args.only.split(",")) if args.only else None
    reports: dict[str, Any] = {}
    for spec in SUITE:
        if wanted and spec.label not in wanted and spec.work_name not in wanted:
            continue
        file = Path(spec.file) if Path(spec.file).is_absolute() else args.sets / spec.file
        corpus = spec.corpus or spec.beside
        folder = args.corpora / corpus if corpus else None
        if not file.exists():
            reports[spec.label] = {"missing": f"no question file {file}"}
            continue
        if folder is not None and not folder.is_dir():
            reports[spec.label] = {"missing": f"no corpus: run {args.sets / 'corpus.sh'} {corpus} {folder}"}
            continue
        own = corpus_settings(settings, spec, args)
        items = load_qa(file) if spec.pages else [replace(i, page=None) for i in load_qa(file)]
        report = evaluate(own, items, args.k or settings.top_k, baseline=not args.no_baseline)
        reports[spec.label] = report
        if not args.json:
            print(f"{spec.label}: done", file=sys.stderr, flush=True)
    return reports


def _cell(summary: dict[str, Any], key: str, k: int) -> str:
    value = summary.get(key.replace("@k", f"@{k}"))
    if value is None:
        return "—"
    return f"{value:.0f}" if key == "latency_p50_ms" else (f"{value:.2f}" if key == "mrr" else f"{100 * value:.0f}%")


def format_suite(reports: dict[str, Any], k: int) -> str:
    """One row per set: ours, and the stock recipe's figure after a slash."""
    header = f"{'set':<14} {'n':>6} " + " ".join(f"{title:>13}" for _, title in COLUMNS)
    lines = [f"ours / stock LangChain recipe, k={k}", header]
    for label, report in reports.items():
        if "missing" in report:
            lines.append(f"{label:<14} not run: {report['missing']}")
            continue
        ours = report["ours"]["summary"]
        base = report.get("baseline", {}).get("summary", {})
        cells = [f"{_cell(ours, key, k)}/{_cell(base, key, k)}" if base else _cell(ours, key, k) for key, _ in COLUMNS]
        count = f"{ours['answerable']}+{ours['unanswerable']}"
        lines.append(f"{label:<14} {count:>6} " + " ".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)


def cmd_suite(settings: Settings, args: argparse.Namespace) -> int:
    reports = run_suite(settings, args)
    k = args.k or settings.top_k
    print(json.dumps(reports) if args.json else format_suite(reports, k))
    return 0
