"""Run in a fresh process, so that memory figures are the process's own.

    python -m bench.probe INDEX_DIR QUESTIONS_JSON
        load an index, answer questions: load seconds, first-answer seconds, warm ask p50/p95,
        resident memory at the end (in all, heap, mapped files) and its peak
    python -m bench.probe --build CORPUS_DIR INDEX_DIR [EMBEDDER [PASSAGE_VECTORS]]
        index a corpus (default: the default embedder and passage vectors): seconds, counts and
        peak resident memory
    python -m bench.probe --add INDEX_DIR FILE
        add one document to an index (an incremental update): seconds and peak resident memory
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
    times = []
    for q in questions[1:]:
        t = time.perf_counter()
        r.ask(q)
        times.append((time.perf_counter() - t) * 1000)
    return {"load_s": round(loaded, 3), "first_answer_s": round(first, 3),
            "warm_ask_ms": percentiles(times), "rss_mb": round(rss_mb()),
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


if __name__ == "__main__":
    args = sys.argv[1:]
    modes = {"--build": build, "--add": add}
    out = modes[args[0]](*args[1:]) if args[0] in modes else answer(*args)
    print(json.dumps(out))
