"""Vector stores: the only place that knows FAISS.

Chunking, answering and the UI talk to :class:`VectorStore`; a second backend (a distributed
engine, say) implements the same few methods. Vectors are unit length, so inner product is cosine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

# Up to this many vectors an exact (flat) index answers in a few milliseconds; above it an HNSW
# graph keeps latency flat at a recall measured in bench/ (see BENCHMARKS.md).
EXACT_LIMIT = 200_000


class VectorStore(Protocol):
    """Nearest-neighbour search over unit vectors identified by int64 ids."""

    kind: str

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` per query row; missing slots have id -1."""
        ...

    def save(self, path: Path) -> None: ...


class FaissStore:
    """A FAISS index wrapped in an id map. Exact below :data:`EXACT_LIMIT` vectors, HNSW above."""

    def __init__(self, index: object, kind: str) -> None:
        self._index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, *, kind: str | None = None) -> FaissStore:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        kind = kind or ("flat" if len(vectors) <= EXACT_LIMIT else "hnsw")
        if kind == "flat":
            base = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = 80
            base.hnsw.efSearch = 128
        else:
            raise ValueError(f"unknown vector store kind {kind!r}; use 'flat' or 'hnsw'")
        index = faiss.IndexIDMap2(base)
        if len(vectors):
            index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        return cls(index, kind)

    @classmethod
    def load(cls, path: Path, kind: str) -> FaissStore:
        import faiss

        return cls(faiss.read_index(os.fspath(path)), kind)

    def __len__(self) -> int:
        return int(self._index.ntotal)  # type: ignore[attr-defined]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, len(self))) if len(self) else 1
        if not len(self):
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = self._index.search(q, k)  # type: ignore[attr-defined]
        return scores, ids

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, os.fspath(path))
