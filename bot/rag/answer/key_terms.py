"""Key terms of a question — the names, tools and other rare words it is about — and which
of them a knowledge base never mentions. A question about something the documents never
name ("how do I register a blueprint in flask?" asked of the Python docs, "what did Joe Biden
say?" asked of a news article) cannot be answered from them, however close some sentence
sounds: the extractive answerer asks more of its evidence instead of quoting a near miss.

A word is a key term when it is rarer in everyday English than `KEY_TERM_MAX_ZIPF` on
wordfreq's Zipf scale ("the" 7.7, "keyboard" 4.1, "flask" 3.2, "pytest" 0). Quoted text and
code (`'test_'`, `open('pyproject.toml')`) are left out: they are what the asker typed, not
the subject asked about. Whether the knowledge base mentions a term is its lexical index's
call (which forgives a typo).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from wordfreq import zipf_frequency

from bot.rag.text import STOPWORDS, stem

KEY_TERM_MAX_ZIPF = 4.0
_QUOTED = re.compile(r"`[^`\n]*`|(?<![\w'])'[^'\n]+'(?!\w)|\"[^\"\n]*\"|“[^”\n]*”")
_CODE = re.compile(r"\S*[_()\[\]{}=<>/\\@$]\S*")  # identifiers, calls, paths: not words the asker chose
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
VERSION = re.compile(r"(?<![\w.])\d+\.\d+(?:\.\d+)?(?![\w]|\.\d)")  # "3.12", "2.7.18"
# Chat spellings without the apostrophe: rare on paper, common in questions, never a subject.
_CHAT_WORDS = frozenset(
    """whats thats hows whys wheres whos dont doesnt didnt cant couldnt wont wouldnt shouldnt
    isnt arent wasnt werent havent hasnt im ive id youre youve theyre lets pls plz thx thanks
    btw imo idk tho anyone someone anybody somebody""".split()
)


def _rare_words(question: str) -> dict[str, float]:
    """The question's words rarer than KEY_TERM_MAX_ZIPF, with their Zipf frequencies."""
    prose = _CODE.sub(" ", _QUOTED.sub(" ", question))
    found: dict[str, float] = {}
    for word in _WORD.findall(prose):
        word = word.lower()
        if len(word) < 3 or word in STOPWORDS or word in _CHAT_WORDS or word in found:
            continue
        zipf = zipf_frequency(word, "en")
        if zipf < KEY_TERM_MAX_ZIPF:
            found[word] = zipf
    return found


def key_terms(question: str) -> list[str]:
    """The question's rare words (lower case, in order, each once)."""
    return list(_rare_words(question))


def named_things(question: str) -> list[str]:
    """What the question names that is no everyday word: tools, modules, functions, people
    ("pytest", "isclose", "haliva") and versions ("3.12"). An answer must come from a page
    that names them too: a page about unittest fixtures does not answer a pytest question."""
    prose = _CODE.sub(" ", _QUOTED.sub(" ", question))
    names = [word for word, zipf in _rare_words(question).items() if zipf == 0 and len(word) >= 4]
    return list(dict.fromkeys(VERSION.findall(prose))) + names


def missing_key_terms(question: str, known: Callable[[str], bool]) -> list[str]:
    """The key terms of `question` the knowledge base never mentions; `known` tells whether
    it mentions a stemmed term."""
    return [word for word in key_terms(question) if not known(stem(word))]

