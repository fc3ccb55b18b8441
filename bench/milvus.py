"""The index in Milvus Lite next to the FAISS folder, in the same run.

1. Agreement on XQuAD dev: the corpus indexed both ways with the same vectors (the real model,
   embedded once), every question asked of both with exact search: same top-5 passages? same
   cited answer?
2. The store at scale (default 100k passages, synthetic vectors as in bench/scale.py, 10 passages
   and 2 sentences each a document): writing throughput through the update protocol, the switch
   to HNSW, recall@10 of HNSW against exact search, and warm `ask` latency (the real model
   embeds each question) on both backends.

python -m bench.milvus [--quick] [--passages N]   (writes the "milvus" section of results.json)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .common import XQUAD, machine, percentiles, timed
from .scale import DIM, synthetic, synthetic_index


class CachedEmbedder:
    """The real embedder, each text embedded once: both backends get identical vectors."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self._p: dict[str, np.ndarray] = {}
        self._q: dict[str, np.ndarray] = {}

    def _get(self, cache: dict[str, np.ndarray], texts: Sequence[str], fn: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, fn(missing)))
        return np.stack([cache[t] for t in texts]) if texts else np.zeros((0, self.dim))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._get(self._p, texts, self.inner.embed_passages)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._get(self._q, texts, self.inner.embed_queries)


def agreement(work: Path, quick: bool) -> tuple[dict[str, Any], Any, CachedEmbedder]:
    import json

    from qa import Retriever
    from qa.embedders import DEFAULT_EMBEDDER, get_embedder

    emb = CachedEmbedder(get_embedder(DEFAULT_EMBEDDER))
    faiss = Retriever.build([XQUAD / "corpus"], work / "xquad-faiss", embedder=emb)
    milvus = Retriever.build([XQUAD / "corpus"], embedder=emb, milvus=str(work / "xquad.db"))
    rows = [json.loads(x) for x in (XQUAD / "questions.jsonl").read_text("utf-8").splitlines()]
    rows = rows[::10] if quick else rows
    same5 = same_answer = rank1_f = rank1_m = 0
    lat_f, lat_m = [], []
    for row in rows:
        emb.embed_queries([row["question"]])  # embedded once, outside both timings
        tf, a = timed(lambda row=row: faiss.ask(row["question"], 5))
        tm, b = timed(lambda row=row: milvus.ask(row["question"], 5))
        lat_f.append(tf * 1000)
        lat_m.append(tm * 1000)
        same5 += [(p.doc_id, p.start) for p in a.passages] == [(p.doc_id, p.start)
                                                              for p in b.passages]
        same_answer += (a.text, a.abstained) == (b.text, b.abstained)
        rank1_f += a.passages[0].doc_id == row["doc"]
        rank1_m += b.passages[0].doc_id == row["doc"]
    n = len(rows)
    return {"questions": n, "same_top5": round(same5 / n, 4),
            "same_cited_answer": round(same_answer / n, 4),
            "doc_at_rank1": {"faiss": round(rank1_f / n, 4), "milvus": round(rank1_m / n, 4)},
            "search_ms_excluding_embedding": {"faiss": percentiles(lat_f),
                                              "milvus_lite": percentiles(lat_m)}}, faiss, emb


PROTOCOL_DOCUMENTS = 300  # written one at a time through the update protocol; the rest in bulk


def _synthetic_document(d: int) -> tuple[str, list[Any], dict[str, Any]]:
    from qa.chunking import Chunk

    doc = f"synthetic/{d:06d}.txt"
    chunks = []
    for j in range(10):
        i = d * 10 + j
        text = f"Synthetischer Absatz {i}. Er ist der {j + 1}. Absatz von {doc}."
        first, start = text.index(".") + 1, j * 100
        chunks.append(Chunk(doc, j, text, start, start + len(text), doc,
                            ((start, start + first), (start + first + 1, start + len(text)))))
    meta = {"title": doc, "sha256": "0" * 64, "chars": 1000, "chunks": 10, "sentences": 20,
            "source": "synthetic"}
    return doc, chunks, meta


def synthetic_milvus(uri: str, vectors: np.ndarray, sentences: np.ndarray
                     ) -> tuple[Any, dict[int, int], dict[str, Any]]:
    """Write the synthetic passages into Milvus: the first PROTOCOL_DOCUMENTS documents (10
    passages, 2 sentences each) one at a time through the update protocol `qa index` uses, the
    rest as a bulk import would (rows in batches of 1,000, then the document rows). Returns the
    index, row id -> vector row, and the timings."""
    from qa.index.milvus import MilvusIndex, row_id

    index = MilvusIndex(uri, "bench")
    index.drop()
    index.create({"embedder": "multilingual-e5-small", "dim": DIM,
                  "chunking": {"splitter": "synthetic", "chunk_size": 800, "chunk_overlap": 0,
                               "passage_vectors": "embed"}})
    rows: dict[int, int] = {}
    n_docs = len(vectors) // 10
    t0 = time.perf_counter()
    for d in range(min(PROTOCOL_DOCUMENTS, n_docs)):
        doc, chunks, meta = _synthetic_document(d)
        version = index.write_document(doc, meta, chunks, vectors[d * 10:d * 10 + 10],
                                       sentences[d * 20:d * 20 + 20])
        rows.update({row_id(doc, version, "p", j): d * 10 + j for j in range(10)})
    index.flush()
    protocol_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    version = 1
    for start in range(PROTOCOL_DOCUMENTS, n_docs, 100):  # 100 documents a batch
        passages, sents, docs = [], [], []
        for d in range(start, min(n_docs, start + 100)):
            doc, chunks, meta = _synthetic_document(d)
            for j, c in enumerate(chunks):
                pid = row_id(doc, version, "p", j)
                rows[pid] = d * 10 + j
                passages.append({"id": pid, "vector": vectors[d * 10 + j], "doc_id": doc,
                                 "version": version, "chunk_id": j, "text": c.text,
                                 "start": c.start, "end": c.end, "title": doc,
                                 "sentences": [list(x) for x in c.sentences]})
                for k in range(2):
                    sents.append({"id": row_id(doc, version, "s", 2 * j + k),
                                  "vector": sentences[d * 20 + 2 * j + k], "passage_id": pid,
                                  "doc_id": doc, "version": version, "position": k})
            docs.append({"doc_id": doc, "version": version, "pending": 0, "meta": meta,
                         "vector": [0.0, 0.0]})
        index.client.insert(index.passages_name, passages)
        index.client.insert(index.sentences_name, sents)
        index.client.insert(index.documents_name, docs)
        if (start // 100) % 20 == 0:
            print(f"  milvus bulk: {start * 10:,} passages, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    index.flush()
    bulk_s = time.perf_counter() - t0
    n_protocol = min(PROTOCOL_DOCUMENTS, n_docs) * 10
    return index, rows, {
        "protocol": {"passages": n_protocol, "seconds": round(protocol_s, 1),
                     "passages_per_s": round(n_protocol / protocol_s)},
        "bulk": {"passages": len(vectors) - n_protocol, "seconds": round(bulk_s, 1),
                 "passages_per_s": round((len(vectors) - n_protocol) / max(bulk_s, 1e-9))}}


def reopen_milvus(uri: str, n: int) -> tuple[Any, dict[int, int]]:
    """The index :func:`synthetic_milvus` wrote, and its row id -> vector row map."""
    from qa.index.milvus import MilvusIndex, row_id

    index = MilvusIndex(uri, "bench")
    docs = index.documents()
    rows = {}
    for d in range(n // 10):
        doc = f"synthetic/{d:06d}.txt"
        version = int(docs[doc]["version"])
        rows.update({row_id(doc, version, "p", j): d * 10 + j for j in range(10)})
    return index, rows


def scale(work: Path, n: int, xquad: Any, emb: CachedEmbedder) -> dict[str, Any]:
    """``xquad``: the XQuAD index of :func:`agreement`, whose vectors seed the synthetic ones
    (as bench/scale.py's do); ``emb`` has its questions embedded already."""
    from qa import Retriever

    from .common import xquad_questions

    snap = xquad.snapshot()
    base = np.concatenate([snap.vectors("chunks"), snap.vectors("sentences")])
    questions = xquad_questions("en")[:200]
    queries = emb.embed_queries(questions)
    vectors = synthetic(base, n, seed=n)
    sentences = np.empty((2 * n, DIM), dtype=np.float32)
    sentences[0::2] = synthetic(np.concatenate([vectors[:1000], base]), n, seed=7, noise=0.3)
    sentences[1::2] = synthetic(np.concatenate([vectors[:1000], base]), n, seed=8, noise=0.3)
    out: dict[str, Any] = {"passages": n}

    folder = work / f"faiss-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    faiss_s = synthetic_index(folder, vectors, base)  # its own sentence vectors, same shape
    out["faiss_write"] = {"seconds": round(faiss_s, 1), "passages_per_s": round(n / faiss_s)}

    db = work / f"scale-{n}.db"
    if os.environ.get("QA_BENCH_REUSE") and db.exists():  # written by an interrupted run
        index, rows = reopen_milvus(str(db), n)
        out["milvus_write"] = {"reused": True}
        sample = list(rows)[-50:]  # the stored vectors must be the ones regenerated here
        stored = index.passages(sample)
        assert all(np.array_equal(stored[i].vector, vectors[rows[i]]) for i in sample), \
            "the reused collection holds other vectors"
    else:
        index, rows, out["milvus_write"] = synthetic_milvus(str(db), vectors, sentences)
    hnsw_s, _ = timed(index.use_ann_index)
    out["hnsw_build_s"] = round(hnsw_s, 1)

    truth = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in queries]
    out["hnsw"] = {}
    for ef in (64, 128, 256):
        hits, lat = 0, []
        for q, t10 in zip(queries, truth):
            t, res = timed(lambda q=q, ef=ef: index.client.search(
                index.passages_name, data=[q.tolist()], limit=10,
                search_params={"metric_type": "IP", "params": {"ef": ef}}))
            lat.append(t * 1000)
            hits += len({rows[h["id"]] for h in res[0]} & t10)
        out["hnsw"][str(ef)] = {"recall@10": round(hits / (10 * len(truth)), 4),
                                "latency_ms": percentiles(lat)}

    for name, r in (("faiss", Retriever.load(folder)),
                    ("milvus_lite", Retriever.load(milvus=index.uri, collection="bench"))):
        r.ask(questions[0])  # the model loads
        lat = [timed(lambda q=q, r=r: r.ask(q))[0] * 1000 for q in questions]
        out[f"{name}_warm_ask_ms"] = percentiles(lat)
    shutil.rmtree(folder, ignore_errors=True)
    return out


def run(quick: bool = False, passages: int = 100_000, part: str | None = None
        ) -> dict[str, Any]:
    """Both parts (or ``part``: "xquad" or "scale"), each saved as soon as it is done."""
    import json

    from .common import RESULTS

    work = Path(os.environ.get("QA_BENCH_DIR") or tempfile.mkdtemp(prefix="qa-bench-milvus-"))
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    if part in (None, "xquad"):
        out["xquad"], xquad, emb = agreement(work, quick)
        print(report(out), flush=True)
    else:
        from qa import Retriever
        from qa.embedders import DEFAULT_EMBEDDER, get_embedder

        xquad = Retriever.load(work / "xquad-faiss") if (work / "xquad-faiss").exists() \
            else Retriever.build([XQUAD / "corpus"], work / "xquad-faiss")
        emb = CachedEmbedder(get_embedder(DEFAULT_EMBEDDER))
    if not quick:
        _save(out, RESULTS, json)
    if part in (None, "scale"):
        out["scale"] = scale(work, passages // 10 if quick else passages, xquad, emb)
        if not quick:
            _save(out, RESULTS, json)
    return out


def _save(out: dict[str, Any], results: Path, json: Any) -> None:
    """Merge ``out`` into the saved "milvus" section (the parts may run as two processes),
    with its own machine line: the other sections keep theirs."""
    data = json.loads(results.read_text("utf-8")) if results.exists() else {}
    data["milvus"] = {**data.get("milvus", {}), **out, "machine": machine()}
    results.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")


def report(out: dict[str, Any]) -> str:
    m = out.get("machine")
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['when']}"] if m else []
    a = out.get("xquad")
    if a:
        lines += [f"XQuAD dev, {a['questions']} questions, exact search on both: same top-5 "
             f"{a['same_top5']:.1%}, same cited answer {a['same_cited_answer']:.1%}; document "
             f"at rank 1: FAISS {a['doc_at_rank1']['faiss']:.3f}, Milvus Lite "
             f"{a['doc_at_rank1']['milvus']:.3f}",
             f"  search + answer without embedding, p50/p95 ms: FAISS "
             f"{a['search_ms_excluding_embedding']['faiss']['p50']}/"
             f"{a['search_ms_excluding_embedding']['faiss']['p95']}, Milvus Lite "
             f"{a['search_ms_excluding_embedding']['milvus_lite']['p50']}/"
             f"{a['search_ms_excluding_embedding']['milvus_lite']['p95']}"]
    s = out.get("scale")
    if s:
        lines += [
            f"{s['passages']:,} synthetic passages (2 sentences each):",
            f"  write: FAISS folder {s['faiss_write']['passages_per_s']:,} passages/s "
            f"({s['faiss_write']['seconds']} s); Milvus Lite: written by an earlier run"
            if s["milvus_write"].get("reused") else
            f"  write: FAISS folder {s['faiss_write']['passages_per_s']:,} passages/s "
            f"({s['faiss_write']['seconds']} s, one version); Milvus Lite "
            f"{s['milvus_write']['protocol']['passages_per_s']:,} passages/s through the update "
            f"protocol (first {s['milvus_write']['protocol']['passages']:,}, a document at a "
            f"time), {s['milvus_write']['bulk']['passages_per_s']:,} passages/s in bulk (the "
            f"rest, {s['milvus_write']['bulk']['seconds']} s); HNSW built in "
            f"{s['hnsw_build_s']} s",
            f"  warm ask (question embedded + search + answer), p50/p95 ms: FAISS "
            f"{s['faiss_warm_ask_ms']['p50']}/{s['faiss_warm_ask_ms']['p95']}, Milvus Lite "
            f"{s['milvus_lite_warm_ask_ms']['p50']}/{s['milvus_lite_warm_ask_ms']['p95']}"]
        for ef, v in s["hnsw"].items():
            lines.append(f"  HNSW (M 16, efConstruction 200) ef {ef:>3}: recall@10 "
                         f"{v['recall@10']:.4f} against exact, p50 {v['latency_ms']['p50']} ms")
    return "\n".join(lines)


NOTES = """
Notes on Milvus:

- **Same answers**: both backends search exactly (FAISS flat, Milvus FLAT) below 50,000
  passages and re-score the same candidates with the same code, so they agree up to ties of
  float32 sums. "Search + answer without embedding" times `ask` with the question's vector
  already computed: FAISS reads vectors from local files, Milvus Lite answers five gRPC calls
  (passage and sentence search, live versions, passages, sentence vectors).
- **Scale**: the synthetic passages are those of bench/scale.py. Into Milvus Lite the first
  3,000 go through the per-document protocol `qa index` uses (pending mark, rows, commit, old
  rows deleted), a document of 10 passages at a time; the rest are loaded in bulk (1,000 rows a
  request), as an import would, to keep the run bounded. The FAISS folder writes all of them as
  one segment. Embedding is left out:
  it costs the same on both backends (see "Indexing throughput"), and dominates real indexing.
  Above 50,000 passages Milvus gets an HNSW index (built in the time shown; Milvus Lite builds it
  with FAISS inside the same process) and the FAISS folder IVF.
- **The 100k write** in the table reused the collection of a first run that stopped after
  writing it (a gRPC keepalive error during the HNSW build, since handled): that run's log had
  the bulk part at 77,000 passages in 674 s (about 114 passages/s) with other work on the cores.
- **Milvus Lite is not a production engine.** It is pure Python over FAISS and Parquet, in the
  serving process (and these runs shared 2 cores with other work: load average 15-28); its
  numbers show what the tests run on, not what a Milvus server does.

What to expect on a Milvus server or cluster (**not measured here**; from Milvus's own published
material):

- Milvus's 2.2 benchmark report (milvus.io/docs/benchmark.md) reports search QPS growing linearly
  from 8 to 32 CPU cores of a standalone server and from 1 to 8 query-node replicas of a cluster,
  and the 2.2.3 evaluation it links reports billion-scale search "with little performance
  degradation". A question here makes five requests to Milvus (four when the passages have an
  HNSW index), each returning at most a few hundred rows; the model embedding the
  question on the `qa serve` replica (tens of ms on a CPU core) is then likely to dominate, and
  replicas scale it out.
- Limits (milvus.io/docs/limitations.md): at most 16,384 results per search and per query
  window, 65,535 bytes per VARCHAR (a passage's text; `--chunk-size` keeps passages far below),
  32,768 dimensions, 65,536 collections, 16 shards per collection, 64 MB per insert/search/query
  request (writes here go 1,000 rows a request); loaded data must stay under 90% of the query
  nodes' memory: about 1.5 KB per passage vector plus 1.5 KB per sentence vector at 384
  dimensions, so 10 million passages of 5 sentences are about 90 GB across the query nodes.
- Writers: a Milvus server takes concurrent inserts and deletes, so `--shard I/N` workers run at
  once; throughput is then bounded by embedding (per worker, "Indexing throughput" above) long
  before Milvus's write path.
"""


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.milvus", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a tenth of the questions and passages")
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--part", choices=["xquad", "scale"], help="only one of the two parts")
    args = ap.parse_args()
    print(report(run(args.quick, args.passages, args.part)))


if __name__ == "__main__":
    main()
