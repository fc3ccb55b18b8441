"""One version of an index, ready to search: passages, their vectors and vector stores.

A :class:`Snapshot` never changes once made: writers build a new one and readers keep the one
they hold. Values derived on first use (the document list, per-passage sentence offsets, flat
vector stores) are cached beside it, never written into its fields.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from ..chunking import Chunk
from ..errors import IndexDamaged
from .faiss_store import EXACT_LIMIT, FaissStore, VectorStore
from .files import pread_exact
from .rows import ArrayRows, NpyRows, check_unit_rows


@dataclass(frozen=True)
class Snapshot:
    """One immutable version of an index, loaded and ready to search."""

    manifest: dict[str, Any]
    chunks: Sequence[Chunk]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray
    sentence_chunks: np.ndarray
    version: str = ""
    # Approximate stores loaded from the version's files (built ones are cached in _cache).
    stores: dict[str, VectorStore] = field(default_factory=dict, repr=False)
    # How answering reads vectors: from the files for a loaded index, else from the arrays.
    chunk_rows: NpyRows | ArrayRows | None = field(default=None, repr=False)
    sentence_rows: NpyRows | ArrayRows | None = field(default=None, repr=False)
    # The documents, until first asked for; opened at load, so that a newer version pruning
    # this one's folder cannot take them away.
    documents_file: BinaryIO | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def _chunk_reader(self) -> NpyRows | ArrayRows:
        return self.chunk_rows or ArrayRows(self.chunk_vectors, "chunk_vectors.npy")

    def _sentence_reader(self) -> NpyRows | ArrayRows:
        return self.sentence_rows or ArrayRows(self.sentence_vectors, "sentence_vectors.npy")

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """doc_id -> title, sha256, chars, chunks, source."""
        if "documents" in self.manifest:
            return self.manifest["documents"]  # type: ignore[no-any-return]
        if "documents" not in self._cache:
            f = self.documents_file
            name = getattr(f, "name", "documents.json")
            try:
                docs = (json.loads(pread_exact(f, os.fstat(f.fileno()).st_size, 0))
                        if f else None)
            except (OSError, ValueError) as exc:
                raise IndexDamaged(f"index file {name} cannot be read ({exc}); rebuild it "
                                   "with `qa index`") from exc
            if not isinstance(docs, dict):
                raise IndexDamaged(f"index file {name} holds no document list; rebuild it with "
                                   "`qa index`")
            self._cache["documents"] = docs
        return self._cache["documents"]  # type: ignore[no-any-return]

    @property
    def document_count(self) -> int:
        """Number of documents, without reading their list when the manifest counts them."""
        counts = self.manifest.get("counts", {})
        if "documents" not in self.manifest and isinstance(counts.get("documents"), int):
            return int(counts["documents"])
        return len(self.documents)

    @property
    def embedder(self) -> str:
        """The name of the embedder that built the index."""
        return str(self.manifest["embedder"])

    @property
    def sentence_offsets(self) -> np.ndarray:
        """``offsets[i]:offsets[i+1]`` are the sentence rows of chunk row ``i``."""
        if "offsets" not in self._cache:
            counts = np.bincount(self.sentence_chunks, minlength=len(self.chunks))
            offsets = np.zeros(len(self.chunks) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            self._cache["offsets"] = offsets
        return self._cache["offsets"]  # type: ignore[no-any-return]

    def passage_vectors(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The vectors of the given chunk rows, read without mapping the whole file."""
        reader = self._chunk_reader()
        return check_unit_rows(reader.take(rows), str(reader.path))

    def sentence_vectors_of(self, row: int) -> np.ndarray:
        """The vectors of chunk row ``row``'s sentences, in one read."""
        reader = self._sentence_reader()
        offsets = self.sentence_offsets
        return check_unit_rows(reader.span(int(offsets[row]), int(offsets[row + 1])),
                               str(reader.path))

    def vector_blocks(self, which: str, block: int = 1 << 16) -> Iterator[np.ndarray]:
        """The ``"chunks"`` or ``"sentences"`` vectors, in order, ``block`` rows at a time, read
        without mapping the file (an update of a large index copies them through this)."""
        rows = self._chunk_reader() if which == "chunks" else self._sentence_reader()
        n = len(self.chunk_vectors if which == "chunks" else self.sentence_vectors)
        for start in range(0, n, block):
            yield rows.span(start, min(n, start + block))

    def store(self, name: str) -> VectorStore | None:
        """The vector store over ``chunks`` or ``sentences`` (rows are the ids). Above
        EXACT_LIMIT passages there is no sentence store: candidates come from the approximate
        passage store and are re-scored with their sentences' vectors."""
        if name in self.stores:
            return self.stores[name]
        key = f"store:{name}"
        if key not in self._cache:
            if name == "sentences" and len(self.chunks) > EXACT_LIMIT:
                return None
            vectors = self.chunk_vectors if name == "chunks" else self.sentence_vectors
            self._cache[key] = FaissStore.build(vectors, np.arange(len(vectors)))
        return self._cache[key]  # type: ignore[no-any-return]

    @classmethod
    def empty(cls, manifest: dict[str, Any], dim: int) -> Snapshot:
        """A snapshot with no passages."""
        z = np.zeros((0, dim), dtype=np.float32)
        return cls(manifest, [], z, z.copy(), np.zeros(0, dtype=np.int32))
