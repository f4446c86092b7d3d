"""What a question quotes: members paste error messages and output ("I get the whole
'during handling of the above exception' thing", "it says “No module named foo”"). A
passage holding those words literally is surer evidence than word statistics, which weigh
each of them as a common word (BM25 drops "during", "of", "the", "above" as stopwords).
The retriever fuses the chunks that hold a quoted phrase in as one more ranking.

A phrase is two or more words inside quotes ('…', "…", “…”, ‘…’, `…`), two of them of two
letters or more. A chunk holds it when its text has those words in that order, whatever their
case and whatever spaces or punctuation stand between them. A phrase held by more than LIMIT
chunks ("for loop") singles nothing out and is dropped; a question's first PHRASES phrases
are looked up, each one full-text search.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# An apostrophe inside a word ("don't") opens no quote: a single quote counts at a word edge.
_QUOTED = re.compile(
    r"\"([^\"\n]{3,300})\"|“([^”\n]{3,300})”|‘([^’\n]{3,300})’|`([^`\n]{3,300})`"
    r"|(?<!\w)'([^'\n]{3,300}?)'(?!\w)"
)
LIMIT = 10  # chunks a phrase may match and still single them out
PHRASES = 3  # phrases of one question looked up
_TOKEN = re.compile(r"\w+")  # Unicode words, "_" included: "my_module", "__init__", "café"


def quoted_phrases(question: str) -> list[str]:
    """The phrases `question` quotes (two or more words, two of them two letters or more),
    the first PHRASES of them in order."""
    found: list[str] = []
    for match in _QUOTED.finditer(question):
        phrase = next(g for g in match.groups() if g is not None).strip()
        tokens = _TOKEN.findall(phrase)
        if len(tokens) >= 2 and sum(len(t) >= 2 for t in tokens) >= 2 and phrase not in found:
            found.append(phrase)
    return found[:PHRASES]


def phrase_pattern(phrase: str) -> str:
    """A regular expression for the phrase's words in order: "During handling of the above
    exception," and "during  handling of the above exception" both match."""
    return r"(?i)\b" + r"\W+".join(re.escape(w) for w in _TOKEN.findall(phrase)) + r"\b"


def quoting_chunks(question: str, matching: Callable[[str, int], list[str]]) -> list[str]:
    """Ids of the chunks that hold a phrase the question quotes; `matching(pattern, limit)`
    is the version's full-text search."""
    out: list[str] = []
    for phrase in quoted_phrases(question):
        found = matching(phrase_pattern(phrase), LIMIT + 1)
        if len(found) > LIMIT:
            continue
        for chunk_id in found:
            if chunk_id not in out:
                out.append(chunk_id)
    return out
