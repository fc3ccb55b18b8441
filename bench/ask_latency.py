"""Warm ``ask`` latency on the sample corpus: p50 and p95 over the sample question sets, asked
alone and (where the code supports it) as follow-ups with a history.

    python -m bench.ask_latency [--index DIR] [--rounds 3]

Prints one table and saves it in bench/results.json (section "ask"); ``python -m bench`` runs it
too and writes it into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from qa import Retriever
from qa.retriever import sample_corpus_dir

from .common import save_section

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


def run(index: str | None = None, rounds: int = 3) -> dict[str, dict[str, float]]:
    """p50/p95 ms of warm ``ask`` (k=5) on the sample articles: the questions of
    ``eval/sample.jsonl`` and ``eval/calibration.jsonl`` asked alone, and the rows of
    ``eval/followups.jsonl`` with their history; each ``rounds`` times."""
    path = index or tempfile.mkdtemp(prefix="qa-bench-")
    r = Retriever.load(path) if index else Retriever.build([sample_corpus_dir()], path)
    r.ask("warm-up")
    standalone = [row["question"] for name in ("sample.jsonl", "calibration.jsonl")
                  for row in _rows(name)]
    follow = _rows("followups.jsonl")
    out = {}
    for name, n, ask in (
            ("standalone (sample sets)", len(standalone),
             [lambda q=q: r.ask(q, 5) for q in standalone]),
            ("follow-ups with history", len(follow),
             [lambda row=row: r.ask(row["question"], 5, history=row["history"])
              for row in follow])):
        times = sorted(_time(fn, 1)[0] for _ in range(rounds) for fn in ask)
        out[name] = {"n": n, "p50": round(statistics.median(times), 2),
                     "p95": round(times[int(0.95 * len(times))], 2)}
    save_section("ask", out)
    return out


def report(out: dict[str, dict[str, float]]) -> str:
    lines = [f"{'questions':<32} {'n':>4} {'p50 ms':>8} {'p95 ms':>8}"]
    lines += [f"{name:<32} {s['n']:>4} {s['p50']:>8} {s['p95']:>8}" for name, s in out.items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", help="an index of the sample articles (default: build one)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(report(run(args.index, args.rounds)))


if __name__ == "__main__":
    main()
