"""Follow-up questions: turning "and when did he say that?" into a question the retrieval
chain can answer on its own, from the conversation it was asked in.

With a model back-end this is LangChain's history-aware pattern: the recent turns and the
follow-up go through the `condense` prompt to the model (`prompt | model | parser`), and its
one-line rewrite is what is retrieved and answered. The offline back-end cannot rewrite, so
it asks the follow-up with the previous question after it: the previous question's words
find the passage ("who said the prime minister should have done the same?"), the follow-up's
own words and its answer type ("when" wants a date) pick the sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable

log = logging.getLogger(__name__)


class Turn(Protocol):
    question: str
    answer: str


@dataclass(frozen=True)
class HistoryBudget:
    """How much of a conversation goes with a follow-up: at most `turns` turns and about
    `tokens` tokens (characters / 4), the most recent kept."""

    turns: int = 4
    tokens: int = 800

    def bound(self, history: Sequence[Turn]) -> list[Turn]:
        kept: list[Turn] = []
        budget = self.tokens * 4
        for turn in reversed(history[-self.turns:] if self.turns else []):
            size = len(turn.question) + len(turn.answer)
            if kept and size > budget:
                break
            kept.insert(0, turn)
            budget -= size
        return kept


def format_history(history: Sequence[Turn], answer_chars: int = 600) -> str:
    return "\n".join(f"Member: {t.question}\nBot: {t.answer[:answer_chars]}" for t in history)


class FollowUps:
    """The standalone question for a follow-up (`rewrite`: the model chain, or None offline)."""

    def __init__(self, rewrite: Runnable[dict[str, str], str] | None, budget: HistoryBudget) -> None:
        self._rewrite = rewrite
        self.budget = budget

    @classmethod
    def with_model(cls, prompt: Runnable, model: Runnable, budget: HistoryBudget) -> FollowUps:
        return cls(prompt | model | StrOutputParser(), budget)

    def standalone(self, question: str, history: Sequence[Turn]) -> str:
        turns = self.budget.bound(history)
        if not turns or self._rewrite is None:
            return _with_previous(question, turns)
        try:
            return _first_line(self._rewrite.invoke(_inputs(question, turns)), question)
        except Exception as exc:  # the model is down: the offline way still finds the passage
            return _not_rewritten(exc, question, turns)

    async def astandalone(self, question: str, history: Sequence[Turn]) -> str:
        turns = self.budget.bound(history)
        if not turns or self._rewrite is None:
            return _with_previous(question, turns)
        try:
            return _first_line(await self._rewrite.ainvoke(_inputs(question, turns)), question)
        except Exception as exc:
            return _not_rewritten(exc, question, turns)


def _not_rewritten(exc: Exception, question: str, turns: Sequence[Turn]) -> str:
    log.warning("follow-up not rewritten (%s): asked with the previous question", type(exc).__name__)
    return _with_previous(question, turns)


def _with_previous(question: str, turns: Sequence[Turn]) -> str:
    return f"{question} {turns[-1].question}" if turns else question


def _inputs(question: str, turns: Sequence[Turn]) -> dict[str, str]:
    return {"history": format_history(turns), "question": question}


def _first_line(text: str, fallback: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "") or fallback
