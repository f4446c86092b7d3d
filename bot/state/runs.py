"""Which runs (processes) of the bot are still alive, so that one run takes over another's
unfinished work only when that run is gone.

Each run holds a lock named after its run id for as long as it runs: on SQLite an OS file lock
(`lock_dir / "run-<id>.lock"`, freed by the kernel when the process dies), on PostgreSQL a
session advisory lock on a connection kept open (freed by the server when the connection
closes). Another run that can take that lock at once knows the run is dead; one that cannot
knows it is alive. When liveness cannot be told (the database is down), a run counts as alive:
taking over a live run's work answers a member twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from pathlib import Path

import filelock
from sqlalchemy import Connection, func, select

from bot.rag.errors import RagError
from bot.state.db import Database

log = logging.getLogger(__name__)


def run_key(run_id: str) -> int:
    """A stable signed 64-bit advisory-lock key for a run id."""
    digest = hashlib.blake2b(f"sourcebot-run:{run_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RunLocks:
    """Hold this run's lock; tell whether another run is dead (its lock is free)."""

    def __init__(self, db: Database, lock_dir: Path) -> None:
        self.db, self.lock_dir = db, Path(lock_dir)
        self._file: filelock.BaseFileLock | None = None
        self._connection: Connection | None = None
        self._dead: set[str] = set()  # a dead run stays dead
        self._guard = threading.Lock()

    def _path(self, run_id: str) -> Path:
        return self.lock_dir / f"run-{run_id}.lock"

    def hold(self, run_id: str) -> bool:
        """Take this run's lock for as long as the process lives (or until `release`)."""
        try:
            if self.db.is_postgres:
                connection = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                if not connection.execute(select(func.pg_try_advisory_lock(run_key(run_id)))).scalar():
                    connection.close()
                    return False
                self._connection = connection
            else:
                self.lock_dir.mkdir(parents=True, exist_ok=True)
                lock = filelock.FileLock(self._path(run_id), thread_local=False)
                lock.acquire(timeout=0)
                self._file = lock
            return True
        except Exception as exc:  # noqa: BLE001 - the lease still bounds takeovers
            log.warning("this run's liveness lock was not taken (%s): other runs will wait for its claims' lease", exc)
            return False

    def release(self) -> None:
        """Give the lock up (the run is over): its unfinished claims may be taken over at once."""
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()  # the server frees the session's advisory lock
            self._connection = None
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.release()
                Path(self._file.lock_file).unlink(missing_ok=True)
            self._file = None

    def is_dead(self, run_id: str) -> bool:
        """True when `run_id`'s lock can be taken at once: that run no longer runs."""
        with self._guard:
            if run_id in self._dead:
                return True
        try:
            dead = self._try_postgres(run_id) if self.db.is_postgres else self._try_file(run_id)
        except (RagError, OSError) as exc:
            log.warning("whether run %s is alive is unknown (%s): taken as alive", run_id, exc)
            return False
        if dead:
            with self._guard:
                self._dead.add(run_id)
        return dead

    def _try_postgres(self, run_id: str) -> bool:
        key = run_key(run_id)
        with self.db.connect() as raw:
            connection = raw.execution_options(isolation_level="AUTOCOMMIT")
            if not connection.execute(select(func.pg_try_advisory_lock(key))).scalar():
                return False
            connection.execute(select(func.pg_advisory_unlock(key)))
            return True

    def _try_file(self, run_id: str) -> bool:
        path = self._path(run_id)
        if not path.exists():
            return True  # never held on this machine, or released (a finished run removes it)
        lock = filelock.FileLock(path, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        lock.release()
        with contextlib.suppress(OSError):
            path.unlink()
        return True
