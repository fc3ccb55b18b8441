"""One version of an index, ready to search: its segments minus what the version deletes.

A :class:`Snapshot` never changes once made: writers publish a new version and readers keep the
one they hold. Its rows are the live passages of its segments, numbered ``0..passage_count-1``
in segment order; values derived on first use (the merged document list) are cached beside it,
never written into its fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, overload

import numpy as np

from ..chunking import Chunk
from .rows import check_unit_rows, sequence_item
from .segments import Segment


class SegmentView:
    """A segment as one version sees it: without the rows and documents the version deleted."""

    def __init__(self, segment: Segment, deleted_rows: np.ndarray | None = None,
                 deleted_docs: frozenset[str] = frozenset()) -> None:
        self.segment = segment
        self.deleted_rows = np.unique(np.asarray(
            deleted_rows if deleted_rows is not None else [], dtype=np.int64))
        self.deleted_docs = deleted_docs
        n = len(segment)
        self.keep: np.ndarray | None = None  # None: every row is live
        self.live: np.ndarray | None = None  # the live local rows, ascending
        self._bitmaps: dict[str, np.ndarray] = {}
        if len(self.deleted_rows):
            self.keep = np.ones(n, dtype=bool)
            self.keep[self.deleted_rows] = False
            self.live = np.flatnonzero(self.keep)
            self._bitmaps = {
                "chunks": np.packbits(self.keep, bitorder="little"),
                "sentences": np.packbits(self.keep[segment.sentence_chunks], bitorder="little"),
            }
        self.n_live = n - len(self.deleted_rows)
        counts = np.diff(segment.sentence_offsets)
        self.n_sentences = int(counts.sum() if self.keep is None else counts[self.keep].sum())
        # (deleted documents are always documents of the segment)
        self.n_documents = int(segment.meta.get("counts", {}).get("documents", -1))
        if self.n_documents < 0:
            self.n_documents = len(segment.documents)
        self.n_documents -= len(deleted_docs)

    def local(self, i: int) -> int:
        """The segment row of this view's ``i``-th live row."""
        return i if self.live is None else int(self.live[i])

    def live_index(self, local_rows: np.ndarray) -> np.ndarray:
        """Positions among the live rows of (live) segment rows."""
        return local_rows if self.live is None else np.searchsorted(self.live, local_rows)

    def allowed(self, which: str) -> np.ndarray | None:
        """Bitmap of the ``"chunks"`` or ``"sentences"`` ids a search may return, or None."""
        return self._bitmaps.get(which)

    def documents(self) -> dict[str, dict[str, Any]]:
        """This view's live documents."""
        docs = self.segment.documents
        if not self.deleted_docs:
            return docs
        return {d: m for d, m in docs.items() if d not in self.deleted_docs}


class DocumentLocation(NamedTuple):
    """Where a live document is: the index of its view in the snapshot and its metadata."""

    view: int
    meta: dict[str, Any]


class LiveChunks(Sequence[Chunk]):
    """The live passages of a snapshot, by row."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snap = snapshot

    def __len__(self) -> int:
        return self._snap.passage_count

    @overload
    def __getitem__(self, i: int) -> Chunk: ...
    @overload
    def __getitem__(self, i: slice) -> list[Chunk]: ...

    def __getitem__(self, i: int | slice) -> Chunk | list[Chunk]:
        return sequence_item(self, i, self._chunk)

    def _chunk(self, row: int) -> Chunk:
        view, local = self._snap.locate(row)
        return view.segment.chunks[local]


class Snapshot:
    """One immutable version of an index: what answering and updates read.

    The retriever needs only: ``chunks`` (live passages by row), :meth:`candidate_rows`,
    :meth:`rescoring_vectors`, ``documents``, ``document_count``,
    ``passage_count``, ``sentence_count``, ``embedder``, ``dim``, ``manifest`` and ``version``.
    """

    def __init__(self, manifest: dict[str, Any], views: Sequence[SegmentView] = (),
                 version: str = "") -> None:
        self.manifest = manifest
        self.views = tuple(views)
        self.version = version
        self.starts = np.zeros(len(self.views) + 1, dtype=np.int64)
        np.cumsum([v.n_live for v in self.views], out=self.starts[1:])
        self.chunks: Sequence[Chunk] = LiveChunks(self)
        self._documents: dict[str, dict[str, Any]] | None = None

    @classmethod
    def empty(cls, manifest: dict[str, Any]) -> Snapshot:
        """A snapshot with no segments (a new index, or a rebuild)."""
        return cls(manifest)

    @property
    def embedder(self) -> str:
        """The name of the embedder that built the index."""
        return str(self.manifest["embedder"])

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.manifest["dim"])

    @property
    def passage_count(self) -> int:
        """Number of live passages."""
        return int(self.starts[-1])

    @property
    def sentence_count(self) -> int:
        """Number of live sentences."""
        return sum(v.n_sentences for v in self.views)

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """doc_id -> title, sha256, chars, chunks, source (read on first use)."""
        if self._documents is None:
            docs: dict[str, dict[str, Any]] = {}
            for v in self.views:
                docs.update(v.documents())
            self._documents = dict(sorted(docs.items()))
        return self._documents

    @property
    def document_count(self) -> int:
        """Number of documents, without reading their list when the manifest counts them."""
        count = self.manifest.get("counts", {}).get("documents")
        return int(count) if isinstance(count, int) else len(self.documents)

    def locate_document(self, doc_id: str) -> DocumentLocation | None:
        """Where a live document is (what an update deletes or keeps), or None: a look-up in
        each segment's list, so an update of a large index builds no list of its own."""
        for i in range(len(self.views) - 1, -1, -1):
            view = self.views[i]
            meta = view.segment.documents.get(doc_id)
            if meta is not None and doc_id not in view.deleted_docs:
                return DocumentLocation(i, meta)
        return None

    def locate(self, row: int) -> tuple[SegmentView, int]:
        """The view holding live row ``row`` and the row's number in its segment."""
        i = int(np.searchsorted(self.starts, row, side="right")) - 1
        view = self.views[i]
        return view, view.local(row - int(self.starts[i]))

    def _locate_all(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`locate` for many rows at once: each row's view index and segment row."""
        rows = np.asarray(rows, dtype=np.int64)
        which = np.searchsorted(self.starts, rows, side="right") - 1
        local = rows - self.starts[which]
        for i in np.unique(which).tolist():
            live = self.views[i].live
            if live is not None:
                mine = which == i
                local[mine] = live[local[mine]]
        return which, local

    def passage_vectors(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The vectors of the given rows, each checked to be unit length."""
        return self.rescoring_vectors(rows, sentences=False)[0]

    def sentence_vectors(self, rows: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """For each given row, its sentences' vectors, all checked to be unit length."""
        _, flat, bounds = self.rescoring_vectors(rows, passages=False)
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def rescoring_vectors(
        self, rows: Sequence[int] | np.ndarray, *, passages: bool = True, sentences: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """What re-scoring a question's candidates reads, one read per row and file: the rows'
        passage vectors, all their sentences' vectors in row order, and where each row's
        sentences begin there (``bounds[j]:bounds[j + 1]``), all checked to be unit length."""
        which, local = self._locate_all(rows)
        dim = self.dim
        p_out = np.empty((len(local) if passages else 0, dim), dtype=np.float32)
        lo_s = hi_s = np.zeros(len(local), dtype=np.int64)
        groups = [(i, which == i) for i in np.unique(which).tolist()]
        if sentences:
            lo_s, hi_s = lo_s.copy(), hi_s.copy()
            for i, mine in groups:
                offsets = self.views[i].segment.sentence_offsets
                lo_s[mine], hi_s[mine] = offsets[local[mine]], offsets[local[mine] + 1]
        bounds = np.concatenate([[0], np.cumsum(hi_s - lo_s)]).tolist()
        s_out = np.empty((bounds[-1], dim), dtype=np.float32)
        for i, mine in groups:
            seg = self.views[i].segment
            js = np.flatnonzero(mine).tolist()
            if passages:
                seg.chunk_rows.read_into(p_out, [(lo, lo + 1) for lo in local[mine].tolist()], js)
            if sentences:
                seg.sentence_rows.read_into(
                    s_out, list(zip(lo_s[mine].tolist(), hi_s[mine].tolist())),
                    [bounds[j] for j in js])
        segs = [self.views[i].segment for i, _ in groups]
        p_files = " or ".join(sorted({str(seg.chunk_rows.path) for seg in segs}))
        s_files = " or ".join(sorted({str(seg.sentence_rows.path) for seg in segs}))
        return check_unit_rows(p_out, p_files), check_unit_rows(s_out, s_files), bounds

    def sentence_vectors_of(self, row: int) -> np.ndarray:
        """The vectors of row ``row``'s sentences, checked to be unit length."""
        return self.sentence_vectors([row])[0]

    def candidate_rows(self, query: np.ndarray, *, passages: int, sentences: int) -> list[int]:
        """Rows worth re-scoring for ``query`` (one row vector): the best ``passages`` passages
        by their vectors and the passages of the best ``sentences`` sentences, over all
        segments. A segment without a sentence store (a large one) gives ``passages +
        sentences`` passages instead."""
        found_p: list[tuple[np.ndarray, np.ndarray]] = []
        found_s: list[tuple[np.ndarray, np.ndarray]] = []
        depth_p = passages
        for i, view in enumerate(self.views):
            if view.n_live == 0:
                continue
            seg = view.segment
            sentence_store = seg.store("sentences")
            depth = passages if sentence_store is not None else passages + sentences
            depth_p = max(depth_p, depth)
            scores, ids = seg.store("chunks").search(  # type: ignore[union-attr]
                query, depth, allowed=view.allowed("chunks"))
            ok = ids[0] >= 0
            found_p.append((scores[0][ok], view.live_index(ids[0][ok]) + self.starts[i]))
            if sentence_store is not None:
                scores, ids = sentence_store.search(query, sentences,
                                                    allowed=view.allowed("sentences"))
                ok = ids[0] >= 0
                local = seg.sentence_chunks[ids[0][ok]].astype(np.int64)
                found_s.append((scores[0][ok], view.live_index(local) + self.starts[i]))
        rows: set[int] = set()
        # Segments' scores are comparable (cosines), so the best over all of them are kept, as
        # one index would: more segments do not mean more passages to re-score.
        for found, depth in ((found_p, depth_p), (found_s, sentences)):
            if found:
                scores = np.concatenate([f[0] for f in found])
                ids = np.concatenate([f[1] for f in found])
                rows.update(ids[np.argsort(-scores, kind="stable")[:depth]].tolist())
        return sorted(rows)

    def vectors(self, which: str) -> np.ndarray:
        """All live ``"chunks"`` or ``"sentences"`` vectors, in row order (small indexes:
        tests, benchmarks)."""
        parts = []
        for v in self.views:
            seg = v.segment
            arr = np.asarray(seg.chunk_vectors if which == "chunks" else seg.sentence_vectors)
            if v.keep is not None:
                arr = arr[v.keep if which == "chunks" else v.keep[seg.sentence_chunks]]
            parts.append(arr)
        return (np.concatenate(parts) if parts
                else np.zeros((0, self.dim), dtype=np.float32))
