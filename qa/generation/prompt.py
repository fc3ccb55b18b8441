"""The prompts: a grounded answer from numbered passages, and a follow-up made standalone.

Passages are numbered by their rank, exactly as the chat and the JSON number them, so a marker
``[n]`` the model writes points at the passage a reader sees as ``[n]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .client import Message

MAX_PASSAGE_CHARS = 1200
MAX_HISTORY_TURNS = 4
MAX_TURN_CHARS = 600

# Function words that tell English from German; enough for questions and short answers.
_EN = frozenset("the a an of and is are was were what who when where why how which did does do "
                "to in on for with that this it by from has have had not at as be".split())
_DE = frozenset("der die das den dem des ein eine einer und ist sind war waren was wer wann wo "
                "warum wie welche welcher welches hat haben hatte nicht mit von zu im auf für "
                "sich dass auch bei nach".split())
LANGUAGE_NAMES = {"en": "English", "de": "German"}


def detect_language(text: str) -> str:
    """``"en"`` or ``"de"`` by counting function words (umlauts and ß count for German);
    ``""`` when neither shows."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    en = sum(w in _EN for w in words)
    de = sum(w in _DE for w in words) + 0.5 * len(re.findall(r"[äöüß]", text.lower()))
    if en == de == 0:
        return ""
    return "de" if de > en else "en"


SYSTEM = (
    "You answer questions using only the numbered passages you are given. "
    "Write in {language}, even when the passages are in another language. "
    "End every sentence with the number of the passage it comes from in square brackets, "
    "like [1] or [2][3]. "
    "Use only facts stated in the passages; do not add names, numbers or events they do not "
    "contain. "
    "If the passages do not answer the question, say so in one sentence. "
    "Answer in at most three short sentences."
)


def _passage_block(passages: Sequence[Any]) -> str:
    parts = []
    for p in passages:
        text = " ".join(str(p.text).split())
        if len(text) > MAX_PASSAGE_CHARS:
            text = text[:MAX_PASSAGE_CHARS].rsplit(" ", 1)[0] + " ..."
        parts.append(f"[{p.rank}] {text}")
    return "\n\n".join(parts)


def grounded_messages(question: str, passages: Sequence[Any]) -> list[Message]:
    """The chat messages asking for an answer from ``passages`` (objects with ``rank`` and
    ``text``), in the language of ``question``, every sentence ending in its markers."""
    language = LANGUAGE_NAMES.get(detect_language(question) or "en", "English")
    user = (f"Passages:\n\n{_passage_block(passages)}\n\n"
            f"Question: {question}\n\n"
            f"Answer in {language}, ending each sentence with its passage number like [1].")
    return [{"role": "system", "content": SYSTEM.format(language=language)},
            {"role": "user", "content": user}]


REWRITE_SYSTEM = (
    "Rewrite the user's last question so that it can be understood without the conversation: "
    "replace pronouns and vague references with the names they stand for. Keep the language of "
    "the question. Reply with the rewritten question only."
)


def _clip(text: str, n: int = MAX_TURN_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " ..."


def rewrite_messages(question: str, history: Sequence[dict[str, str]]) -> list[Message]:
    """The chat messages asking for ``question`` rewritten as a standalone question, given the
    earlier turns (``{"question", "answer"}``, oldest first)."""
    lines = []
    for turn in list(history)[-MAX_HISTORY_TURNS:]:
        lines.append(f"Q: {_clip(turn.get('question', ''))}")
        answer = re.sub(r"\s*\[\d+\]", "", turn.get("answer", ""))  # markers mean nothing here
        lines.append(f"A: {_clip(answer)}")
    user = ("Conversation:\n" + "\n".join(lines) +
            f"\n\nLast question: {question}\n\nStandalone question:")
    return [{"role": "system", "content": REWRITE_SYSTEM}, {"role": "user", "content": user}]


def parse_rewrite(text: str, question: str) -> str:
    """The rewritten question from the model's reply: its first non-empty line, unquoted and
    without a label; the original question when the reply is empty or implausibly long."""
    for line in text.splitlines():
        line = re.sub(r"^\s*(standalone question|question|frage)\s*:\s*", "", line,
                      flags=re.IGNORECASE).strip().strip("\"'„“”*").strip()
        if line:
            return line if len(line) <= max(300, 3 * len(question)) else question
    return question
