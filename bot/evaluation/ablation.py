"""`python -m bot eval --ablate`: what each rule and signal of the retriever and the answerer
is worth, on every set at once.

Each ablation switches one of them off for a whole run of the suite (`suite.py`, no baseline)
by patching the module attribute that implements it, so the code measured is the code that
ships, with one part removed. The table shows, per set, answer accuracy and refusal accuracy
with everything on and the change when each part is off: a part that does not pay on the
sets together is a candidate for removal (docs/benchmarks.md keeps the table).
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from bot.settings import Settings

_EX = "bot.rag.answer.extractive"
_RET = "bot.rag.index.retrieval"
_SEN = "bot.rag.answer.sentences"


def _off(*patches: tuple[str, Any]) -> Callable[[], contextlib.AbstractContextManager[None]]:
    @contextlib.contextmanager
    def patched() -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for target, value in patches:
                stack.enter_context(mock.patch(target, value))
            yield

    return patched


ABLATIONS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "names ranking": _off((f"{_RET}.NAME_WEIGHT", 0.0)),
    "best-sentence ranking": _off((f"{_RET}.SENTENCE_WEIGHT", 0.0)),
    "answer types": _off((f"{_EX}.expected_answer_type", lambda q: None)),
    "unknown-word margin": _off((f"{_EX}.UNKNOWN_TERM_MARGIN", 0.0)),
    "named-page filter": _off((f"{_EX}.on_pages_naming", lambda q, scored, corpus: scored)),
    "error names as symptoms": _off((f"{_EX}._ERROR_NAME", re.compile(r"(?!)"))),
    "section title as said": _off((f"{_EX}.section_title", lambda heading: "")),
    "pronoun referents": _off((f"{_EX}.pronoun_referents", lambda q, corpus: lambda source: "")),
    "no code/question quotes": _off((f"{_EX}.answers_something", lambda c, wanted: True)),
    "no code lead-in quotes": _off((f"{_SEN}._code_follows", lambda text, end: False)),
    "no name-listing quotes": _off((f"{_SEN}.LISTED_NAMES", 10**9)),
    "passages": _off((f"{_EX}.passage_end", lambda text, end, wanted: end)),
    "previous-sentence context": _off((f"{_EX}._pairs_with_previous", lambda *a: False)),
    "named entry's opening": _off((f"{_EX}._opening_of_named_entry", lambda q, scored: [])),
    "retrieval-rank prior": _off((f"{_EX}.RANK_WEIGHT", 0.0)),
    "second sentence": _off((f"{_EX}.MAX_SENTENCES", 1)),
}
SHOWN = (("answer_accuracy", "answers"), ("refusal_accuracy", "refusals"))


def _figures(reports: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    return {label: report["ours"]["summary"] for label, report in reports.items() if "ours" in report}


def run_ablations(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from bot.evaluation.suite import run_suite

    args.no_baseline = True
    results = {"all on": _figures(run_suite(settings, args))}
    wanted = set(args.ablate.split(",")) if args.ablate not in (None, "all") else set(ABLATIONS)
    for name, switch in ABLATIONS.items():
        if name in wanted:
            with switch():
                results[name] = _figures(run_suite(settings, args))
    return results


def format_ablations(results: dict[str, Any]) -> str:
    """One row per part switched off: per set, answers and refusals in points against all on."""
    base = results["all on"]
    sets = list(base)
    lines = ["answers / refusals, % (rows below: change in points with that part off)",
             f"{'':<26}" + "".join(f"{s:>16}" for s in sets)]
    for name, figures in results.items():
        cells = []
        for s in sets:
            pair = []
            for key, _ in SHOWN:
                value, reference = figures.get(s, {}).get(key), base[s].get(key)
                if value is None or reference is None:
                    pair.append("—")
                elif name == "all on":
                    pair.append(f"{100 * value:.0f}")
                else:
                    pair.append(f"{100 * (value - reference):+.0f}")
            cells.append("/".join(pair))
        lines.append(f"{name:<26}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def cmd_ablate(settings: Settings, args: argparse.Namespace) -> int:
    print(format_ablations(run_ablations(settings, args)))
    return 0
