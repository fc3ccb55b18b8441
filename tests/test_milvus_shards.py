"""Sharded indexing into one Milvus collection, with workers killed (SIGKILL) mid-document and
restarted: no duplicates, no orphans, and the counts match the documents.

Milvus Lite opens a .db in one process at a time, so here the shard workers take turns; against
a Milvus server they run at once (README, "Milvus"). The kill points are made deterministic by
pausing a worker at a chosen step of the write protocol (qa.index.milvus) and killing it there:
the pause only waits, it changes nothing the worker writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qa.chunking import Chunker
from qa.documents import load_documents
from qa.errors import IndexDamaged
from qa.index.milvus_retriever import in_shard, parse_shard
from tests.conftest import REPO

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

WORKER = r"""
import sys, time
from qa import Retriever
from qa.index import milvus
from tests.conftest import TrigramEmbedder

db, corpus, shard, pause_at, pause_on = sys.argv[1:6]
writes = [0]

def pause(step):
    writes[0] += 1
    if step == pause_at and writes[0] >= int(pause_on):
        print("PAUSED", step, flush=True)
        time.sleep(600)

put = milvus.MilvusIndex._put_document
def put_document(self, doc_id, version, pending, meta):
    if pending == -1 and version > 0:
        pause("inserted")           # rows written, commit not yet
    return put(self, doc_id, version, pending, meta)
milvus.MilvusIndex._put_document = put_document

delete = milvus.MilvusIndex._delete_version
def delete_version(self, doc_id, old, keep):
    if keep:
        pause("committed")          # new version live, old rows not yet deleted
    return delete(self, doc_id, old, keep)
milvus.MilvusIndex._delete_version = delete_version

r = Retriever.build([corpus], embedder=TrigramEmbedder(), milvus=db, shard=shard)
print("DONE", r.last_report.summary(), flush=True)
"""


def worker(db: Path, corpus: Path, shard: str, pause_at: str = "", pause_on: int = 0,
           ) -> subprocess.CompletedProcess[str] | None:
    """Run one shard worker to the end, or (with ``pause_at``) SIGKILL it at that step of its
    ``pause_on``-th document write; returns the finished process, None when killed."""
    args = [sys.executable, "-c", WORKER, str(db), str(corpus), shard, pause_at, str(pause_on)]
    if not pause_at:
        p = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300)
        assert p.returncode == 0 and "DONE" in p.stdout, p.stderr[-2000:]
        return p
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PAUSED"), line + proc.stderr.read()[-2000:]  # type: ignore[union-attr]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    return None


def write_corpus(folder: Path, n: int, edition: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        paragraphs = [f"Report {i}, edition {edition}, part {j}. " + " ".join(
            f"Station {i} measured {j * 7 + k} millimetres of rain on day {k}." for k in range(12))
            for j in range(3)]
        (folder / f"report-{i:02d}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")


def inspect(db: Path, tmp: Path, name: str) -> object:
    """Open a copy of ``db`` here (the workers keep using the original)."""
    import shutil

    from qa.index.milvus import MilvusIndex

    copy = tmp / f"{name}.db"
    shutil.copytree(db, copy, ignore=shutil.ignore_patterns("LOCK"))
    return MilvusIndex(str(copy))


def test_shards_split_the_documents_disjointly() -> None:
    ids = [f"folder/doc-{i}.txt" for i in range(200)]
    owners = [[s for s in range(1, 4) if in_shard(d, (s, 3))] for d in ids]
    assert all(len(o) == 1 for o in owners)
    assert min(sum(o == [s] for o in owners) for s in (1, 2, 3)) > 40  # roughly even
    assert parse_shard("2/3") == (2, 3)


def test_sigkilled_shard_workers_restart_without_duplicates_or_orphans(tmp_path: Path) -> None:
    corpus, db = tmp_path / "docs", tmp_path / "qa.db"
    write_corpus(corpus, 12, edition=1)
    worker(db, corpus, "1/2")
    worker(db, corpus, "2/2", "inserted", 2)   # killed with a new document's rows written

    crashed = inspect(db, tmp_path, "after-kill-1")
    with pytest.raises(IndexDamaged, match="not live"):  # the orphans are really there
        crashed.verify()  # type: ignore[attr-defined]

    write_corpus(corpus, 12, edition=2)           # every document changes
    (corpus / "report-11.txt").unlink()
    worker(db, corpus, "1/2", "committed", 2)   # killed between commit and deleting old rows
    worker(db, corpus, "2/2", "inserted", 3)   # killed again, now mid-update

    worker(db, corpus, "2/2")                   # restarts, to the end
    worker(db, corpus, "1/2")

    index = inspect(db, tmp_path, "final")
    stored = index.verify()  # type: ignore[attr-defined]
    docs, _ = load_documents([corpus])
    chunker = Chunker()
    expected_passages = sum(len(chunker.split(d)) for d in docs)
    assert stored["documents"] == 11
    assert stored["passages"] == expected_passages
    assert index.counts() == {"passages": stored["passages"],  # type: ignore[attr-defined]
                              "sentences": stored["sentences"]}
    live = index.documents()  # type: ignore[attr-defined]
    assert {d.doc_id: d.content_hash for d in docs} == {k: v["sha256"] for k, v in live.items()}
    # every worker's documents are its own shard's
    assert all(in_shard(d, (1, 2)) != in_shard(d, (2, 2)) for d in live)
