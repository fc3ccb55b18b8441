"""Answering at scale: warm and cold latency and memory from the sample corpus to a million
passages, and exact vs approximate (IVF) FAISS search.

Above the XQuAD set the passages are synthetic: each vector mixes two real XQuAD passage or
sentence vectors of the bundled model plus noise, so the index has the clustered shape of real
embeddings; queries are the real embeddings of XQuAD's English questions.
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

from .common import REPO, XQUAD, percentiles, save_section, timed, xquad_questions

DIM = 384


def real_vectors(work: Path) -> tuple[np.ndarray, np.ndarray, Path]:
    """Passage+sentence vectors of an XQuAD index (built once), and question vectors."""
    from qa import Retriever

    index = work / "xquad"
    r = Retriever.load(index) if (index / "CURRENT").exists() else Retriever.build(
        [XQUAD / "corpus"], index)
    snap = r.snapshot()
    base = np.concatenate([snap.vectors("chunks"), snap.vectors("sentences")])
    queries = r.embedder.embed_queries(xquad_questions("en"))
    return base, queries, index


def synthetic(base: np.ndarray, n: int, seed: int, noise: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        a, b = rng.integers(0, len(base), m), rng.integers(0, len(base), m)
        w = rng.uniform(0.3, 0.7, (m, 1)).astype(np.float32)
        v = w * base[a] + (1 - w) * base[b]
        v += noise * rng.standard_normal(v.shape, dtype=np.float32) / np.sqrt(base.shape[1])
        out[s : s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def faiss_compare(vectors: np.ndarray, queries: np.ndarray, work: Path) -> dict[str, Any]:
    """Exact vs IVF on the same vectors: latency per single query, recall@10, sizes."""
    import faiss

    from qa.index.faiss_store import FaissStore, ivf_lists

    out: dict[str, Any] = {"vectors": len(vectors)}
    exact: Any = FaissStore.build(vectors, np.arange(len(vectors)), kind="flat")
    truth, lat = [], []
    for q in queries:
        t, (_, ids) = timed(lambda q=q: exact.search(q[None], 10))
        truth.append(ids[0])
        lat.append(t * 1000)
    exact.save(work / "exact.faiss")
    out["exact"] = {"latency_ms": percentiles(lat),
                    "size_mb": round((work / "exact.faiss").stat().st_size / 2**20)}
    exact = None  # free its copy of the vectors before building IVF
    build_s, ivf = timed(lambda: FaissStore.build(vectors, np.arange(len(vectors)), kind="ivf"))
    ivf.save(work / "ivf.faiss")
    out["ivf"] = {"lists": ivf_lists(len(vectors)), "build_s": round(build_s, 1),
                  "size_mb": round((work / "ivf.faiss").stat().st_size / 2**20), "nprobe": {}}
    index = ivf._index
    for nprobe in (32, 64, 128, 160, 256):
        index.nprobe = nprobe
        hits, lat = 0, []
        for q, t10 in zip(queries, truth):
            t, (_, ids) = timed(lambda q=q: ivf.search(q[None], 10))
            lat.append(t * 1000)
            hits += len(set(ids[0]) & set(t10))
        # What the retriever does: ~100 IVF candidates re-scored with their float32 vectors.
        rhits = 0
        for q, t10 in zip(queries, truth):
            _, ids = ivf.search(q[None], 100)
            cand = ids[0][ids[0] >= 0]
            top = cand[np.argsort(-(vectors[cand] @ q))[:10]]
            rhits += len(set(top) & set(t10))
        out["ivf"]["nprobe"][str(nprobe)] = {
            "recall@10": round(hits / (10 * len(queries)), 4),
            "recall@10_reranked_100": round(rhits / (10 * len(queries)), 4),
            "latency_ms": percentiles(lat)}
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return out


def synthetic_index(path: Path, vectors: np.ndarray, base: np.ndarray) -> float:
    """Write a qa index of synthetic passages (2 sentences each, 10 passages a document) as one
    segment; returns seconds."""
    from qa.chunking import Chunk
    from qa.index.storage import IndexDir, SegmentEntry

    n = len(vectors)
    t0 = time.perf_counter()
    docs: dict[str, Any] = {}

    def lines() -> Any:
        for i in range(n):
            doc = f"synthetic/{i // 10:06d}.txt"
            j = i % 10
            text = f"Synthetischer Absatz {i}. Er ist der {j + 1}. Absatz von {doc}."
            first = text.index(".") + 1
            start = j * 100
            chunk = Chunk(doc, j, text, start, start + len(text), doc,
                          ((start, start + first), (start + first + 1, start + len(text))))
            yield (json.dumps(chunk.to_json(), ensure_ascii=False) + "\n").encode("utf-8")

    for d in range(0, n, 10):
        doc = f"synthetic/{d // 10:06d}.txt"
        docs[doc] = {"title": doc, "sha256": "0" * 64, "chars": 1000,
                     "chunks": min(10, n - d), "source": "synthetic", "rows": [d, min(n, d + 10)]}
    sent = np.empty((2 * n, DIM), dtype=np.float32)
    sent[0::2] = synthetic(np.concatenate([vectors[:1000], base]), n, seed=7, noise=0.3)
    sent[1::2] = synthetic(np.concatenate([vectors[:1000], base]), n, seed=8, noise=0.3)
    manifest = {"embedder": "multilingual-e5-small", "dim": DIM,
                "chunking": {"splitter": "synthetic", "chunk_size": 800, "chunk_overlap": 0,
                             "passage_vectors": "embed"}}
    index = IndexDir(path)
    with index.lock():
        name, meta = index.write_segment(
            dim=DIM, chunk_lines=lines(), chunk_vectors=[vectors], sentence_vectors=[sent],
            sentence_chunks=np.repeat(np.arange(n, dtype=np.int32), 2), documents=docs)
        index.publish(manifest, [SegmentEntry(name, np.zeros(0, np.int64), frozenset())],
                      dict(meta["counts"]))
    return time.perf_counter() - t0


def probe(index: Path, questions: list[str], work: Path) -> dict[str, Any]:
    """Latency and memory in a fresh process, then the cold `qa ask` command's wall time."""
    qfile = work / "questions.json"
    qfile.write_text(json.dumps(questions, ensure_ascii=False), "utf-8")
    p = subprocess.run([sys.executable, "-m", "bench.probe", str(index), str(qfile)],
                       capture_output=True, text=True, cwd=REPO, check=True)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    colds = []  # the best of 5: these machines are shared, and a cold start is short
    for _ in range(5):
        t, p = timed(lambda: subprocess.run(
            [sys.executable, "-m", "qa.cli", "ask", questions[0], "--index", str(index), "--json"],
            capture_output=True, text=True, cwd=REPO, check=True))
        colds.append(t)
    out["cold_qa_ask_s"] = round(min(colds), 3)
    index_bytes = sum(f.stat().st_size for f in index.rglob("*") if f.is_file())
    out["index_on_disk_mb"] = round(index_bytes / 2**20)
    return out


def add_one(index: Path, work: Path, name: str = "frieden.txt") -> dict[str, Any]:
    """An incremental update of a large index, in a fresh process: one short document added."""
    doc = work / "new-document" / name
    doc.parent.mkdir(exist_ok=True)
    doc.write_text("Ein neuer Absatz über Friedensgespräche. Er hat zwei Sätze.", "utf-8")
    p = subprocess.run([sys.executable, "-m", "bench.probe", "--add", str(index), str(doc)],
                       capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(quick: bool = False, sizes: tuple[int, ...] = (100_000, 1_000_000)) -> dict[str, Any]:
    from qa.retriever import sample_corpus_dir

    work = Path(os.environ.get("QA_BENCH_DIR") or tempfile.mkdtemp(prefix="qa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base, queries, xquad_index = real_vectors(work)
    questions = xquad_questions("en")[: 50 if quick else 200]
    out: dict[str, Any] = {"scales": {}, "faiss": {}}
    from qa import Retriever

    sample = work / "sample"
    if not (sample / "CURRENT").exists():
        Retriever.build([sample_corpus_dir()], sample)
    for name, index in (("sample corpus", sample), ("XQuAD", xquad_index)):
        out["scales"][name] = {"passages": Retriever.load(index).info()["passages"],
                               **probe(index, questions, work)}
    if quick:
        sizes = tuple(s // 10 for s in sizes[:1])
    for n in sizes:
        vectors = synthetic(base, n, seed=n)
        out["faiss"][str(n)] = faiss_compare(vectors, queries[:200], work)
        index = work / f"synthetic-{n}"
        shutil.rmtree(index, ignore_errors=True)
        write_s = synthetic_index(index, vectors, base)
        del vectors
        out["scales"][f"{n:,} passages"] = {"passages": n, "write_s": round(write_s, 1),
                                            **probe(index, questions, work),
                                            "add_one_document": add_one(index, work)}
        shutil.rmtree(index, ignore_errors=True)
    save_section("scale", out)
    return out


def report(out: dict[str, Any]) -> str:
    lines = [f"{'corpus':22}{'passages':>10}{'ask p50':>9}{'ask p95':>9}{'cold ask':>10}"
             f"{'peak RSS':>10}{'end: heap':>11}{'+ files':>9}{'disk MiB':>10}"]
    for name, s in out["scales"].items():
        lines.append(f"{name:22}{s['passages']:>10,}{s['warm_ask_ms']['p50']:>9}"
                     f"{s['warm_ask_ms']['p95']:>9}{s['cold_qa_ask_s']:>9}s{s['peak_rss_mb']:>10}"
                     f"{s.get('rss_anon_mb', '?'):>11}{s.get('rss_file_mb', '?'):>9}"
                     f"{s['index_on_disk_mb']:>10}")
    for name, s in out["scales"].items():
        if "add_one_document" in s:
            a = s["add_one_document"]
            lines.append(f"adding one document to {name}: {a['seconds']} s, peak RSS "
                         f"{a['peak_rss_mb']} MiB")
    for n, f in out["faiss"].items():
        lines += ["", f"FAISS at {int(n):,} vectors: exact p50 {f['exact']['latency_ms']['p50']} ms"
                  f" ({f['exact']['size_mb']} MiB); IVF {f['ivf']['lists']} lists, built in "
                  f"{f['ivf']['build_s']} s ({f['ivf']['size_mb']} MiB, 8-bit codes)"]
        for nprobe, v in f["ivf"]["nprobe"].items():
            lines.append(f"    nprobe {nprobe:>4}: recall@10 {v['recall@10']:.4f}, re-scored "
                         f"from 100: {v['recall@10_reranked_100']:.4f}, p50 "
                         f"{v['latency_ms']['p50']} ms, p95 {v['latency_ms']['p95']} ms")
    return "\n".join(lines)
