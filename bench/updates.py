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


def exact_top10(index: Path, queries: np.ndarray) -> list[set[tuple[str, int]]]:
    """For each query, the 10 live passages with the best retriever score computed exactly
    (``0.3 * passage cosine + 0.7 * best sentence cosine``), as (doc_id, chunk_id)."""
    from qa.index import IndexDir
    from qa.retriever import PASSAGE_WEIGHT

    snap = IndexDir(index).read()
    best = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    rows = np.zeros((len(queries), 10), dtype=np.int64)
    q = queries.T.astype(np.float32)
    for i, view in enumerate(snap.views):
        seg = view.segment
        offsets = seg.sentence_offsets
        for lo in range(0, len(seg), 50_000):
            hi = min(len(seg), lo + 50_000)
            passage = np.asarray(seg.chunk_vectors[lo:hi]) @ q
            sent = np.asarray(seg.sentence_vectors[offsets[lo] : offsets[hi]]) @ q
            starts = offsets[lo:hi] - offsets[lo]
            has = np.diff(offsets[lo : hi + 1]) > 0
            top_sent = passage.copy()
            if len(sent):
                top_sent[has] = np.maximum.reduceat(sent, starts[has], axis=0)
            score = PASSAGE_WEIGHT * passage + (1 - PASSAGE_WEIGHT) * top_sent
            live = np.arange(lo, hi)
            if view.keep is not None:
                score[~view.keep[lo:hi]] = -np.inf
            # rows of the snapshot: live position within the view, plus the view's start
            live_rows = view.live_index(live) + snap.starts[i]
            both = np.concatenate([best, score.T], axis=1)
            ids = np.concatenate([rows, np.broadcast_to(live_rows, score.T.shape)], axis=1)
            pick = np.argsort(-both, axis=1)[:, :10]
            best = np.take_along_axis(both, pick, axis=1)
            rows = np.take_along_axis(ids, pick, axis=1)
    out = []
    for r in rows:
        chunks = [snap.chunks[int(x)] for x in r]
        out.append({(c.doc_id, c.chunk_id) for c in chunks})
    return out


def recall_at_10(index: Path, questions: list[str]) -> float:
    """Share of the exact top 10 that the retriever's top 10 holds, over ``questions``."""
    from qa import Retriever

    r = Retriever.load(index)
    queries = r.embedder.embed_queries(questions)
    truth = exact_top10(index, queries)
    hits = 0
    for question, t in zip(questions, truth):
        got = {(p.doc_id, p.chunk_id) for p in r.search(question, 10)}
        hits += len(got & t)
    return round(hits / (10 * len(questions)), 4)


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
        res["add_one_after_churn"] = scale.add_one(index, work)
        out[f"{n:,} passages"] = res
        shutil.rmtree(index, ignore_errors=True)
    save_section("updates", out)
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
            f"ms, cold qa ask {p['cold_qa_ask_s']} s, peak RSS {p['peak_rss_mb']} MiB",
            f"  recall@10 against exact scoring: {s['recall@10_before']} before, "
            f"{s['recall@10_after']} after the updates",
            f"  add one document after the updates: {s['add_one_after_churn']['seconds']} s, "
            f"peak RSS {s['add_one_after_churn']['peak_rss_mb']} MiB",
            "",
        ]
    return "\n".join(lines).rstrip()
