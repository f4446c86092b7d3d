"""How the command line shows answers, summaries and their citations: as plain text, an
answer printed as it is written (streaming back-ends) and then its citations."""

from __future__ import annotations

import sys

from bot.rag.access import EVERYONE, Audience
from bot.rag.models import Answer, Citation, Summary
from bot.rag.service import RagService


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_citation(citation: Citation, width: int = 160) -> str:
    quote = citation.quote if len(citation.quote) <= width else citation.quote[: width - 1] + "…"
    where = citation.source + (citation.label or "")[len(citation.source.rsplit("/", 1)[-1]):]  # + "› heading p. 3"
    link = f" <{citation.link}>" if citation.link else ""
    return f"[{citation.n}] {where}, characters {citation.start}–{citation.end}{link}: {quote}"


def format_answer(answer: Answer) -> str:
    lines = [answer.answer]
    if answer.citations:
        lines.append("")
        lines.extend(format_citation(c) for c in answer.citations)
    return "\n".join(lines)


def format_summary(summary: Summary) -> str:
    title = f"Summary of {summary.source}" if summary.source else "Summary of all sources"
    lines = [title + ":"]
    lines.extend(f"- {b.text} " + "".join(f"[{n}]" for n in b.citations) for b in summary.bullets)
    lines.append("")
    lines.extend(f"[{c.n}] {c.source}, characters {c.start}–{c.end}" for c in summary.citations)
    return "\n".join(lines)


def print_streamed(service: RagService, question: str, guild_id: int | None = None,
                   audience: Audience = EVERYONE) -> None:
    """Print the answer as it is written (streaming back-ends), then its citations."""
    printed = ""
    for item in service.stream(question, guild_id=guild_id, audience=audience):
        if isinstance(item, Answer):
            if item.answer.startswith(printed):
                sys.stdout.write(item.answer[len(printed):])
            else:  # markers were renumbered after the fact: show the final text whole
                sys.stdout.write(("\n\n" if printed else "") + item.answer)
            sys.stdout.write("\n")
            if item.citations:
                print("\n" + "\n".join(format_citation(c) for c in item.citations))
            sys.stdout.flush()
            return
        if item.startswith(printed):
            sys.stdout.write(item[len(printed):])
            sys.stdout.flush()
            printed = item
