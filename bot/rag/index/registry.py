"""The knowledge bases of one process, by name: the shared base built from the sources
folder, and any others (one per Discord server) created on first use. Each has its own
collection prefix in Chroma, so their versions never mix."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from bot.rag.components import Components
from bot.rag.errors import UnknownSourceError
from bot.rag.index.knowledge_base import KnowledgeBase

SHARED = "shared"


_BASE_NAME = re.compile(rf"{SHARED}|guild-\d{{1,20}}")


def guild_base_name(guild_id: int | str) -> str:
    """The knowledge base of one Discord server."""
    return f"guild-{int(guild_id)}"


def parse_base_name(text: str) -> str:
    """`shared`, `guild-<server id>`, or a bare server id (meaning `guild-<id>`); anything else
    is refused, so two spellings can never share one set of collections."""
    text = text.strip()
    name = guild_base_name(text) if text.isdigit() else text
    if not _BASE_NAME.fullmatch(name):
        raise UnknownSourceError(f"{text!r} is not a knowledge base: use shared, guild-<server id> or a server id.")
    return name


def collection_prefix(base_prefix: str, name: str) -> str:
    """Chroma collection prefix of a knowledge base (the shared one keeps the plain prefix)."""
    if name == SHARED:
        return base_prefix
    return f"{base_prefix}_{re.sub(r'[^a-zA-Z0-9]+', '-', name).strip('-')}"


class KnowledgeBases:
    """Maps a knowledge-base name to its `KnowledgeBase`, all sharing one set of components."""

    def __init__(self, components: Components, shared_sources: Path | None = None) -> None:
        self.components = components
        self._shared_sources = shared_sources or components.settings.sources_dir
        self._bases: dict[str, KnowledgeBase] = {}
        self._lock = threading.Lock()

    def get(self, name: str = SHARED, sources_dir: Path | None = None) -> KnowledgeBase:
        name = parse_base_name(name)
        with self._lock:
            base = self._bases.get(name)
            if base is None:
                folder = sources_dir or (self._shared_sources if name == SHARED else self._folder_of(name))
                prefix = collection_prefix(self.components.settings.collection_prefix, name)
                # The shared base follows `ingest --sources DIR` unless SOURCES_DIR is set.
                remember = name == SHARED and sources_dir is None and "sources_dir" not in self.components.settings.model_fields_set
                base = self._bases[name] = KnowledgeBase(
                    name, self.components, prefix, folder, remember_folder=remember, may_become_empty=name != SHARED
                )
            return base

    @property
    def shared(self) -> KnowledgeBase:
        return self.get(SHARED)

    def _folder_of(self, name: str) -> Path:
        return self.components.settings.data_dir / "bases" / name / "files"

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._bases)
