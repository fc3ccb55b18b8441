"""What a question may be and how many passages may be asked for: each rule checked here, once.

The retriever, the HTTP API's request model, the chat and the LangChain retriever all call
:func:`clean_question` and :func:`check_k`, so a limit changes in one place and every surface
refuses the same input with the same one-line message.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np

from .errors import BadRequest, one_line

MAX_QUESTION_CHARS = 2000
MAX_K = 50
DEFAULT_K = 5

# Control, format (bidi, zero-width), surrogate, private-use and unassigned code points: never
# part of a question's meaning, and some make a message span lines or reorder text on screen.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def clean_question(question: Any) -> str:
    """The question with control characters turned into spaces; BadRequest if empty or huge."""
    if not isinstance(question, str):
        raise BadRequest(f"question must be text, got {type(question).__name__}")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadRequest(
            f"question is too long ({len(question)} characters; at most {MAX_QUESTION_CHARS})"
        )
    cleaned = "".join(
        " " if unicodedata.category(ch) in INVISIBLE_CATEGORIES else ch for ch in question
    )
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise BadRequest("question is empty")
    return cleaned


def check_k(k: Any) -> int:
    """``k`` as an int in ``[1, MAX_K]``, else BadRequest.

    Only whole numbers given as numbers count: ``"3"``, ``3.0`` and ``true`` are refused, so a
    client's type mistake is reported instead of guessed at.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise BadRequest(
            f"k must be a whole number between 1 and {MAX_K}, got {one_line(repr(k), 40)}"
        )
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"k must be between 1 and {MAX_K}, got {k}")
    return int(k)
