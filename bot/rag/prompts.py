"""Prompt templates, read from the `prompts/` folder: the only place prompt wording lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from langchain_core.prompts import ChatPromptTemplate

from bot.rag.errors import RagError


@dataclass(frozen=True)
class Prompts:
    answer: ChatPromptTemplate
    summary: ChatPromptTemplate
    condense: ChatPromptTemplate  # a follow-up and the conversation -> a standalone question
    excerpt: str  # format string with {n}, {source}, {text}
    refusal: str  # what the bot says when the sources do not hold the answer
    uncited_note: str  # appended to a model answer that cites no retrieved chunk

    @classmethod
    def load(cls, folder: Path) -> Prompts:
        def read(name: str) -> str:
            path = folder / name
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise RagError(f"Prompt file {path} cannot be read: {exc.strerror or exc}.") from exc

        return cls(
            answer=ChatPromptTemplate.from_messages(
                [("system", read("answer_system.md")), ("human", read("answer_user.md"))]
            ),
            summary=ChatPromptTemplate.from_messages(
                [("system", read("summary_system.md")), ("human", read("summary_user.md"))]
            ),
            condense=ChatPromptTemplate.from_messages(
                [("system", read("condense_system.md")), ("human", read("condense_user.md"))]
            ),
            excerpt=read("excerpt.txt"),
            refusal=read("refusal.txt"),
            uncited_note=read("uncited_note.txt"),
        )
