"""Use a qa index over HTTP, with nothing but the Python standard library.

    qa serve --api-only                       # in another terminal (or `qa serve`, with the chat)
    python examples/http_client.py [URL]      # default http://127.0.0.1:7860

Asks a question, searches, and lists the indexed documents through the JSON API (described at
URL/docs). If the server requires a token (``QA_API_TOKEN``), set the same variable here.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:7860"


class QAClient:
    """A tiny client for the ``qa serve`` HTTP API."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["content-type"] = "application/json"
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:  # 4xx/5xx answer with a one-line "detail"
            try:
                detail = json.loads(exc.read().decode("utf-8")).get("detail", exc.reason)
            except ValueError:
                detail = exc.reason
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {detail}") from None

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", "/api/health")
        return out

    def ask(self, question: str, k: int = 5) -> dict[str, Any]:
        """``{"question", "answer", "abstained", "passages", "confidence", "citations"}``."""
        out: dict[str, Any] = self._call("POST", "/api/ask", {"question": question, "k": k})
        return out

    def search(self, question: str, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` best passages: rank, doc_id, title, start, end, text, score."""
        out = self._call("POST", "/api/search", {"question": question, "k": k})
        passages: list[dict[str, Any]] = out["passages"]
        return passages

    def documents(self) -> list[dict[str, Any]]:
        """The indexed documents: doc_id, title, chars, passages."""
        out: list[dict[str, Any]] = self._call("GET", "/api/documents")
        return out

def main(url: str) -> int:
    client = QAClient(url, token=os.environ.get("QA_API_TOKEN"))
    try:
        client.health()
    except urllib.error.URLError as exc:
        print(f"error: no qa server at {url} ({exc.reason}); start one with "
              "`qa serve --api-only`", file=sys.stderr)
        return 1

    answer = client.ask("What did Ukraine offer in Istanbul?", k=3)
    print(f"Q: {answer['question']}\nA: {answer['answer']}")
    print(f"   (abstained: {answer['abstained']}, confidence {answer['confidence']})")
    for p in answer["passages"]:
        print(f"  [{p['rank']}] {p['doc_id']}, characters {p['start']}-{p['end']}, "
              f"score {p['score']}")

    print("\nsearch 'Wer sollte die Gespräche vermitteln?':")
    for p in client.search("Wer sollte die Gespräche vermitteln?", k=2):
        print(f"  [{p['rank']}] {p['doc_id']} {p['start']}-{p['end']}: "
              f"{' '.join(p['text'].split())[:100]}...")

    print("\ndocuments:")
    for d in client.documents():
        print(f"  {d['doc_id']}: {d['chars']} characters, {d['passages']} passages")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL))
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")
