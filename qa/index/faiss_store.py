"""Vector stores: the only place that knows FAISS.

Chunking, answering and the UI talk to :class:`VectorStore`; a second backend (a distributed
engine, say) implements the same few methods. Vectors are unit length, so inner product is cosine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# Up to this many vectors an exact (flat) index answers in a few milliseconds; above it an
# inverted-file index (IVF) keeps latency flat at a recall measured in bench/ (BENCHMARKS.md).
# IVF rather than HNSW: on 2 cores HNSW took ~2 minutes per 100k vectors to build, IVF's
# k-means and assignment take seconds, and it supports removing vectors. Its lists hold 8-bit
# scalar-quantized residuals (384 bytes a vector, a quarter of float32), so a million passages
# need ~0.4 GB resident; the retriever re-scores the candidates with the float32 vectors, which
# recovers the order quantization blurs. nprobe 160 of 4*sqrt(n) lists: at 1M passages after
# 1,000 updates recall@10 against exact search was 0.990 (128: 0.9885, 256: 0.991) and each
# question's IVF search ~2.5 ms shorter than at 256 (bench/updates.py, BENCHMARKS.md).
EXACT_LIMIT = 50_000
IVF_NPROBE = 160


def ivf_lists(n: int) -> int:
    """Number of IVF lists for ``n`` vectors: about 4 * sqrt(n), at most one per vector."""
    return max(1, min(n, int(4 * n**0.5)))


class VectorStore(Protocol):
    """Nearest-neighbour search over unit vectors identified by int64 ids."""

    kind: str

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int, *,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` per query row; missing slots have id -1. ``allowed``, if
        given, is a bitmap (``np.packbits(mask, bitorder="little")``) of the ids that may be
        returned: a segment's rows that its version has not deleted."""
        ...

    def save(self, path: Path) -> None: ...


class FaissStore:
    """A FAISS index: exact (flat) up to :data:`EXACT_LIMIT` vectors, IVF (8-bit) above."""

    def __init__(self, index: Any, kind: str) -> None:
        self._index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, *, kind: str | None = None) -> FaissStore:
        import faiss

        vectors = np.asarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        kind = kind or ("flat" if len(vectors) <= EXACT_LIMIT else "ivf")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        index: Any
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif kind == "ivf":
            nlist = ivf_lists(len(vectors))
            index = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).choice(
                len(vectors), min(len(vectors), 64 * nlist), replace=False)
            index.train(vectors[np.sort(sample)])
            index.nprobe = IVF_NPROBE
        else:
            raise ValueError(f"unknown vector store kind {kind!r}; use 'flat' or 'ivf'")
        for start in range(0, len(vectors), 100_000):  # bounded temporary memory
            index.add_with_ids(vectors[start : start + 100_000], ids[start : start + 100_000])
        return cls(index, kind)

    @classmethod
    def load(cls, path: Path, kind: str) -> FaissStore:
        import faiss

        if kind == "ivf":
            # Memory-mapped: a cold start does not read the whole file, and only the lists
            # that queries probe become resident.
            index: Any = faiss.read_index(os.fspath(path), faiss.IO_FLAG_MMAP)
            index.nprobe = IVF_NPROBE
        else:
            index = faiss.read_index(os.fspath(path))
        return cls(index, kind)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, queries: np.ndarray, k: int, *,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` per query row (see :class:`VectorStore`)."""
        k = max(1, min(k, len(self))) if len(self) else 1
        if not len(self):
            n = len(queries)
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is None:
            scores, ids = self._index.search(q, k)
            return scores, ids
        import faiss

        # The bitmap must outlive the search: FAISS keeps only a pointer to it.
        bitmap = np.ascontiguousarray(allowed, dtype=np.uint8)
        selector = faiss.IDSelectorBitmap(len(bitmap) * 8, faiss.swig_ptr(bitmap))
        # (faiss's stubs lack these keyword arguments, which its SWIG classes take.)
        params = (faiss.SearchParametersIVF(sel=selector, nprobe=IVF_NPROBE)  # type: ignore[call-arg]
                  if self.kind == "ivf" else faiss.SearchParameters(sel=selector))  # type: ignore[call-arg]
        scores, ids = self._index.search(q, k, params=params)
        return scores, ids

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, os.fspath(path))
