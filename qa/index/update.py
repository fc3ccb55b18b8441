"""Incremental index updates: embed only what changed.

Each document's content hash is kept in the manifest. An update keeps the rows (and vectors) of
unchanged documents, chunks and embeds new or changed ones, and drops removed ones; the result is a
new :class:`Snapshot` that :class:`IndexDir` writes as a new version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..chunking import Chunk, Chunker
from ..documents import Document, SkippedFile
from ..embedders import Embedder
from .storage import Snapshot

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` with counts of texts embedded."""

EMBED_BATCH = 64


@dataclass
class UpdateReport:
    """What an update did, by document id."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    embedded_texts: int = 0
    embedded_chars: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} added",
            f"{len(self.updated)} updated",
            f"{len(self.removed)} removed",
            f"{len(self.unchanged)} unchanged",
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return ", ".join(parts)


def _embed(
    embedder: Embedder, texts: Sequence[str], progress: Progress | None, done: int, total: int
) -> np.ndarray:
    # Sorting by length keeps the batches even, so both cores finish together.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for b in range(0, len(order), EMBED_BATCH):
        rows = order[b : b + EMBED_BATCH]
        out[rows] = embedder.embed_passages([texts[i] for i in rows])
        if progress:
            progress(done + b + len(rows), total)
    return out


def _mean_vectors(sentence_vectors: np.ndarray, sentence_chunks: np.ndarray, n: int,
                  weights: np.ndarray) -> np.ndarray:
    """Each chunk's sentence vectors averaged, weighted by ``weights`` (sentence lengths: the
    model mean-pools a passage over its tokens, so a long sentence weighs more in it)."""
    sums = np.zeros((n, sentence_vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, sentence_chunks, sentence_vectors * weights[:, None])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    out: np.ndarray = sums / np.maximum(norms, 1e-12)
    return out


def _kept_then_fresh(blocks: Iterator[np.ndarray], keep: np.ndarray, fresh: list[np.ndarray],
                     dim: int) -> np.ndarray:
    """The kept rows of an old vector file followed by the fresh rows, in one new array.

    The old rows are read block by block: a million-passage index is neither read whole nor
    copied twice (fancy indexing, then concatenating), which took about 4x its vectors' size.
    """
    n_fresh = sum(len(f) for f in fresh)
    out = np.empty((int(keep.sum()) + n_fresh, dim), dtype=np.float32)
    pos = start = 0
    for block in blocks:
        kept = block[keep[start : start + len(block)]]
        out[pos : pos + len(kept)] = kept
        pos += len(kept)
        start += len(block)
    for f in fresh:
        out[pos : pos + len(f)] = f
        pos += len(f)
    return out


def apply_update(
    old: Snapshot,
    *,
    upsert: Sequence[Document] = (),
    remove: Sequence[str] = (),
    sources: dict[str, str] | None = None,
    embedder: Embedder,
    chunker: Chunker,
    passage_vectors: str = "embed",
    progress: Progress | None = None,
) -> tuple[Snapshot, UpdateReport]:
    """A new snapshot with ``upsert`` documents added or replaced and ``remove`` ids dropped.

    ``passage_vectors`` is ``"embed"`` (each passage embedded as a whole, best quality) or
    ``"mean"`` (the mean of its sentence vectors: half the embedding work).
    """
    report = UpdateReport()
    docs_meta: dict[str, dict[str, Any]] = {k: dict(v) for k, v in old.documents.items()}
    sources = sources or {}
    new_docs: dict[str, Document] = {}
    for doc in upsert:
        meta = docs_meta.get(doc.doc_id)
        if meta is not None and meta["sha256"] == doc.content_hash:
            report.unchanged.append(doc.doc_id)
            continue
        (report.updated if meta is not None else report.added).append(doc.doc_id)
        new_docs[doc.doc_id] = doc
    removed = {d for d in remove if d in docs_meta and d not in new_docs}
    report.removed = sorted(removed)
    drop = removed | set(new_docs)

    # Keep the rows of untouched documents as they are.
    # One pass over the old passages (each is parsed from disk once).
    chunks: list[Chunk] = []
    keep_mask = np.zeros(len(old.chunks), dtype=bool)
    for i, c in enumerate(old.chunks):
        if c.doc_id not in drop:
            chunks.append(c)
            keep_mask[i] = True
    sent_keep = keep_mask[old.sentence_chunks] if len(old.sentence_chunks) else keep_mask[:0]
    new_row_of_old = np.cumsum(keep_mask) - 1
    chunk_vecs: list[np.ndarray] = []
    sent_vecs: list[np.ndarray] = []
    sent_chunks = [new_row_of_old[old.sentence_chunks[sent_keep]].astype(np.int32)]

    # Chunk and embed what is new.
    fresh: list[Chunk] = []
    for doc in new_docs.values():
        doc_chunks = chunker.split(doc)
        fresh.extend(doc_chunks)
        docs_meta[doc.doc_id] = {
            "title": doc.title,
            "sha256": doc.content_hash,
            "chars": len(doc.text),
            "chunks": len(doc_chunks),
            "source": sources.get(doc.doc_id, doc.path),
        }
    for d in removed:
        del docs_meta[d]

    if fresh:
        sentences = [(i, s) for i, c in enumerate(fresh) for s in c.sentence_texts()]
        sent_texts = [s for _, s in sentences]
        passage_texts = [c.text for c in fresh] if passage_vectors == "embed" else []
        total = len(sent_texts) + len(passage_texts)
        sv = _embed(embedder, sent_texts, progress, 0, total)
        sc = np.array([i for i, _ in sentences], dtype=np.int32)
        if passage_vectors == "embed":
            cv = _embed(embedder, passage_texts, progress, len(sent_texts), total)
        elif passage_vectors == "mean":
            lengths = np.array([len(s) for s in sent_texts], dtype=np.float32)
            cv = _mean_vectors(sv, sc, len(fresh), lengths)
        else:
            raise ValueError(f"passage_vectors must be 'embed' or 'mean', got {passage_vectors!r}")
        base = len(chunks)
        chunks.extend(
            Chunk(c.doc_id, c.chunk_id, c.text, c.start, c.end, c.title, c.sentences) for c in fresh
        )
        chunk_vecs.append(cv)
        sent_vecs.append(sv)
        sent_chunks.append(sc + base)
        report.embedded_texts = total
        report.embedded_chars = sum(map(len, sent_texts)) + sum(map(len, passage_texts))

    # Sentences must stay grouped by chunk, in chunk order, for the offset table.
    sentence_chunks = np.concatenate(sent_chunks) if sent_chunks else np.zeros(0, np.int32)
    dim = old.chunk_vectors.shape[1]
    chunk_vectors = _kept_then_fresh(old.vector_blocks("chunks"), keep_mask, chunk_vecs, dim)
    sentence_vectors = _kept_then_fresh(old.vector_blocks("sentences"), sent_keep, sent_vecs, dim)
    # Kept rows keep their order and fresh ones follow, so this holds already; sorting would
    # copy the largest array once more.
    if np.any(np.diff(sentence_chunks) < 0):
        order = np.argsort(sentence_chunks, kind="stable")
        sentence_vectors, sentence_chunks = sentence_vectors[order], sentence_chunks[order]
    manifest = dict(old.manifest)
    manifest["documents"] = dict(sorted(docs_meta.items()))
    snap = Snapshot(manifest, chunks, chunk_vectors, sentence_vectors, sentence_chunks)
    return snap, report
