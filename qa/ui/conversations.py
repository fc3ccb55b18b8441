"""Conversations kept in the browser (Gradio ``BrowserState``, i.e. localStorage): a list of
conversations, each a list of turns, and which one is open. Nothing of it is stored on the server.

A turn is ``{"q": question, "result": answer dict}`` once answered, ``{"q", "pending": True,
"since": time asked}`` while it is, or ``{"q", "error": message}``; ``notice`` says when it was
answered while documents were still being indexed. These functions take a store and return a
new one; they never mutate what they are given.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

MAX_CONVERSATIONS = 30
MAX_TURNS = 40
MAX_HISTORY_TURNS = 6  # earlier turns sent with a question (what the answer may read)
STALE_PENDING_S = 120.0  # a question "being answered" for longer was interrupted

Store = dict[str, Any]
Turn = dict[str, Any]


def empty_store() -> Store:
    """No conversations, none open."""
    return {"current": None, "conversations": []}


def checked(store: Any) -> Store:
    """The store as the browser sent it, with anything malformed dropped."""
    if not isinstance(store, dict) or not isinstance(store.get("conversations"), list):
        return empty_store()
    convs = [
        {"id": str(c["id"]), "title": str(c.get("title") or ""),
         "updated": float(c.get("updated") or 0),
         "turns": [dict(t) for t in c["turns"] if isinstance(t, dict) and "q" in t]}
        for c in store["conversations"]
        if isinstance(c, dict) and c.get("id") and isinstance(c.get("turns"), list)
    ]
    current = store.get("current")
    if current not in {c["id"] for c in convs}:
        current = None
    return {"current": current, "conversations": convs[:MAX_CONVERSATIONS]}


def current_turns(store: Any) -> list[Turn]:
    """The turns of the open conversation (none when a new one is started)."""
    s = checked(store)
    for c in s["conversations"]:
        if c["id"] == s["current"]:
            return list(c["turns"])
    return []


def without_stale(store: Any, *, now: float | None = None) -> Store:
    """The store as shown after a reload: a question still marked as being answered long after
    it was asked (the page was closed meanwhile) says it was not answered."""
    s = checked(store)
    now = time.time() if now is None else now
    for c in s["conversations"]:
        c["turns"] = [
            {"q": t["q"], "error": "Not answered: the page was closed or reloaded while it was "
                                   "being answered. Ask it again."}
            if t.get("pending") and now - float(t.get("since") or 0) > STALE_PENDING_S else t
            for t in c["turns"]]
    return s


def with_turns(store: Any, turns: list[Turn]) -> Store:
    """The store with the open conversation's turns replaced (it is created on its first
    question), moved to the top of the list."""
    s = checked(store)
    turns = turns[-MAX_TURNS:]
    if not turns:
        return s
    convs = s["conversations"]
    conv = next((c for c in convs if c["id"] == s["current"]), None)
    if conv is None:
        conv = {"id": uuid.uuid4().hex[:12], "title": "", "updated": 0.0, "turns": []}
        s["current"] = conv["id"]
    else:
        convs.remove(conv)
    conv = {**conv, "turns": turns, "updated": time.time(),
            "title": conv["title"] or " ".join(str(turns[0]["q"]).split())[:120]}
    s["conversations"] = [conv, *convs][:MAX_CONVERSATIONS]
    return s


def opened(store: Any, conv_id: str | None) -> Store:
    """The store with ``conv_id`` open (None: a new, empty conversation)."""
    s = checked(store)
    s["current"] = conv_id if conv_id in {c["id"] for c in s["conversations"]} else None
    return s


def deleted(store: Any, conv_id: str) -> Store:
    """The store without ``conv_id``; deleting the open one starts a new conversation."""
    s = checked(store)
    s["conversations"] = [c for c in s["conversations"] if c["id"] != conv_id]
    if s["current"] == conv_id:
        s["current"] = None
    return s


def read_with(history: list[dict[str, str]], result: dict[str, Any]) -> list[str]:
    """The earlier questions an extractive answer was read with (its ``history_used`` in the
    ``history`` it was asked with), to show under the answer; none for a model's answer, which
    shows the question it searched with instead."""
    if result.get("rewritten_question"):
        return []
    used = result.get("history_used") or []
    return [history[i]["question"] for i in used if isinstance(i, int) and 0 <= i < len(history)]


def history_for(turns: list[Turn]) -> list[dict[str, str]]:
    """The earlier answered turns as ``{"question", "answer"}``, as ``Retriever.ask`` takes
    them, the most recent last."""
    done = [t for t in turns if t.get("result") and not t.get("pending")]
    return [{"question": str(t["q"]), "answer": str(t["result"].get("answer", ""))}
            for t in done[-MAX_HISTORY_TURNS:]]
