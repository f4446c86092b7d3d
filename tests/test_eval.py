"""The eval metrics, checked against values computed by hand on a tiny fixture, and the
`eval` command run end to end on a small QA file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.evaluation.metrics import QAItem, aggregate, load_qa, percentile, score_question
from bot.rag.errors import RagError
from bot.rag.models import Chunk
from bot.settings import Settings
from tests.helpers import run_cli

ITEMS = [
    QAItem("a", "Q1", True, ["253"], ["253 others were taken"], page="war.txt"),
    QAItem("b", "Q2", True, ["halevi"], ["herzi halevi"], page="army.txt"),
    QAItem("c", "Q3", True, ["passover"], ["festival of passover"]),
    QAItem("u", "Q4", False),
    QAItem("v", "Q5", False),
]


def retrieved(*passages: tuple[str, str]) -> list[Chunk]:
    """Retrieved chunks, each given as (source, text)."""
    return [Chunk(f"c{i}", source, i, 0, len(text), text, "") for i, (source, text) in enumerate(passages)]


def test_metrics_match_hand_computed_values() -> None:
    results = [
        # evidence at rank 2 (its page too); right answer; cites 2 chunks, 1 with evidence
        score_question(ITEMS[0], retrieved(("other.txt", "nothing here"), ("war.txt", "and 253 others were taken back")),
                       True, "It was 253 [1].", ["253 others were taken", "unrelated"], 0.010),
        # evidence at rank 1, but from another page than the item's; wrong answer; cites 1 chunk without evidence
        score_question(ITEMS[1], retrieved(("war.txt", "lt gen Herzi  Halevi, and")), True, "Ronen Bar [1].",
                       ["ronen bar"], 0.020),
        # evidence not retrieved; refused (a false refusal); the item names no page
        score_question(ITEMS[2], retrieved(("a.txt", "a"), ("b.txt", "b")), False, "The sources don't say.", [], 0.030),
        score_question(ITEMS[3], retrieved(("x.txt", "x")), False, "The sources don't say.", [], 0.040),  # right refusal
        score_question(ITEMS[4], retrieved(("x.txt", "x")), True, "Something [1].", ["x"], 0.100),  # should have refused
    ]
    assert [r.first_page_rank for r in results[:3]] == [2, None, None]
    summary = aggregate(results, k=4)
    assert summary["page@4"] == pytest.approx(1 / 2)  # over the two answerable items naming a page
    assert summary["recall@4"] == pytest.approx(2 / 3)
    assert summary["mrr"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert summary["answer_accuracy"] == pytest.approx(1 / 3)
    assert summary["citation_precision"] == pytest.approx((1 / 2 + 0 / 1) / 2)  # over answers that cite
    assert summary["citation_recall"] == pytest.approx(1 / 3)
    assert summary["refusal_accuracy"] == pytest.approx(1 / 2)
    assert summary["false_refusal_rate"] == pytest.approx(1 / 3)
    assert summary["latency_p50_ms"] == pytest.approx(30.0)
    assert summary["latency_p95_ms"] == pytest.approx(100.0)
    assert (summary["questions"], summary["answerable"], summary["unanswerable"]) == (5, 3, 2)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0 and percentile(values, 95) == 19.0 and percentile(values, 100) == 20.0


def test_bad_qa_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "answerable": true}\nnot json\n', encoding="utf-8")
    with pytest.raises(RagError, match="line 2"):
        load_qa(path)


def test_eval_command_on_a_small_set(settings: Settings, tmp_path: Path) -> None:
    qa = tmp_path / "small.jsonl"
    qa.write_text("\n".join(json.dumps(x) for x in [
        {"id": "s1", "question": "How many hostages were taken back to Gaza?", "answerable": True,
         "answers": ["253"], "evidence": ["253 others were taken back to gaza as hostages"]},
        {"id": "s2", "question": "Who is the IDF chief of staff?", "answerable": True,
         "answers": ["halevi"], "evidence": ["lt gen herzi halevi"]},
        {"id": "s3", "question": "What is the capital of Australia?", "answerable": False, "answers": [], "evidence": []},
    ]), encoding="utf-8")
    result = run_cli(settings, "eval", str(qa), "--json", "--k", "3")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ours, baseline = report["ours"]["summary"], report["baseline"]["summary"]
    assert report["k"] == 3 and "recall@3" in ours
    assert ours["recall@3"] == 1.0 and ours["answer_accuracy"] == 1.0 and ours["refusal_accuracy"] == 1.0
    assert ours["citation_recall"] == 1.0 and ours["false_refusal_rate"] == 0.0
    assert [q["id"] for q in report["ours"]["questions"]] == ["s1", "s2", "s3"]
    assert baseline["questions"] == 3
    text = run_cli(settings, "eval", str(qa), "--no-baseline")
    assert "answer_accuracy" in text.stdout and "100%" in text.stdout


def test_eval_without_a_file_runs_every_set_on_its_own_corpus(settings: Settings, tmp_path: Path) -> None:
    """Each set on its own corpus, with its own index and data under --work; a corpus that is
    not there is named with the command that fetches it; a PDF corpus has no page figures."""
    sets, corpora, work = tmp_path / "sets", tmp_path / "corpora", tmp_path / "work"
    sets.mkdir()
    (corpora / "debref-pdf").mkdir(parents=True)
    item = {"id": "a1", "question": "How many hostages were taken back to Gaza?", "answerable": True,
            "answers": ["253"], "evidence": ["253 others were taken back to gaza as hostages"],
            "page": "haliva-resignation.txt"}
    (sets / "haliva_dev.jsonl").write_text(json.dumps(item), encoding="utf-8")
    (sets / "flask_dev.jsonl").write_text(json.dumps(item), encoding="utf-8")
    (sets / "debref_dev.jsonl").write_text(json.dumps(item), encoding="utf-8")
    (corpora / "debref-pdf" / "haliva-resignation.txt").write_text(
        (settings.sources_dir / "haliva-resignation.txt").read_text(encoding="utf-8"), encoding="utf-8")
    result = run_cli(settings, "eval", "--sets", str(sets), "--corpora", str(corpora), "--work", str(work),
                     "--only", "haliva_dev,flask_dev,debref_pdf", "--no-baseline", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["haliva_dev"]["ours"]["summary"]["answer_accuracy"] == 1.0
    assert report["haliva_dev"]["ours"]["summary"]["page@4"] == 1.0
    assert "corpus.sh flask" in report["flask_dev"]["missing"]
    pdf = report["debref_pdf"]["ours"]["summary"]
    assert pdf["answer_accuracy"] == 1.0 and pdf["page@4"] is None and pdf["page_cited"] is None
    assert (work / "sources" / "index").is_dir() and (work / "debref-pdf" / "data").is_dir()
    # The article with another corpus beside it: one index over both, started from the corpus's own.
    (corpora / "pydocs").mkdir()
    (corpora / "pydocs" / "ferries.md").write_text("# Ferries\n\nThe ferry to the island leaves at noon.\n",
                                                  encoding="utf-8")
    beside = run_cli(settings, "eval", "--sets", str(sets), "--corpora", str(corpora), "--work", str(work),
                     "--only", "haliva_dev+py", "--no-baseline", "--json")
    assert beside.returncode == 0, beside.stderr
    assert json.loads(beside.stdout)["haliva_dev+py"]["sources"]["files"] == 2
    assert {p.name for p in (work / "sources+pydocs" / "corpus").iterdir()} == {"ferries.md", "haliva-resignation.txt"}
    table = run_cli(settings, "eval", "--sets", str(sets), "--corpora", str(corpora), "--work", str(work),
                    "--only", "haliva_dev", "--no-baseline")
    assert "haliva_dev" in table.stdout and "100%" in table.stdout
    ablated = run_cli(settings, "eval", "--sets", str(sets), "--corpora", str(corpora), "--work", str(work),
                      "--only", "haliva_dev", "--ablate", "answer types,passages")
    assert ablated.returncode == 0, ablated.stderr
    rows = {line.split("  ")[0]: line for line in ablated.stdout.splitlines()}
    assert "100/—" in rows["all on"]  # answers 100 %, no unanswerable item to refuse
    assert {"answer types", "passages"} <= set(rows) and "names ranking" not in rows
