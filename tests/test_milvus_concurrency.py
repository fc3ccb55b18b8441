"""Questions asked while documents are replaced, removed and added back on Milvus Lite never see
half a document or two versions of one."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qa import Retriever
from tests.conftest import TrigramEmbedder

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

K = 50  # more than the corpus has passages: every candidate passage is returned


def edition(n: int) -> str:
    """Edition ``n`` of the changing document: ``n % 3 + 2`` passages, each naming ``n``."""
    return "\n\n".join(
        f"Edition {n} section {j}: the harbour timetable lists ferries to the island. "
        + " ".join(f"Ferry {j}-{i} of edition {n} leaves at {8 + i} o'clock." for i in range(10))
        for j in range(n % 3 + 2))


def test_asks_during_updates_never_see_half_a_document(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "timetable.txt").write_text(edition(0), encoding="utf-8")
    (docs / "weather.txt").write_text("Rain is expected over the island and the harbour.\n\n"
                                      "Ferries may be late when storms arrive.", encoding="utf-8")
    r = Retriever.build([docs], embedder=TrigramEmbedder(), milvus=str(tmp_path / "c.db"))
    # Each section of an edition is one passage (about 600 characters; two exceed 800); the
    # weather note is one.
    assert r.info()["passages"] == 2 + 1
    # Slow writes (a busy server) widen every window between the protocol's steps, so the
    # readers really land inside them; what is written is unchanged.
    client = r.milvus.client

    def slowed(call: Callable[..., Any]) -> Callable[..., Any]:
        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(0.05)
            return call(*args, **kwargs)
        return slow

    for name in ("insert", "delete", "upsert"):
        setattr(client, name, slowed(getattr(client, name)))

    extra = tmp_path / "extra.txt"
    extra.write_text(edition(7).replace("harbour", "port"), encoding="utf-8")
    stop = threading.Event()
    problems: list[str] = []
    seen_editions: set[int] = set()
    asked = [0]

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            (docs / "timetable.txt").write_text(edition(n), encoding="utf-8")
            r.add([docs / "timetable.txt"])
            if n % 2:
                r.add([extra])
            else:
                r.remove(["extra.txt"])

    def reader() -> None:
        while not stop.is_set():
            answer = r.ask("When do the ferries to the island leave?", K)
            asked[0] += 1
            by_doc: dict[str, list] = {}
            for p in answer.passages:
                by_doc.setdefault(p.doc_id, []).append(p)
            for doc_id in ("timetable.txt", "extra.txt"):
                ps = by_doc.get(doc_id, [])
                if not ps:
                    continue
                editions = {int(m) for p in ps for m in re.findall(r"Edition (\d+) section",
                                                                  p.text)}
                if len(editions) != 1:
                    problems.append(f"{doc_id}: passages of editions {sorted(editions)}")
                    continue
                n = editions.pop()
                text = edition(n) if doc_id == "timetable.txt" else \
                    edition(7).replace("harbour", "port")
                if len(ps) != n % 3 + 2:
                    problems.append(f"{doc_id}: {len(ps)} of edition {n}'s {n % 3 + 2} passages")
                if any(text[p.start:p.end] != p.text for p in ps):
                    problems.append(f"{doc_id}: offsets of another edition")
                if doc_id == "timetable.txt":
                    seen_editions.add(n)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader)
                                                    for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(seen_editions) < 6:
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert problems == []
    assert len(seen_editions) >= 3, (seen_editions, asked)  # the updates really interleaved
    r.milvus.verify()
