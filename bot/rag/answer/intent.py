"""Is a question a request to summarise? "Summarize the article", "give me a summary of the
ferry guide", "tl;dr", "what are the key points of X", "sum up the sources" are; and which
source they name (None: all sources).

Strict on purpose: only a request addressed to the bot counts (it opens the message, after
"please" / "can you" / "hey"), and what it asks to summarise must be one of the sources or a
word for them ("the article", "this document", "everything"). So "what does the summary
function return?" and "how do I summarize a dataframe in pandas" stay questions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.rag.text import words


@dataclass(frozen=True)
class SummaryRequest:
    """A request for the summary of `source` (a source's name), or of all sources (None)."""

    source: str | None


# Words that stand for "the sources" rather than naming one.
_SINGULAR_NOUNS = {
    "article", "document", "doc", "text", "file", "page", "story", "piece", "report", "source",
    "post", "paper", "essay", "content", "material", "news", "it", "this", "that",
}
_PLURAL_NOUNS = {
    "articles", "documents", "docs", "texts", "files", "pages", "stories", "reports", "sources",
    "posts", "papers", "everything", "all", "them", "these", "those", "materials", "contents",
    "knowledge", "base", "kb",
}
_DETERMINERS = {"the", "this", "that", "these", "those", "your", "my", "our", "a", "an", "all", "of", "every", "each", "whole", "entire", "full", "main"}
_FILLER = {"please", "pls", "plz", "thanks", "thank", "you", "for", "me", "us", "briefly", "quickly", "again", "now", "here"}
# After the target: "in 3 bullets", "for me", "in a few sentences", "please".
_TAIL = re.compile(
    r"(?:\s+(?:in|into|with|as|using)\s+(?:\d+|a|one|two|three|four|five|six|few|some|short|brief)\b.*"
    r"|\s+(?:for\s+(?:me|us)|please|pls|plz|thanks|thank\s+you|briefly|quickly|again|now))+$"
)

_OPENING = (
    r"^(?:(?:hey|hi|hello|ok|okay|so|yo)\b[\s,!]*)?"
    r"(?:bot\b[\s,:]*)?"
    r"(?:please\s+)?"
    r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:just\s+)?)?"
    r"(?:(?:i\s+(?:want|need|would\s+like)|i'd\s+like|i'm\s+looking\s+for)\s+(?:to\s+(?:get|have|see|read)\s+)?)?"
    r"(?:(?:just|quickly|briefly)\s+)?"
)
_SIZE = r"(?:(?:a|an|the|your)\s+)?(?:(?:short|quick|brief|little|concise|small|tiny|one[- ]line|high[- ]level)\s+)*"
_SUMMARY_NOUN = r"(?:summary|summarization|summarisation|synopsis|recap|overview|rundown|gist|digest|tl;?\s?dr|tldr|tl\s+dr)"
_PREPOSITION = r"(?:\s+(?:of|for|on|about|from|covering)\b)"
_TARGET = r"(?P<target>.*?)"
_END = r"(?:[\s,]+(?:please|pls|plz|thanks|thank\s+you))?\s*[.!?…]*\s*$"

_PATTERNS = [
    # summarize the article / sum up the sources / recap it / summarize
    re.compile(_OPENING + r"(?:summari[sz]e|sum\s+up|recap|condense|tl;?dr)(?:\s+(?:for\s+me|me))?" + r"(?:\s+" + _TARGET + r")?" + _END),
    # sum the article up
    re.compile(_OPENING + r"sum\s+" + _TARGET + r"\s+up" + _END),
    # give me a summary of X / write a short summary / show the tl;dr / make a recap for X
    re.compile(
        _OPENING + r"(?:give|get|write|make|show|send|provide|post|do|create|produce|prepare)\s+(?:me\s+|us\s+)?"
        + _SIZE + _SUMMARY_NOUN + r"(?:" + _PREPOSITION + r"\s+" + _TARGET + r")?" + _END
    ),
    # summary of X / a short summary please / tl;dr / summary
    re.compile(_OPENING + _SIZE + _SUMMARY_NOUN + r"(?:" + _PREPOSITION + r"\s+" + _TARGET + r")?" + _END),
    # X tl;dr / X summary?  (only when X is a source or a word for the sources: checked below)
    re.compile(_OPENING + _TARGET + r"\s+(?:tl;?\s?dr|tldr|summary)(?:\s+please)?" + _END),
    # what are the key points of X / key takeaways from X / main points?
    re.compile(
        _OPENING + r"(?:(?:what\s+are|what's|what\s+is|whats|list|give\s+me|tell\s+me|show\s+me)\s+)?(?:the\s+)?"
        r"(?:key|main|most\s+important|important|essential|major|central)\s+(?:points?|takeaways?|facts|ideas|messages?|highlights|findings)"
        + r"(?:" + r"(?:\s+(?:of|in|from|for|about|covered\s+in|made\s+in))" + r"\s+" + _TARGET + r")?" + _END
    ),
    # what is the article about / what are the sources about / what's it about
    re.compile(_OPENING + r"(?:what\s+is|what's|whats|what\s+are)\s+" + _TARGET + r"\s+(?:all\s+)?about" + _END),
    # what does the article say (in short / overall)?
    re.compile(_OPENING + r"what\s+(?:does|do)\s+" + _TARGET + r"\s+say(?:\s+(?:in\s+short|overall|in\s+brief|in\s+general))?" + _END),
]
# For these patterns the target must be given ("X summary", "what is X about").
_TARGET_REQUIRED = {4, 6, 7}
# And for these it must be a word for the sources or a source's exact name or title: "what is
# the article about" asks for a summary, "what is the resignation about" is a question.
_EXACT_TARGET = {6, 7}
# "sum up what the article says": the article.
_WHAT_IT_SAYS = re.compile(
    r"^(?:what|everything|all)\s+(?:that\s+)?(?P<inner>.+?)\s+(?:says|said|say|covers|covered|is\s+about|are\s+about|"
    r"talks\s+about|discusses|contains|tells\s+(?:me|us)|explains)$"
)


def summary_request(
    question: str, source_names: Sequence[str], titles: Mapping[str, str | None] | None = None
) -> SummaryRequest | None:
    """The summary the question asks for, or None when it is not a request to summarise.
    `source_names` are the sources one may name (file names, e.g. "guide.md"); `titles`
    optionally maps a name to its title, matched too."""
    text = _normalise(question)
    if not text:
        return None
    for number, pattern in enumerate(_PATTERNS):
        match = pattern.match(text)
        if match is None:
            continue
        target = _strip_tail((match.groupdict().get("target") or "").strip())
        if not target:
            if number in _TARGET_REQUIRED:
                continue
            return SummaryRequest(_only(source_names))
        found = _resolve(target, source_names, titles or {}, loose=number not in _EXACT_TARGET)
        if found is not None:
            return found
    return None


def _normalise(question: str) -> str:
    text = " ".join(question.replace("’", "'").split()).lower()
    return text.strip(" \t\"'“”`*_")


def _strip_tail(target: str) -> str:
    previous = None
    while previous != target:
        previous = target
        target = _TAIL.sub("", target).strip(" ,.:;!?")
        inner = _WHAT_IT_SAYS.match(target)
        if inner:
            target = inner.group("inner")
    return target


def _only(names: Sequence[str]) -> str | None:
    """One source: name it (the summary then says which); several: all of them (None)."""
    return names[0] if len(names) == 1 else None


def _resolve(
    target: str, names: Sequence[str], titles: Mapping[str, str | None], loose: bool = True
) -> SummaryRequest | None:
    """What a target means: a word for the sources, or one source named loosely, or nothing
    (then the message is not asking for our summary)."""
    tokens = [w for w in words(target) if w not in _DETERMINERS and w not in _FILLER]
    if not tokens:
        return SummaryRequest(_only(names))
    if all(t in _PLURAL_NOUNS for t in tokens):
        return SummaryRequest(None)
    if all(t in _SINGULAR_NOUNS or t in _PLURAL_NOUNS for t in tokens):
        return SummaryRequest(_only(names) if not set(tokens) & _PLURAL_NOUNS else None)
    named = _named_source(target, tokens, names, titles, loose)
    return SummaryRequest(named) if named is not None else None


def _keys(name: str, title: str | None) -> list[tuple[str, set[str]]]:
    """The ways a source may be named: its file name, without folder and suffix, and title."""
    base = name.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0]
    keys = [name.lower(), base.lower(), stem.lower(), name.rsplit(".", 1)[0].lower()]
    if title:
        keys.append(title.lower())
    return [(key, set(words(key)) - _DETERMINERS) for key in dict.fromkeys(keys) if key]


def _named_source(
    target: str, tokens: list[str], names: Sequence[str], titles: Mapping[str, str | None], loose: bool
) -> str | None:
    """The source the target names: exactly (file name with or without suffix, title), else
    the one whose name or title shares the most words with it (all the target's own words,
    besides "article", "file"..., must be in it). None when no source or several tie."""
    wanted = " ".join(w for w in target.split() if w not in _DETERMINERS).strip(" \"'“”`")
    own = {t for t in tokens if t not in _SINGULAR_NOUNS and t not in _PLURAL_NOUNS}
    scores: dict[str, float] = {}
    for name in names:
        for key, key_words in _keys(name, titles.get(name)):
            if wanted == key:
                return name
            if loose and own and key_words and own <= key_words:
                scores[name] = max(scores.get(name, 0.0), len(own) / len(key_words))
    if not scores:
        return None
    best = max(scores.values())
    winners = [name for name, score in scores.items() if score == best]
    return winners[0] if len(winners) == 1 else None
