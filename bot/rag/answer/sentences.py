"""The sentences of retrieved chunks as answer candidates: each sentence once, in retrieval
order, with the sentence before it as context when it leans on it ("He also ...")."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.rag.answer.answer_types import CONTINUES, PRONOUN_SUBJECTS
from bot.rag.models import Chunk
from bot.rag.text import Span, split_sentences, words

CONTEXT_WINDOW = 800  # characters before a chunk read for the sentences that lead into it
FENCE = "```"
PROSE_LETTERS = 0.6  # share of a prose sentence's visible characters that are letters
LISTED_NAMES = 3  # code spans holding most of a sentence's letters make it a listing of names
PASSAGE_MAX_SENTENCES = 2  # sentences a passage may add after the chosen one
PASSAGE_MAX_CHARS = 400
# A question wants code (a code block may be its answer) when it asks for code, an example,
# a command or the syntax of something.
_ASKS_CODE = re.compile(
    r"\b(example|snippet|syntax|command|commands|pip install|how (do|can|should|would) (i|you|we) (write|type|spell)"
    r"|show (me )?(the |some )?code|(sample|example) code|code (example|sample))\b",
    re.IGNORECASE,
)  # "code" alone is no request for it: "the code under test still calls ..."


def asks_for_code(question: str) -> bool:
    return bool(_ASKS_CODE.search(question))


_MARKUP = re.compile(r"</|/>|^\s*<[A-Za-z?!]")


_CODE_SPAN = re.compile(r"`[^`\n]*`")


def is_prose(sentence: str) -> bool:
    """Whether a sentence reads as prose: mostly letters, not a listing of `names` (a
    contents page's), no markup (an XML or HTML example that a PDF's text gives without code
    fences)."""
    visible = [ch for ch in sentence if not ch.isspace()]
    letters = sum(ch.isalpha() for ch in visible)
    spans = _CODE_SPAN.findall(sentence)
    in_code = sum(ch.isalpha() for span in spans for ch in span)
    listing = len(spans) >= LISTED_NAMES and 2 * in_code > letters
    return bool(visible) and letters >= PROSE_LETTERS * len(visible) and not listing and not _MARKUP.search(sentence)


def answers_something(candidate: Candidate, code_wanted: bool) -> bool:
    """Whether a candidate may be the answer: a question ("What happens if ...?", a FAQ's own
    question line) answers nothing, and code (fenced, or markup and symbols that are not
    prose) only answers a question that asks for code."""
    text = candidate.span.text
    if text.rstrip().endswith("?"):
        return False
    return code_wanted or not (candidate.code or candidate.introduces_code or not is_prose(text))


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved chunk; `span` offsets are into the source's text."""

    chunk: Chunk
    span: Span
    previous: Span | None  # the sentence before it in the source, if any
    position: int  # order of first appearance over the retrieved chunks
    code: bool = False  # inside a ``` code block (or one itself)
    introduces_code: bool = False  # "use the following command:" followed by code


def candidates_of(chunks: Sequence[Chunk], source_text: Callable[[str], str]) -> list[Candidate]:
    """Sentences of the chunks, each once (chunks overlap), in retrieval order, each with
    the sentence before it in its source. Only the chunk and a little before it are split
    into sentences, so the cost does not grow with the size of the source."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for chunk in chunks:
        text = source_text(chunk.source)
        window = max(0, chunk.start - CONTEXT_WINDOW)
        spans = [
            Span(window + s.start, window + s.end, s.text)
            for s in _apart_from_headings(split_sentences(text[window:chunk.end]))
        ]
        if window > 0 and spans:
            spans = spans[1:]  # may be cut by the window: never a candidate nor context
        fences, counted = text.count(FENCE, 0, window), window  # fences opened before each span
        for i, span in enumerate(spans):
            fences, counted = fences + text.count(FENCE, counted, span.start), span.start
            if span.start < chunk.start or span.end > chunk.end or is_heading(span.text):
                continue  # a heading names the section (the citation shows it); it answers nothing
            if (chunk.source, span.start) not in seen:
                seen.add((chunk.source, span.start))
                code = fences % 2 == 1 or span.text.startswith(FENCE)
                introduces = span.text.endswith(":") and _code_follows(text, span.end)
                out.append(Candidate(chunk, span, _context_before(spans, i, text), len(out), code, introduces))
    return out


def passage_end(text: str, end: int, code_wanted: bool) -> int:
    """Where the passage quoting the sentence that ends at `end` should end: the answer is a
    short passage, not a lone sentence. The sentences that follow in its section join it, across
    paragraphs ("... will be cancelled." then "If you wish to use background tasks, use a
    task queue"), at most `PASSAGE_MAX_SENTENCES` of them, adding at most `PASSAGE_MAX_CHARS`.
    A heading or a code block (unless code is wanted) ends it."""
    first_end = end
    for _ in range(PASSAGE_MAX_SENTENCES):
        window = text[end:end + 2 * PASSAGE_MAX_CHARS]  # longer than any sentence that may join
        ahead = split_sentences(window)
        if not ahead or (ahead[0].end == len(window) and end + len(window) < len(text)):
            break  # the next sentence runs past the window: too long to join
        nxt = ahead[0]
        if is_heading(nxt.text) or (nxt.text.startswith(FENCE) and not code_wanted):
            break
        if end + nxt.end - first_end > PASSAGE_MAX_CHARS:
            break
        end = end + nxt.end
    return end


def _code_follows(text: str, end: int) -> bool:
    """Whether what follows `end` (after blank space) is code: a fenced block, or a line
    that is not prose (a PDF gives code without fences)."""
    ahead = text[end:end + PASSAGE_MAX_CHARS].lstrip()
    line = ahead.split("\n", 1)[0]
    return ahead.startswith(FENCE) or (bool(line) and not is_prose(line))


def own_sentences(chunk: Chunk) -> list[str]:
    """The sentences of the chunk's own text, without its page: what retrieval compares with
    the question (the same texts as `sentence_texts` but for a chunk's cut first sentence)."""
    return [s.text for s in _apart_from_headings(split_sentences(chunk.text)) if not is_heading(s.text)]


def sentence_texts(chunk: Chunk, source_text: Callable[[str], str]) -> list[str]:
    """The texts of the chunk's answer candidates: what ingest embeds for the answerer."""
    return [c.span.text for c in candidates_of([chunk], source_text)]


def _context_before(spans: Sequence[Span], i: int, text: str) -> Span | None:
    """The sentence before spans[i], reaching one further back when that sentence itself
    continues its predecessor (a quote running over two sentences, "I will ...")."""
    if i == 0 or is_heading(spans[i - 1].text):
        return None
    start = spans[i - 1].start
    if i >= 2 and continues_previous(spans[i - 1].text):
        start = spans[i - 2].start
    return Span(start, spans[i - 1].end, text[start:spans[i - 1].end])


_HEADING_LINE = re.compile(r"^#{1,6} [^\n]*$", re.MULTILINE)


def _apart_from_headings(spans: list[Span]) -> list[Span]:
    """The spans with every heading line ("## sys.exception()") a span of its own: a heading
    followed by text on the next line would otherwise read as one sentence."""
    out: list[Span] = []
    for span in spans:
        cuts = sorted({0, len(span.text)} | {p for m in _HEADING_LINE.finditer(span.text) for p in m.span()})
        for lo, hi in zip(cuts, cuts[1:]):
            piece = span.text[lo:hi]
            lead = len(piece) - len(piece.lstrip())
            if piece.strip():
                out.append(Span(span.start + lo + lead, span.start + lo + lead + len(piece.strip()), piece.strip()))
    return out


def is_heading(sentence: str) -> bool:
    """A heading line of a converted document ("## sys.exception()")."""
    return sentence.startswith("#")


def starts_with_pronoun(sentence: str) -> bool:
    first = words(sentence[:20])
    return bool(first) and first[0] in PRONOUN_SUBJECTS


def continues_previous(sentence: str) -> bool:
    """Whether the sentence leans on the one before ("He also ...", "However, ...", a quote)."""
    first = words(sentence[:30])
    return sentence[:1] in "\"“" or (bool(first) and (first[0] in CONTINUES or first[1:2] == ["also"]))
