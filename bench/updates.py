"""Updates at scale: adding and removing one document in a large index, and answering after
1,000 single-document adds and removes (segments, deletion marks, merges).

The large indexes are the synthetic ones of :mod:`bench.scale` (one segment, IVF above 50k
passages). Each size: add one document and remove one, each in a fresh process (seconds with the
model's loading, peak memory); then 1,000 updates in one process, alternately adding a new
document (an XQuAD paragraph, embedded by the real model) and removing one; then warm ask latency
and memory in a fresh process, and recall@10 of the retriever's passages against exact scoring of
every live passage with the same formula.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import scale
from .common import REPO, save_section, xquad_questions


def _probe(*args: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "bench.probe", *args], capture_output=True,
                       text=True, cwd=REPO, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def recall_at_10(index: Path, questions: list[str]) -> float:
    """Recall@10 of the index's candidate search, as "re-scored from 100" in the FAISS table:
    the 100 candidates the segments' stores give (deleted rows excluded) re-scored with their
    float32 passage vectors, against exact search over every live passage vector.

    (The synthetic passages' sentence vectors are drawn independently of their passage vector,
    so recall of the full score, which weighs the best sentence 0.7, says nothing about real
    text here: in real text a passage's sentences resemble it.)"""
    from qa import Retriever

    r = Retriever.load(index)
    queries = r.embedder.embed_queries(questions)
    snap = r.snapshot()
    scores = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    truth = np.zeros((len(queries), 10), dtype=np.int64)
    for i, view in enumerate(snap.views):
        seg = view.segment
        for lo in range(0, len(seg), 100_000):
            hi = min(len(seg), lo + 100_000)
            s = (np.asarray(seg.chunk_vectors[lo:hi]) @ queries.T).T
            if view.keep is not None:
                s[:, ~view.keep[lo:hi]] = -np.inf
            rows = view.live_index(np.arange(lo, hi)) + snap.starts[i]
            both = np.concatenate([scores, s], axis=1)
            ids = np.concatenate([truth, np.broadcast_to(rows, s.shape)], axis=1)
            pick = np.argsort(-both, axis=1)[:, :10]
            scores = np.take_along_axis(both, pick, axis=1)
            truth = np.take_along_axis(ids, pick, axis=1)
    hits = 0
    for q, t in zip(queries, truth):
        cand = np.asarray(snap.candidate_rows(q[None], passages=100, sentences=0))
        top = cand[np.argsort(-(snap.passage_vectors(cand) @ q))[:10]]
        hits += len(set(top.tolist()) & set(t.tolist()))
    return round(hits / (10 * len(queries)), 4)


def recall_run(n: int, ops: int = 1000) -> dict[str, Any]:
    """Only recall@10 before and after ``ops`` updates (what :func:`run` measures besides)."""
    work = Path(os.environ.get("QA_BENCH_DIR") or tempfile.mkdtemp(prefix="qa-bench-"))
    base, _, _ = scale.real_vectors(work)
    questions = xquad_questions("en")[:200]
    index = work / f"recall-{n}"
    shutil.rmtree(index, ignore_errors=True)
    vectors = scale.synthetic(base, n, seed=n)
    scale.synthetic_index(index, vectors, base)
    del vectors
    res = {"recall@10_before": recall_at_10(index, questions)}
    res["churn"] = _probe("--churn", str(index), str(ops))
    res["recall@10_after"] = recall_at_10(index, questions)
    shutil.rmtree(index, ignore_errors=True)
    return res


def run(quick: bool = False, sizes: tuple[int, ...] = (100_000, 1_000_000),
        ops: int = 1000) -> dict[str, Any]:
    work = Path(os.environ.get("QA_BENCH_DIR") or tempfile.mkdtemp(prefix="qa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base, _, _ = scale.real_vectors(work)
    questions = xquad_questions("en")[: 50 if quick else 200]
    if quick:
        sizes, ops = (20_000,), 40
    out: dict[str, Any] = {}
    for n in sizes:
        index = work / f"updates-{n}"
        shutil.rmtree(index, ignore_errors=True)
        t = time.perf_counter()
        vectors = scale.synthetic(base, n, seed=n)
        scale.synthetic_index(index, vectors, base)
        del vectors
        res: dict[str, Any] = {"passages": n, "write_s": round(time.perf_counter() - t, 1)}
        res["recall@10_before"] = recall_at_10(index, questions)
        res["add_one_document"] = scale.add_one(index, work)
        res["remove_one_document"] = _probe("--remove", str(index), "synthetic/000003.txt")
        res["churn"] = _probe("--churn", str(index), str(ops))
        res["after_churn"] = scale.probe(index, questions, work)
        res["recall@10_after"] = recall_at_10(index, questions)
        res["add_one_after_churn"] = scale.add_one(index, work, "frieden-2.txt")
        out[f"{n:,} passages"] = res
        shutil.rmtree(index, ignore_errors=True)
        save_section("updates", out)  # after each size: a long run keeps what it measured
    return out


def report(out: dict[str, Any]) -> str:
    lines = []
    for name, s in out.items():
        a, r, c, p = (s["add_one_document"], s["remove_one_document"], s["churn"],
                      s["after_churn"])
        lines += [
            f"{name} (one segment, written in {s['write_s']} s):",
            f"  add one document (fresh process, model load included): {a['seconds']} s, "
            f"peak RSS {a['peak_rss_mb']} MiB",
            f"  remove one document (fresh process): {r['seconds']} s, peak RSS "
            f"{r['peak_rss_mb']} MiB",
            f"  {c['ops']} single-document updates in one process: add p50 {c['add_ms']['p50']} "
            f"ms (p95 {c['add_ms']['p95']}), remove p50 {c['remove_ms']['p50']} ms (p95 "
            f"{c['remove_ms']['p95']}); {c['segments']} segments after, peak RSS "
            f"{c['peak_rss_mb']} MiB",
            f"  then: warm ask p50 {p['warm_ask_ms']['p50']} ms, p95 {p['warm_ask_ms']['p95']} "
            f"ms (CPU time p50 {p.get('warm_ask_cpu_ms', {}).get('p50', '?')} ms), cold qa ask "
            f"{p['cold_qa_ask_s']} s, peak RSS {p['peak_rss_mb']} MiB",
            f"  recall@10 (candidates re-scored from 100, against exact): "
            f"{s['recall@10_before']} before, {s['recall@10_after']} after the updates",
            f"  add one document after the updates: {s['add_one_after_churn']['seconds']} s, "
            f"peak RSS {s['add_one_after_churn']['peak_rss_mb']} MiB",
            "",
        ]
    return "\n".join(lines).rstrip()
