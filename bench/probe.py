"""Run in a fresh process: load an index, answer questions, report latency and memory.

    python -m bench.probe INDEX_DIR QUESTIONS_JSON
Prints one JSON object: load seconds, first-answer seconds, warm ask p50/p95, RSS and peak RSS.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()


def main() -> None:
    from qa import Retriever

    from .common import peak_rss_mb, percentiles, rss_mb

    index, questions_file = sys.argv[1], sys.argv[2]
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
    print(json.dumps({"load_s": round(loaded, 3), "first_answer_s": round(first, 3),
                      "warm_ask_ms": percentiles(times), "rss_mb": round(rss_mb()),
                      "peak_rss_mb": round(peak_rss_mb())}))


if __name__ == "__main__":
    main()
