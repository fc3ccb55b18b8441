"""Server-sent events for a streamed answer (``POST /api/ask`` with ``"stream": true``).

The stream is a sequence of events, each ``event: NAME`` and one ``data:`` line of JSON:

- ``rewrite``: ``{"question": ...}``, a follow-up as rewritten to stand alone;
- ``token``: ``{"text": ...}``, text as the model writes it;
- ``answer``: the full answer object (``Answer.to_json()``), always the last event;
- ``error``: ``{"detail": ...}`` instead of ``answer`` if the answer could not be made at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import QAError
from .answerer import StreamEvent

MEDIA_TYPE = "text/event-stream"


def sse(event: str, data: Any) -> str:
    """One server-sent event; the JSON is on one line, so one ``data:`` field holds it."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_stream(events: Iterable[StreamEvent]) -> Iterator[str]:
    """The events of a streamed answer as server-sent events, ending with ``answer`` (or
    ``error``: the connection is already open, so a failure cannot be a status code)."""
    try:
        for ev in events:
            if ev.kind == "token":
                yield sse("token", {"text": ev.text})
            elif ev.kind == "rewrite":
                yield sse("rewrite", {"question": ev.text})
            elif ev.answer is not None:
                yield sse("answer", ev.answer.to_json())
    except QAError as exc:
        yield sse("error", {"detail": " ".join(str(exc).split())})


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """``(event, data)`` pairs from the lines of a server-sent event stream (for clients)."""
    event = "message"
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield event, json.loads("\n".join(data))
