"""Turning answers, summaries and errors into Discord messages within Discord's limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import discord

from bot.rag.errors import ModelError, RagError
from bot.rag.models import Answer, Citation, IngestReport, SourceInfo, Summary
from bot.rag.text import is_code_block
from bot.state.conversations import StatsReport
from bot.state.corrections import QueueTopic

AUTOCOMPLETE_LIMIT = 25  # Discord shows at most 25 choices
MESSAGE_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_LIMIT = 25
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_TOTAL_LIMIT = 6000
QUOTE_CHARS = 300  # quotes in the sources embed are trimmed to this
TITLE_CHARS = 200  # a source's title in a citation field
LINK_CHARS = 300  # longer links are left out rather than cut
QUOTED_ABOVE = "Quoted above."  # a field's value when the message already shows its quote
FOOTER_RESERVE = 60  # room kept in the embed for "…and N more source(s) not shown"
COVERAGE_CHARS = 300  # the summary heading's list of covered sources is trimmed to this
EMBED_COLOUR = discord.Colour.blurple()

# Sent with every message: text echoed from users or sources never pings anyone.
NO_MENTIONS = discord.AllowedMentions.none()


@dataclass(frozen=True)
class Reply:
    """One Discord message to send."""

    content: str
    embed: discord.Embed | None = None


def trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def trim_code(block: str, limit: int) -> str:
    """A ``` code block cut to `limit` characters with its lines kept and its fence closed."""
    if len(block) <= limit:
        return block
    return block[: max(limit - 6, 4)].rstrip() + "\n…\n```"


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at paragraph, line, sentence or word ends."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = max(window.rfind(". "), window.rfind("! "), window.rfind("? "))
            cut = cut + 1 if cut >= limit // 2 else window.rfind(" ")
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _loose(text: str) -> str:
    return " ".join(text.split()).casefold()


def _already_shown(quote: str, shown: str) -> bool:
    """Whether the message text already holds the quote word for word (the extractive
    back-end's answers and every extractive summary are their quotes)."""
    quote = _loose(quote)
    return bool(quote) and quote in shown


def _place_value(citation: Citation, shown: str, title: str | None) -> str:
    """Where the citation is from (the source's title, its link), and its quote only when
    the message does not already show it. At most 200 + 300 + 300 characters and newlines."""
    lines = []
    if title and _loose(title) not in _loose(citation.label or citation.source):
        lines.append(discord.utils.escape_markdown(trim(title, TITLE_CHARS)))
    if not _already_shown(citation.quote, shown):
        lines.append(trim_code(citation.quote, QUOTE_CHARS) if is_code_block(citation.quote)
                     else trim(f"“{citation.quote}”", QUOTE_CHARS))
    if citation.link and len(citation.link) < LINK_CHARS:
        lines.append(f"<{citation.link}>")
    return "\n".join(lines)[:EMBED_FIELD_VALUE_LIMIT] or QUOTED_ABOVE


def sources_embed(
    citations: list[Citation], title: str = "Sources", shown: str = "", titles: Mapping[str, str | None] | None = None
) -> discord.Embed | None:
    """One field per citation saying where it is from: its label ("functions.html › zip()",
    "manual.pdf p. 3"), the source's title and link when it has them. The quote is added
    only when `shown` (the message text) does not already hold it word for word."""
    if not citations:
        return None
    embed = discord.Embed(title=trim(title, EMBED_TITLE_LIMIT), colour=EMBED_COLOUR)
    shown = _loose(shown)
    total = len(embed.title or "")
    added = 0
    for citation in citations[:EMBED_FIELD_LIMIT]:
        name = trim(f"[{citation.n}] {citation.label or citation.source}", EMBED_FIELD_NAME_LIMIT)
        value = _place_value(citation, shown, (titles or {}).get(citation.source))
        if total + len(name) + len(value) > EMBED_TOTAL_LIMIT - FOOTER_RESERVE:
            break
        embed.add_field(name=name, value=value, inline=False)
        total += len(name) + len(value)
        added += 1
    if added < len(citations):
        embed.set_footer(text=f"…and {len(citations) - added} more source(s) not shown")
    return embed


def _with_embed_last(texts: list[str], embed: discord.Embed | None) -> list[Reply]:
    replies = [Reply(text) for text in texts] or [Reply("…")]
    replies[-1] = Reply(replies[-1].content, embed)
    return replies


def render_answer(answer: Answer, titles: Mapping[str, str | None] | None = None) -> list[Reply]:
    """The answer text (split to fit), then where each citation is from."""
    return _with_embed_last(split_text(answer.answer), sources_embed(answer.citations, shown=answer.answer, titles=titles))


def covered_sources(summary: Summary) -> list[str]:
    """The sources the summary's bullets come from, in order."""
    return list(dict.fromkeys(c.source for c in summary.citations))


def render_summary(summary: Summary, titles: Mapping[str, str | None] | None = None) -> list[Reply]:
    """The bullets under a heading that says what they summarise (for all sources: which
    ones they cover), then where each bullet is from."""
    if summary.source:
        heading = f"**Summary of {discord.utils.escape_markdown(summary.source)}**"
    else:
        covered = covered_sources(summary)
        heading = "**Summary of all sources**"
        if covered:
            names = ", ".join(discord.utils.escape_markdown(name) for name in covered)
            heading += " " + trim(f"— covering {len(covered)} source{'' if len(covered) == 1 else 's'}: {names}", COVERAGE_CHARS)
    bullets = [f"• {b.text} " + "".join(f"[{n}]" for n in b.citations) for b in summary.bullets]
    text = "\n".join([heading, *bullets])
    return _with_embed_last(split_text(text), sources_embed(summary.citations, shown=text, titles=titles))


def render_sources(infos: list[SourceInfo], last_reload: IngestReport | None) -> Reply:
    embed = discord.Embed(title="What I know", colour=EMBED_COLOUR)
    for info in infos[:EMBED_FIELD_LIMIT]:
        when = discord.utils.format_dt(info.ingested_at, "R")
        label = f"{info.title} ({info.name})" if info.title else info.name
        embed.add_field(name=trim(label, EMBED_FIELD_NAME_LIMIT), value=f"{info.chunks} chunk{'' if info.chunks == 1 else 's'} · indexed {when}", inline=False)
    if len(infos) > EMBED_FIELD_LIMIT:
        embed.set_footer(text=f"…and {len(infos) - EMBED_FIELD_LIMIT} more")
    elif last_reload is not None:
        embed.set_footer(text=f"Last reload: {last_reload}")
    return Reply(f"I answer from {len(infos)} source(s).", embed)


def render_reload(report: IngestReport) -> str:
    lines = [f"Reload done: {report}."]
    if not report.rebuilt:
        lines.append("Nothing changed, so the index was kept as it was.")
    if report.failed:
        lines.append("Files that failed keep their previous version (if they had one):")
    lines.extend(f"• {line}" for line in report.details(limit=10))
    if report.reason:
        lines.append(f"Note: {report.reason}")
    return trim("\n".join(lines), MESSAGE_LIMIT)


def _percent(part: int, whole: int) -> str:
    return f" ({part / whole:.0%})" if whole else ""


def _quoted(items: list[tuple[str, int]]) -> list[str]:
    return [f"• “{discord.utils.escape_markdown(trim(text, 150))}”" + (f" ×{n}" if n > 1 else "") for text, n in items]


def render_report(report: StatsReport, period: str, provider: str) -> str:
    """/stats: the figures over the period, then what the sources miss (refused and 👎 questions)."""
    when = {"24h": "the last 24 hours", "7d": "the last 7 days"}.get(period, "all time")
    ms = "—" if report.p50_ms is None else f"{report.p50_ms:.0f} ms (p95 {report.p95_ms or 0:.0f} ms)"
    votes = report.up + report.down
    lines = [
        f"**Questions over {when}** (back-end `{provider}`)",
        f"• questions: {report.questions} — answered {report.answered}, refused {report.refused}"
        f"{_percent(report.refused, report.questions)}",
        f"• feedback: 👍 {report.up} · 👎 {report.down}{_percent(report.up, votes) and f' — {report.up / votes:.0%} positive'}",
        f"• answer time: {ms}",
    ]
    if report.top_sources:
        cited = ", ".join(f"{discord.utils.escape_markdown(name)} ({n})" for name, n in report.top_sources)
        lines.append(f"• most cited: {cited}")
    if report.top_refused:
        lines += ["**Not answered — what the sources miss:**", *_quoted(report.top_refused)]
    if report.top_down:
        lines += ["**Marked 👎:**", *_quoted(report.top_down)]
    return trim("\n".join(lines), MESSAGE_LIMIT)


def render_queue(topics: list[QueueTopic]) -> discord.Embed | None:
    """/stats' 👎 queue: one field per topic (the first 25), each question with its refusal or
    👎 votes and the reasons members gave. The select menu under it opens the correction form."""
    if not topics:
        return None
    embed = discord.Embed(title="To correct — voted 👎 or refused, by topic", colour=EMBED_COLOUR)
    total = len(embed.title or "")
    for n, topic in enumerate(topics[:EMBED_FIELD_LIMIT], start=1):
        lines = []
        for item in topic.items[:5]:
            why = "; ".join(trim(r, 80) for r in item.reasons[:2])
            lines.append(f"• “{discord.utils.escape_markdown(trim(item.question, 120))}” — {item.why}"
                         + (f": {discord.utils.escape_markdown(why)}" if why else ""))
        if len(topic.items) > 5:
            lines.append(f"…and {len(topic.items) - 5} more")
        name = trim(f"{n}. {topic.topic} ({len(topic.items)})", EMBED_FIELD_NAME_LIMIT)
        value = "\n".join(lines)[:EMBED_FIELD_VALUE_LIMIT]
        if total + len(name) + len(value) > EMBED_TOTAL_LIMIT - FOOTER_RESERVE:
            embed.set_footer(text=f"…and {len(topics) - n + 1} more topic(s)")
            break
        embed.add_field(name=name, value=value, inline=False)
        total += len(name) + len(value)
    return embed


def describe_error(error: BaseException) -> str:
    """A plain message for a member; details stay in the log."""
    if isinstance(error, ModelError):
        return f"I couldn't get an answer from the language model: {error}"
    if isinstance(error, RagError):
        return str(error)
    return "Something went wrong on my side while answering; it has been logged. Please try again."
