"""Incremental index updates: embed only what changed, write only what is new.

Each document's content hash is kept with it. An update chunks and embeds new or changed
documents into one new segment, marks the rows of changed and removed ones deleted, and
publishes a version listing the segments and marks (:class:`IndexDir`); unchanged documents are
not touched. The merge policy (:mod:`.merge`) then keeps the number of segments small.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..chunking import Chunk, Chunker
from ..documents import Document, SkippedFile
from ..embedders import Embedder
from ..errors import BadRequest
from .merge import Part, copied_part, fresh_part, inline_merge, join_parts
from .snapshot import SegmentView, Snapshot
from .storage import FORMAT_VERSION, IndexDir, SegmentEntry

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
    moved: list[str] = field(default_factory=list)
    """Unchanged documents now read from another place (their source was updated)."""
    skipped: list[SkippedFile] = field(default_factory=list)
    embedded_texts: int = 0
    embedded_chars: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.moved)

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

    def to_json(self) -> dict[str, Any]:
        """The report as the HTTP API and the chat return it; skipped files by name only
        (a server's paths are not the client's business)."""
        return {
            "added": list(self.added),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
            "removed": list(self.removed),
            "skipped": [{"file": Path(s.path).name, "reason": s.reason} for s in self.skipped],
        }


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


def passage_means(sentence_vectors: np.ndarray, sentence_chunks: np.ndarray, n: int,
                  weights: np.ndarray) -> np.ndarray:
    """Each chunk's sentence vectors averaged, weighted by ``weights`` (sentence lengths: the
    model mean-pools a passage over its tokens, so a long sentence weighs more in it)."""
    sums = np.zeros((n, sentence_vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, sentence_chunks, sentence_vectors * weights[:, None])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    unit: np.ndarray = sums / np.maximum(norms, 1e-12)
    return unit


def check_unique_ids(docs: Sequence[Document]) -> None:
    """BadRequest if two documents share an id (the same relative name under two folders):
    one would silently replace the other."""
    seen: dict[str, str] = {}
    for doc in docs:
        if doc.doc_id in seen:
            raise BadRequest(
                f"{seen[doc.doc_id]} and {doc.path} would both be document {doc.doc_id!r}; "
                "index these folders into separate indexes, or rename one of the files")
        seen[doc.doc_id] = doc.path


def check_no_clash(doc: Document, indexed: dict[str, Any], source: str) -> None:
    """BadRequest if ``doc`` would replace an indexed document of the same id read from another
    file that is still there: two files that share a name (``teamA/notes.txt`` and
    ``teamB/notes.txt`` indexed one after the other, or an upload named like a document indexed
    from a folder), of which the second silently replaced the first. A new version of the same
    file, or a document whose old file is gone (moved), is an update."""
    old = str(indexed.get("source") or "")
    if not old or os.path.abspath(old) == os.path.abspath(source) or not os.path.isfile(old):
        return
    raise BadRequest(
        f"{Path(source).name} would replace document {doc.doc_id!r}, which was indexed from "
        f"another file that is still there ({old}); rename one of them, or remove the indexed "
        "document first")


def apply_update(
    index: IndexDir,
    old: Snapshot,
    *,
    upsert: Sequence[Document] = (),
    remove: Sequence[str] = (),
    sources: dict[str, str] | None = None,
    embedder: Embedder,
    chunker: Chunker,
    passage_vectors: str = "embed",
    progress: Progress | None = None,
    force: bool = False,
) -> UpdateReport:
    """Add or replace ``upsert`` documents and drop ``remove`` ids in the index, publishing a
    new version if anything changed (or ``force``). The caller holds ``index.lock()``.

    ``passage_vectors`` is ``"embed"`` (each passage embedded as a whole, best quality) or
    ``"mean"`` (the mean of its sentence vectors: half the embedding work).
    """
    check_unique_ids(upsert)
    if passage_vectors not in ("embed", "mean"):
        raise ValueError(f"passage_vectors must be 'embed' or 'mean', got {passage_vectors!r}")
    report = UpdateReport()
    sources = sources or {}
    new_docs: dict[str, Document] = {}
    moved: dict[str, str] = {}
    for doc in upsert:
        loc = old.locate_document(doc.doc_id)
        if loc is not None and loc.meta["sha256"] == doc.content_hash:
            report.unchanged.append(doc.doc_id)
            # A moved folder: remember where the document is now, so that deleting it there
            # removes it on the next run (its rows are copied, not embedded again).
            source = sources.get(doc.doc_id)
            if source is not None and loc.meta.get("source") != source:
                moved[doc.doc_id] = source
                report.moved.append(doc.doc_id)
            continue
        if loc is not None:
            check_no_clash(doc, loc.meta, sources.get(doc.doc_id, doc.path))
        (report.updated if loc is not None else report.added).append(doc.doc_id)
        new_docs[doc.doc_id] = doc
    removed = {d for d in remove if d not in new_docs and old.locate_document(d) is not None}
    report.removed = sorted(removed)
    if not (report.changed or force):
        return report
    if old.manifest.get("format_version", FORMAT_VERSION) < FORMAT_VERSION:
        # A format-3 index: rewritten once as one segment, then updated like any other.
        rewrite(index, old)
        old = index.read()

    # Chunk and embed what is new.
    fresh: list[Chunk] = []
    metas: dict[str, dict[str, Any]] = {}
    for doc in new_docs.values():
        doc_chunks = chunker.split(doc)
        fresh.extend(doc_chunks)
        metas[doc.doc_id] = {
            "title": doc.title,
            "sha256": doc.content_hash,
            "chars": len(doc.text),
            "chunks": len(doc_chunks),
            "source": sources.get(doc.doc_id, doc.path),
        }
    dim = old.dim
    sv = np.zeros((0, dim), np.float32)
    cv = np.zeros((0, dim), np.float32)
    sc = np.zeros(0, np.int32)
    if fresh:
        sentences = [(i, s) for i, c in enumerate(fresh) for s in c.sentence_texts()]
        sent_texts = [s for _, s in sentences]
        passage_texts = [c.text for c in fresh] if passage_vectors == "embed" else []
        total = len(sent_texts) + len(passage_texts)
        sv = _embed(embedder, sent_texts, progress, 0, total)
        sc = np.array([i for i, _ in sentences], dtype=np.int32)
        if passage_vectors == "embed":
            cv = _embed(embedder, passage_texts, progress, len(sent_texts), total)
        else:
            lengths = np.array([len(s) for s in sent_texts], dtype=np.float32)
            cv = passage_means(sv, sc, len(fresh), lengths)
        report.embedded_texts = total
        report.embedded_chars = sum(map(len, sent_texts)) + sum(map(len, passage_texts))

    # Deletion marks for the old rows of changed, removed and moved documents.
    where = {d: loc for d in removed | set(new_docs) | set(moved)
             if (loc := old.locate_document(d)) is not None}
    marks: dict[int, tuple[list[int], set[str]]] = {}
    for d, loc in where.items():
        rows, docs = marks.setdefault(loc.view, ([], set()))
        lo, hi = loc.meta.get("rows", (0, 0))
        rows.extend(range(int(lo), int(hi)))
        docs.add(d)
    views = []
    for i, v in enumerate(old.views):
        rows, docs = marks.get(i, ([], set()))
        views.append(SegmentView(v.segment, np.concatenate([v.deleted_rows, rows]),
                                 v.deleted_docs | docs) if docs else v)

    parts: list[Part] = []
    if metas:
        parts.append(fresh_part(fresh, cv, sv, sc, metas))
    for view_index in sorted({where[d].view for d in moved}):
        view = old.views[view_index]
        part = copied_part(view, {d for d in moved if where[d].view == view_index})
        for d in part.documents:
            part.documents[d]["source"] = moved[d]
        parts.append(part)
    return _publish(index, old, views, parts, report)


def _publish(index: IndexDir, old: Snapshot, views: list[SegmentView], parts: list[Part],
             report: UpdateReport) -> UpdateReport:
    """Write the new segment (if any), merge a full tier of small segments into it, publish."""
    # Fully deleted segments leave the version.
    kept = [v for v in views if v.n_live or v.n_documents]
    counts = _counts(kept)
    if parts:
        merge = inline_merge([*kept, _placeholder(parts)])
        merged = [i for i in merge if i < len(kept)]
        if merged:  # the new segment joins a full tier: the tier is written merged, once
            parts = [copied_part(kept[i]) for i in merged] + parts
            counts = _counts([v for i, v in enumerate(kept) if i not in merged])
            kept = [v for i, v in enumerate(kept) if i not in merged]
    entries = [SegmentEntry(v.segment.name, v.deleted_rows, v.deleted_docs) for v in kept]
    if parts:
        name, meta = index.write_segment(**_segment_args(old.dim, join_parts(parts)))
        entries.append(SegmentEntry(name, np.zeros(0, np.int64), frozenset()))
        for key in counts:
            counts[key] += meta["counts"][key]
    index.publish(old.manifest, entries, counts)
    return report


class _Sized:
    """Stands in for the segment an update is about to write, for the merge policy."""

    def __init__(self, rows: int) -> None:
        self.n_live = rows

    def documents(self) -> dict[str, Any]:
        return {}


def _placeholder(parts: list[Part]) -> SegmentView:
    return _Sized(sum(p.rows for p in parts))  # type: ignore[return-value]


def _segment_args(dim: int, part: Part) -> dict[str, Any]:
    return {"dim": dim, "chunk_lines": part.lines, "chunk_vectors": part.chunk_vectors,
            "sentence_vectors": part.sentence_vectors, "sentence_chunks": part.sentence_chunks,
            "documents": part.documents}


def _counts(views: list[SegmentView]) -> dict[str, int]:
    """Live documents, passages and sentences of ``views``."""
    return {"documents": sum(v.n_documents for v in views),
            "chunks": sum(v.n_live for v in views),
            "sentences": sum(v.n_sentences for v in views)}


def rewrite(index: IndexDir, old: Snapshot) -> str:
    """Merge every segment of ``old`` into one, dropping deleted rows (``qa index --optimize``,
    and the migration of format-3 indexes); returns the new version. The caller holds the lock.
    """
    parts = [copied_part(v) for v in old.views if v.n_live or v.n_documents]
    name, meta = index.write_segment(**_segment_args(old.dim, join_parts(parts)))
    entries = [SegmentEntry(name, np.zeros(0, np.int64), frozenset())]
    return index.publish(old.manifest, entries, dict(meta["counts"]))
