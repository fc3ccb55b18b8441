"""Feedback on answers, kept beside the index, and turned into a question set for ``qa eval``.

The chat appends one JSON object a line to ``<index>/feedback.jsonl`` (a verdict on the click,
and again with a note or a passage picked: :func:`read` keeps the latest per answer)::

    {"id", "time", "verdict": "up" | "down", "question", "answer", "abstained",
     "cited": [{"doc_id", "start", "end", "text"}], "note",
     "right_passage": {"doc_id", "start", "end", "text"} | "none" | null}

``right_passage`` is the reader's pick on a wrong answer: a passage, or ``"none"`` (the
documents do not answer the question). :func:`export_questions` writes each usable entry as a
question of the set ``qa eval`` reads, so every complaint becomes a regression check:

- thumbs down with a passage picked: that passage's document must be retrieved, with its text;
- thumbs down with "none": the assistant must abstain;
- thumbs up: what was cited must stay retrieved (or the abstention must stay an abstention).

Thumbs down without a pick says something is wrong but not what is right: it is kept in the file
and left out of the export.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import BadRequest

FEEDBACK_FILE = "feedback.jsonl"
MAX_NOTE_CHARS = 2000
MAX_TEXT_CHARS = 4000
MAX_ANSWER_CHARS = 300  # the part of a passage a regression check looks for
_write_lock = threading.Lock()


def feedback_path(index_dir: str | os.PathLike[str]) -> Path:
    """Where the feedback on an index is kept: ``<index>/feedback.jsonl``."""
    return Path(index_dir) / FEEDBACK_FILE


def _span(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object with doc_id, start, end and text")
    try:
        start, end = int(value["start"]), int(value["end"])
        doc_id, text = str(value["doc_id"]), str(value.get("text") or "")
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"{what} needs doc_id, start, end and text") from exc
    if not doc_id or not 0 <= start <= end:
        raise BadRequest(f"{what} has no document or bad offsets")
    return {"doc_id": doc_id, "start": start, "end": end, "text": text[:MAX_TEXT_CHARS]}


def make_entry(data: dict[str, Any]) -> dict[str, Any]:
    """A checked feedback entry from what the chat sent; BadRequest names what is wrong."""
    verdict = data.get("verdict")
    if verdict not in ("up", "down"):
        raise BadRequest(f"verdict must be 'up' or 'down', got {verdict!r}")
    question = " ".join(str(data.get("question") or "").split())
    if not question:
        raise BadRequest("feedback needs the question it is about")
    right = data.get("right_passage")
    if right not in (None, "", "none"):
        right = _span(right, "right_passage")
    cited = data.get("cited") or []
    if not isinstance(cited, list):
        raise BadRequest("cited must be a list")
    return {
        "id": uuid.uuid4().hex[:12],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "verdict": verdict,
        "question": question[:MAX_TEXT_CHARS],
        "answer": str(data.get("answer") or "")[:MAX_TEXT_CHARS],
        "abstained": bool(data.get("abstained")),
        "cited": [_span(c, "cited passage") for c in cited[:20]],
        "note": str(data.get("note") or "").strip()[:MAX_NOTE_CHARS],
        "right_passage": right or None,
    }


def record(index_dir: str | os.PathLike[str], data: dict[str, Any]) -> dict[str, Any]:
    """Check ``data`` and append it to the index's feedback file; returns the stored entry."""
    entry = make_entry(data)
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    path = feedback_path(index_dir)
    with _write_lock, open(path, "a", encoding="utf-8") as f:  # one write per line: appends
        f.write(line)                                         # from threads stay whole
    return entry


def read(index_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The feedback, one entry per answer (the same question and answer text): its latest,
    oldest first. The chat saves a verdict on the click and again with a note or a passage
    picked, and a reader may change their mind; each line is kept in the file, append-only, and
    only the last one counts (a line that is not JSON, e.g. cut short, is skipped)."""
    path = feedback_path(index_dir)
    if not path.exists():
        return []
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("question"):
            key = (str(row["question"]), str(row.get("answer") or ""))
            latest.pop(key, None)  # re-inserted: ordered by its latest word
            latest[key] = row
    return list(latest.values())


def _answer_text(text: str) -> str:
    """A piece of a passage that a retrieved passage must contain: its first sentence, or its
    first ``MAX_ANSWER_CHARS`` characters."""
    text = text.strip()
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return first[:MAX_ANSWER_CHARS].strip()


def as_question(entry: dict[str, Any]) -> dict[str, Any] | None:
    """One feedback entry as a question of a ``qa eval`` set, or None when it says nothing
    checkable (thumbs down without a pick)."""
    base = {"id": f"feedback-{entry.get('id') or uuid.uuid4().hex[:12]}",
            "question": entry["question"], "lang": "", "source": "feedback",
            "verdict": entry.get("verdict"), "note": entry.get("note", "")}
    right = entry.get("right_passage")
    if entry.get("verdict") == "down":
        if right == "none":
            return {**base, "doc": None, "answers": []}
        if isinstance(right, dict):
            answer = _answer_text(str(right.get("text", "")))
            return {**base, "doc": right["doc_id"], "answers": [answer] if answer else []}
        return None
    if entry.get("abstained"):
        return {**base, "doc": None, "answers": []}
    cited = entry.get("cited") or []
    if not cited:
        return None
    first = cited[0]
    answer = _answer_text(str(first.get("text", "")))
    return {**base, "doc": first["doc_id"], "answers": [answer] if answer else []}


def export_questions(index_dir: str | os.PathLike[str],
                     out: str | os.PathLike[str]) -> tuple[int, int]:
    """Write the feedback as a question set (JSONL) to ``out``; the latest entry for a question
    wins. Returns (questions written, entries left out)."""
    by_question: dict[str, dict[str, Any]] = {}
    left_out = 0
    for entry in read(index_dir):
        q = as_question(entry)
        if q is None:
            left_out += 1
            continue
        key = q["question"].casefold()
        if key in by_question:
            left_out += 1
        by_question[key] = q
    if not by_question:
        raise BadRequest(f"no usable feedback in {feedback_path(index_dir)} (thumbs up, or thumbs "
                         "down with the right passage picked)")
    target = Path(out)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n"
                           for q in by_question.values()), encoding="utf-8")
    os.replace(tmp, target)
    return len(by_question), left_out
