"""Writing segments from parts, and the merge policy that keeps their number small.

A new segment is made of parts: freshly embedded passages, or rows copied from existing
segments (a merge, or documents found in a moved folder). Copies never embed again and stream
their vectors, so merging a million passages holds a block of them in memory at a time.

The policy, in the style of Lucene's tiered merges: segments are grouped in tiers by size (powers
of :data:`MERGE_FACTOR` passages); when a tier holds :data:`MERGE_FACTOR` segments they are merged
into one, during the update that made it full, as long as the merged segment stays small
(:data:`INLINE_MERGE_ROWS`), so an update stays cheap. Larger merges (which build an approximate
store) and the dropping of deleted rows from large segments happen in ``qa index --optimize``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..chunking import Chunk
from .faiss_store import EXACT_LIMIT
from .snapshot import SegmentView

MERGE_FACTOR = 10
INLINE_MERGE_ROWS = EXACT_LIMIT // 5
_BLOCK = 1 << 16


@dataclass
class Part:
    """Rows for a new segment: their JSON lines, vectors (as blocks), each sentence's row
    within the part, and the part's documents with rows relative to the part."""

    rows: int
    lines: Iterable[bytes]
    chunk_vectors: Iterable[np.ndarray]
    sentence_vectors: Iterable[np.ndarray]
    sentence_chunks: np.ndarray
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)


def fresh_part(chunks: list[Chunk], chunk_vectors: np.ndarray, sentence_vectors: np.ndarray,
               sentence_chunks: np.ndarray, documents: dict[str, dict[str, Any]]) -> Part:
    """Newly embedded passages (grouped by document, in order) as a part; ``documents`` gets
    each document's rows."""
    docs = {d: dict(m) for d, m in documents.items()}
    first: dict[str, int] = {}
    for i, c in enumerate(chunks):
        first.setdefault(c.doc_id, i)
    pos = 0
    for d in docs:
        lo = first.get(d, pos)
        docs[d]["rows"] = [lo, lo + int(docs[d]["chunks"])]
        pos = lo + int(docs[d]["chunks"])
    lines = [(json.dumps(c.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
             for c in chunks]
    return Part(len(chunks), lines, [chunk_vectors], [sentence_vectors],
                np.asarray(sentence_chunks, np.int64), docs)


def copied_part(view: SegmentView, keep_docs: set[str] | None = None) -> Part:
    """The live rows of ``view`` (only those of ``keep_docs`` if given) as a part."""
    seg = view.segment
    n = len(seg)
    docs = view.documents()
    if keep_docs is not None:
        keep = np.zeros(n, dtype=bool)
        docs = {d: m for d, m in docs.items() if d in keep_docs}
        for lo, hi in _rows_of(view, docs).values():
            keep[lo:hi] = True
    else:
        keep = view.keep if view.keep is not None else np.ones(n, dtype=bool)
    # before[r]: kept rows before segment row r, i.e. r's row in the part.
    before = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(keep, out=before[1:])
    rows_of = _rows_of(view, docs)
    new_docs = {d: {**{k: v for k, v in m.items() if k != "rows"},
                    "rows": [int(before[rows_of[d][0]]), int(before[rows_of[d][1]])]}
                for d, m in docs.items()}
    sc = seg.sentence_chunks
    sent_keep = keep[sc]
    every = bool(keep.all())
    return Part(
        rows=int(before[-1]),
        lines=_lines(view, keep, every),
        chunk_vectors=_kept_blocks(seg.vector_blocks("chunks"), keep, every),
        sentence_vectors=_kept_blocks(seg.vector_blocks("sentences"), sent_keep, every),
        sentence_chunks=before[sc[sent_keep]],
        documents=new_docs,
    )


def _rows_of(view: SegmentView, docs: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Each document's rows in its segment. Format-3 segments did not record them: they are
    found from the passages' document ids, in one pass (a document's rows are contiguous)."""
    if all("rows" in m for m in docs.values()):
        return {d: (int(m["rows"][0]), int(m["rows"][1])) for d, m in docs.items()}
    seg = view.segment
    found: dict[str, list[int]] = {}
    for r in range(len(seg)):
        doc_id = json.loads(seg.chunks.line(r))["doc_id"]
        found.setdefault(doc_id, [r, r])[1] = r + 1
    return {d: (found[d][0], found[d][1]) if d in found else (0, 0) for d in docs}


def _lines(view: SegmentView, keep: np.ndarray, every: bool) -> Iterator[bytes]:
    chunks = view.segment.chunks
    if every:
        for r in range(len(chunks)):
            yield chunks.line(r)
    else:
        for r in np.flatnonzero(keep).tolist():
            yield chunks.line(r)


def _kept_blocks(blocks: Iterable[np.ndarray], keep: np.ndarray,
                 every: bool) -> Iterator[np.ndarray]:
    start = 0
    for block in blocks:
        yield block if every else block[keep[start : start + len(block)]]
        start += len(block)


def join_parts(parts: list[Part]) -> Part:
    """One part of several, rows renumbered in order."""
    base, sentence_chunks, docs = 0, [], {}
    for p in parts:
        sentence_chunks.append(p.sentence_chunks + base)
        for d, m in p.documents.items():
            docs[d] = {**m, "rows": [m["rows"][0] + base, m["rows"][1] + base]}
        base += p.rows
    return Part(
        rows=base,
        lines=(line for p in parts for line in p.lines),
        chunk_vectors=(b for p in parts for b in p.chunk_vectors),
        sentence_vectors=(b for p in parts for b in p.sentence_vectors),
        sentence_chunks=(np.concatenate(sentence_chunks) if sentence_chunks
                         else np.zeros(0, np.int64)),
        documents=docs,
    )


def tier(rows: int) -> int:
    """A segment's size class: 0 up to MERGE_FACTOR passages, then one per power of it."""
    return 0 if rows < MERGE_FACTOR else int(math.log(rows, MERGE_FACTOR))


def inline_merge(views: list[SegmentView]) -> list[int]:
    """Indexes of the views an update should merge now (empty: none). The smallest full tier
    whose merge stays under INLINE_MERGE_ROWS live passages, deleted rows dropped."""
    tiers: dict[int, list[int]] = {}
    for i, v in enumerate(views):
        tiers.setdefault(tier(v.n_live), []).append(i)
    for t in sorted(tiers):
        members = tiers[t]
        if len(members) >= MERGE_FACTOR and sum(views[i].n_live for i in members) \
                <= INLINE_MERGE_ROWS:
            return members
    return []
