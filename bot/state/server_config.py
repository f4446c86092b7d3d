"""Per-server conversation settings, kept in `GuildConfig.extra`: whether channel questions
are answered in a thread, and which channels and forums are answered without a mention.

Read on every message of a busy server, so reads are cached for a few seconds; a change made
here is seen at once by this process and within `ttl` seconds by the others.
"""

from __future__ import annotations

import threading
from typing import Any

from cachetools import TTLCache

from bot.state.db import Database
from bot.state.models import GuildConfig

IN_THREAD, AUTO_ANSWER = "answer_in_thread", "auto_answer_channels"


class ServerConfig:
    """The conversation settings of each server (defaults from the host's settings)."""

    def __init__(self, db: Database, default_in_thread: bool, ttl: float = 15.0) -> None:
        self.db = db
        self._default_in_thread = default_in_thread
        self._cache: TTLCache[str, dict[str, Any]] = TTLCache(maxsize=10_000, ttl=ttl)
        self._lock = threading.Lock()

    def _extra(self, guild_id: int | str) -> dict[str, Any]:
        key = str(guild_id)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            with self.db.session() as session:
                config = session.get(GuildConfig, key)
                cached = dict(config.extra or {}) if config is not None else {}
            with self._lock:
                self._cache[key] = cached
        return cached

    def _update(self, guild_id: int | str, **values: Any) -> dict[str, Any]:
        key = str(guild_id)
        with self.db.session() as session:
            config = session.get(GuildConfig, key)
            if config is None:
                config = GuildConfig(guild_id=key, extra={})
                session.add(config)
            extra = {**(config.extra or {}), **values}
            config.extra = extra  # a new dict: SQLAlchemy sees the change
        with self._lock:
            self._cache[key] = extra
        return extra

    def answer_in_thread(self, guild_id: int | str) -> bool:
        return bool(self._extra(guild_id).get(IN_THREAD, self._default_in_thread))

    def set_answer_in_thread(self, guild_id: int | str, enabled: bool) -> None:
        self._update(guild_id, **{IN_THREAD: enabled})

    def auto_answer_channels(self, guild_id: int | str) -> frozenset[int]:
        return frozenset(int(c) for c in self._extra(guild_id).get(AUTO_ANSWER, []))

    def set_auto_answer(self, guild_id: int | str, channel_id: int, enabled: bool) -> frozenset[int]:
        channels = set(self.auto_answer_channels(guild_id))
        channels = channels | {channel_id} if enabled else channels - {channel_id}
        self._update(guild_id, **{AUTO_ANSWER: sorted(str(c) for c in channels)})
        return frozenset(channels)
