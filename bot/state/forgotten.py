"""The members who asked to be forgotten (/forget-me), as far as channel sources go: their
messages are left out of every channel source from then on. Owns the `forgotten_authors` table;
who is who is the caller's salted hash (`ConversationLog.user_hash`), never a user id."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.state.db import Database
from bot.state.models import ForgottenAuthor


class ForgottenAuthors:
    """Queries on `forgotten_authors` of one `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def forget(self, user_hash: str) -> None:
        try:
            with self.db.session() as session:
                if session.get(ForgottenAuthor, user_hash) is None:
                    session.add(ForgottenAuthor(user_hash=user_hash))
        except IntegrityError:  # another process recorded it first
            pass

    def hashes(self) -> frozenset[str]:
        with self.db.session() as session:
            return frozenset(session.scalars(select(ForgottenAuthor.user_hash)))
