"""Errors a user can act on. Each message is one line that says what is wrong and how to fix it."""

from __future__ import annotations


class QAError(Exception):
    """Base class: the command line prints these as one line, without a traceback."""


class IndexNotFound(QAError):
    """There is no index in the directory given."""


class IndexDamaged(QAError):
    """An index file is missing, truncated or edited."""


class EmbedderMismatch(QAError):
    """The index was built with another embedding model than the one asked to search it."""


class IndexBusy(QAError):
    """Another process is writing the index."""


class BadRequest(QAError, ValueError):
    """A question, ``k`` or other input is out of range."""


class EmptyCorpus(QAError):
    """Nothing could be read from the paths given."""


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` as one line that any output can carry: whitespace runs (newlines included)
    become one space, lone surrogates from a client become "?", and with ``limit`` the line is
    cut to that many characters, ending in "…"."""
    line = " ".join(str(text).split())
    line = line.encode("utf-8", "replace").decode("utf-8")
    if limit is not None and len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line
