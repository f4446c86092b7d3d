"""Connection to the state database: URL choice, engine, sessions, schema creation.

Owns *where* state lives and *how* it is reached: a SQLite file in DATA_DIR by default, or the
SQLAlchemy URL in DATABASE_URL (PostgreSQL through psycopg 3 when several bot processes share one
Chroma server). Connection failures become `StateUnavailableError`, whose message is fit for a
user and never contains the database password.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.orm import Session, sessionmaker

from bot.rag.errors import RagError
from bot.settings import Settings
from bot.state.models import SCHEMA_VERSION, Base, SchemaVersion, utcnow

SQLITE_FILENAME = "sourcebot.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_SCHEMA_LOCK_KEY = 0x736F_7572_6365_0001  # "source" + 1: serialises create_schema on PostgreSQL


class StateUnavailableError(RagError):
    """The state database cannot be reached, opened or used (message never holds a password)."""

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """Map `postgres://` and `postgresql://` to SQLAlchemy's psycopg 3 driver; others unchanged."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.lower().startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url(settings: Settings) -> str:
    """DATABASE_URL (normalised), else `sqlite:///<absolute data_dir>/sourcebot.db`."""
    configured = (settings.database_url or "").strip()
    if configured:
        return normalise_url(configured)
    path = Path(settings.data_dir).expanduser().resolve() / SQLITE_FILENAME
    return f"sqlite:///{path}"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Let several processes share the file: WAL journal, wait for locks, enforce foreign keys."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


class Database:
    """An engine plus a session factory over one state database URL. Nothing connects until used."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        try:
            self._url: URL = make_url(normalise_url(url))
        except (ArgumentError, ValueError):
            raise StateUnavailableError(
                "The state database URL (DATABASE_URL) is not a valid SQLAlchemy URL, "
                "e.g. postgresql://user:password@host:5432/sourcebot."
            ) from None
        self.display_url: str = self._url.render_as_string(hide_password=True)
        self.dialect: str = self._url.get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False}
        elif self.dialect == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": max(1, int(connect_timeout))}
        try:
            self.engine: Engine = create_engine(self._url, **kwargs)
        except (NoSuchModuleError, ArgumentError, ImportError) as exc:
            raise StateUnavailableError(
                f"The state database {self.display_url} cannot be used: {self._reason(exc)}"
            ) from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_on_connect)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a file-backed SQLite URL, else None."""
        database = self._url.database
        if not self.is_sqlite or not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database)

    def _reason(self, exc: BaseException) -> str:
        """First line of the driver's message with any password scrubbed out."""
        orig = getattr(exc, "orig", None)
        lines = str(orig if orig is not None else exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        if self._url.password:
            reason = reason.replace(str(self._url.password), "***")
        return reason[:300]

    def unavailable(self, exc: BaseException) -> StateUnavailableError:
        """A user-facing `StateUnavailableError` for a driver error (password masked)."""
        hint = ""
        path = self.sqlite_path
        if path is not None and not path.parent.exists():
            hint = f" (the folder {path.parent} does not exist; start the bot once to create it)"
        return StateUnavailableError(f"The state database {self.display_url} is unavailable: {self._reason(exc)}{hint}")

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A raw connection (no transaction management), with connection errors converted."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except (OperationalError, InterfaceError) as exc:
            raise self.unavailable(exc) from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session: committed when the block ends normally, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except (OperationalError, InterfaceError) as exc:
            self._quiet_rollback(session)
            raise self.unavailable(exc) from exc
        except BaseException:
            self._quiet_rollback(session)
            raise
        finally:
            session.close()

    def retrying(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a transaction; once more if a concurrent insert won a unique-key race
        (another process created the same row first: the second run finds it)."""
        try:
            with self.session() as session:
                return work(session)
        except IntegrityError:
            with self.session() as session:
                return work(session)

    @staticmethod
    def _quiet_rollback(session: Session) -> None:
        try:
            session.rollback()
        except Exception:  # noqa: BLE001 - the connection may be gone; the first error matters
            pass

    def create_schema(self) -> None:
        """Create missing tables and stamp/check `schema_version`. Safe to call again, and from
        several processes at once. Creates the SQLite file's folder (only here)."""
        path = self.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        last: Exception | None = None
        for _attempt in range(3):
            try:
                with self.engine.begin() as connection:
                    if self.is_postgres:
                        connection.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
                    Base.metadata.create_all(connection)
                    self._stamp_version(connection)
                return
            except IntegrityError as exc:  # another process stamped the version first
                last = exc
            except (OperationalError, ProgrammingError, InterfaceError) as exc:
                if "already exists" not in str(exc).lower():  # not a create race: a real failure
                    raise self.unavailable(exc) from exc
                last = exc
        assert last is not None
        raise self.unavailable(last) from last

    def _stamp_version(self, connection: Connection) -> None:
        table = SchemaVersion.__table__
        found = connection.execute(select(table.c.version).where(table.c.id == 1)).scalar_one_or_none()
        if found is None:
            connection.execute(insert(table).values(id=1, version=SCHEMA_VERSION, applied_at=utcnow()))
        elif found > SCHEMA_VERSION:
            raise StateUnavailableError(
                f"The state database {self.display_url} has schema version {found}, newer than this "
                f"bot's {SCHEMA_VERSION}; upgrade the bot before starting it."
            )
        elif found < SCHEMA_VERSION:
            # Future migrations from `found` to SCHEMA_VERSION run here, in this transaction.
            connection.execute(update(table).where(table.c.id == 1).values(version=SCHEMA_VERSION, applied_at=utcnow()))

    def schema_version(self) -> int | None:
        """The stamped schema version, or None before `create_schema` ran."""
        with self.connect() as connection:
            if not inspect(connection).has_table(SchemaVersion.__tablename__):
                return None
            table = SchemaVersion.__table__
            return connection.execute(select(table.c.version).where(table.c.id == 1)).scalar_one_or_none()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False

    def dispose(self) -> None:
        """Close every pooled connection (call on shutdown)."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"
