"""Answer-type rules: what kind of value a question asks for (a number, a date, a year, an
age, a person, a default) and whether a sentence holds one that the question does not
already name. Written for any corpus; the extractive answerer only accepts typed evidence
for typed questions (people and defaults are preferred, not required)."""

from __future__ import annotations

import re

from bot.rag.text import STOPWORDS, words

_NUMBER_WORDS = set(
    """one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
    hundred hundreds thousand thousands million millions billion billions dozen dozens half
    several""".split()
)
_DATE_WORDS = set(
    """january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday
    saturday sunday yesterday today tomorrow week month year decade century""".split()
)
_AGE = re.compile(r"\b\d{1,3}[- ]years?[- ]old\b|\baged? \d{1,3}\b|\bage of \d{1,3}\b", re.IGNORECASE)
_ASKS_AGE = re.compile(r"\bhow old\b|\bwhat age\b|\bwhat is (his|her|their) age\b", re.IGNORECASE)
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|far|often|large|big)\b|\bwhat (number|percentage|proportion|share|amount)\b",
    re.IGNORECASE,
)
_ASKS_YEAR = re.compile(r"\b(what|which) year\b", re.IGNORECASE)
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_MONTHS = "january february march april may june july august september october november december jan feb mar apr jun jul aug sep sept oct nov dec"
# A day of a month ("7 october", "october 7"): a date, not a quantity.
_DAY_OF_MONTH = re.compile(rf"\b\d{{1,2}}(st|nd|rd|th)? (of )?({_MONTHS.replace(' ', '|')})\b|\b({_MONTHS.replace(' ', '|')}) \d{{1,2}}\b", re.IGNORECASE)
_TIME_UNIT_ASKED = re.compile(r"\bhow many (seconds|minutes|hours|days|weeks|months|years|decades)\b", re.IGNORECASE)
# "When will he retire?" - "once his successor is selected": an event can answer "when".
_TEMPORAL_CLAUSES = {"once", "until", "after", "before", "since", "following"}
# "when" asks for a time only as a question word ("when did he retire?"), not as a
# conjunction ("it reloads when I change a file"); "how long" may be answered by an event too.
_ASKS_DATE = re.compile(
    r"\bwhen (is|was|were|are|will|would|did|does|do|should|can|could|has|have|had)\b|^\W*when\b|\bhow long\b|\b(what|which) (date|day|year|month|time)\b|\bin what year\b|\bwhat time\b", re.IGNORECASE
)
# "What timeout does it use if I don't pass one?": the answer is what happens by default.
_ASKS_DEFAULT = re.compile(
    r"\bdefaults?\b|\bif (i|you|we|one) (do not|don't|dont|didn't|didnt|never) (give|pass|set|specify|provide|supply|say)"
    r"|\bwithout (giving|passing|setting|specifying|providing)\b|\bif (it is|it's|its) (not given|omitted|left out)\b",
    re.IGNORECASE,
)
_DEFAULT = re.compile(r"\bdefault(s|ed|ing)?\b|\bif (omitted|not given|not specified|not provided)\b|\bwhen omitted\b",
                      re.IGNORECASE)
_ASKS_PERSON = re.compile(r"^\s*(who|whom|whose)\b|\b(which|what) (person|man|woman|official|minister|general)\b", re.IGNORECASE)
# Titles and ranks that mark a named person in text without capital letters.
_PERSON_MARKERS = set(
    """mr mrs ms dr prof sir dame lord lady gen general maj major lt lieutenant col colonel capt
    captain sgt sergeant adm admiral president minister premier chancellor senator governor mayor
    judge justice king queen prince princess rabbi imam pope bishop spokesman spokeswoman
    spokesperson ceo chairman chairwoman""".split()
)
# Words that say what kind of answer is wanted, not what it is about: not matched lexically.
ANSWER_TYPE_WORDS = {"date", "day", "year", "month", "time", "happen", "occur", "many", "much", "number", "old", "age"}
PRONOUN_SUBJECTS = {"he", "she", "they", "his", "her", "their"}
# A sentence starting with one of these continues the one before it.
CONTINUES = PRONOUN_SUBJECTS | {"it", "its", "this", "that", "these", "those", "also", "however", "but", "i", "we",
                                "therefore", "thus", "hence", "otherwise", "instead", "then", "so"}
WINDOW_MIN_DENSE = 0.35  # a sentence that does not continue its predecessor needs this to pair up


def expected_answer_type(question: str) -> str | None:
    """'age', 'year', 'number', 'date', 'person', 'default' (what happens when nothing is
    given) or None when the question asks for no particular kind of value."""
    if _ASKS_AGE.search(question):
        return "age"
    if _ASKS_YEAR.search(question):
        return "year"
    if _ASKS_NUMBER.search(question):
        return "number"
    if _ASKS_DATE.search(question):
        return "date"
    if _ASKS_PERSON.search(question):
        return "person"
    if _ASKS_DEFAULT.search(question):
        return "default"
    return None


def names_someone_new(sentence: str, asked: set[str]) -> bool:
    """Whether the sentence names a titled person ("maj gen aharon haliva", "mr netanyahu")
    who is not already named in the question."""
    tokens = words(sentence)
    for i, token in enumerate(tokens):
        if token not in _PERSON_MARKERS:
            continue
        name = []
        for following in tokens[i + 1:i + 5]:
            if following in _PERSON_MARKERS:
                continue
            if following in STOPWORDS or len(name) == 3:
                break
            name.append(following)
        if name and not set(name) & asked:
            return True
    return False


def has_answer_type(kind: str | None, sentence: str, question: str) -> bool:
    """Whether `sentence` holds a value of the kind asked for that the question lacks."""
    if kind is None:
        return True
    if kind == "age":
        return bool(_AGE.search(sentence))
    if kind == "default":
        return bool(_DEFAULT.search(sentence))
    if kind == "year":
        return any(year not in question for year in (m.group(0) for m in _YEAR.finditer(sentence)))
    if kind == "number":
        unit = _TIME_UNIT_ASKED.search(question)
        if unit:  # "how many years": a number of years, not of days
            return bool(re.search(rf"\b(\d+|{'|'.join(_NUMBER_WORDS)})[- ]{unit.group(1)[:-1]}s?\b", sentence, re.IGNORECASE))
        sentence = _DAY_OF_MONTH.sub(" ", sentence)
    asked = set(words(question))
    if kind == "person":
        return names_someone_new(sentence, asked)
    tokens = [w for w in words(sentence) if w not in asked]
    if kind == "number":
        return any(w[0].isdigit() or w in _NUMBER_WORDS for w in tokens)
    return any(w[0].isdigit() or w in _DATE_WORDS or w in _TEMPORAL_CLAUSES for w in tokens)
