"""A small local OpenAI-compatible endpoint that misbehaves on purpose, for fault tests.

The model endpoint is not what these tests check (the real llama.cpp server is, in
tests/test_generation_llama.py); this fake injects faults into it: slow, garbage, empty,
refusing, and answers with a marker [9] or a made-up number. It speaks just enough of the chat
completions API (``GET /v1/models``, ``POST /v1/chat/completions`` streamed or not).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    """What the fake answers: ``reply`` (text, or a function of the messages), split into
    ``chunks``; ``fault``: "slow", "garbage", "empty", "refuse", "error" or None."""

    reply: Any = "Ukraine offered neutrality [1]."
    fault: str | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


class FakeLLM:
    """Serves on a free loopback port until :meth:`stop`; ``url`` is the ``/v1`` base URL."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [
                    {"id": "fake-model", "object": "model", "owned_by": "test"}]})

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                b = fake.behaviour
                b.requests.append(body)
                if b.fault == "refuse":
                    self._json(401, {"error": {"message": "invalid api key"}})
                    return
                if b.fault == "error":
                    self._json(500, {"error": {"message": "model crashed"}})
                    return
                if b.delay:
                    time.sleep(b.delay)
                text = b.reply(body["messages"]) if callable(b.reply) else b.reply
                if b.fault == "empty":
                    text = ""
                if not body.get("stream"):
                    self._json(200, {"id": "x", "object": "chat.completion", "created": 0,
                                     "model": "fake-model", "choices": [{
                                         "index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}]})
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                if b.fault == "garbage":
                    self.wfile.write(b"data: {this is not json at all\n\n")
                    self.wfile.flush()
                    return
                words = text.split(" ")
                for i, w in enumerate(words):
                    piece = w if i == 0 else " " + w
                    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0,
                             "model": "fake-model", "choices": [
                                 {"index": 0, "delta": {"content": piece},
                                  "finish_reason": None}]}
                    try:
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    except OSError:
                        return
                    if b.chunk_delay:
                        time.sleep(b.chunk_delay)
                try:
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except OSError:
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
