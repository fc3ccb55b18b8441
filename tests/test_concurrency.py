"""One Retriever shared by many threads: concurrent queries, and queries during live updates.

The promise (qa/retriever.py): searching is thread-safe, and an update builds a new index version
and swaps it in atomically, so a query never sees a half-written index. Checked here with the fast
trigram embedder, in process and over HTTP (a real uvicorn server on a free local port).
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qa import Answer, Retriever
from qa.documents import load_documents

from .conftest import TrigramEmbedder

QUESTIONS = [
    "Why do cats purr?",
    "Which river rises in the Swiss Alps?",
    "Is Etna an active volcano?",
    "How many countries does the Danube flow through?",
    "Where do domestic cats come from?",
    "Did lava reach the sea?",
]
DYN = "dyn.txt"  # the document that is added, changed and removed while queries run
ALWAYS_ANSWER = {"bias": 10.0, "weights": {}, "threshold": 0.5}


@pytest.fixture
def index(corpus: Path, tmp_path: Path) -> Path:
    # Small passages: documents span several, so offsets shift between versions of a document.
    Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder(), chunk_size=120)
    return tmp_path / "idx"


def _open(index: Path) -> Retriever:
    r = Retriever.load(index, embedder=TrigramEmbedder())
    r._calibration = ALWAYS_ANSWER  # answers with citations, so those get checked too
    return r


# -- concurrent queries --------------------------------------------------------------------------

def test_eight_threads_get_the_sequential_results(index: Path) -> None:
    expected_ask = {q: _open(index).ask(q, 4) for q in QUESTIONS}
    expected_search = {q: _open(index).search(q, 3) for q in QUESTIONS}

    r = _open(index)  # fresh: the first queries race on lazy loading (stores, offsets)
    jobs = [(kind, q) for kind in ("ask", "search") for q in QUESTIONS] * 8
    random.Random(5).shuffle(jobs)
    start = threading.Barrier(8)
    results: list[list[tuple[str, str, Any]]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            start.wait(timeout=10)
            for kind, q in jobs[i::8]:
                got = r.ask(q, 4) if kind == "ask" else r.search(q, 3)
                results[i].append((kind, q, got))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sum(map(len, results)) == len(jobs)
    for kind, q, got in (x for part in results for x in part):
        assert got == (expected_ask[q] if kind == "ask" else expected_search[q]), (kind, q)


@pytest.mark.model
def test_eight_threads_with_the_real_model(sample_index: Path) -> None:
    questions = ["What did Ukraine offer in Istanbul?", "Wer sollte die Gespräche vermitteln?",
                 "Was wurde über Energieanlagen vereinbart?", "Where were the talks held?"]
    r = Retriever.load(sample_index)
    expected = {q: r.ask(q, 3) for q in questions}
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda q: (q, r.ask(q, 3)), questions * 3))
    for q, a in got:
        assert a.to_json() == expected[q].to_json()
        assert math.isclose(a.confidence, expected[q].confidence, abs_tol=1e-6)


# -- queries during live updates -----------------------------------------------------------------

def _version_text(v: int) -> str:
    """Version ``v`` of the changing document: every passage names its version, and the length
    varies, so a passage of one version never matches another version's offsets."""
    rng = random.Random(v)
    paras = [
        f"Revision {v} paragraph {i}: the volcano Etna and the cats near the Danube "
        + "lava " * rng.randint(1, 30) + f"end of revision {v} paragraph {i}."
        for i in range(rng.randint(2, 5))
    ]
    return "\n\n".join(paras)


@dataclass
class History:
    """What the writer did and when (time.monotonic()), for judging what readers saw."""

    texts: dict[int, str] = field(default_factory=dict)  # version -> document text
    present_from: dict[int, float] = field(default_factory=dict)  # update call started
    gone_at: dict[int, float] = field(default_factory=dict)  # replace/remove call returned
    lock: threading.Lock = field(default_factory=threading.Lock)

    def versions_matching(self, start: int, end: int, text: str) -> set[int]:
        with self.lock:
            return {v for v, t in self.texts.items() if t[start:end] == text}


def check_result(
    passages: list[dict[str, Any]],
    citations: list[dict[str, Any]],
    static: dict[str, str],
    history: History,
    t0: float,
    t1: float,
) -> None:
    """Every passage and citation is text[start:end] of its document as it was at some moment
    during the query, and all parts of one result come from the same version."""
    seen: set[int] | None = None
    for p in [*passages, *citations]:
        assert p["end"] - p["start"] == len(p["text"]), p
        if p["doc_id"] in static:
            assert static[p["doc_id"]][p["start"] : p["end"]] == p["text"], p
            continue
        assert p["doc_id"] == DYN, p
        versions = history.versions_matching(p["start"], p["end"], p["text"])
        assert versions, f"passage matches no version of {DYN}: {p}"
        seen = versions if seen is None else seen & versions
        assert seen, "one result mixes passages of two versions of a document"
    if seen is not None:
        with history.lock:
            live = {
                v for v in seen
                if history.present_from[v] <= t1 and history.gone_at.get(v, math.inf) >= t0
            }
        assert live, f"result shows version(s) {sorted(seen)} of {DYN}, not live during the query"
    for c in citations:  # a citation lies inside the passage its marker names
        p = passages[c["marker"] - 1]
        assert p["doc_id"] == c["doc_id"] and p["start"] <= c["start"] <= c["end"] <= p["end"]


def _answer_json(a: Answer) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    passages = [{**p.to_json(), "text": p.text} for p in a.passages]
    citations = [
        {"marker": c.marker, "doc_id": c.doc_id, "start": c.start, "end": c.end, "text": c.text}
        for c in a.citations
    ]
    return passages, citations


def _run_live(
    query: Callable[[str], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    upsert: Callable[[Path], Any],
    remove: Callable[[str], Any],
    static: dict[str, str],
    workdir: Path,
    cycles: int,
) -> tuple[int, int]:
    """4 reader threads query while the writer adds, changes and removes ``dyn.txt`` ``cycles``
    times; returns (queries, queries that saw dyn.txt). Any reader failure fails the test."""
    history = History()
    done = threading.Event()
    errors: list[BaseException] = []
    counts = {"queries": 0, "dyn": 0}
    counts_lock = threading.Lock()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not done.is_set():
                q = rng.choice([*QUESTIONS, "Etna volcano lava revision", "cats Danube lava"])
                t0 = time.monotonic()
                passages, citations = query(q)
                t1 = time.monotonic()
                assert passages, q
                check_result(passages, citations, static, history, t0, t1)
                with counts_lock:
                    counts["queries"] += 1
                    counts["dyn"] += any(p["doc_id"] == DYN for p in passages)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            done.set()

    readers = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(4)]
    for t in readers:
        t.start()
    path = workdir / DYN
    try:
        v = 0
        for _ in range(cycles):
            if errors:
                break
            for _change in range(2):  # add, then change in place
                v += 1
                text = _version_text(v)
                path.write_text(text, encoding="utf-8")
                (doc,), _ = load_documents([path])
                assert doc.text == text
                with history.lock:
                    history.texts[v] = text
                    history.present_from[v] = time.monotonic()
                upsert(path)
                with history.lock:
                    if v - 1 in history.texts and v - 1 not in history.gone_at:
                        history.gone_at[v - 1] = time.monotonic()
                time.sleep(0.01)
            remove(DYN)
            with history.lock:
                history.gone_at[v] = time.monotonic()
            time.sleep(0.01)
        time.sleep(0.05)  # readers query the final state too
    finally:
        done.set()
        for t in readers:
            t.join(timeout=30)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in readers), "a reader hung"
    return counts["queries"], counts["dyn"]


def _static_texts(corpus: Path) -> dict[str, str]:
    docs, _ = load_documents([corpus])
    return {d.doc_id: d.text for d in docs}


def test_queries_during_add_and_remove(index: Path, corpus: Path, tmp_path: Path) -> None:
    r = _open(index)
    workdir = tmp_path / "live"
    workdir.mkdir()

    def upsert(path: Path) -> None:
        rep = r.add([path])
        assert rep.added or rep.updated, rep

    def remove(doc_id: str) -> None:
        assert r.remove([doc_id]).removed == [doc_id]

    queries, saw_dyn = _run_live(
        lambda q: _answer_json(r.ask(q, 5)), upsert, remove, _static_texts(corpus), workdir, 6
    )
    print(f"{queries} queries, {saw_dyn} saw {DYN}")
    assert queries > 20 and saw_dyn > 0, (queries, saw_dyn)
    assert DYN not in {d["doc_id"] for d in r.documents()}
    assert all(p.doc_id != DYN for p in r.search("Etna volcano lava revision", 10))
    # what is on disk is what was served: a fresh load gives the same answers
    assert Retriever.load(index, embedder=TrigramEmbedder()).documents() == r.documents()


# -- the same over HTTP --------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api_server(index: Path) -> Iterator[tuple[str, Retriever]]:
    """qa.api.create_app on a real uvicorn server in a thread, on a free 127.0.0.1 port."""
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    from qa.api import create_app

    r = _open(index)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(r), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", r
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _request(url: str, data: bytes | None = None, method: str | None = None,
             headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def _post_json(url: str, body: dict[str, Any]) -> Any:
    return _request(url, json.dumps(body).encode(), "POST", {"content-type": "application/json"})


def _upload(url: str, path: Path) -> Any:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\ncontent-disposition: form-data; name=\"files\"; "
        f"filename=\"{path.name}\"\r\ncontent-type: text/plain\r\n\r\n"
    ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return _request(url, body, "POST",
                    {"content-type": f"multipart/form-data; boundary={boundary}"})


def test_http_queries_during_upload_and_delete(
    api_server: tuple[str, Retriever], corpus: Path, tmp_path: Path
) -> None:
    url, r = api_server
    workdir = tmp_path / "live"
    workdir.mkdir()
    flip = iter(range(10**9))

    def query(q: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if next(flip) % 2:
            out = _post_json(f"{url}/api/search", {"question": q, "k": 5})
            return out["passages"], []
        out = _post_json(f"{url}/api/ask", {"question": q, "k": 5})
        assert out["abstained"] is False
        return out["passages"], out["citations"]

    def upsert(path: Path) -> None:
        rep = _upload(f"{url}/api/documents", path)
        assert rep["added"] or rep["updated"], rep

    def remove(doc_id: str) -> None:
        assert _request(f"{url}/api/documents/{doc_id}", method="DELETE")["removed"] == [doc_id]

    queries, saw_dyn = _run_live(query, upsert, remove, _static_texts(corpus), workdir, 8)
    print(f"{queries} queries, {saw_dyn} saw {DYN}")
    assert queries > 20 and saw_dyn > 0, (queries, saw_dyn)
    docs = _request(f"{url}/api/documents")
    assert sorted(d["doc_id"] for d in docs) == sorted(_static_texts(corpus))
    with pytest.raises(urllib.error.HTTPError) as err:  # already gone
        _request(f"{url}/api/documents/{DYN}", method="DELETE")
    assert err.value.code == 404


# -- regression: Retriever.embedder held _load_lock and called snapshot(), which took it again --

def test_a_retriever_opened_without_load_can_add(
    index: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qa.retriever

    monkeypatch.setattr(qa.retriever, "get_embedder", lambda spec: TrigramEmbedder(spec))
    (tmp_path / "new.txt").write_text("Penguins live in the Antarctic.", encoding="utf-8")
    r = Retriever(index)  # the constructor, not Retriever.load: no snapshot loaded yet
    outcome: list[Any] = []
    t = threading.Thread(target=lambda: outcome.append(r.add([tmp_path / "new.txt"])),
                         daemon=True)
    t.start()
    t.join(timeout=3)
    assert not t.is_alive(), "Retriever(index).add() deadlocked"
    assert outcome[0].added == ["new.txt"]


# -- #17.3: readers never wait on writers; writers queue with a bound --------------------------

class GatedEmbedder(TrigramEmbedder):
    """Passages (what an update embeds) wait for ``gate``: an update that takes as long as the test
    wants. Questions are embedded at once. Injects slowness into the embedder, not the locking
    under test."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.writing = threading.Event()

    def embed_passages(self, texts: Any) -> Any:
        self.niceness = os.getpriority(os.PRIO_PROCESS, 0)  # this thread's, on Linux
        self.writing.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().embed_passages(texts)


def _status(url: str, data: bytes | None = None, method: str | None = None,
            headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, Any, Any]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read())


def _upload_status(url: str, name: str, data: bytes) -> tuple[int, Any, Any]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\ncontent-disposition: form-data; name=\"files\"; "
            f"filename=\"{name}\"\r\ncontent-type: text/plain\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return _status(f"{url}/api/documents", body, "POST",
                   {"content-type": f"multipart/form-data; boundary={boundary}"}, timeout=60)


def test_a_slow_upload_and_45_more_leave_queries_answering(index: Path) -> None:
    """One upload held inside its update while 45 more arrive: questions and /api/health are
    answered meanwhile, the uploads beyond the queue get 503 with Retry-After at once, and the
    queued ones complete when the first is done."""
    uvicorn = pytest.importorskip("uvicorn")
    from qa.api import MAX_QUEUED_WRITES, create_app

    embedder = GatedEmbedder()
    r = Retriever.load(index, embedder=embedder)
    r._calibration = ALWAYS_ANSWER
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(r), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    pool = ThreadPoolExecutor(max_workers=60)
    try:
        first = pool.submit(_upload_status, url, "big.txt",
                            b"Penguins live in the Antarctic. " * 4000)
        assert embedder.writing.wait(10), first.result() if first.done() else "not embedding"
        more = [pool.submit(_upload_status, url, f"tiny{i}.txt", f"Owl number {i}.".encode())
                for i in range(45)]
        n_busy = 45 - (MAX_QUEUED_WRITES - 1)  # one is running, held at the gate
        deadline = time.monotonic() + 15
        while sum(f.done() for f in more) < n_busy and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = [f for f in more if f.done()]
        for f in busy:  # answered at once, while the first upload is still held
            status, headers, body = f.result()
            assert status == 503, (status, body)
            assert int(headers["Retry-After"]) > 0 and "\n" not in body["detail"]
        assert len(busy) == n_busy, len(busy)
        for q in QUESTIONS:  # the first upload is still held: nobody waits for it
            status, _, body = _status(f"{url}/api/ask", json.dumps({"question": q}).encode(),
                                      "POST", {"content-type": "application/json"})
            assert status == 200 and body["passages"], body
            assert _status(f"{url}/api/health")[0] == 200
        assert not first.done()
        assert embedder.niceness >= 10  # updates yield the CPU to questions
        embedder.gate.set()
        assert first.result(timeout=30)[0] == 200
        queued = [f.result(timeout=30) for f in more if f not in busy]
        assert [s for s, _, _ in queued] == [200] * (MAX_QUEUED_WRITES - 1)
        docs = {d["doc_id"] for d in r.documents()}
        assert "big.txt" in docs and len(docs & {f"tiny{i}.txt" for i in range(45)}) == 7
    finally:
        embedder.gate.set()
        pool.shutdown(wait=True)
        server.should_exit = True
        thread.join(timeout=10)
