"""Text handling shared by ingest and answering: normalising tokenised text, sentence spans,
and the keys used to compare text loosely.

Sources such as the seed article come lower-cased and tokenised (`israel ' s`, `1 , 200`,
`( idf )`, `" quoted "`). `normalise_text` rejoins them so quotes read naturally; it leaves
ordinary prose unchanged. All character offsets in the index refer to the normalised text.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import snowballstemmer

_NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "..."}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "£", "€"}
_CONTRACTION_TAILS = {"s", "t", "re", "ve", "ll", "d", "m"}
_QUOTES = {'"', "“", "”"}
_QUOTE_CLUSTER = re.compile(r'[.,;:!?]*["“”][.,;:!?"“”]*')

# Control and zero-width characters that never belong in shown text (tab/newline are kept).
_INVISIBLE = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


def clean_invisible(text: str) -> str:
    """NFC-normalise and drop control and zero-width characters."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFC", text))


def _detokenise_line(tokens: list[str], quote_open: bool) -> tuple[str, bool]:
    """Join whitespace-separated tokens of one line; returns the line and quote parity."""
    out = ""
    glue = True  # no space before the next token (line start, after "(" or an opening quote)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok == "'" and out and nxt.lower() in _CONTRACTION_TAILS:
            out += "'" + nxt  # israel ' s -> israel's ; don ' t -> don't
            i, glue = i + 2, False
            continue
        if tok in {",", "."} and out[-1:].isdigit() and nxt.isdigit() and (tok == "." or len(nxt) == 3):
            out += tok + nxt  # 1 , 200 -> 1,200 ; 1 . 5 -> 1.5
            i, glue = i + 2, False
            continue
        if _QUOTE_CLUSTER.fullmatch(tok):  # ", ". or ." ...: one or more quote marks
            starts_with_punct = tok[0] not in _QUOTES
            for ch in tok:
                if ch in _QUOTES:
                    quote_open = not quote_open
            closing = starts_with_punct or not quote_open
            out += tok if (glue or closing) else " " + tok
            glue = quote_open and tok[-1] in _QUOTES
            i += 1
            continue
        out += tok if (glue or tok in _NO_SPACE_BEFORE) else " " + tok
        glue = tok in _NO_SPACE_AFTER
        i += 1
    return out, quote_open


def _looks_tokenised(text: str) -> bool:
    return bool(re.search(r"\w ' s\b|\w \.(\s|$)|\w ,\s", text))


def _capitalise_sentences(text: str) -> str:
    """Upper-case sentence starts and the pronoun `i` in all-lower-case text."""
    text = re.sub(r"(^|[.!?][\"”']?\s+|\n\s*)([\"“(]?)([a-z])", lambda m: m.group(1) + m.group(2) + m.group(3).upper(), text)
    return re.sub(r"(?<![\w'])i(?=['\s,.;:!?]|$)", "I", text)


def normalise_text(text: str) -> str:
    """Readable text from raw source text; ordinary prose passes through unchanged."""
    text = clean_invisible(text).replace("\r\n", "\n").replace("\r", "\n")
    if not _looks_tokenised(text):
        return text.strip()
    lines: list[str] = []
    quote_open = False
    for line in text.split("\n"):
        joined, quote_open = _detokenise_line(line.split(), quote_open)
        lines.append(joined)
    result = "\n".join(lines).strip()
    if not any(ch.isupper() for ch in result):
        result = _capitalise_sentences(result)
    return result


@dataclass(frozen=True)
class Span:
    """A sentence (or any piece) of a text, with character offsets into that text."""

    start: int
    end: int
    text: str


_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "gen", "lt", "maj", "col", "capt", "sgt", "st", "jr", "sr",
    "vs", "etc", "inc", "ltd", "co", "no", "fig", "e.g", "i.e", "u.s", "u.k", "u.n", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}
_SENTENCE_END = re.compile(r"[.!?]+[\"”')\]]*(?=\s+|$)|\n\s*\n")


def split_sentences(text: str) -> list[Span]:
    """Sentence spans of `text` (offsets into it), splitting on . ! ? and blank lines."""
    spans: list[Span] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        word = re.search(r"([\w.]+)[.!?]+[\"”')\]]*$", text[start:end])
        if word and match.group(0).startswith(".") and word.group(1).lower().rstrip(".") in _ABBREVIATIONS:
            continue
        _add_span(text, start, end, spans)
        start = end
    _add_span(text, start, len(text), spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[Span]) -> None:
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    piece = piece.strip()
    if piece:
        spans.append(Span(start + lead, start + lead + len(piece), piece))


_WORD = re.compile(r"[a-z0-9]+")


def match_key(text: str) -> str:
    """Lower-case letters and digits only: compares text across tokenisation and punctuation."""
    return "".join(_WORD.findall(text.lower()))


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters/digits), for lexical scoring."""
    return _WORD.findall(text.lower())


STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves s t according said says say also may might must shall""".split()
)
_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The word's Snowball (Porter 2) stem: resigned/resigns/resigning -> resign, sites -> site."""
    return word if word.isdigit() else _STEMMER.stemWord(word)


def content_terms(text: str) -> list[str]:
    """Stemmed words of `text` without stopwords: the lexical view used for matching."""
    return [stem(w) for w in words(text) if w not in STOPWORDS]


_FENCED = re.compile(r"^\s*```[^\n]*\n(.*?)\n?```\s*$", re.DOTALL)
_FENCE_LINE = re.compile(r"^\s*```[^\n]*$", re.MULTILINE)
_HEADING_MARK = re.compile(r"^#{1,6}\s+", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_INLINE_CODE = re.compile(r"`+([^`\n]+?)`+")
_SPACE_RUN = re.compile(r"\s+")


def readable_quote(text: str) -> str:
    """A quoted span of converted text as a member reads it: one fenced code block stays a
    code block (it is the answer); anything else becomes one line of clean prose, without
    markdown marks (headings, bullets, emphasis, backticks, fences, table pipes) or runs of
    spaces. Only marks go: every word of the span stays, in order."""
    fenced = _FENCED.match(text)
    if fenced:
        return "```\n" + fenced.group(1).strip("\n") + "\n```"
    text = _FENCE_LINE.sub(" ", text)
    text = _TABLE_RULE.sub(" ", text)
    text = _HEADING_MARK.sub("", text)
    text = _BULLET.sub("", text)
    text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = text.replace("|", " ")
    return _SPACE_RUN.sub(" ", text).strip()


def is_code_block(quote: str) -> bool:
    return quote.startswith("```")
