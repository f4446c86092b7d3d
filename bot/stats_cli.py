"""`python -m bot stats [--guild ID] [--period 24h|7d|all] [--json] [--chart FILE.png]`: the host's
view of what /stats shows a server's moderators — questions, answered and refused, votes,
latency, the most-cited sources, the questions the sources fail, the 👎 queue by topic (each
item with the command that corrects it) and the chart of questions and votes per day (every
server, or one)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from bot.settings import Settings

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "all": None}


def add_stats_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = subparsers.add_parser("stats", help="questions, answers, votes and what the sources miss")
    stats.add_argument("--guild", type=int, help="one server's figures (default: every server)")
    stats.add_argument("--period", choices=list(PERIODS), default="7d", help="over this period (default 7d)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of text")
    stats.add_argument("--chart", type=Path, metavar="FILE.png", help="also write the chart of questions and votes per day")
    stats.set_defaults(func=cmd_stats, needs_service=False)


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    from bot.state import Database, database_url
    from bot.state.conversations import ConversationLog
    from bot.state.models import utcnow

    db = Database(database_url(settings))
    try:
        db.create_schema()
        span = PERIODS[args.period]
        report = ConversationLog(db).stats(args.guild, utcnow() - span if span is not None else None)
    finally:
        db.dispose()
    if args.chart is not None:
        from bot.stats_chart import chart_png

        try:
            args.chart.write_bytes(chart_png(report.daily))
        except OSError as exc:
            print(f"error: cannot write the chart to {args.chart}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.json:
        data = asdict(report)  # times and days as ISO 8601
        print(json.dumps({"guild": args.guild, "period": args.period, **data}, ensure_ascii=False,
                         default=lambda value: value.isoformat()))
        return 0
    scope = f"server {args.guild}" if args.guild else "every server"
    print(f"{scope}, {args.period}: {report.questions} question(s), {report.answered} answered, {report.refused} refused; "
          f"👍 {report.up} 👎 {report.down}")
    if report.p50_ms is not None:
        print(f"answer time: p50 {report.p50_ms:.0f} ms, p95 {report.p95_ms or 0:.0f} ms")
    for title, rows in (("most cited", report.top_sources), ("not answered", report.top_refused),
                        ("marked 👎", report.top_down)):
        if rows:
            print(f"{title}:")
            for text, n in rows:
                print(f"  {n}\t{text}")
    if report.queue:
        print("to correct (👎 and refused, by topic):")
    for topic in report.queue:
        print(f"  {topic.topic} ({len(topic.items)})")
        for item in topic.items:
            why = "; ".join(item.reasons)
            print(f"    [{item.answer_id}] {item.why}\t{' '.join(item.question.split())}" + (f"\t— {why}" if why else ""))
    if report.queue:
        print("correct one with the \"Correct this answer\" action on the answer in Discord, or from /stats")
    if args.chart is not None:
        print(f"chart: {args.chart}")
    return 0
