"""Run in a fresh process, so that memory figures are the process's own.

    python -m bench.probe INDEX_DIR QUESTIONS_JSON
        load an index, answer questions: load seconds, first-answer seconds, warm ask p50/p95,
        resident memory at the end (in all, heap, mapped files) and its peak
    python -m bench.probe --build CORPUS_DIR INDEX_DIR [EMBEDDER [PASSAGE_VECTORS]]
        index a corpus (default: the default embedder and passage vectors): seconds, counts and
        peak resident memory
    python -m bench.probe --add INDEX_DIR FILE
        add one document to an index (an incremental update): seconds and peak resident memory
    python -m bench.probe --remove INDEX_DIR DOC_ID
        remove one document: seconds and peak resident memory
    python -m bench.probe --churn INDEX_DIR OPS
        OPS single-document updates in one process, alternately adding a new document and
        removing one: seconds per add and per remove, segments at the end
Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()


def answer(index: str, questions_file: str) -> dict[str, object]:
    from qa import Retriever

    from .common import peak_rss_mb, percentiles, rss_mb

    with open(questions_file, encoding="utf-8") as f:
        questions = json.load(f)
    r = Retriever.load(index)
    loaded = time.perf_counter() - T0
    r.ask(questions[0])
    first = time.perf_counter() - T0
    times, cpu = [], []
    for q in questions[1:]:
        t, c = time.perf_counter(), time.process_time()
        r.ask(q)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {"load_s": round(loaded, 3), "first_answer_s": round(first, 3),
            "warm_ask_ms": percentiles(times), "warm_ask_cpu_ms": percentiles(cpu),
            "rss_mb": round(rss_mb()),
            "rss_anon_mb": round(rss_mb("RssAnon")), "rss_file_mb": round(rss_mb("RssFile")),
            "peak_rss_mb": round(peak_rss_mb())}


def build(corpus: str, index: str, *options: str) -> dict[str, object]:
    from qa import Retriever

    from .common import peak_rss_mb

    kwargs = dict(zip(("embedder", "passage_vectors"), options))
    t = time.perf_counter()
    info = Retriever.build([corpus], index, **kwargs).info()
    return {"seconds": round(time.perf_counter() - t, 2), "documents": info["documents"],
            "passages": info["passages"], "sentences": info["sentences"],
            "peak_rss_mb": round(peak_rss_mb())}


def add(index: str, file: str) -> dict[str, object]:
    from qa import Retriever

    from .common import peak_rss_mb

    t = time.perf_counter()
    report = Retriever.load(index).add([file])
    assert report.added, report
    return {"seconds": round(time.perf_counter() - t, 2), "peak_rss_mb": round(peak_rss_mb())}


def remove(index: str, doc_id: str) -> dict[str, object]:
    from qa import Retriever

    from .common import peak_rss_mb

    t = time.perf_counter()
    report = Retriever.load(index).remove([doc_id])
    assert report.removed == [doc_id], report
    return {"seconds": round(time.perf_counter() - t, 2), "peak_rss_mb": round(peak_rss_mb())}


def churn(index: str, ops: str) -> dict[str, object]:
    import random
    import tempfile
    from pathlib import Path

    from qa import Retriever

    from .common import peak_rss_mb, percentiles, xquad_paragraphs

    r = Retriever.load(index)
    rnd = random.Random(0)
    paragraphs = xquad_paragraphs()
    present = [d for d in r.snapshot().documents if d.startswith("synthetic/")]
    added: list[str] = []
    adds, removes = [], []
    folder = Path(tempfile.mkdtemp(prefix="qa-churn-"))
    for i in range(int(ops)):
        t = time.perf_counter()
        if i % 2 == 0:  # a new document: an XQuAD paragraph, numbered so that each is new
            doc = folder / f"churn-{i:05d}.txt"
            doc.write_text(f"{paragraphs[i % len(paragraphs)]} ({i})", "utf-8")
            assert r.add([doc]).added == [doc.name]
            added.append(doc.name)
            adds.append((time.perf_counter() - t) * 1000)
        else:  # remove a document: an original one, or now and then one added before
            pool = added if added and rnd.random() < 0.3 else present
            victim = pool.pop(rnd.randrange(len(pool)))
            assert r.remove([victim]).removed == [victim]
            removes.append((time.perf_counter() - t) * 1000)
    info = r.info()
    return {"ops": int(ops), "add_ms": percentiles(adds), "remove_ms": percentiles(removes),
            "segments": info["segments"], "documents": info["documents"],
            "passages": info["passages"], "peak_rss_mb": round(peak_rss_mb())}


if __name__ == "__main__":
    args = sys.argv[1:]
    modes = {"--build": build, "--add": add, "--remove": remove, "--churn": churn}
    out = modes[args[0]](*args[1:]) if args[0] in modes else answer(*args)
    print(json.dumps(out))
