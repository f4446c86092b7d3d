"""The ingest lock: one change at a time per knowledge base, across threads and processes.

Owns mutual exclusion of ingests (add, remove, reload) of one knowledge base. A second caller
WAITS for the first (up to `timeout`), it does not fail at once. Three layers, taken in order:

1. in-process: a `threading.Lock` per lock resource, so threads of one process queue up;
2. PostgreSQL: a session-level `pg_advisory_lock(<stable signed 64-bit hash of base>)` held on a
   dedicated autocommit connection for the duration, waiting with `SET lock_timeout`. The server
   frees it if the process dies (its connection closes);
3. SQLite (and any other database): `filelock.FileLock(lock_dir / "ingest-<base>.lock")`, an OS
   file lock the kernel frees if the process dies. Valid for processes on one machine, which is
   what sharing one SQLite file implies.

The lock is re-entrant within a thread: taking it again where it is held is a no-op.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.rag.errors import ReloadInProgressError
from bot.state.db import Database

_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL SQLSTATE of a lock_timeout expiry
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class LockTimeoutError(ReloadInProgressError):
    """Another change of the same knowledge base held the ingest lock for longer than the timeout."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(
            f"Another change to the knowledge base '{base}' is still running (waited {timeout:g} s); "
            "try again when it has finished."
        )
        self.base = base
        self.timeout = timeout


def advisory_key(base: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock` (same in every process and version)."""
    digest = hashlib.blake2b(f"sourcebot-ingest:{base}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def safe_name(base: str) -> str:
    """A file-name-safe form of `base`: itself when already safe, else sanitised plus a hash."""
    cleaned = _SAFE.sub("_", base)[:80]
    if cleaned == base and base not in {"", ".", ".."}:
        return base
    return f"{cleaned}-{hashlib.sha1(base.encode()).hexdigest()[:10]}"


def lock_path(lock_dir: Path, base: str) -> Path:
    return Path(lock_dir) / f"ingest-{safe_name(base)}.lock"


# In-process layer: resource key -> (lock, ident of the holding thread or None).
_registry_guard = threading.Lock()
_thread_locks: dict[tuple[str, ...], threading.Lock] = {}
_holders: dict[tuple[str, ...], int] = {}


def _thread_lock(key: tuple[str, ...]) -> threading.Lock:
    with _registry_guard:
        return _thread_locks.setdefault(key, threading.Lock())


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


@contextmanager
def ingest_lock(db: Database, base: str, *, lock_dir: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold the ingest lock of knowledge base `base` for the `with` block.

    Waits up to `timeout` seconds in total, then raises `LockTimeoutError`. `lock_dir` holds the
    lock files when the database is not PostgreSQL (created if missing).
    """
    deadline = time.monotonic() + max(0.0, timeout)
    if db.is_postgres:
        key: tuple[str, ...] = ("pg", db.display_url, str(advisory_key(base)))
    else:
        key = ("file", str(lock_path(lock_dir, base).resolve()))

    me = threading.get_ident()
    with _registry_guard:
        nested = _holders.get(key) == me
    if nested:  # the thread already holds it (a source change that re-indexes): nothing more to take
        yield
        return
    local = _thread_lock(key)
    if not local.acquire(timeout=_remaining(deadline)):
        raise LockTimeoutError(base, timeout)
    with _registry_guard:
        _holders[key] = me
    try:
        if db.is_postgres:
            with _advisory_lock(db, base, deadline, timeout):
                yield
        else:
            with _file_lock(lock_path(lock_dir, base), base, deadline, timeout):
                yield
    finally:
        with _registry_guard:
            _holders.pop(key, None)
        local.release()


@contextmanager
def _file_lock(path: Path, base: str, deadline: float, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=_remaining(deadline))
    except filelock.Timeout:
        raise LockTimeoutError(base, timeout) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _advisory_lock(db: Database, base: str, deadline: float, timeout: float) -> Iterator[None]:
    lock_key = advisory_key(base)
    with db.connect() as raw:
        connection = raw.execution_options(isolation_level="AUTOCOMMIT")
        _acquire_advisory(db, connection, base, lock_key, deadline, timeout)
        try:
            yield
        finally:
            _release_advisory(connection, lock_key)


def _acquire_advisory(
    db: Database, connection: Connection, base: str, lock_key: int, deadline: float, timeout: float
) -> None:
    try:
        if connection.execute(select(func.pg_try_advisory_lock(lock_key))).scalar():
            return
        remaining_ms = int(_remaining(deadline) * 1000)
        if remaining_ms <= 0:
            raise LockTimeoutError(base, timeout)
        # lock_timeout=0 would mean "wait forever", hence the check above. SET cannot take a bind
        # parameter; the value is an int we computed.
        connection.execute(text(f"SET lock_timeout = {remaining_ms}"))
        try:
            connection.execute(select(func.pg_advisory_lock(lock_key)))
        finally:
            connection.execute(text("RESET lock_timeout"))
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise LockTimeoutError(base, timeout) from None
        raise db.unavailable(exc) from exc


def _release_advisory(connection: Connection, lock_key: int) -> None:
    """Unlock; if that fails, drop the connection so the server frees the lock with the session."""
    try:
        connection.execute(select(func.pg_advisory_unlock(lock_key)))
    except DBAPIError:
        connection.invalidate()
