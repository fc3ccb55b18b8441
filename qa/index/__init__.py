"""The index: immutable segments and versions on disk, searched through FAISS.

Modules, one idea each:

- :mod:`.storage`: :class:`IndexDir`, the index folder: versions, ``CURRENT``/``PUBLISHED``,
  the writer lock, reading a version (:meth:`IndexDir.read`) and publishing one.
- :mod:`.segments`: one immutable segment on disk (passages, vectors, an IVF store if large).
- :mod:`.snapshot`: :class:`Snapshot`, one version: its segments minus deletion marks.
- :mod:`.update` (incremental updates) and :mod:`.merge` (segment writing, merge policy).
- :mod:`.faiss_store`: :class:`VectorStore`, the nearest-neighbour interface, and FAISS behind it.
- :mod:`.rows`, :mod:`.files`, :mod:`.checksums`: row readers, durable writes, checksums.

What the retriever uses, and what another backend must provide (the interface):

- ``IndexDir(path)``: ``exists()``, ``read() -> Snapshot``, ``live_token()`` (changes when a
  new version goes live; a reader then calls ``read()`` again), ``lock(wait=...)``;
- ``Snapshot``: ``candidate_rows(query, passages=, sentences=) -> list[int]`` (rows worth
  re-scoring), ``chunks[row] -> Chunk``, ``rescoring_vectors(rows)`` (their passage vectors,
  their sentences' vectors and where each row's begin: unit float32), ``documents``,
  ``document_count``, ``passage_count``, ``sentence_count``, ``embedder``, ``dim``,
  ``manifest["chunking"]``, ``version``;
- ``update.apply_update(index, snapshot, upsert=, remove=, ...)`` and ``update.rewrite`` (merge
  everything) under ``index.lock()``.

A backend that keeps the nearest-neighbour search elsewhere implements :class:`VectorStore`
(``search(queries, k, allowed=None)``, where ``allowed`` is a bitmap of the ids a version has not
deleted) per segment; rows, passages and exact re-scoring stay here.
"""

from .faiss_store import FaissStore, VectorStore
from .snapshot import Snapshot
from .storage import IndexDir
from .update import UpdateReport

__all__ = ["FaissStore", "IndexDir", "Snapshot", "UpdateReport", "VectorStore"]
