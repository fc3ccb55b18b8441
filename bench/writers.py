"""Writers for ``bench/load.py``: clients that upload and delete documents while others ask.

One writer (``big``) uploads a 150 KB document over and over, its text changed each time so
that every upload is embedded again (about a minute of the model's time on 2 cores); the others
upload a tiny document and delete it again, as fast as the server lets them. A 503 with
``Retry-After`` is the server saying its update queue is full: counted as ``busy``, not as a
failure, and the writer tries again after the 5 s it says. Anything else but 200 is a failure.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "qa" / "data" / "sample"
BIG_BYTES = 150_000
RETRY_S = 5.0  # what the server's Retry-After says


@dataclass
class WriterStats:
    """What the writers got: uploads and deletes done, busy answers, failures."""

    uploads: int = 0
    deletes: int = 0
    busy: int = 0
    failures: list[str] = field(default_factory=list)
    upload_seconds: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> dict[str, object]:
        s = sorted(self.upload_seconds)
        return {"uploads": self.uploads, "deletes": self.deletes, "busy_503": self.busy,
                "failures": len(self.failures), "first_failures": self.failures[:10],
                "upload_s_median": round(s[len(s) // 2], 2) if s else None,
                "upload_s_max": round(s[-1], 2) if s else None}


def big_text(n: int) -> bytes:
    """About 150 KB of real sentences (the sample articles), numbered so each upload differs."""
    base = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(SAMPLE.glob("*.txt")))
    parts, size, i = [], 0, 0
    while size < BIG_BYTES:
        part = f"Fassung {n}, Teil {i}.\n\n{base}"
        parts.append(part)
        size += len(part.encode())
        i += 1
    return "\n\n".join(parts).encode()[:BIG_BYTES]


def _multipart(name: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\ncontent-disposition: form-data; name=\"files\"; "
            f"filename=\"{name}\"\r\ncontent-type: text/plain\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def _send(port: int, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def writer_client(port: int, stats: WriterStats, stop: threading.Event, seed: int,
                  big: bool) -> None:
    """Upload (and, for tiny documents, delete again) until ``stop``."""
    rnd = random.Random(seed)
    n = 0
    while not stop.is_set():
        n += 1
        name = f"big-{seed}.txt" if big else f"note-{seed}-{n}.txt"
        data = big_text(n) if big else f"Notiz {n} von Schreiber {seed}: {rnd.random()}.".encode()
        t0 = time.perf_counter()
        try:
            status, raw = _send(port, "POST", "/api/documents", *_multipart(name, data))
        except (OSError, http.client.HTTPException) as exc:
            with stats.lock:
                stats.failures.append(f"upload {name}: {type(exc).__name__}: {exc}")
            continue
        if not _counted(stats, "upload", name, status, raw, time.perf_counter() - t0):
            stop.wait(RETRY_S)
            continue
        while not big and not stop.is_set():
            try:
                status, raw = _send(port, "DELETE", f"/api/documents/{name}")
            except (OSError, http.client.HTTPException) as exc:
                with stats.lock:
                    stats.failures.append(f"delete {name}: {type(exc).__name__}: {exc}")
                break
            if _counted(stats, "delete", name, status, raw, None) or status != 503:
                break
            stop.wait(RETRY_S)


def _counted(stats: WriterStats, what: str, name: str, status: int, raw: bytes,
             seconds: float | None) -> bool:
    """Record one answer; True when it was a success."""
    with stats.lock:
        if status == 200:
            if what == "upload":
                stats.uploads += 1
                stats.upload_seconds.append(seconds or 0.0)
            else:
                stats.deletes += 1
            return True
        if status == 503 and "\n" not in json.loads(raw).get("detail", "\n"):
            stats.busy += 1
        else:
            stats.failures.append(f"{what} {name}: status {status}: {raw[:200]!r}")
        return False
