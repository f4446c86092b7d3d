"""Follow-up questions: turning "and when did he say that?" into a question the retrieval
chain can answer on its own, from the conversation it was asked in.

With a model back-end this is LangChain's history-aware pattern: the recent turns and the
follow-up go through the `condense` prompt to the model (`prompt | model | parser`), and its
one-line rewrite is what is retrieved and answered. The offline back-end cannot rewrite, so
it may ask the follow-up with the previous question after it: the previous question's words
find the passage ("who said the prime minister should have done the same?"), the follow-up's
own words and its answer type ("when" wants a date) pick the sentence. History only helps a
question that needs it (`answer_offline`): a follow-up that stands on its own is answered alone,
and an answer that repeats the previous turn's is never given to a question asking something new.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable

from bot.rag.answer.answer_types import ANSWER_TYPE_WORDS
from bot.rag.models import Answer
from bot.rag.text import STOPWORDS, words

log = logging.getLogger(__name__)
# Words that point back at something said before: a question holding one needs its history.
REFERRING = frozenset("he she him her his hers they them their theirs it its".split())


class Turn(Protocol):
    question: str
    answer: str
    cited: tuple[str, ...]  # the sources the answer cited


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

    @property
    def rewrites(self) -> bool:
        """Whether a model rewrites follow-ups (else `answer_offline` chooses)."""
        return self._rewrite is not None

    def answer_offline(self, question: str, history: Sequence[Turn], ask: Callable[[str], Answer]) -> Answer:
        """The answer to a follow-up without a model, never worse than the question asked alone:
        a question that stands on its own is answered alone, and asked with the previous
        question only when alone it is refused; an elliptical one ("and when did he retire?")
        is asked with the previous question first. An answer with history that is refused, or
        that repeats the previous turn's answer to a question that stands alone, gives way to
        the answer alone."""
        turns = self.budget.bound(history)
        if not turns:
            return ask(question)
        alone = None if needs_history(question) else ask(question)
        if alone is not None and alone.answerable:
            return alone
        helped = ask(_with_previous(question, turns))
        # an elliptical question has no answer alone: the passage already quoted may hold it
        if helped.answerable and (alone is None or not _repeats(helped, turns[-1])):
            return _as_asked(helped, question)
        return alone if alone is not None else ask(question)

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


def needs_history(question: str) -> bool:
    """Whether a follow-up leans on what came before: it refers back ("he", "it", "their") or
    names nothing of its own ("and why?", "when?")."""
    tokens = words(question)
    if REFERRING.intersection(tokens):
        return True
    return not [w for w in tokens if w not in STOPWORDS and w not in ANSWER_TYPE_WORDS and len(w) > 1]


def _repeats(answer: Answer, turn: Turn) -> bool:
    return " ".join(answer.answer.split()) == " ".join(turn.answer.split())


def _as_asked(answer: Answer, question: str) -> Answer:
    """The answer under the member's own words (what a conversation keeps as its history)."""
    return dataclasses.replace(answer, question=question) if answer.question != question else answer


def _not_rewritten(exc: Exception, question: str, turns: Sequence[Turn]) -> str:
    log.warning("follow-up not rewritten (%s): asked with the previous question", type(exc).__name__)
    return _with_previous(question, turns)


def _with_previous(question: str, turns: Sequence[Turn]) -> str:
    return f"{question} {turns[-1].question}" if turns else question


def _inputs(question: str, turns: Sequence[Turn]) -> dict[str, str]:
    return {"history": format_history(turns), "question": question}


def _first_line(text: str, fallback: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "") or fallback
