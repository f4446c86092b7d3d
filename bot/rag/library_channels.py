"""Discord channels as sources, the library side: a channel or forum a moderator added is a
source of kind "discord", kept as a folder of the base with one markdown file per message (or
per solved forum post) and its `<file>.source.json` sidecar, whose `url` is the message's jump
link (so every citation links to it) and whose `title` names the channel or the post.

Owns storing what the Discord side read (`ChannelDocument`s) as that folder: the first add, a
re-sync (only files whose text or title changed are written, messages gone are deleted; the
index then converts and embeds only those), the authors of each file in the registry options
(`bot.rag.access.authored_by`: the asker's own messages are left out of their answers) and
removing a forgotten member's files from every channel source. Reading Discord is
`bot.discord_bot.channel_reader`'s job; nothing here knows discord.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.rag.access import AUTHORS_OPTION, Visibility, authored_by
from bot.rag.errors import SourceError
from bot.rag.ingest.sources import SIDECAR_SUFFIX
from bot.rag.library_files import Files, FolderChange, Progress, source_name
from bot.rag.library_steps import IN_FLIGHT, LibrarySteps, SourceChange, _chunks_of
from bot.state import SourceRow

KIND = "discord"
CHANNEL_OPTION = "channel"  # {"id", "guild_id", "take", "solved_tag", "solved_tag_id"}: what to read again on a sync
SYNC_ACTOR = ("discord", "channel sync")  # who the audit names for a sync or a /forget-me
_OPTIONS = threading.Lock()  # a channel source's options are read, changed and written under it


@dataclass(frozen=True)
class ChannelDocument:
    """One message (or one solved forum post: question and answer) as a document."""

    file: str  # its file in the source's folder, e.g. "how-do-i-reset-my-password-1234.md"
    text: str  # markdown
    url: str  # the jump link https://discord.com/channels/<guild>/<channel>/<message>
    title: str
    authors: tuple[int, ...]  # whose words it holds

    def files(self) -> tuple[bytes, dict[str, Any]]:
        return self.text.encode("utf-8"), {"url": self.url, "title": self.title}


def _authors(documents: Iterable[ChannelDocument]) -> dict[str, list[str]]:
    return {doc.file: sorted({str(a) for a in doc.authors}) for doc in documents}


class ChannelSources(LibrarySteps):
    """Adding and re-syncing Discord channel sources (mixed into `SourceLibrary`)."""

    def add_channel(self, base: str, *, name: str, origin: str, channel: Mapping[str, Any],
                    documents: list[ChannelDocument], visibility: Visibility, actor_id: str | int,
                    actor_name: str | None, progress: Progress | None = None) -> SourceChange:
        """Store a channel's documents as a new source and index them. `channel`: what a sync
        reads again (its id, what to take); `visibility`: the channel's own."""
        actor = (actor_id, actor_name)
        with self._failure_audited(base, "add", name, actor):
            target = source_name(name)
            self._refuse_existing(base, target)
            for row in self.registry.list(base):
                if row.kind == KIND and str(row.options.get(CHANNEL_OPTION, {}).get("id")) == str(channel["id"]):
                    raise SourceError(f"that channel is already the source `{row.name}`; remove it first to take it "
                                      "differently.")
            if not documents:
                raise SourceError("there is nothing to take there yet (no message of a member that fits); "
                                  "add it again once there is.")
            files: Files = {f"{target}/{doc.file}": doc.files() for doc in documents}
            options = visibility.with_options({CHANNEL_OPTION: dict(channel), AUTHORS_OPTION: _authors(documents)})
            return self._commit(base, "add", target, KIND, origin, files, {"options": options, "pages": len(documents)},
                                actor, True, progress)

    def channel_sources(self, base: str) -> list[SourceRow]:
        return [row for row in self.registry.list(base) if row.kind == KIND and row.error != IN_FLIGHT]

    def set_channel_visibility(self, base: str, name: str, visibility: Visibility) -> bool:
        """The visibility the channel has now, at once: a registry-only update (options are read
        per question, nothing is re-indexed), never waiting for the base's ingest lock, so a
        channel made private stops answering elsewhere on the next question. True: it changed."""
        with _OPTIONS:
            row = self.registry.get(base, name)
            if row is None or row.kind != KIND or Visibility.of(row) == visibility:
                return False
            self.registry.set_options(base, row.name, visibility.with_options(row.options))
        self._audit(base, "visibility", row.name, SYNC_ACTOR, "ok", f"follows the channel: {visibility.describe()}")
        return True

    def sync_channel(self, base: str, name: str, documents: list[ChannelDocument],
                     left_out: Callable[[], Callable[[int], bool]] | None = None,
                     posts: Collection[int] | None = None) -> SourceChange | None:
        """Bring a channel source in step with what its channel holds now: new and edited
        messages written, deleted ones removed (its visibility is `set_channel_visibility`'s and
        kept as it is then). `left_out`, asked under the lock: who ran /forget-me by now (their
        documents are dropped even if read before). `posts`: only these forum posts were read
        (their files, named `…-<post id>.md`, are the only ones written or removed). None:
        nothing changed (or the source is gone)."""
        with self._locked(base):
            row = self.registry.get(base, name)
            if row is None or row.kind != KIND or row.error == IN_FLIGHT:
                return None
            if left_out is not None:
                forgotten = left_out()
                documents = [doc for doc in documents if not any(forgotten(a) for a in doc.authors)]
            files = self._changed_files(base, row, documents, posts)
            authors = _authors(documents)
            if posts is not None:  # the other posts' authors stay
                ends = tuple(f"-{post}.md" for post in posts)
                authors = {**{f: ids for f, ids in (row.options.get(AUTHORS_OPTION) or {}).items()
                              if not f.endswith(ends)}, **authors}
            if not files and authors == (row.options.get(AUTHORS_OPTION) or {}):
                return None
            # Privacy first: the authors of both versions hold while it is indexed.
            self._set_authors(base, row.name, {**(row.options.get(AUTHORS_OPTION) or {}), **authors})
            report, chunks = self._apply_files(base, row, files)
            self._set_authors(base, row.name, authors)
            if report is not None:
                self._save(self.registry.get(base, row.name) or row, chunks=chunks, pages=len(authors),
                           status="ready", error=None)
        gone = sum(1 for item in files.values() if item is None)
        detail = f"{len(files) - gone} message(s) new or edited, {gone} removed"
        self._audit(base, "sync", row.name, SYNC_ACTOR, "ok", detail, report)
        return SourceChange("sync", base, row.name, KIND, f"synced `{row.name}`: {detail}", report,
                            self.log_channel(base), chunks)

    def _set_authors(self, base: str, name: str, authors: Mapping[str, list[str]]) -> None:
        """The authors option alone, over the options as they are now (a visibility set
        meanwhile is kept)."""
        with _OPTIONS:
            if (row := self.registry.get(base, name)) is not None:
                self.registry.set_options(base, name, {**row.options, AUTHORS_OPTION: dict(authors)})

    def forget_author(self, user_id: int) -> list[str]:
        """Remove every document holding a message of `user_id` from every channel source of
        every base and re-index those bases (audited without naming them). Returns the sources changed."""
        changed: list[str] = []
        for base in self.registry.bases():
            with self._locked(base):
                for row in self.channel_sources(base):
                    mine = authored_by(row, user_id)
                    if not mine:
                        continue
                    authors = {f: ids for f, ids in (row.options.get(AUTHORS_OPTION) or {}).items()
                               if f"{row.name}/{f}" not in mine}
                    report, chunks = self._apply_files(base, row, dict.fromkeys(sorted(mine)))
                    self._set_authors(base, row.name, authors)
                    self._save(self.registry.get(base, row.name) or row, chunks=chunks, pages=len(authors))
                    self._audit(base, "forget", row.name, SYNC_ACTOR, "ok",
                                f"{len(mine)} document(s) of a member who ran /forget-me removed", report)
                    changed.append(f"{base}: {row.name}")
        return changed

    # --- the folder ---------------------------------------------------------------------------
    def _changed_files(self, base: str, row: SourceRow, documents: list[ChannelDocument],
                       posts: Collection[int] | None = None) -> Files:
        """The writes (new or changed text or title) and deletions that make the folder hold
        `documents` (of the files of `posts` only, when given)."""
        folder = self.folder(base) / row.name
        files: Files = {}
        for doc in documents:
            data, meta = doc.files()
            path = folder / doc.file
            sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
            same = (path.is_file() and path.read_bytes() == data and sidecar.is_file()
                    and sidecar.read_bytes() == json.dumps(meta, ensure_ascii=False).encode())
            if not same:
                files[f"{row.name}/{doc.file}"] = (data, meta)
        wanted = {doc.file for doc in documents}
        stored = [p.name for p in folder.glob("*.md")] if folder.is_dir() else []
        if posts is not None:
            stored = [name for name in stored if name.endswith(tuple(f"-{post}.md" for post in posts))]
        files.update({f"{row.name}/{name}": None for name in sorted(stored) if name not in wanted})
        return files

    def _apply_files(self, base: str, row: SourceRow, files: Files) -> tuple[Any, int]:
        """Change the folder and re-index (under the base's lock); undone whole on failure."""
        if not files:
            return None, row.chunks
        change, report = FolderChange(self._staging()), None
        try:
            change.apply(self.folder(base), files)
            report = self._ingest(base, None)
        except BaseException:
            self._roll_back(base, change, indexed=report is not None)
            raise
        change.commit()
        counts = {info.name: info.chunks for info in self.bases.get(base).sources()}
        return report, _chunks_of(counts, row.name, KIND)
