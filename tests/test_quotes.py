"""Phrases a question quotes ("I get the whole 'during handling of the above exception'
thing") find the passages that hold them word for word, which BM25 (it drops "during",
"of", "the", "above" as stopwords) and dense vectors miss among pages full of the same
words."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.index.quotes import phrase_pattern, quoted_phrases
from bot.rag.service import RagService
from bot.settings import Settings


@pytest.mark.parametrize(
    ("question", "phrases"),
    [
        ("i get the whole 'during handling of the above exception' thing", ["during handling of the above exception"]),
        ('it says "No module named foo" when I run it', ["No module named foo"]),
        ("pip prints “externally managed environment” and stops", ["externally managed environment"]),
        ("what does `raise ... from None` do?", ["raise ... from None"]),
        ("why doesn't it work? it's broken", []),  # apostrophes inside words open no quote
        ("what is 'pathlib' for?", []),  # one word: a name, not a phrase
        ('why "a.b" and "x 1"?', []),  # too short to single anything out
        ('"one two" "three four" "five six" "seven eight"', ["one two", "three four", "five six"]),  # the first 3
    ],
)
def test_quoted_phrases(question: str, phrases: list[str]) -> None:
    assert quoted_phrases(question) == phrases


def test_a_phrase_matches_whatever_its_case_spacing_and_punctuation() -> None:
    pattern = re.compile(phrase_pattern("during handling of the above exception"))
    assert pattern.search("During handling of the above exception, another exception occurred:")
    assert pattern.search("during  handling\nof the above exception")
    assert not pattern.search("during handling of the exception above")
    assert not re.search(phrase_pattern("no module named foo"), "no module named foobar")
    assert re.search(phrase_pattern("No module named my_module"), "ModuleNotFoundError: No module named 'my_module'")
    assert not re.search(phrase_pattern("No module named my_module"), "No module named my module")
    assert re.search(phrase_pattern("__init__() missing 1 required"), "TypeError: __init__() missing 1 required positional")
    assert re.search(phrase_pattern("café au lait"), "un Café au lait")


PAGES = {
    "handlers.md": """# Exception handlers

## Handling an exception

Exception handling means catching an exception during the execution of a try block. The handler for an exception runs during handling, and handling the exception above the failing call keeps the program running.

## Handlers above the call

An exception raised during a call is handled by the nearest handler above it. Handling an exception during cleanup is allowed; the handler above handles exceptions raised during handling of other exceptions.
""",
    "events.md": """# Event handling

## Handling events during a loop

During event handling, each handler above the loop sees the event. An exception during handling of an event stops the loop, and the exception is logged above the event.
""",
    "traceback.md": """# Reading a traceback

## Two tracebacks in one

When a second error happens in an except block, Python prints both tracebacks, joined by the line

```
During handling of the above exception, another exception occurred:
```

Raise the new error with `from None` to print only the second one.
""",
}


def test_a_quoted_error_message_finds_the_page_that_holds_it(
    make_settings: Callable[..., Settings], tmp_path: Path, embeddings: MiniLMEmbeddings
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in PAGES.items():
        (folder / name).write_text(text, encoding="utf-8")
    service = RagService(make_settings(sources_dir=folder), embeddings=embeddings)
    quoted = service.retrieve("what does 'during handling of the above exception' mean in my error?")
    unquoted = service.retrieve("what does during handling of the above exception mean in my error?")
    assert quoted[0].source == "traceback.md"
    assert unquoted[0].source != "traceback.md"  # the same words unquoted: word statistics prefer the other pages


def test_a_search_the_store_cannot_run_finds_nothing_instead_of_failing(service: RagService) -> None:
    chunks = service.start().version.chunks
    assert chunks.matching(r"(?i)\bhostages\b", 5)  # the real full-text search works here
    assert chunks.matching("(unclosed", 5) == []  # Chroma rejects the pattern: no error reaches the member


def test_a_phrase_on_more_pages_than_it_can_single_out_is_dropped(
    make_settings: Callable[..., Settings], tmp_path: Path, embeddings: MiniLMEmbeddings
) -> None:
    folder = tmp_path / "loops"
    folder.mkdir()
    for n in range(12):
        (folder / f"a{n:02d}.md").write_text(f"# Loops {n}\n\nA for loop runs its body once per item of list {n}.\n",
                                           encoding="utf-8")
    (folder / "zz_break.md").write_text("# Leaving nested loops\n\nTo break out of nested loops early, put them in a "
                                        "function and return from it.\n", encoding="utf-8")
    service = RagService(make_settings(sources_dir=folder), embeddings=embeddings)
    chunks = service.start().version.chunks
    assert len(chunks.matching(phrase_pattern("for loop"), 20)) == 12
    quoted = service.retrieve('how do I break out of a nested "for loop" early?')
    assert quoted[0].source == "zz_break.md"  # twelve pages say "for loop": it finds nothing in particular
