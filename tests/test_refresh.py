"""Scheduled re-sync of web sources (bot.rag.refresh, SourceLibrary.refresh, bot.state.refresh)
against real local web sites (tests/web_site.py) that a test edits between refreshes, with the
real converters, Chroma, the embedding model (wrapped to count what it embeds: a measurement,
not a stand-in), SQLite shared by two real processes, and PostgreSQL. Time is driven by the
`now` given to `run_due`; nothing sleeps for an interval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.embeddings import Embeddings

from bot.rag.embeddings import MiniLMEmbeddings
from bot.rag.errors import SourceError, UnknownSourceError
from bot.rag.library import SourceLibrary
from bot.rag.refresh import SourceRefresher, describe_interval, parse_interval
from bot.rag.service import RagService
from bot.settings import PROJECT_ROOT, Settings
from bot.state import Database, database_url
from bot.state.models import utcnow
from tests.helpers import run_cli
from tests.web_site import WebSite, page

BASE = "guild-1"
ACTOR: dict[str, Any] = {"actor_id": 42, "actor_name": "mod"}
DAY = timedelta(hours=24)
MINUTE = timedelta(minutes=1)
LOOPBACK = {"ALLOW_PRIVATE_URLS": "true"}  # the test site is on 127.0.0.1
HARBOUR = {
    "/kb/tides.html": page("Tides", body="High tide at Kestrel Harbour is at 6 am on weekdays."),
    "/kb/moorings.html": page("Moorings", body="Visiting yachts moor at the north pontoon for eight pounds a night."),
    "/kb/lighthouse.html": page("Lighthouse", body="The old lighthouse on Gannet Point is open to visitors on Sundays."),
    "/kb/ferries.html": page("Ferries", body="The ferry to Puffin Isle leaves from the slipway at noon."),
}

HARBOUR_PAGES = ("index", "tides", "moorings", "lighthouse", "ferries")


class CountingEmbeddings(Embeddings):
    """The real model, recording every text it is asked to embed."""

    def __init__(self, real: MiniLMEmbeddings) -> None:
        self.real, self.model_id, self.texts = real, real.model_id, list[str]()

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts += list(texts)
        return self.real.encode(texts)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


def harbour_site(site: WebSite, *links: str) -> None:
    for path, body in HARBOUR.items():
        site.set_page(path, body)
    site.set_page("/kb/index.html", page("Kestrel Harbour", *(links or [p.rsplit("/", 1)[1] for p in HARBOUR])))


def answer(service: RagService, question: str) -> str:
    return service.bases.get(BASE).start().chain.invoke(question).answer


def pages_of(service: RagService, source: str) -> set[str]:
    return {s.name for s in service.bases.get(BASE).sources() if s.name.startswith(f"{source}/")}


@pytest.fixture
def counting(embeddings: MiniLMEmbeddings) -> CountingEmbeddings:
    return CountingEmbeddings(embeddings)


@pytest.fixture
def ref_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return make_settings(data_dir=tmp_path / "data", allow_private_urls="true", refresh_max_backoff_hours=0.75)


@pytest.fixture
def ref_service(ref_settings: Settings, counting: CountingEmbeddings) -> RagService:
    return RagService(ref_settings, embeddings=counting)


@pytest.fixture
def refresher(ref_settings: Settings, ref_service: RagService) -> Iterator[SourceRefresher]:
    db = Database(database_url(ref_settings))
    db.create_schema()
    yield SourceRefresher(SourceLibrary(ref_settings, ref_service.bases, db))
    db.dispose()


def test_a_crawl_edited_added_and_removed_is_served_updated_after_one_interval(
        refresher: SourceRefresher, ref_service: RagService, counting: CountingEmbeddings) -> None:
    library = refresher.library
    with WebSite() as site:
        harbour_site(site)
        added = library.add_url(BASE, site.url("/kb/index.html"), crawl=True, name="harbour", **ACTOR)
        t0 = utcnow()
        assert added.chunks >= 5 and "Gannet Point" in answer(ref_service, "Is the old lighthouse on Gannet Point open to visitors?")
        assert refresher.run_due(t0 + MINUTE) == [] and site.count("/kb/") == 5  # not due yet: nothing fetched

        site.set_page("/kb/tides.html", page("Tides", body="High tide at Kestrel Harbour is at 7 am on weekdays."))
        site.set_page("/kb/buoys.html", page("Buoys", body="The red buoy marks the wreck of the Marigold."))
        site.remove_page("/kb/lighthouse.html")  # 404 from now on
        site.set_page("/kb/index.html", page("Kestrel Harbour", "tides.html", "moorings.html", "lighthouse.html",
                                             "buoys.html"))  # the ferries page is no longer linked (still served)
        embedded = len(counting.texts)
        done = refresher.run_due(t0 + DAY + MINUTE)
        assert [(d.name, d.report) for d in done] == [("harbour", "🔄 `harbour`: 2 pages updated, 1 added, 2 removed")]
        assert site.statuses["/kb/moorings.html"] == [200, 304] and site.requests["/kb/ferries.html"] == 1
        new_texts = counting.texts[embedded:]
        assert any("7 am" in t for t in new_texts) and any("Marigold" in t for t in new_texts)
        assert not any("north pontoon" in t for t in new_texts)  # the unchanged page: nothing embedded
        assert pages_of(ref_service, "harbour") == {"harbour/kb-index.html", "harbour/kb-tides.html",
                                                    "harbour/kb-moorings.html", "harbour/kb-buoys.html"}
        assert "7 am" in answer(ref_service, "When is high tide at Kestrel Harbour?")
        assert "Marigold" in answer(ref_service, "What does the red buoy mark?")
        assert "Gannet Point" not in answer(ref_service, "Is the old lighthouse on Gannet Point open to visitors?")
        assert "Puffin Isle" not in answer(ref_service, "Where does the ferry to Puffin Isle leave from?")
        row = library.registry.get(BASE, "harbour")
        assert row is not None and row.pages == 4 and len(library.registry.crawl_pages(row.id)) == 4
        audit = library.registry.audit_log(BASE)[0]
        assert (audit.action, audit.target, audit.actor_id, audit.result) == ("refresh", "harbour", "refresh", "ok")
        assert audit.detail is not None and audit.detail.startswith("2 pages updated, 1 added, 2 removed")

        requests = site.count("/kb/")
        assert refresher.run_due(t0 + DAY + 2 * MINUTE) == [] and site.count("/kb/") == requests  # due a day later
        embedded = len(counting.texts)
        quiet = refresher.run_due(t0 + 2 * DAY + 2 * MINUTE)
        assert [(d.name, d.report, d.change.report.rebuilt) for d in quiet if d.change and d.change.report] == [
            ("harbour", None, False)]  # nothing changed: nothing to say, nothing rebuilt
        assert counting.texts[embedded:] == []  # unchanged pages cost no embedding
        assert {site.statuses[p][-1] for p in ("/kb/index.html", "/kb/tides.html", "/kb/buoys.html")} == {304}


def test_a_failing_site_keeps_the_old_version_and_backs_off(refresher: SourceRefresher, ref_service: RagService) -> None:
    library = refresher.library
    with WebSite() as site, WebSite() as other:
        harbour_site(site)
        other.set_page("/marina/index.html", page("Heron Marina", "berths.html"))
        other.set_page("/marina/berths.html", page("Berths", body="Winter berths at Heron Marina cost forty pounds a month."))
        library.add_url(BASE, site.url("/kb/tides.html"), name="tides.html", **ACTOR)
        library.add_url(BASE, other.url("/marina/index.html"), crawl=True, name="marina", **ACTOR)
        t0 = utcnow()
        other.__exit__(None, None, None)  # that server is down: connections are refused
        site.down_status = 500

        now = t0 + DAY + MINUTE
        failed = {d.name: d for d in refresher.run_due(now)}
        assert set(failed) == {"tides.html", "marina"} and all(d.change is None for d in failed.values())
        assert "HTTP 500" in (failed["tides.html"].report or "") and "keeps serving" in (failed["tides.html"].report or "")
        assert failed["tides.html"].next_due == now + timedelta(minutes=15) and failed["tides.html"].failures == 1
        assert "6 am" in answer(ref_service, "When is high tide at Kestrel Harbour?")
        assert "forty pounds" in answer(ref_service, "How much do winter berths at Heron Marina cost?")  # the crawl stays
        row = library.registry.get(BASE, "tides.html")
        assert row is not None and row.status == "failed" and "HTTP 500" in (row.error or "")
        assert library.registry.audit_log(BASE)[0].result == "failed"

        tried = sum(site.requests.values())
        assert refresher.run_due(now + timedelta(minutes=10)) == [] and sum(site.requests.values()) == tried  # waits
        waits = []
        for _ in range(3):  # each failure in a row doubles the wait, up to the cap (45 minutes here)
            now = refresher.schedule.get(BASE, "tides.html").next_due  # type: ignore[union-attr]
            again = [d for d in refresher.run_due(now) if d.name == "tides.html"]
            assert len(again) == 1 and again[0].report is None  # only the first failure in a row is reported
            waits.append(again[0].next_due - now)
        assert waits == [timedelta(minutes=30), timedelta(minutes=45), timedelta(minutes=45)]
        assert sum(site.requests.values()) == tried + 3  # one request (robots.txt) per try

        site.down_status = None
        site.set_page("/kb/tides.html", page("Tides", body="High tide at Kestrel Harbour is at 8 am on weekdays."))
        now = refresher.schedule.get(BASE, "tides.html").next_due  # type: ignore[union-attr]
        back = [d for d in refresher.run_due(now) if d.name == "tides.html"]
        assert [d.report for d in back] == ["🔄 `tides.html`: 1 page updated (fetched again after 4 failed tries)"]
        assert "8 am" in answer(ref_service, "When is high tide at Kestrel Harbour?")
        state = refresher.schedule.get(BASE, "tides.html")
        assert state is not None and state.failures == 0 and state.next_due == now + DAY and state.last_error is None
        assert library.registry.get(BASE, "tides.html").status == "ready"  # type: ignore[union-attr]


def test_intervals_never_and_a_refresh_now(refresher: SourceRefresher, ref_service: RagService) -> None:
    assert [parse_interval(t) for t in ("daily", "6h", "2d", "90 min", "never", "OFF", "default", None)] == [
        1440, 360, 2880, 90, 0, 0, None, None]
    for bad in ("sometimes", "5m", "-3h"):
        with pytest.raises(SourceError):
            parse_interval(bad)
    assert [describe_interval(m) for m in (0, 60, 360, 2880)] == [
        "never refreshed", "refreshed hourly", "refreshed every 6 hours", "refreshed every 2 days"]
    library = refresher.library
    with WebSite() as site:
        harbour_site(site)
        library.add_url(BASE, site.url("/kb/tides.html"), name="tides.html", **ACTOR)
        library.add_url(BASE, site.url("/kb/moorings.html"), name="moorings.html", **ACTOR)
        t0 = utcnow()
        refresher.set_interval(BASE, "tides.html", parse_interval("never"), now=t0)
        refresher.set_interval(BASE, "moorings.html", parse_interval("6h"), now=t0)
        assert [d.name for d in refresher.run_due(t0 + 7 * DAY)] == ["moorings.html"]  # "never" is never due
        assert site.requests["/kb/tides.html"] == 1

        site.set_page("/kb/tides.html", page("Tides", body="High tide at Kestrel Harbour is at 9 am on weekdays."))
        change = refresher.refresh_now(BASE, "tides.html", **ACTOR)  # a moderator's refresh: even of a "never" source
        assert change.action == "refresh" and str(change.pages) == "1 page updated" and change.chunks >= 1
        assert "9 am" in answer(ref_service, "When is high tide at Kestrel Harbour?")
        library.add_file(BASE, "notes.md", b"# Notes\n\nThe harbour master is Ada Quill.\n", **ACTOR)
        with pytest.raises(SourceError, match="only web pages"):
            refresher.refresh_now(BASE, "notes.md", **ACTOR)
        with pytest.raises(UnknownSourceError, match="no source called"):
            refresher.refresh_now(BASE, "nothing", **ACTOR)
        library.remove(BASE, "moorings.html", **ACTOR)
        assert refresher.schedule.get(BASE, "moorings.html") is None  # its schedule went with it
        assert [d.name for d in refresher.run_due(t0 + 30 * DAY)] == []


WORKER = """
import json, sys, time
from pathlib import Path
from bot.rag.library import SourceLibrary
from bot.rag.refresh import SourceRefresher
from bot.rag.service import RagService
from bot.settings import Settings
from bot.state import Database
from datetime import datetime
cfg = json.loads(sys.argv[1])
settings = Settings(_env_file=None, **cfg["settings"])
db = Database(cfg["url"])
refresher = SourceRefresher(SourceLibrary(settings, RagService(settings).bases, db))
print("ready", flush=True)
while not Path(cfg["go"]).exists():
    time.sleep(0.005)
done = refresher.run_due(datetime.fromisoformat(cfg["now"]))
print(json.dumps([[d.name, d.report] for d in done]), flush=True)
"""


def test_two_processes_one_refresh(refresher: SourceRefresher, ref_settings: Settings, ref_service: RagService,
                                   tmp_path: Path) -> None:
    with WebSite() as site:
        harbour_site(site)
        refresher.library.add_url(BASE, site.url("/kb/index.html"), crawl=True, name="harbour", **ACTOR)
        site.set_page("/kb/tides.html", page("Tides", body="High tide at Kestrel Harbour is at 5 am on weekdays."))
        before = dict(site.requests)
        keys = ("sources_dir", "vectorstore_dir", "data_dir", "llm_provider", "allow_private_urls")
        config = {"settings": {k: str(getattr(ref_settings, k)) for k in keys}, "url": database_url(ref_settings),
                  "go": str(tmp_path / "go"), "now": (utcnow() + DAY + MINUTE).isoformat()}
        workers = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(config)], cwd=PROJECT_ROOT, text=True,
                                    stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
                   for _ in range(2)]
        try:
            for proc in workers:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            (tmp_path / "go").touch()
            results = [json.loads(proc.communicate(timeout=300)[0].strip().splitlines()[-1]) for proc in workers]
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert [proc.returncode for proc in workers] == [0, 0]
        assert sorted(results, key=len) == [[], [["harbour", "🔄 `harbour`: 1 page updated"]]]
        made = {path: n - before.get(path, 0) for path, n in site.requests.items() if n != before.get(path, 0)}
        one_crawl = ["/robots.txt", "/sitemap.xml"] + [f"/kb/{p}.html" for p in HARBOUR_PAGES]
        assert made == dict.fromkeys(one_crawl, 1)  # the site saw one refresh's requests, not two
    assert "5 am" in answer(RagService(ref_settings, embeddings=ref_service.components.embeddings),
                            "When is high tide at Kestrel Harbour?")


def test_claims_on_postgres_let_one_library_refresh(postgres_url: str, ref_settings: Settings,
                                                    ref_service: RagService) -> None:
    admin, name = postgres_url.replace("postgresql+psycopg://", "postgresql://"), f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    dbs = [Database(url), Database(url)]
    try:
        dbs[0].create_schema()
        settings = ref_settings.model_copy(update={"database_url": url})
        first, second = (SourceRefresher(SourceLibrary(settings, ref_service.bases, db)) for db in dbs)
        with WebSite() as site:
            harbour_site(site)
            first.library.add_url(BASE, site.url("/kb/tides.html"), name="tides.html", **ACTOR)
            assert first.run_due() == []  # not due yet (and now on the schedule)
            due = utcnow() + DAY + MINUTE
            row = second.schedule.due(due, second.interval(None))  # both see it due...
            assert [r.name for r in row] == ["tides.html"] == [r.name for r in first.schedule.due(due, 1440)]
            assert [first.schedule.claim(row[0].source_id, run, due, timedelta(hours=1))
                    for run in (first.run_id, second.run_id)] == [True, False]  # ...one claims it
            assert second.run_due(due) == [] and site.requests["/kb/tides.html"] == 1
            first.schedule.release(row[0].source_id, first.run_id)
            assert [d.name for d in second.run_due(due)] == ["tides.html"] and first.run_due(due) == []
            assert site.requests["/kb/tides.html"] == 2
    finally:
        for db in dbs:
            db.dispose()


def test_the_cli_sets_intervals_and_refreshes(ref_settings: Settings, tmp_path: Path) -> None:
    with WebSite() as site:
        harbour_site(site)
        added = run_cli(ref_settings, "source", "add", site.url("/kb/tides.html"), "--base", "1", "--name", "tides.html",
                        "--refresh", "6h", **LOOPBACK)
        assert added.returncode == 0, added.stderr
        assert "`tides.html` is refreshed every 6 hours; next refresh" in added.stdout
        bad = run_cli(ref_settings, "source", "refresh", "tides.html", "--base", "1", "--every", "sometimes", **LOOPBACK)
        assert bad.returncode == 2 and "not a refresh interval" in bad.stderr
        site.set_page("/kb/tides.html", page("Tides", body="High tide at Kestrel Harbour is at 4 am on weekdays."))
        now = run_cli(ref_settings, "source", "refresh", "tides.html", "--base", "1", **LOOPBACK)
        assert now.returncode == 0, now.stderr
        assert "refreshed `tides.html`: 1 page updated" in now.stdout and site.statuses["/kb/tides.html"] == [200, 200]
        never = run_cli(ref_settings, "source", "refresh", "tides.html", "--base", "1", "--every", "never", **LOOPBACK)
        assert never.returncode == 0 and "`tides.html` is never refreshed" in never.stdout
