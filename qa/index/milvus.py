"""The index in Milvus: everything a query needs, in three collections, and a write protocol
under which a query never sees half a document or two versions of one.

For ``--collection NAME`` the collections are::

    NAME_documents   doc_id (key), live version, pending version, title, sha256, chars,
                     passages, source; the row with doc_id "" holds the index settings
                     (embedder, dim, chunking, vector index kind)
    NAME_passages    one row per passage: vector, doc_id, version, chunk_id, text, start, end,
                     title, sentence offsets
    NAME_sentences   one row per sentence: vector, passage id, doc_id, version, position

Milvus has no multi-row transactions, so a document's rows carry a ``version`` (an int64 that
grows per document) and the document's row names the live one; that single-row upsert is the
commit. Replacing a document:

1. mark the document row ``pending`` (the rows about to be written may be left behind);
2. insert the new version's passages and sentences (invisible: not the live version);
3. upsert the document row with the new version and metadata (the commit);
4. delete the document's rows of any other version, then clear ``pending``.

Removing one marks it pending with version 0 (invisible at once), deletes its rows, then its
row. A writer killed anywhere leaves a pending document row; :meth:`MilvusIndex.recover` (run
before every update) finishes step 4 for it, so a restarted worker leaves no orphans and no
duplicates. Readers keep only rows of the live version, and a reader that finds rows of its
version gone (deleted by step 4 after it read the version) reads again
(see :mod:`qa.index.milvus_retriever`). All reads are at Strong consistency, so a commit
acknowledged to one replica is seen by every replica's next query.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..chunking import Chunk
from ..errors import IndexDamaged, IndexNotFound, QAError
from .milvus_schema import (
    ANN_SEARCH,
    EXACT_LIMIT,
    MAX_ID_BYTES,
    MAX_TEXT_BYTES,
    STRONG,
    TITLE_CHARS,
    build_ann_index,
    create_collections,
    literal,
    milvus_client,
    one_line,
    row_id,
)

__all__ = ["EXACT_LIMIT", "MilvusIndex", "PassageRow", "literal", "row_id"]

SETTINGS_KEY = ""  # the documents row that holds the index settings; no document has this id
_PAGE = 1000  # rows per query page (Milvus caps a query's result window at 16,384)
_FLUSH_EVERY = 200  # documents written between flushes of Milvus Lite (see flush)


@dataclass(frozen=True)
class PassageRow:
    """A passage as stored: its row id, version, chunk and vector."""

    id: int
    version: int
    chunk: Chunk
    vector: np.ndarray


class MilvusIndex:
    """The three collections of one index on one Milvus (or Milvus Lite) instance."""

    def __init__(self, uri: str, collection: str = "qa") -> None:
        if not collection.replace("_", "").isalnum() or not collection[0].isalpha():
            raise QAError(f"--collection must be letters, digits and _ (starting with a letter), "
                          f"got {collection!r}")
        self.uri = uri
        self.name = collection
        self.documents_name = f"{collection}_documents"
        self.passages_name = f"{collection}_passages"
        self.sentences_name = f"{collection}_sentences"
        self._client: Any = None
        self._loaded = False
        self._written = 0

    def __repr__(self) -> str:
        return f"MilvusIndex({self.uri!r}, {self.name!r})"

    @property
    def where(self) -> str:
        """How to name this index in messages: ``Milvus URI collection NAME``."""
        return f"Milvus {self.uri} collection {self.name}"

    @property
    def options(self) -> str:
        """The options of ``qa index`` (and every command) that name this index."""
        return f"--milvus {self.uri} --collection {self.name}"

    @property
    def path(self) -> Path:
        """A local folder for this index's uploads (a replica keeps nothing else locally):
        beside a Milvus Lite ``.db``, else in the user's cache folder."""
        if self.uri.endswith(".db"):
            return Path(self.uri).with_suffix(".uploads") / self.name
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        key = hashlib.sha256(f"{self.uri}\0{self.name}".encode()).hexdigest()[:16]
        return cache / "qa" / "milvus" / f"{self.name}-{key}"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = milvus_client(self.uri)
        return self._client

    # -- collections ------------------------------------------------------------------------

    def exists(self) -> bool:
        try:
            return bool(self.client.has_collection(self.documents_name))
        except QAError:
            raise
        except Exception as exc:
            raise IndexNotFound(f"cannot reach {self.where}: {one_line(exc)}") from exc

    def _load(self) -> None:
        if not self._loaded:
            for name in (self.documents_name, self.passages_name, self.sentences_name):
                if not self.client.has_collection(name):
                    raise IndexDamaged(f"{self.where} lacks its collection {name}; rebuild it "
                                       f"with `qa index PATH... {self.options} --rebuild`")
                self.client.load_collection(name)
            self._loaded = True

    def create(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Create the collections with these settings, or return the settings already there
        (several workers may start at once: the first one's settings win)."""
        create_collections(self.client, self.documents_name, self.passages_name,
                           self.sentences_name, int(settings["dim"]))
        self._load()
        existing = self._settings_or_none()
        if existing is None:
            self._put_document(SETTINGS_KEY, 1, 0, {**settings, "ann": False})
            existing = self._settings_or_none()
        assert existing is not None
        return existing

    def drop(self) -> None:
        """Drop all three collections (``--rebuild``)."""
        for name in (self.documents_name, self.passages_name, self.sentences_name):
            if self.client.has_collection(name):
                self.client.drop_collection(name)
        self._loaded = False

    def _settings_or_none(self) -> dict[str, Any] | None:
        rows = self.client.query(self.documents_name, filter=f'doc_id == {literal([""])[1:-1]}',
                                 output_fields=["meta"], consistency_level=STRONG)
        return dict(rows[0]["meta"]) if rows else None

    def settings(self) -> dict[str, Any]:
        """embedder, dim, chunking and whether the passages have an approximate index."""
        if not self.exists():
            raise IndexNotFound(f"no index in {self.where}: build one with `qa index PATH... "
                                f"{self.options}`")
        self._load()
        settings = self._settings_or_none()
        if not settings or not {"embedder", "dim", "chunking"} <= set(settings):
            raise IndexDamaged(f"{self.where} holds no index settings; rebuild it with "
                               f"`qa index PATH... {self.options} --rebuild`")
        return settings

    def use_ann_index(self) -> None:
        """Replace the passages' exact index by HNSW (past EXACT_LIMIT passages)."""
        build_ann_index(self.client, self.passages_name)
        settings = self.settings()
        self._put_document(SETTINGS_KEY, 1, 0, {**settings, "ann": True})

    # -- documents --------------------------------------------------------------------------

    def _put_document(self, doc_id: str, version: int, pending: int,
                      meta: dict[str, Any]) -> None:
        self.client.upsert(self.documents_name, [{
            "doc_id": doc_id, "version": version, "pending": pending, "meta": meta,
            "vector": [0.0, 0.0]}])

    def iterate(self, collection: str, filter: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        it = self.client.query_iterator(collection, batch_size=_PAGE, filter=filter,
                                        output_fields=fields, consistency_level=STRONG)
        try:
            while batch := it.next():
                yield from batch
        finally:
            it.close()

    def documents(self) -> dict[str, dict[str, Any]]:
        """Live documents: doc_id -> {version, title, sha256, chars, chunks, source}."""
        self._load()
        out = {}
        for row in self.iterate(self.documents_name, "version > 0",
                                 ["doc_id", "version", "meta"]):
            if row["doc_id"] != SETTINGS_KEY:
                out[row["doc_id"]] = {**row["meta"], "version": row["version"]}
        return dict(sorted(out.items()))

    def documents_of(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Like :meth:`documents`, for these ids only (those that exist)."""
        self._load()
        rows = self.client.query(self.documents_name,
                                 filter=f"doc_id in {literal(sorted(set(doc_ids)))}",
                                 output_fields=["doc_id", "version", "meta"],
                                 consistency_level=STRONG)
        return {r["doc_id"]: {**r["meta"], "version": r["version"]}
                for r in rows if r["version"] > 0 and r["doc_id"] != SETTINGS_KEY}

    def chunks_of(self, doc_id: str, version: int) -> list[Chunk]:
        """The passages of one version of a document, in order."""
        rows = self.client.query(
            self.passages_name, filter=f"doc_id == {literal([doc_id])[1:-1]} and version == "
            f"{int(version)}", output_fields=["id"], limit=16_384, consistency_level=STRONG)
        return sorted((p.chunk for p in self.passages([r["id"] for r in rows]).values()),
                      key=lambda c: c.start)

    def live_versions(self, doc_ids: Iterable[str]) -> dict[str, int]:
        """The live version of each of these documents that exists."""
        ids = sorted(set(doc_ids))
        out: dict[str, int] = {}
        for s in range(0, len(ids), _PAGE):
            rows = self.client.query(
                self.documents_name, filter=f"doc_id in {literal(ids[s:s + _PAGE])}",
                output_fields=["doc_id", "version"], consistency_level=STRONG)
            out.update({r["doc_id"]: r["version"] for r in rows if r["version"] > 0})
        return out

    # -- writing (see the module docstring for the protocol) ------------------------------

    def write_document(self, doc_id: str, meta: dict[str, Any], chunks: Sequence[Chunk],
                       passage_vectors: np.ndarray, sentence_vectors: np.ndarray,
                       old: dict[str, Any] | None = None) -> int:
        """Make ``chunks`` (with their vectors, sentences in chunk order) the live version of
        ``doc_id``, replacing ``old`` (its entry in :meth:`documents`); returns the version."""
        if len(doc_id.encode()) > MAX_ID_BYTES:
            raise QAError(f"document id longer than {MAX_ID_BYTES} bytes: {doc_id[:80]}...")
        old_version = int(old["version"]) if old else 0
        old_meta = {k: v for k, v in (old or {}).items() if k != "version"}
        version = max(time.time_ns(), old_version + 1)
        # Pending, with the old version and metadata: a writer killed from here on leaves the
        # old version live and the document marked for recover().
        self._put_document(doc_id, old_version, version, old_meta)
        passages, sentences = [], []
        s = 0
        for i, c in enumerate(chunks):
            pid = row_id(doc_id, version, "p", i)
            if len(c.text.encode()) > MAX_TEXT_BYTES:
                raise QAError(f"a passage of {doc_id} is longer than Milvus's {MAX_TEXT_BYTES} "
                              "bytes a text; use a smaller --chunk-size")
            passages.append({
                "id": pid, "vector": passage_vectors[i], "doc_id": doc_id, "version": version,
                "chunk_id": c.chunk_id, "text": c.text, "start": c.start, "end": c.end,
                "title": c.title[:TITLE_CHARS], "sentences": [list(x) for x in c.sentences]})
            for j in range(len(c.sentences)):
                sentences.append({
                    "id": row_id(doc_id, version, "s", s), "vector": sentence_vectors[s],
                    "passage_id": pid, "doc_id": doc_id, "version": version, "position": j})
                s += 1
        for start in range(0, len(passages), _PAGE):
            self.client.insert(self.passages_name, passages[start:start + _PAGE])
        for start in range(0, len(sentences), _PAGE):
            self.client.insert(self.sentences_name, sentences[start:start + _PAGE])
        self._put_document(doc_id, version, -1, meta)  # the commit
        if old:
            self._delete_version(doc_id, old, keep=version)
        self._put_document(doc_id, version, 0, meta)
        self._written += 1
        if self._written % _FLUSH_EVERY == 0:
            self.flush()
        return version

    def remove_document(self, doc_id: str, old: dict[str, Any]) -> None:
        """Remove ``doc_id`` (``old``: its entry in :meth:`documents`): invisible at once, then
        its rows deleted."""
        self._put_document(doc_id, 0, -1, {})
        self._delete_version(doc_id, old, keep=0)
        self.client.delete(self.documents_name, ids=[doc_id])

    def _delete_version(self, doc_id: str, old: dict[str, Any], keep: int) -> None:
        """Delete the rows of version ``old`` by their keys, known from its counts (a delete by
        filter scans the collection in Milvus Lite); ``keep``: the version that stays."""
        version = int(old["version"])
        n_sentences = old.get("sentences")
        if n_sentences is None:  # not recorded: find them by filter
            self._collect(doc_id, keep=keep)
            return
        self.client.delete(self.sentences_name, ids=[
            row_id(doc_id, version, "s", j) for j in range(int(n_sentences))])
        self.client.delete(self.passages_name, ids=[
            row_id(doc_id, version, "p", i) for i in range(int(old["chunks"]))])

    def flush(self) -> None:
        """Seal what was written into segments. Only for Milvus Lite, whose unsealed rows are
        searched and deleted from by a scan in Python; a server seals on its own."""
        if self.uri.endswith(".db"):
            for name in (self.passages_name, self.sentences_name, self.documents_name):
                self.client.flush(name)

    def _collect(self, doc_id: str, keep: int) -> None:
        """Delete ``doc_id``'s passages and sentences of every version but ``keep``."""
        expr = f"doc_id == {literal([doc_id])[1:-1]} and version != {int(keep)}"
        self.client.delete(self.sentences_name, filter=expr)
        self.client.delete(self.passages_name, filter=expr)

    def recover(self, owns: Any = None) -> list[str]:
        """Finish what killed writers left (pending documents); ``owns(doc_id)`` limits it to a
        shard's documents. Returns the documents cleaned."""
        self._load()
        cleaned = []
        for row in list(self.iterate(self.documents_name, "pending != 0",
                                      ["doc_id", "version", "meta"])):
            doc_id = row["doc_id"]
            if owns is not None and not owns(doc_id):
                continue
            if row["version"] > 0:
                self._collect(doc_id, keep=row["version"])
                self._put_document(doc_id, row["version"], 0, row["meta"])
            else:
                self._collect(doc_id, keep=0)
                self.client.delete(self.documents_name,
                                   filter=f"doc_id == {literal([doc_id])[1:-1]}")
            cleaned.append(doc_id)
        return cleaned

    # -- reading --------------------------------------------------------------------------

    def search(self, which: str, query: np.ndarray, limit: int,
               ann: bool = False) -> list[dict[str, Any]]:
        """Nearest ``"passages"`` or ``"sentences"`` of ``query``: dicts with id, distance,
        doc_id, version (and passage_id for sentences), best first."""
        name = self.passages_name if which == "passages" else self.sentences_name
        fields = ["doc_id", "version"] + (["passage_id"] if which == "sentences" else [])
        params = ANN_SEARCH if ann and which == "passages" else {"metric_type": "IP"}
        hits = self.client.search(name, data=[np.asarray(query, np.float32).tolist()],
                                  limit=min(limit, 16_384), output_fields=fields,
                                  search_params=params, consistency_level=STRONG)[0]
        return [{"id": h["id"], "distance": h["distance"], **h["entity"]} for h in hits]

    def passages(self, ids: Sequence[int]) -> dict[int, PassageRow]:
        """The passages with these row ids that still exist."""
        out: dict[int, PassageRow] = {}
        fields = ["id", "vector", "doc_id", "version", "chunk_id", "text", "start", "end",
                  "title", "sentences"]
        ids = sorted(set(int(i) for i in ids))
        for s in range(0, len(ids), _PAGE):
            for r in self.client.query(self.passages_name, filter=f"id in {ids[s:s + _PAGE]}",
                                       output_fields=fields, consistency_level=STRONG):
                chunk = Chunk(r["doc_id"], int(r["chunk_id"]), r["text"], int(r["start"]),
                              int(r["end"]), r["title"],
                              tuple((int(a), int(b)) for a, b in r["sentences"]))
                out[int(r["id"])] = PassageRow(int(r["id"]), int(r["version"]), chunk,
                                               np.asarray(r["vector"], dtype=np.float32))
        return out

    def sentence_vectors(self, passage_ids: Sequence[int], dim: int) -> dict[int, np.ndarray]:
        """Per passage row id, its sentences' vectors in order (as many as are stored)."""
        got: dict[int, list[tuple[int, list[float]]]] = {}
        ids = sorted(set(int(i) for i in passage_ids))
        for s in range(0, len(ids), 200):
            for r in self.client.query(
                    self.sentences_name, filter=f"passage_id in {ids[s:s + 200]}",
                    output_fields=["passage_id", "position", "vector"], limit=16_384,
                    consistency_level=STRONG):
                got.setdefault(int(r["passage_id"]), []).append((int(r["position"]), r["vector"]))
        return {p: np.asarray([v for _, v in sorted(rows, key=lambda t: t[0])],
                              dtype=np.float32).reshape(-1, dim)
                for p, rows in got.items()}

    def counts(self) -> dict[str, int]:
        """Rows in each collection, whatever their version (for verify and benchmarks)."""
        self._load()
        out = {}
        for key, name in (("passages", self.passages_name), ("sentences", self.sentences_name)):
            rows = self.client.query(name, filter="", output_fields=["count(*)"],
                                     consistency_level=STRONG)
            out[key] = int(rows[0]["count(*)"])
        return out

    def verify(self) -> dict[str, Any]:
        """Check that exactly the live version of every document is stored, completely:
        IndexDamaged names the first document with missing, extra or orphaned rows."""
        from .milvus_check import verify

        return verify(self)
