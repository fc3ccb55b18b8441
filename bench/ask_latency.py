"""Warm ``ask`` latency on the sample corpus: p50 and p95 over the sample question sets, asked
alone and (where the code supports it) as follow-ups with a history.

    python -m bench.ask_latency [--index DIR] [--rounds 3]

Prints one table; the numbers are recorded by hand in BENCHMARKS.md ("Answering").
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import tempfile
import time
from pathlib import Path

from qa import Retriever
from qa.retriever import sample_corpus_dir

REPO = Path(__file__).resolve().parent.parent


def _rows(name: str) -> list[dict]:
    path = REPO / "eval" / name
    return [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]


def _time(fn, rounds: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    ms = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    return statistics.median(ms), ms[min(len(ms) - 1, int(0.95 * len(ms)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", help="an index of the sample articles (default: build one)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    index = args.index or tempfile.mkdtemp(prefix="qa-bench-")
    r = Retriever.load(index) if args.index else Retriever.build([sample_corpus_dir()], index)
    r.ask("warm-up")
    standalone = [row["question"] for name in ("sample.jsonl", "calibration.jsonl")
                  for row in _rows(name)]
    print(f"{'questions':<32} {'n':>4} {'p50 ms':>8} {'p95 ms':>8}")
    times = []
    for _ in range(args.rounds):
        for q in standalone:
            times.append(_time(lambda q=q: r.ask(q, 5), 1)[0])
    times.sort()
    print(f"{'standalone (sample sets)':<32} {len(standalone):>4} "
          f"{statistics.median(times):>8.1f} {times[int(0.95 * len(times))]:>8.1f}")
    if "history" in inspect.signature(r.ask).parameters:
        follow = _rows("followups.jsonl")
        times = []
        for _ in range(args.rounds):
            for row in follow:
                times.append(_time(lambda row=row: r.ask(row["question"], 5,
                                                         history=row["history"]), 1)[0])
        times.sort()
        print(f"{'follow-ups with history':<32} {len(follow):>4} "
              f"{statistics.median(times):>8.1f} {times[int(0.95 * len(times))]:>8.1f}")


if __name__ == "__main__":
    main()
