"""Segments: the immutable parts an index version is made of.

A segment holds some documents' passages, their passage and sentence vectors and, when large, an
approximate vector store. It is written once into ``INDEX_DIR/segments/sNNNNNN/`` and never
changed; a version lists its segments plus deletion marks (:mod:`.storage`), so an update writes
only a new small segment and marks, and merging (:mod:`.merge`) rewrites segments into fewer.

Layout of a segment::

    segment.json           counts, store kind, file checksums, its own checksum
    documents.json         per document: title, content hash, size, passages, source, rows
    chunks.jsonl           one Chunk per line, in row order (a document's rows are contiguous)
    chunk_offsets.npy      int64 byte offset of each line of chunks.jsonl (and the end)
    chunk_vectors.npy      float32 (chunks x dim)
    sentence_vectors.npy   float32 (sentences x dim), sentences in chunk order
    sentence_chunks.npy    int32 row of each sentence's chunk
    chunks.faiss           only above EXACT_LIMIT passages: the approximate (IVF) store
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import IndexDamaged
from . import files
from .checksums import file_entry, file_problem, manifest_checksum, well_formed
from .faiss_store import EXACT_LIMIT, FaissStore, VectorStore
from .rows import ChunkTable, NpyRows

SEGMENT_NAME = re.compile(r"s[0-9]{6,}")
VECTOR_FILES = ("chunk_vectors.npy", "sentence_vectors.npy", "sentence_chunks.npy")
# What opening a segment reads, so what its checksum list must hold.
CHECKED_FILES = ("chunks.jsonl", "chunk_offsets.npy", "documents.json", *VECTOR_FILES)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_BLOCK = 1 << 16


def damaged(path: Path, what: str) -> IndexDamaged:
    """The one-line error for a damaged segment file."""
    index = path.parent.parent if path.parent.name == "segments" else path.parent
    return IndexDamaged(
        f"index {index} is damaged: {path.name} {what}; rebuild it with "
        f"`qa index PATH... --index {index} --rebuild` (your documents are untouched)")


class Segment:
    """One segment on disk, opened: passages and vectors read on demand, stores on first use.

    Immutable, so one open segment serves every version that lists it."""

    def __init__(self, path: Path, meta: dict[str, Any], *,
                 documents: dict[str, dict[str, Any]] | None = None) -> None:
        self.path = path
        self.name = path.name
        self.meta = meta
        self._lock = threading.Lock()
        self._stores: dict[str, VectorStore | None] = {}
        # Given for format-2 indexes, whose manifest held the documents.
        self._documents: dict[str, dict[str, Any]] | None = documents
        try:
            offsets = np.load(path / "chunk_offsets.npy", allow_pickle=False)
            self.chunks = ChunkTable(path / "chunks.jsonl", offsets)
            # Memory-mapped for whole-array work (flat stores, merges); answering reads rows
            # through NpyRows.
            self.chunk_vectors = np.load(path / "chunk_vectors.npy", mmap_mode="r",
                                         allow_pickle=False)
            self.sentence_vectors = np.load(path / "sentence_vectors.npy", mmap_mode="r",
                                            allow_pickle=False)
            self.sentence_chunks = np.load(path / "sentence_chunks.npy", allow_pickle=False)
            self.chunk_rows = NpyRows(path / "chunk_vectors.npy")
            self.sentence_rows = NpyRows(path / "sentence_vectors.npy")
            # Opened now: a later version removing this folder cannot take the list away.
            self._documents_file: BinaryIO | None = (
                open(path / "documents.json", "rb") if documents is None  # noqa: SIM115
                else None)
        except (OSError, ValueError) as exc:
            raise damaged(path, f"cannot be read ({exc})") from exc
        n, dim = len(self.chunks), int(meta["dim"])
        sc = self.sentence_chunks
        if (self.chunk_vectors.shape != (n, dim) or self.sentence_vectors.shape[1:] != (dim,)
                or sc.ndim != 1 or len(sc) != len(self.sentence_vectors)
                or (len(sc) and (sc[0] < 0 or sc[-1] >= n or np.any(np.diff(sc) < 0)))):
            raise damaged(path, "has arrays of inconsistent shapes")
        # offsets[i]:offsets[i+1] are the sentence rows of chunk row i.
        self.sentence_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(sc, minlength=n), out=self.sentence_offsets[1:])
        kind = meta.get("store", "flat")
        if kind != "flat":
            try:
                self._stores["chunks"] = FaissStore.load(path / "chunks.faiss", kind)
            except RuntimeError as exc:
                raise damaged(path / "chunks.faiss", "cannot be read") from exc
            self._stores["sentences"] = None

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """doc_id -> title, sha256, chars, chunks, source, rows ([first, end) chunk rows)."""
        if self._documents is None:
            f = self._documents_file
            assert f is not None
            try:
                docs = json.loads(files.pread_exact(f, os.fstat(f.fileno()).st_size, 0))
            except (OSError, ValueError) as exc:
                raise damaged(self.path / "documents.json", f"cannot be read ({exc})") from exc
            if not isinstance(docs, dict):
                raise damaged(self.path / "documents.json", "holds no document list")
            self._documents = docs
        return self._documents

    def store(self, which: str) -> VectorStore | None:
        """The vector store over this segment's ``chunks`` or ``sentences`` (local rows are the
        ids). A large segment has no sentence store: its candidates come from the approximate
        passage store and are re-scored with their sentences' vectors."""
        if which not in self._stores:
            with self._lock:
                if which not in self._stores:
                    vectors = self.chunk_vectors if which == "chunks" else self.sentence_vectors
                    self._stores[which] = (
                        None if which == "sentences" and len(self) > EXACT_LIMIT
                        else FaissStore.build(vectors, np.arange(len(vectors)), kind="flat"))
        return self._stores[which]

    def vector_blocks(self, which: str) -> Iterator[np.ndarray]:
        """All ``"chunks"`` or ``"sentences"`` vectors in order, a block at a time."""
        rows = self.chunk_rows if which == "chunks" else self.sentence_rows
        for start in range(0, len(rows), _BLOCK):
            yield rows.span(start, min(len(rows), start + _BLOCK))


def read_meta(path: Path) -> dict[str, Any]:
    """A segment's ``segment.json``, checked against its own checksum."""
    try:
        meta = json.loads((path / "segment.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise damaged(path / "segment.json", f"cannot be read ({exc})") from exc
    if (not isinstance(meta, dict) or meta.get("manifest_sha256") != manifest_checksum(meta)
            or not isinstance(meta.get("files"), dict) or not isinstance(meta.get("dim"), int)):
        raise damaged(path / "segment.json", "does not match its checksum (edited or damaged?)")
    return meta


def verify_files(path: Path, meta: dict[str, Any], *, full: bool,
                 documents_inline: bool = False) -> None:
    """Check a segment's (or a format-3 version's) files against its checksum list."""
    entries = meta["files"]
    required = set(CHECKED_FILES) - ({"documents.json"} if documents_inline else set())
    if meta.get("store", "flat") != "flat":
        required.add("chunks.faiss")
    if not required <= set(entries) or not all(
            well_formed(e) and _PLAIN_NAME.fullmatch(n) for n, e in entries.items()):
        raise damaged(path / "segment.json", "has an incomplete checksum list")
    for name, expected in entries.items():
        problem = file_problem(path / name, expected, full=full)
        if problem:
            raise damaged(path / name, problem)


def write_segment(
    segments_dir: Path,
    name: str,
    *,
    dim: int,
    chunk_lines: Iterable[bytes],
    chunk_vectors: Iterable[np.ndarray],
    sentence_vectors: Iterable[np.ndarray],
    sentence_chunks: np.ndarray,
    documents: dict[str, dict[str, Any]],
    store_kind: str | None = None,
) -> dict[str, Any]:
    """Write a segment folder (atomically: built aside, fsynced, renamed); returns its meta.

    Vectors come as blocks and are streamed to their files, so a merge of a million passages
    never holds them all in memory.
    """
    segments_dir.mkdir(parents=True, exist_ok=True)
    tmp = segments_dir / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        offsets = [0]
        with open(tmp / "chunks.jsonl", "wb") as f:
            for line in chunk_lines:
                f.write(line)
                offsets.append(offsets[-1] + len(line))
            f.flush()
            os.fsync(f.fileno())
        n = len(offsets) - 1
        files.save_npy(tmp / "chunk_offsets.npy", np.asarray(offsets, dtype=np.int64))
        del offsets
        _stream_npy(tmp / "chunk_vectors.npy", chunk_vectors, n, dim)
        _stream_npy(tmp / "sentence_vectors.npy", sentence_vectors, len(sentence_chunks), dim)
        files.save_npy(tmp / "sentence_chunks.npy", np.asarray(sentence_chunks, np.int32))
        files.write_file(tmp / "documents.json",
                         json.dumps(documents, ensure_ascii=False, indent=0).encode("utf-8"))
        kind = store_kind or ("flat" if n <= EXACT_LIMIT else "ivf")
        if kind != "flat":  # approximate stores are costly to build: built once, saved
            vectors = np.load(tmp / "chunk_vectors.npy", mmap_mode="r", allow_pickle=False)
            FaissStore.build(vectors, np.arange(n), kind=kind).save(tmp / "chunks.faiss")
            del vectors
        meta: dict[str, Any] = {
            "dim": dim, "store": kind,
            "counts": {"chunks": n, "sentences": len(sentence_chunks),
                       "documents": len(documents)},
            "files": {f.name: file_entry(f) for f in sorted(tmp.iterdir())},
        }
        meta["manifest_sha256"] = manifest_checksum(meta)
        files.write_file(tmp / "segment.json",
                         json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"))
        files.fsync_dir(tmp)
        os.rename(tmp, segments_dir / name)
        files.fsync_dir(segments_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _stream_npy(path: Path, blocks: Iterable[np.ndarray], n: int, dim: int) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    pos = 0
    for block in blocks:
        out[pos : pos + len(block)] = block
        pos += len(block)
    if pos != n:
        raise ValueError(f"{path.name}: {pos} rows written, {n} expected")
    out.flush()
    del out
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
