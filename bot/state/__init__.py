"""Persistent bot state in SQL (SQLite in DATA_DIR by default, PostgreSQL via DATABASE_URL):
the source registry, audit log, per-server settings, and the cross-process ingest lock."""

from bot.state.db import Database, StateUnavailableError, database_url
from bot.state.locks import LockTimeoutError, ingest_lock
from bot.state.models import SCHEMA_VERSION, AuditRow, SourceRow
from bot.state.registry import SourceExistsError, SourceRegistry

__all__ = [
    "SCHEMA_VERSION",
    "AuditRow",
    "Database",
    "LockTimeoutError",
    "SourceExistsError",
    "SourceRegistry",
    "SourceRow",
    "StateUnavailableError",
    "database_url",
    "ingest_lock",
]
