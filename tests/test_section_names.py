"""Sections found by the name they document: a question that writes an option or an API
name ("-O", "math.isclose", ".lstrip(") gets that section, which word statistics miss."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.index.names import SectionNames, section_name
from bot.rag.models import Chunk
from bot.rag.service import RagService
from bot.settings import Settings


@pytest.mark.parametrize(
    ("heading", "name"),
    [
        ("math — Mathematical functions › math.isclose()", "math.isclose"),
        ("1. Command line › 1.1.3. Miscellaneous options › -O", "-O"),
        ("Environment variables › PYTHONOPTIMIZE", "PYTHONOPTIMIZE"),
        ("Built-in Types › str.removeprefix(prefix, /)", "str.removeprefix"),
        ("8. Errors and Exceptions › 8.5. Exception Chaining", None),  # prose, not a name
        ("Rafah › Background", None),  # a one-word title is not a name
        ("Built-in Functions › zip()", "zip"),
        (None, None),
    ],
)
def test_section_name(heading: str | None, name: str | None) -> None:
    assert section_name(heading) == name


def _chunk(n: int, heading: str) -> Chunk:
    return Chunk(f"c{n}", "page.html", n, 0, 1, "text", "", heading=heading)


def test_names_asked_for_in_a_question() -> None:
    names = SectionNames.build([
        _chunk(0, "Options › -O"), _chunk(1, "Options › -o"), _chunk(2, "Types › str.lstrip()"),
        _chunk(3, "Types › bytes.lstrip()"), _chunk(4, "math › math.isclose()"), _chunk(5, "Intro"),
    ])
    assert names.named("what does running python with -O change?") == ["c0"]  # not "-o"
    assert names.named("'test_file'.lstrip('test_') removed too much") == ["c2", "c3"]
    assert names.named("default tolerance of math.isclose") == ["c4"]
    assert names.named("is a one-off e-mail an option?") == []  # hyphenated words are not options
    assert names.named("how do I strip a prefix?") == []


OPTIONS = """# Command line

## -B

If given, Python won't try to write .pyc files on the import of source modules.

## -O

Remove assert statements and any code conditional on the value of __debug__.

## -q

Don't display the copyright and version messages even in interactive mode.

## -u

Force the stdout and stderr streams to be unbuffered. This option has no effect on the stdin stream.

## -v

Print a message each time a module is initialized, showing the place from which it is loaded.
"""


def test_a_question_naming_an_option_is_answered_from_its_section(
    make_settings: Callable[..., Settings], tmp_path: Path, embeddings: MiniLMEmbeddings
) -> None:
    folder = tmp_path / "cli-docs"
    folder.mkdir()
    (folder / "cmdline.md").write_text(OPTIONS, encoding="utf-8")
    service = RagService(make_settings(sources_dir=folder), embeddings=embeddings)
    top = service.retrieve("what does running python with -O actually change?")[0]
    assert top.heading is not None and top.heading.endswith("-O")
    answer = service.ask("what does running python with -O actually change?")
    assert answer.answerable and "Remove assert statements" in answer.answer
