"""What a question quotes: members paste error messages and output ("I get the whole
'during handling of the above exception' thing", "it says “No module named foo”"). A
passage holding those words literally is surer evidence than word statistics, which weigh
each of them as a common word (BM25 drops "during", "of", "the", "above" as stopwords).
The retriever fuses the chunks that hold a quoted phrase in as one more ranking.

A phrase is two or more words inside quotes ('…', "…", “…”, ‘…’, `…`). A chunk holds it
when its text has those words in that order, whatever their case and whatever spaces or
punctuation stand between them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.rag.text import words

# An apostrophe inside a word ("don't") opens no quote: a single quote counts at a word edge.
_QUOTED = re.compile(
    r"\"([^\"\n]{3,300})\"|“([^”\n]{3,300})”|‘([^’\n]{3,300})’|`([^`\n]{3,300})`"
    r"|(?<!\w)'([^'\n]{3,300}?)'(?!\w)"
)
LIMIT = 10  # chunks taken per phrase


def quoted_phrases(question: str) -> list[str]:
    """The phrases of two or more words that `question` quotes, in order."""
    found = []
    for match in _QUOTED.finditer(question):
        phrase = next(g for g in match.groups() if g is not None).strip()
        if len(words(phrase)) >= 2 and phrase not in found:
            found.append(phrase)
    return found


def phrase_pattern(phrase: str) -> str:
    """A regular expression for the phrase's words in order: "During handling of the above
    exception," and "during  handling of the above exception" both match."""
    return r"(?i)\b" + r"\W+".join(re.escape(w) for w in words(phrase)) + r"\b"


def quoting_chunks(question: str, matching: Callable[[str, int], list[str]]) -> list[str]:
    """Ids of the chunks that hold a phrase the question quotes; `matching(pattern, limit)`
    is the version's full-text search."""
    out: list[str] = []
    for phrase in quoted_phrases(question):
        for chunk_id in matching(phrase_pattern(phrase), LIMIT):
            if chunk_id not in out:
                out.append(chunk_id)
    return out
