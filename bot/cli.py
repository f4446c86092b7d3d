"""The command line: ingest, ask, summary, sources, run (the Discord bot), eval, bench, source and stats.

Each sub-command names its handler with `set_defaults(func=...)`. Every command builds one
Settings (and, for the ones that read the index, one RagService) and prints plain text (or JSON with
`--json`). Errors a user can fix are printed as one line on stderr with a non-zero exit
code, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from bot.cli_output import format_answer, format_summary, plural, print_streamed
from bot.rag.access import Readers
from bot.rag.errors import RagError
from bot.rag.index.registry import SHARED, parse_base_name
from bot.rag.index.store import CHUNKS, SENTENCES, Progress
from bot.rag.service import RagService
from bot.rag.stats import configure_question_log
from bot.settings import Settings
from bot.source_cli import add_source_commands
from bot.stats_cli import add_stats_command

EXIT_USER_ERROR = 2


def program_name() -> str:
    """What the user typed: `python -m bot` or the `sourcebot` console script."""
    invoked = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m bot" if invoked in {"", "__main__.py", "-c"} else invoked


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Answer questions about the source documents, with citations.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    as_json = "print JSON instead of text"

    ingest = commands.add_parser("ingest", help="(re)build the index from the sources folder")
    ingest.add_argument("--sources", type=Path, help="sources folder (default: SOURCES_DIR or ./sources)")
    ingest.set_defaults(func=cmd_ingest, needs_index=False)

    ask = commands.add_parser("ask", help="answer a question (or one per line from stdin)")
    ask.add_argument("question", nargs="?", help="the question; omit to read questions from stdin")
    ask.add_argument("--json", action="store_true", help="one JSON object per question per line")
    ask.add_argument("--guild", type=int, help="answer as in this Discord server (its own sources too)")
    ask.add_argument("--channel", type=int, action="append", default=[], help="--guild: the reply's channel")
    ask.add_argument("--as-role", type=int, action="append", default=[], dest="roles",
                     help="--guild: a role every reader holds (repeat for several; default: anyone reads it)")
    ask.set_defaults(func=cmd_ask)

    summary = commands.add_parser("summary", help="key points of one source or of all sources")
    summary.add_argument("source", nargs="?", help="source file name (default: all sources)")
    summary.add_argument("--json", action="store_true", help=as_json)
    summary.set_defaults(func=cmd_summary)

    sources = commands.add_parser("sources", help="list the indexed sources")
    sources.add_argument("--json", action="store_true", help=as_json)
    sources.add_argument("--base", help="a knowledge base other than the shared one, e.g. guild-123")
    sources.set_defaults(func=cmd_sources, needs_index=False)

    run = commands.add_parser("run", help="run the Discord bot (needs DISCORD_TOKEN)")
    run.set_defaults(func=cmd_run, needs_service=False)

    evaluate = commands.add_parser("eval", help="measure answer and citation quality on every QA set, or one file")
    evaluate.add_argument("file", type=Path, nargs="?",
                          help="JSONL: id, question, answerable, answers, evidence (default: every set, each on its corpus)")
    evaluate.add_argument("--json", action="store_true", help=as_json)
    evaluate.add_argument("--k", type=int, help="chunks retrieved per question (default: TOP_K)")
    evaluate.add_argument("--no-baseline", action="store_true", help="skip the stock LangChain baseline")
    evaluate.add_argument("--sources", type=Path, help="measure this folder (default: the sources folder)")
    evaluate.add_argument("--index", type=Path, help="keep and reuse the index (ours and the baseline's) here")
    evaluate.add_argument("--sets", type=Path, default=Path("../shared/eval"), help="every set: the public sets' folder")
    evaluate.add_argument("--corpora", type=Path, default=Path("../corpora"),
                          help="every set: the folder holding each corpus (corpus.sh NAME DIR/NAME)")
    evaluate.add_argument("--work", type=Path, default=Path("../eval-work"),
                          help="every set: each corpus's index and data folder, kept and reused")
    evaluate.add_argument("--only", help="every set: only these sets or corpora, comma-separated")
    evaluate.add_argument("--ablate", nargs="?", const="all", metavar="PARTS",
                          help="every set, once more with each rule or signal off (or only PARTS, comma-separated)")
    evaluate.set_defaults(func=cmd_eval, needs_service=False)

    bench = commands.add_parser("bench", help="measure speed and memory")
    bench.add_argument("--json", action="store_true", help=as_json)
    bench.add_argument("--scaled-chunks", type=int, default=2000, help="size of the scaled corpus")
    bench.add_argument("--repeats", type=int, default=30, help="questions timed per figure")
    bench.add_argument("--sources", type=Path, metavar="DIR",
                       help="measure this folder (default: the article and a scaled corpus)")
    bench.add_argument("--index", type=Path, metavar="DIR",
                       help="the index of --sources: reused if one is built there, else built there")
    bench.add_argument("--questions", type=Path, metavar="FILE",
                       help='JSONL, a "question" per line (default: derived from the headings)')
    bench.add_argument("--sample-chunks", type=int, default=400, metavar="N",
                       help="--sources: time throughput on files holding about N chunks")
    bench.add_argument("--sample-files", type=int, metavar="N", help="--sources: ... or on N files")
    bench.add_argument("--scale-to", type=int, metavar="N", help="--sources/--index: scoped and unscoped "
                       "retrieval at N chunks (copies of the corpus, on the configured vector store)")
    bench.add_argument("--cold-starts", type=int, default=3, metavar="N", help="fresh processes timed (median)")
    bench.set_defaults(func=cmd_bench, needs_service=False)
    add_source_commands(commands)
    add_stats_command(commands)
    return parser


def package_version() -> str:
    try:
        return importlib.metadata.version("sourcebot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _questions(argument: str | None) -> Iterable[str]:
    if argument is not None:
        yield argument
        return
    for line in sys.stdin:
        if line.strip():
            yield line.rstrip("\n")


def refresh(service: RagService) -> None:
    """Bring the index up to date with the sources folder, or, while another process (an
    `ingest`, a source change) is building it, say so on stderr and use the version ready now."""
    service.refresh()
    if service.updating_elsewhere:
        print("note: another process is updating the index; answering from the version ready now",
              file=sys.stderr, flush=True)


def cmd_ask(service: RagService, args: argparse.Namespace) -> int:
    readers = Readers(args.guild, frozenset(args.channel), public=not args.roles,
                      reader_roles=(frozenset(args.roles),) if args.roles else ())
    where = {"guild_id": args.guild, "audience": readers}
    if args.question is not None and not args.json:
        print_streamed(service, args.question, **where)
        return 0
    failures = 0
    for question in _questions(args.question):
        try:
            answer = service.ask(question, **where)
        except RagError as exc:
            if args.question is not None:
                raise
            failures += 1  # one bad line of a batch must not lose the others
            if args.json:
                print(json.dumps({"question": question, "error": str(exc)}), flush=True)
            else:
                print(f"error: {exc}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        else:
            print(format_answer(answer) + ("\n" if args.question is None else ""), flush=True)
    return EXIT_USER_ERROR if failures else 0


def cmd_summary(service: RagService, args: argparse.Namespace) -> int:
    summary = service.summary(args.source)
    print(json.dumps(summary.to_dict(), ensure_ascii=False) if args.json else format_summary(summary))
    return 0


def cmd_sources(service: RagService, args: argparse.Namespace) -> int:
    base = parse_base_name(args.base) if args.base else SHARED
    if base == SHARED:
        refresh(service)  # what the sources folder holds now (another base needs nothing of it)
    held = service.holdings(base)
    if args.json:
        print(json.dumps([
            {"name": h.row.name, "title": h.title, "chunks": h.row.chunks, "status": h.row.status,
             "ingested_at": h.ingested_at.isoformat() if h.ingested_at else None} for h in held
        ], ensure_ascii=False))
        return 0
    for h in held:
        when = f"last ingested {h.ingested_at:%Y-%m-%d %H:%M} UTC" if h.ingested_at else "not indexed yet"
        status = "" if h.row.status == "ready" else f"\t{h.row.status}" + (f": {h.row.error}" if h.row.error else "")
        print(f"{h.row.name}\t{plural(h.row.chunks, 'chunk')}\t{when}{status}")
    return 0


@contextmanager
def ingest_progress_bar(label: str = "embedding") -> Iterator[Progress]:
    """An ingest's progress on stderr (a terminal only): the chunks, then on a fresh bar the
    sentence pass that follows once the new version serves."""
    with tqdm(desc=label, unit="chunk", disable=not sys.stderr.isatty(), leave=False) as bar:
        phase = [CHUNKS]

        def progress(done: int, total: int, what: str) -> None:
            if what != phase[0]:
                phase[0] = what
                bar.reset()
                bar.set_description(f"{label}: sentence vectors" if what == SENTENCES else label)
            bar.total = total
            bar.update(done - bar.n)

        yield progress


def cmd_ingest(service: RagService, args: argparse.Namespace) -> int:
    with ingest_progress_bar() as progress:
        report = service.ingest(args.sources, progress)
    print(f"{report.folder}: {report}" if report.folder else str(report))
    if report.sentences_s and report.live_after_s is not None:
        print(f"  serving after {report.live_after_s:.1f}s; sentence vectors made ahead in {report.sentences_s:.1f}s more")
    for line in report.details():
        print(f"  {line}")
    if report.reason:
        print(f"note: {report.reason}")
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.discord_bot.app import run_bot

    return run_bot(settings)


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    if args.file is None and args.ablate:
        from bot.evaluation.ablation import cmd_ablate

        return cmd_ablate(settings, args)
    if args.file is None:
        from bot.evaluation.suite import cmd_suite

        return cmd_suite(settings, args)
    from bot.evaluation.cli import cmd_eval as run_eval

    return run_eval(settings, args)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from bot.evaluation.bench import cmd_bench as run_bench

    return run_bench(settings, args)


def configure_logging(settings: Settings, verbose: bool, command: str) -> None:
    level = settings.log_level.upper() if (verbose or command == "run") else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    configure_question_log()
    for noisy in ("chromadb", "httpx", "httpcore", "openai", "onnxruntime", "bm25s"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's validation message names the bad variable
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    configure_logging(settings, args.verbose, args.command)
    try:
        if not getattr(args, "needs_service", True):
            return int(args.func(settings, args))
        service = RagService(settings)
        if getattr(args, "needs_index", True):
            refresh(service)  # answer from what the sources folder holds now
        return int(args.func(service, args))
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


def run(argv: Sequence[str] | None = None) -> int:
    """`main`, quiet when its reader goes away (`python -m bot ask … | head -1`): the rest of
    the output goes nowhere, with no BrokenPipeError traceback (the Python documentation's recipe)."""
    try:
        code = main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's own flush at exit finds a sink
        return 1
