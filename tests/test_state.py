"""bot.state against real databases: a SQLite file and a throwaway PostgreSQL server.

Registry tests run on both; lock tests contend from real separate processes (`python -c`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import inspect, text

from bot.rag.errors import RagError, ReloadInProgressError, UnknownSourceError
from bot.settings import PROJECT_ROOT, Settings
from bot.state import (
    SCHEMA_VERSION,
    Database,
    LockTimeoutError,
    SourceExistsError,
    SourceRegistry,
    StateUnavailableError,
    database_url,
    ingest_lock,
)
from bot.state.locks import advisory_key, lock_path
from tests.postgres_server import free_port

TABLES = {"schema_version", "knowledge_bases", "sources", "crawl_pages", "audit_log", "guild_config"}


# --- fixtures -----------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in tmp_path or a new database on the server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'sourcebot.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.create_schema()
    yield database
    database.dispose()


@pytest.fixture
def registry(db: Database) -> SourceRegistry:
    return SourceRegistry(db)


# --- db.py --------------------------------------------------------------------------------


def test_database_url_default_is_absolute_sqlite_and_postgres_is_normalised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = Settings(_env_file=None, data_dir=tmp_path / "d", database_url=None)  # type: ignore[call-arg]
    assert database_url(absolute) == f"sqlite:///{tmp_path.resolve()}/d/sourcebot.db"
    relative = Settings(_env_file=None, data_dir=Path("rel/data"), database_url=None)  # type: ignore[call-arg]
    url = database_url(relative)  # wherever Settings anchors a relative folder, the URL is absolute
    assert url.startswith("sqlite:////") and url.endswith("/rel/data/sourcebot.db") and ".." not in url
    blank = Settings(_env_file=None, data_dir=tmp_path, database_url="  ")  # type: ignore[call-arg]
    assert database_url(blank).startswith("sqlite:////")
    for given in ("postgres://u:p@h:5432/db", "postgresql://u:p@h:5432/db"):
        settings = Settings(_env_file=None, database_url=given)  # type: ignore[call-arg]
        assert database_url(settings) == "postgresql+psycopg://u:p@h:5432/db"
    explicit = Settings(_env_file=None, database_url="postgresql+psycopg://h/db")  # type: ignore[call-arg]
    assert database_url(explicit) == "postgresql+psycopg://h/db"


def test_sqlite_folder_created_only_by_create_schema_with_wal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    database = Database(database_url(Settings(_env_file=None, data_dir=data_dir, database_url=None)))  # type: ignore[call-arg]
    assert not data_dir.exists()
    assert database.ping() is False  # no folder yet: nothing to open
    with pytest.raises(StateUnavailableError, match="does not exist"):
        SourceRegistry(database).list("shared")
    database.create_schema()
    assert (data_dir / "sourcebot.db").is_file()
    assert database.ping() is True
    with database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    database.dispose()


def test_create_schema_is_idempotent_and_stamps_version(db: Database) -> None:
    db.create_schema()
    db.create_schema()
    assert TABLES <= set(inspect(db.engine).get_table_names())
    assert db.schema_version() == SCHEMA_VERSION
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM schema_version")).scalar() == 1


def test_newer_schema_version_is_refused(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 5})
    with pytest.raises(StateUnavailableError, match="newer"):
        db.create_schema()


def test_schema_version_is_none_before_create(db_url: str) -> None:
    database = Database(db_url)
    if database.is_sqlite:
        assert database.sqlite_path is not None
        database.sqlite_path.parent.mkdir(parents=True)
    assert database.schema_version() is None
    database.dispose()


def test_bad_postgres_url_errors_hide_the_password(postgres_url: str) -> None:
    secret = "Sup3r-S3cret-pw"
    closed = Database(f"postgres://bob:{secret}@127.0.0.1:{free_port()}/sourcebot", connect_timeout=3)
    missing_db = Database(postgres_url.replace("postgres@", f"postgres:{secret}@").rsplit("/", 1)[0] + "/nope")
    for database in (closed, missing_db):
        assert database.ping() is False
        for attempt in (database.create_schema, lambda d=database: SourceRegistry(d).list("shared")):
            with pytest.raises(StateUnavailableError) as caught:
                attempt()
            message = str(caught.value)
            assert secret not in message
            assert "***" in message and "127.0.0.1" in message
            assert isinstance(caught.value, RagError)
        database.dispose()
    assert "does not exist" in str(caught.value)  # the missing database is named as the reason
    with pytest.raises(StateUnavailableError) as caught:
        Database(f"postgresql://bob:{secret}@host:notaport/db")
    assert secret not in str(caught.value)


# --- registry.py --------------------------------------------------------------------------


def test_add_get_and_collision_refused(registry: SourceRegistry) -> None:
    row = registry.add(
        "guild-1", "guide.md", "file", "/data/guide.md", added_by=1234, added_by_name="mod",
        content_hash="abc", chunks=7, options={"x": 1},
    )  # fmt: skip
    assert row.id > 0 and row.added_by == "1234" and row.chunks == 7 and row.options == {"x": 1}
    assert row.added_at.tzinfo is not None and row.added_at.utcoffset() == timedelta(0)
    assert abs(row.added_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert registry.get("guild-1", "guide.md") == row
    assert registry.get("guild-2", "guide.md") is None
    with pytest.raises(SourceExistsError) as caught:
        registry.add("guild-1", "guide.md", "url", "https://example.org/")
    assert str(caught.value) == (
        "A source called 'guide.md' already exists in this server; remove it first or choose another name."
    )
    assert registry.get("guild-1", "guide.md") == row  # untouched
    registry.add("guild-2", "guide.md", "file", "/other")  # same name, other base: fine
    replaced = registry.add("guild-1", "guide.md", "url", "https://example.org/", replace=True, added_by="cli")
    assert replaced.kind == "url" and replaced.added_by == "cli" and replaced.options == {}
    assert [r.origin for r in registry.list("guild-1")] == ["https://example.org/"]
    with pytest.raises(ValueError):
        registry.add("guild-1", "bad", "ftp", "x")


def test_add_or_update_creates_then_updates_in_place(registry: SourceRegistry) -> None:
    first = registry.add_or_update(
        "shared", "docs", "crawl", "https://docs.example/", added_by="42", added_by_name="alice",
        etag='"v1"', chunks=3, pages=2, options={"max_pages": 5, "depth": 1},
    )  # fmt: skip
    time.sleep(0.01)
    second = registry.add_or_update(
        "shared", "docs", "crawl", "https://docs.example/", added_by="99", added_by_name="bob",
        etag='"v2"', last_modified="Wed, 01 Jan 2025 00:00:00 GMT", status="failed", error="boom", chunks=9,
    )  # fmt: skip
    assert second.id == first.id
    assert (second.added_by, second.added_by_name, second.added_at) == ("42", "alice", first.added_at)
    assert second.updated_at > first.updated_at
    assert (second.etag, second.status, second.error, second.chunks, second.pages) == ('"v2"', "failed", "boom", 9, 0)
    assert second.options == {"max_pages": 5, "depth": 1}  # None keeps the stored options
    third = registry.add_or_update("shared", "docs", "crawl", "https://docs.example/", options={})
    assert third.options == {} and registry.get("shared", "docs") == third


def test_list_is_sorted_and_isolated_per_base(registry: SourceRegistry) -> None:
    for name in ("beta", "Alpha", "gamma", "alpha2"):
        registry.add("A", name, "file", f"/a/{name}")
    registry.add("B", "secret-b", "url", "https://b.example/")
    assert [r.name for r in registry.list("A")] == ["Alpha", "alpha2", "beta", "gamma"]
    assert {r.base for r in registry.list("A")} == {"A"}
    assert [r.name for r in registry.list("B")] == ["secret-b"]
    assert registry.list("C") == []
    assert registry.get("A", "secret-b") is None
    assert registry.names("A", "secret") == []
    assert registry.bases() == ["A", "B"]


def test_remove_drops_source_and_its_crawl_pages(registry: SourceRegistry, db: Database) -> None:
    crawl = registry.add("A", "site", "crawl", "https://site.example/")
    registry.add("B", "site", "crawl", "https://site.example/")
    registry.set_crawl_pages(crawl.id, {"https://site.example/a": ('"e"', None)})
    assert registry.remove("A", "site") is True
    assert registry.remove("A", "site") is False
    assert registry.get("A", "site") is None and registry.get("B", "site") is not None
    assert registry.crawl_pages(crawl.id) == {}
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM crawl_pages")).scalar() == 0


def test_names_autocomplete(registry: SourceRegistry) -> None:
    for name in ("Guide", "user-guide", "guidelines.md", "faq", "100%_done", "zeta"):
        registry.add("A", name, "file", f"/a/{name}")
    registry.add("B", "guide-b", "file", "/b")
    assert registry.names("A", "gui") == ["Guide", "guidelines.md", "user-guide"]  # prefix first
    assert registry.names("A", "GUIDE", limit=2) == ["Guide", "guidelines.md"]
    assert registry.names("A", "%") == ["100%_done"]  # wildcards are literal
    assert registry.names("A", "_") == ["100%_done"]
    assert registry.names("A") == ["100%_done", "faq", "Guide", "guidelines.md", "user-guide", "zeta"]
    assert registry.names("A", "nothing") == [] and registry.names("A", "g", limit=0) == []


def test_crawl_pages_round_trip(registry: SourceRegistry) -> None:
    crawl = registry.add("A", "site", "crawl", "https://site.example/", pages=2)
    pages = {"https://site.example/": ('"e1"', "Mon, 01 Jan 2024 00:00:00 GMT"), "https://site.example/b": (None, None)}
    registry.set_crawl_pages(crawl.id, pages)
    assert registry.crawl_pages(crawl.id) == pages
    registry.set_crawl_pages(crawl.id, {"https://site.example/c": ('"e3"', None, "hash-c")})
    assert registry.crawl_pages(crawl.id) == {"https://site.example/c": ('"e3"', None)}
    assert registry.crawl_page_hashes(crawl.id) == {"https://site.example/c": "hash-c"}
    registry.add_or_update("A", "site", "crawl", "https://site.example/", pages=1)  # update keeps pages
    assert registry.crawl_pages(crawl.id) == {"https://site.example/c": ('"e3"', None)}
    with pytest.raises(UnknownSourceError):
        registry.set_crawl_pages(crawl.id + 1000, pages)


def test_audit_log_newest_first_per_base(registry: SourceRegistry) -> None:
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    for i in range(5):
        registry.audit(
            base="A", guild_id=111, actor_id=222, actor_name="mod", action="add", target=f"s{i}",
            added=i, unchanged=1, at=start + timedelta(minutes=i),
        )  # fmt: skip
    registry.audit(base="A", actor_id="cli", action="reload", result="failed", detail="x" * 10_000, failed=2)
    registry.audit(base="B", actor_id="9", action="remove", target="other", removed=1)
    rows = registry.audit_log("A")
    assert [r.target for r in rows] == [None, "s4", "s3", "s2", "s1", "s0"]
    newest = rows[0]
    assert (newest.action, newest.result, newest.failed, newest.actor_id) == ("reload", "failed", 2, "cli")
    assert newest.detail is not None and 0 < len(newest.detail) < 10_000
    assert rows[1].at == start + timedelta(minutes=4) and rows[1].at.tzinfo is not None
    assert (rows[1].guild_id, rows[1].actor_id, rows[1].added, rows[1].unchanged) == ("111", "222", 4, 1)
    assert [r.target for r in registry.audit_log("A", limit=2)] == [None, "s4"]
    assert [r.target for r in registry.audit_log("B")] == ["other"]
    with pytest.raises(ValueError):
        registry.audit(base="A", actor_id="1", action="add", result="maybe")


def test_log_channel_set_and_unset(registry: SourceRegistry) -> None:
    assert registry.log_channel(1) is None
    registry.set_log_channel(1, 555)
    registry.set_log_channel("2", "777")
    assert registry.log_channel("1") == "555" and registry.log_channel(2) == "777"
    registry.set_log_channel(1, None)
    assert registry.log_channel(1) is None and registry.log_channel(2) == "777"


def test_base_origin(registry: SourceRegistry) -> None:
    assert registry.base_origin("shared") is None
    registry.set_base_origin("shared", "/srv/sources")
    registry.set_base_origin("shared", "/srv/sources2")
    registry.set_base_origin("guild-5", None)
    assert registry.base_origin("shared") == "/srv/sources2" and registry.base_origin("guild-5") is None
    assert registry.bases() == ["guild-5", "shared"]


def test_data_survives_a_new_database_object(db_url: str) -> None:
    first = Database(db_url)
    first.create_schema()
    SourceRegistry(first).add("A", "kept", "file", "/k", chunks=4)
    SourceRegistry(first).set_log_channel(1, 2)
    first.dispose()
    second = Database(db_url)
    second.create_schema()
    again = SourceRegistry(second)
    kept = again.get("A", "kept")
    assert kept is not None and kept.chunks == 4 and again.log_channel(1) == "2"
    second.dispose()


# --- locks.py -----------------------------------------------------------------------------

WORKER = r"""
import json, sys, time
from pathlib import Path
cfg = json.loads(sys.argv[1])
from bot.state import Database, LockTimeoutError, SourceRegistry, ingest_lock
db = Database(cfg["url"])
db.ping()
print("ready", flush=True)
while not Path(cfg["go"]).exists():
    time.sleep(0.005)
rec = {"attempt": time.time()}
try:
    with ingest_lock(db, cfg["base"], lock_dir=Path(cfg["lock_dir"]), timeout=cfg["timeout"]):
        rec["enter"] = time.time()
        print("locked", flush=True)
        time.sleep(cfg["hold"])
        if cfg.get("add"):
            SourceRegistry(db).add(cfg["base"], cfg["add"], "file", "/x")
        rec["exit"] = time.time()
except LockTimeoutError as exc:
    rec["timeout"], rec["gave_up"] = str(exc), time.time()
Path(cfg["out"]).write_text(json.dumps(rec))
"""


def _spawn(tmp: Path, url: str, base: str, tag: str, **cfg: Any) -> tuple[subprocess.Popen[str], Path]:
    out = tmp / f"out-{tag}.json"
    config = {"url": url, "base": base, "lock_dir": str(tmp / "locks"), "go": str(tmp / "go"),
              "out": str(out), "hold": 0.6, "timeout": 20.0, **cfg}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(config)], cwd=PROJECT_ROOT, text=True,
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )  # fmt: skip
    return proc, out


def _run_workers(tmp: Path, url: str, specs: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Start workers, wait until each is ready, release them together, collect their records."""
    workers = [_spawn(tmp, url, tag=str(i), **spec) for i, spec in enumerate(specs)]
    try:
        for proc, _ in workers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        (tmp / "go").touch()
        for proc, _ in workers:
            proc.communicate(timeout=30)
            assert proc.returncode == 0
    finally:
        for proc, _ in workers:  # never leave a worker behind when an assertion failed
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [json.loads(out.read_text()) for _, out in workers]


def test_two_processes_same_base_wait_for_each_other_and_both_land(db: Database, db_url: str, tmp_path: Path) -> None:
    first, second = sorted(
        _run_workers(tmp_path, db_url, [{"base": "A", "add": "one"}, {"base": "A", "add": "two"}]),
        key=lambda r: r["enter"],
    )
    assert "timeout" not in first and "timeout" not in second
    assert second["enter"] >= first["exit"]  # no overlap: one after the other
    assert second["attempt"] < first["exit"]  # ...and the second really waited for the first
    assert [r.name for r in SourceRegistry(db).list("A")] == ["one", "two"]


def test_different_bases_do_not_block_each_other(db: Database, db_url: str, tmp_path: Path) -> None:
    records = _run_workers(
        tmp_path, db_url, [{"base": "A", "add": "a", "hold": 1.0}, {"base": "B", "add": "b", "hold": 1.0}]
    )
    assert max(r["enter"] for r in records) < min(r["exit"] for r in records)  # they overlapped
    registry = SourceRegistry(db)  # both processes wrote at about the same time; both landed
    assert [r.name for r in registry.list("A")] == ["a"] and [r.name for r in registry.list("B")] == ["b"]


def test_waiting_process_times_out_with_clear_error(db: Database, db_url: str, tmp_path: Path) -> None:
    with ingest_lock(db, "guild-7", lock_dir=tmp_path / "locks", timeout=1):
        (record,) = _run_workers(tmp_path, db_url, [{"base": "guild-7", "timeout": 0.5}])
    assert "enter" not in record
    assert 0.45 <= record["gave_up"] - record["attempt"] < 5
    assert "guild-7" in record["timeout"] and "still running" in record["timeout"]


def test_lock_of_a_killed_process_is_freed(db: Database, db_url: str, tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    proc, _ = _spawn(tmp_path, db_url, "A", "killed", hold=60)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready" and proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeoutError):
            with ingest_lock(db, "A", lock_dir=tmp_path / "locks", timeout=0.2):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    begun = time.monotonic()
    with ingest_lock(db, "A", lock_dir=tmp_path / "locks", timeout=10):
        assert time.monotonic() - begun < 5


def test_threads_serialise_and_time_out(db: Database, tmp_path: Path) -> None:
    spans: list[tuple[float, float]] = []

    def hold() -> None:
        with ingest_lock(db, "A", lock_dir=tmp_path, timeout=10):
            entered = time.monotonic()
            time.sleep(0.2)
            spans.append((entered, time.monotonic()))

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans.sort()
    assert len(spans) == 3 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))

    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with ingest_lock(db, "A", lock_dir=tmp_path, timeout=10):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    with pytest.raises(LockTimeoutError) as caught:
        with ingest_lock(db, "A", lock_dir=tmp_path, timeout=0.3):
            pass
    assert isinstance(caught.value, ReloadInProgressError)
    with ingest_lock(db, "B", lock_dir=tmp_path, timeout=0.3):  # another base is free
        with ingest_lock(db, "B", lock_dir=tmp_path, timeout=0.3):  # re-entrant in the holding thread
            pass
        with pytest.raises(LockTimeoutError):  # ... and still held after the nested block
            run_in_thread(lambda: ingest_lock(db, "B", lock_dir=tmp_path, timeout=0.3).__enter__())
    release.set()
    thread.join()


def run_in_thread(fn: Any) -> None:
    """Run `fn` in another thread and raise what it raised."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # handed back to the caller
            errors.append(exc)

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if errors:
        raise errors[0]


def test_lock_resources_are_stable_and_released(db: Database, tmp_path: Path) -> None:
    assert advisory_key("guild-1") == advisory_key("guild-1") != advisory_key("guild-2")
    assert -(2**63) <= advisory_key("shared") < 2**63
    assert lock_path(tmp_path, "guild-123").name == "ingest-guild-123.lock"
    assert lock_path(tmp_path, "a/b") != lock_path(tmp_path, "a_b") and "/" not in lock_path(tmp_path, "a/b").name
    count = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'"
    with ingest_lock(db, "shared", lock_dir=tmp_path / "locks", timeout=5):
        if db.is_postgres:
            with db.engine.connect() as conn:
                assert conn.execute(text(count)).scalar() == 1
        else:
            assert lock_path(tmp_path / "locks", "shared").exists()
    if db.is_postgres:
        with db.engine.connect() as conn:
            assert conn.execute(text(count)).scalar() == 0
