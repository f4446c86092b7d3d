"""What `bench --sources DIR` measures with: a deterministic sample of the folder's files
(the throughput figures are timed on it, so a big corpus is never embedded in full just to
time the embedding), and the questions (a `--questions` JSONL file, or questions derived
from the headings of a seeded sample of the index's chunks)."""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.rag.errors import RagError, SourceError
from bot.rag.ingest.sources import SIDECAR_SUFFIX, discover, load_source
from bot.rag.models import HEADING_SEPARATOR, Chunk, SourceDocument

SEED = 20240422
SAMPLE_CHUNKS = 400  # enough for a steady chunks/s figure, ~10 s of embedding on 2 cores
DERIVED_QUESTIONS = 40
_NUMBERING = re.compile(r"^(?:[\dIVXivx]+[.)]|\d+(?:\.\d+)+\.?)\s+")  # "3.2. ", "IV. "


@dataclass(frozen=True)
class Sample:
    """The files copied into `folder` (relative paths as in the corpus) and their chunk count
    as counted when chosen (the throughput figures count again what the sample's ingest makes)."""

    folder: Path
    files: list[str]
    chunks: int


def copy_sample(
    sources: Path, dest: Path, chunker: Callable[[SourceDocument], list[Chunk]], max_bytes: int,
    target_chunks: int = SAMPLE_CHUNKS, max_files: int | None = None, seed: int = SEED,
) -> Sample:
    """Copy a deterministic sample of the corpus's files into `dest`, keeping relative paths
    (and sidecars): files in a seeded shuffle of the sorted list, each taken while the total
    stays within 125 % of `target_chunks` (a huge page is passed over, not cut), until the
    target is reached; with `max_files`, simply the first `max_files` files of that shuffle."""
    order = list(discover(sources)[0])
    random.Random(seed).shuffle(order)
    chosen: list[Path] = []
    total = 0
    for path in order:
        if (len(chosen) >= max_files) if max_files is not None else (total >= target_chunks):
            break
        name = path.relative_to(sources).as_posix()
        try:
            count = len(chunker(load_source(path, name, max_bytes)))
        except SourceError:
            continue  # unreadable: the full ingest reports it; the sample holds readable files
        if max_files is None and chosen and total + count > target_chunks * 1.25:
            continue
        chosen.append(path)
        total += count
    if not chosen:
        raise SourceError(f"No readable source in {sources} to time ingestion on.")
    for path in chosen:
        target = dest / path.relative_to(sources)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        if sidecar.is_file():
            shutil.copy2(sidecar, target.with_name(target.name + SIDECAR_SUFFIX))
    return Sample(dest, sorted(p.relative_to(sources).as_posix() for p in chosen), total)


def load_questions(path: Path) -> list[str]:
    """The "question" of every line of a JSONL file (other fields are ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RagError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            question = json.loads(line)["question"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RagError(f"{path}, line {number}: no \"question\" field ({exc}).") from exc
        if not isinstance(question, str) or not question.strip():
            raise RagError(f"{path}, line {number}: the question is empty.")
        questions.append(question.strip())
    if not questions:
        raise RagError(f"{path} holds no questions.")
    return questions


def topic_of(chunk: Chunk) -> str | None:
    """What a chunk is about, for a question: its last heading without section numbering or
    a trailing pilcrow; None when it has no usable heading."""
    if not chunk.heading:
        return None
    topic = chunk.heading.split(HEADING_SEPARATOR)[-1].strip().rstrip("¶").strip()
    topic = _NUMBERING.sub("", topic).strip(" :—-")
    return topic if 2 <= len(topic) <= 80 and any(ch.isalpha() for ch in topic) else None


def derive_questions(chunks: Iterable[Chunk], count: int = DERIVED_QUESTIONS, seed: int = SEED) -> list[str]:
    """`count` deterministic questions about the corpus: "What is <topic>?" for the headings
    of a seeded shuffle of the chunks (chunks in id order first, so the index's order does not
    matter); chunks without headings fill up with their first words."""
    ordered = sorted(chunks, key=lambda c: c.id)
    random.Random(seed).shuffle(ordered)
    questions: list[str] = []
    seen: set[str] = set()
    for chunk in ordered:
        topic = topic_of(chunk)
        if topic is not None and topic.lower() not in seen:
            seen.add(topic.lower())
            questions.append(f"What is {topic}?")
            if len(questions) == count:
                return questions
    for chunk in ordered:  # no (or too few) headings: ask about the chunk's opening words
        words = " ".join(chunk.text.split()[:6]).rstrip(".,;:")
        if words and words.lower() not in seen:
            seen.add(words.lower())
            questions.append(f"What does the documentation say about {words}?")
            if len(questions) == count:
                break
    return questions


def timed_questions(questions: Sequence[str], phrasings: Sequence[str], repeats: int) -> list[str]:
    """Distinct questions to time, each once: every question in each phrasing in turn, up to
    `repeats` (at least every question once)."""
    phrased = [p.format(q=q) for p in phrasings for q in questions]
    return list(dict.fromkeys(phrased))[: max(len(questions), repeats)]
