"""Row readers: vectors and passages read from index files on demand, a few rows at a time.

Answering reads a few hundred vectors and passages out of gigabytes; these readers copy just the
rows asked for with ``pread`` and leave the page cache to the kernel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from ..chunking import Chunk
from ..errors import IndexDamaged
from .files import open_random, pread_exact


def check_unit_rows(vectors: np.ndarray, file: str) -> np.ndarray:
    """``vectors`` if every row is unit length (or zero), else IndexDamaged.

    Large vector files are checksummed by sampled blocks on load, so a changed byte elsewhere
    would reach answering: a cosine of 8 ranks a wrong passage first. Answering reads a few
    hundred rows, whose norms cost nothing next to the read.
    """
    sq = np.einsum("ij,ij->i", vectors, vectors)
    if not len(sq) or float(sq.min()) >= 0.98 and float(sq.max()) <= 1.02:  # (False for NaN)
        return vectors
    sq = sq.astype(np.float64)
    bad = ~(np.abs(sq - 1.0) <= 0.02) & (sq != 0.0)
    if bad.any():
        raise IndexDamaged(
            f"index file {file} holds a damaged vector (length {float(np.sqrt(sq[bad][0])):.3g},"
            " not 1); rebuild the index with `qa index PATH... --index DIR --rebuild` "
            "(your documents are untouched)")
    return vectors


def sequence_item(seq: Sequence[Chunk], i: int | slice,
                  get: Callable[[int], Chunk]) -> Chunk | list[Chunk]:
    """``seq[i]`` for a sequence whose items ``get(j)`` makes (0 <= j < len): negative indexes
    and slices as a list's, IndexError out of range."""
    if isinstance(i, slice):
        return [get(j) for j in range(*i.indices(len(seq)))]
    if i < 0:
        i += len(seq)
    if not 0 <= i < len(seq):
        raise IndexError(i)
    return get(i)


class NpyRows:
    """Rows of a 2-D ``.npy`` file, read on demand with ``pread``.

    Through a memory map each such read made a whole large page-cache folio resident in the
    process, so after a few hundred questions most of a million-passage index counted as the
    process's memory; ``pread`` copies just the rows asked for.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open_random(path)
        version = np.lib.format.read_magic(self._file)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(self._file)
        if fortran or len(shape) != 2 or dtype.hasobject:
            raise ValueError(f"{path.name} is not a C-ordered 2-D numeric array")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = dtype
        self._start = self._file.tell()
        self._row_bytes = self.shape[1] * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def span(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi``, in one read."""
        n = max(0, hi - lo)
        data = pread_exact(self._file, n * self._row_bytes, self._start + lo * self._row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(n, self.shape[1])

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The given rows, in order."""
        return self.spans([(int(r), int(r) + 1) for r in rows])

    def spans(self, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """The rows of each ``(lo, hi)`` span, one after another."""
        counts = [max(0, hi - lo) for lo, hi in spans]
        out = np.empty((sum(counts), self.shape[1]), dtype=self.dtype)
        self.read_into(out, spans, np.cumsum([0, *counts[:-1]]).tolist())
        return out

    def read_into(self, out: np.ndarray, spans: Sequence[tuple[int, int]],
                  at: Sequence[int]) -> None:
        """Rows ``lo:hi`` of each span into ``out`` from row ``at[i]`` on: one read per span,
        straight into the result (answering reads a few hundred spans per question)."""
        buf = out.data.cast("B")
        fd, rb, start = self._file.fileno(), self._row_bytes, self._start
        for (lo, hi), pos in zip(spans, at):
            size = (hi - lo) * rb
            if size > 0 and os.preadv(fd, [buf[pos * rb : pos * rb + size]],
                                      start + lo * rb) != size:
                raise IndexDamaged(f"index file {self.path} is shorter than its manifest says "
                                   "(truncated?); rebuild it with `qa index`")


class ChunkTable(Sequence[Chunk]):
    """Passages read on demand from ``chunks.jsonl`` through their byte offsets, so a million
    passages cost memory only for the offsets."""

    def __init__(self, path: Path, offsets: np.ndarray) -> None:
        self._offsets = offsets
        self._file = open_random(path)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, i: int) -> Chunk: ...
    @overload
    def __getitem__(self, i: slice) -> list[Chunk]: ...

    def __getitem__(self, i: int | slice) -> Chunk | list[Chunk]:
        return sequence_item(self, i, lambda j: Chunk.from_json(json.loads(self.line(j))))

    def line(self, i: int) -> bytes:
        """Row ``i`` as its stored JSON line (a merge copies these without parsing them)."""
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        return pread_exact(self._file, end - start, start)
