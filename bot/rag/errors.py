"""Errors the service raises with a message fit to show a user as is."""

from __future__ import annotations


class RagError(Exception):
    """Base class: `str(error)` is a plain message for the user."""


class QuestionError(RagError):
    """The question cannot be answered as asked (empty, too long)."""


class SourceError(RagError):
    """The sources cannot be loaded (missing folder, empty, binary, too large)."""


class IndexUnavailableError(RagError):
    """The vector store cannot be reached or is not built."""


class ModelError(RagError):
    """The language model or embedding back-end failed (timeout, rate limit, bad reply)."""


class ReloadInProgressError(RagError):
    """Another reload is running."""


class UnknownSourceError(RagError):
    """A named source does not exist."""
