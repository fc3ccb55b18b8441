"""A :class:`~qa.retriever.Retriever` whose index lives in Milvus (:mod:`qa.index.milvus`).

Chosen with ``Retriever.build(..., milvus=URI)`` / ``Retriever.load(milvus=URI)`` or ``--milvus``
on the command line. It answers exactly as the FAISS folder does: the same candidates (the top
passages and the passages of the top sentences, exact search up to EXACT_LIMIT passages), the
same re-scoring of each candidate with its passage and sentence vectors, and the same answer and
abstention code, which it inherits (``Retriever.ask`` only needs :meth:`_score` and a view whose
``chunks[row]`` and ``embedder`` it reads).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..answering import Retrieved
from ..chunking import Chunk, Chunker
from ..documents import Document, SkippedFile, iter_files, load_documents
from ..embedders import Embedder
from ..errors import EmbedderMismatch, EmptyCorpus, IndexNotFound, QAError
from ..retriever import (
    _PASSAGE_CANDIDATES,
    _SENTENCE_CANDIDATES,
    PASSAGE_WEIGHT,
    Retriever,
)
from ..sources import empty_corpus_message, given_paths, source_of, stale_documents
from .milvus import EXACT_LIMIT, MilvusIndex
from .update import Progress, UpdateReport, check_no_clash, passage_means

EMBED_BATCH = 64
_SETTINGS_TTL = 10.0  # seconds a replica trusts its copy of the settings (the ANN switch)


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"I/N"`` (1 <= I <= N) as ``(I, N)``; QAError naming the value otherwise."""
    if spec is None:
        return None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise QAError(f"--shard must be I/N, e.g. 2/4, got {spec!r}") from None
    if not 1 <= i <= n:
        raise QAError(f"--shard I/N needs 1 <= I <= N, got {spec!r}")
    return i, n


def in_shard(doc_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``doc_id`` belongs to shard ``(I, N)``: by a hash of the id, so every worker
    agrees without talking to the others, whatever order it lists files in."""
    if shard is None:
        return True
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
    return h % shard[1] == shard[0] - 1


@dataclass
class MilvusView:
    """What ``Retriever.ask`` reads from a search (the candidate passages by row id), and what
    the API and :func:`~qa.index.document_text.document_text` read (``documents``)."""

    embedder: str
    manifest: dict[str, Any]
    chunks: Any = field(default_factory=dict)  # row id -> Chunk; or one document's, a list
    index: MilvusIndex | None = None
    known: dict[str, dict[str, Any]] | None = None  # the documents, when already read

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """doc_id -> title, sha256, chars, chunks, source (read when asked for)."""
        if self.known is None:
            self.known = self.index.documents() if self.index is not None else {}
        return self.known


class MilvusRetriever(Retriever):
    """Retrieval and cited answers over an index in Milvus; see :class:`~qa.retriever.Retriever`.

    Any number of these, in any number of processes or machines, can search one collection while
    others update it: each document's version switches in one write (see :mod:`qa.index.milvus`).
    """

    def __init__(self, uri: str, collection: str = "qa", *,
                 embedder: Embedder | str | None = None, chunker: Chunker | None = None,
                 passage_vectors: str | None = None) -> None:
        # Not Retriever.__init__: there is no index folder.
        self.milvus = MilvusIndex(uri, collection)
        # The UI and API read .index.path (uploads folder) and .index.exists().
        self.index = self.milvus  # type: ignore[assignment]
        self._embedder_arg = embedder
        self._embedder = embedder if not isinstance(embedder, (str, type(None))) else None
        self._chunker = chunker
        self._passage_vectors = passage_vectors
        self.last_report = None
        self._write_lock = threading.Lock()
        self._load_lock = threading.RLock()
        self._calibration = None
        self._settings: dict[str, Any] | None = None
        self._settings_at = 0.0

    @classmethod
    def build_milvus(cls, paths: Iterable[str | os.PathLike[str]], uri: str,
                     collection: str = "qa", *, embedder: Embedder | str | None = None,
                     chunk_size: int | None = None, passage_vectors: str | None = None,
                     rebuild: bool = False, progress: Progress | None = None,
                     shard: str | tuple[int, int] | None = None) -> MilvusRetriever:
        """Build or incrementally update the index in Milvus from files and folders; with
        ``shard=(I, N)`` (or ``"I/N"``) only the I-th of N disjoint parts of the documents."""
        chunker = Chunker(chunk_size=chunk_size) if chunk_size else None
        r = cls(uri, collection, embedder=embedder, chunker=chunker,
                passage_vectors=passage_vectors)
        part = parse_shard(shard) if isinstance(shard, str) else shard
        r.last_report = r.sync(paths, rebuild=rebuild, progress=progress, shard=part)
        return r

    @classmethod
    def load_milvus(cls, uri: str, collection: str = "qa", *,
                    embedder: Embedder | str | None = None) -> MilvusRetriever:
        """Open an index in Milvus; IndexNotFound / IndexDamaged / EmbedderMismatch if unusable.
        A Milvus Lite file that does not exist is not created (found by an API tester: a
        mistyped path left an empty ``.db`` behind)."""
        r = cls(uri, collection, embedder=embedder)  # (checks the collection's name)
        if uri.endswith(".db") and not os.path.exists(uri):
            raise IndexNotFound(f"no index in Milvus: there is no Milvus Lite file {uri}; build "
                                f"one with `qa index PATH... --milvus {uri}`")
        r.snapshot()
        return r

    # -- state ----------------------------------------------------------------------------

    def settings(self, *, fresh: bool = False) -> dict[str, Any]:
        """The index's settings (embedder, dim, chunking, ann), re-read every few seconds."""
        now = time.monotonic()
        if fresh or self._settings is None or now - self._settings_at > _SETTINGS_TTL:
            settings = self.milvus.settings()
            self._check_embedder_name(settings["embedder"])
            self._settings, self._settings_at = settings, now
        return self._settings

    def _names(self) -> tuple[str, str]:
        return self.milvus.where, self.milvus.options

    def snapshot(self) -> MilvusView:  # type: ignore[override]
        settings = self.settings()
        return MilvusView(settings["embedder"], settings, index=self.milvus)

    def document_text(self, doc_id: str) -> str:
        """The text of an indexed document (see :func:`qa.index.document_text.document_text`),
        from its source file if unchanged, else put together from its passages in Milvus."""
        from .document_text import document_text

        known = self.milvus.documents_of([doc_id])
        view = MilvusView(self.settings()["embedder"], self.settings(), known=known)
        if doc_id in known:
            view.chunks = self.milvus.chunks_of(doc_id, int(known[doc_id]["version"]))
        return document_text(view, doc_id)  # type: ignore[arg-type]  # BadRequest if unknown

    def info(self) -> dict[str, Any]:
        s = self.settings(fresh=True)
        docs = self.milvus.documents()
        return {
            "index_dir": f"milvus:{self.milvus.uri} collection {self.milvus.name}",
            "backend": "milvus",
            "milvus_uri": self.milvus.uri,
            "collection": self.milvus.name,
            "version": "",
            "embedder": s["embedder"],
            "dim": s["dim"],
            "documents": len(docs),
            "passages": sum(int(d["chunks"]) for d in docs.values()),
            "sentences": int(sum(int(d.get("sentences", 0)) for d in docs.values())),
            "chunking": s["chunking"],
            "vector_index": "HNSW" if s.get("ann") else "FLAT",
        }

    def documents(self) -> list[dict[str, Any]]:
        return [{"doc_id": d, "title": m["title"], "chars": m["chars"], "passages": m["chunks"]}
                for d, m in self.milvus.documents().items()]

    # -- updates --------------------------------------------------------------------------

    def _open_for_writing(self, rebuild: bool) -> dict[str, Any]:
        if rebuild:
            self.milvus.drop()
        if self.milvus.exists():
            settings = self.settings(fresh=True)
            self._check_chunking(settings["chunking"])
        else:
            embedder = self.embedder
            chunker = self._chunker or Chunker()
            settings = self.milvus.create({
                "embedder": embedder.name, "dim": embedder.dim,
                "chunking": {**chunker.settings,
                             "passage_vectors": self._passage_vectors or "embed"}})
            self._check_embedder_name(settings["embedder"])
            self._settings, self._settings_at = settings, time.monotonic()
        return settings

    def _update(self, *, upsert: Sequence[Document] = (), remove: Sequence[str] = (),
                sources: dict[str, str] | None = None, rebuild: bool = False,
                progress: Progress | None = None, report: UpdateReport | None = None,
                shard: tuple[int, int] | None = None) -> UpdateReport:
        rep = UpdateReport(skipped=report.skipped if report else [])
        with self._write_lock:
            settings = self._open_for_writing(rebuild)
            self.milvus.recover(lambda d: in_shard(d, shard))
            chunking = settings["chunking"]
            chunker = Chunker.from_settings(chunking)
            live = self.milvus.documents()
            sources = sources or {}
            todo: list[tuple[Document, list[Chunk]]] = []
            for doc in upsert:
                old = live.get(doc.doc_id)
                if old is not None and old.get("sha256") == doc.content_hash:
                    rep.unchanged.append(doc.doc_id)
                    continue
                if old is not None:
                    check_no_clash(doc, old, sources.get(doc.doc_id, doc.path))
                (rep.updated if old is not None else rep.added).append(doc.doc_id)
                todo.append((doc, chunker.split(doc)))
            total = sum(len(c.sentences) + 1 for _, cs in todo for c in cs)
            done = 0
            for doc, chunks in todo:  # one document at a time: each commits on its own
                sv, pv, n = self._embed(chunks, chunking.get("passage_vectors", "embed"))
                rep.embedded_texts += n
                rep.embedded_chars += sum(len(c.text) for c in chunks)
                meta = {"title": doc.title, "sha256": doc.content_hash, "chars": len(doc.text),
                        "chunks": len(chunks), "sentences": len(sv),
                        "source": sources.get(doc.doc_id, doc.path)}
                self.milvus.write_document(doc.doc_id, meta, chunks, pv, sv, live.get(doc.doc_id))
                done += sum(len(c.sentences) + 1 for c in chunks)
                if progress:
                    progress(done, total)
            for doc_id in sorted(set(remove) - {d.doc_id for d in upsert}):
                if doc_id in live:
                    self.milvus.remove_document(doc_id, live[doc_id])
                    rep.removed.append(doc_id)
            if rep.changed:
                self.milvus.flush()
            self._switch_to_ann_if_large(settings)
        return rep

    def _switch_to_ann_if_large(self, settings: dict[str, Any]) -> None:
        if settings.get("ann"):
            return
        if self.milvus.counts()["passages"] > EXACT_LIMIT:
            self.milvus.use_ann_index()
            self.settings(fresh=True)

    def _embed(self, chunks: Sequence[Chunk], how: str) -> tuple[np.ndarray, np.ndarray, int]:
        """Sentence vectors (in chunk order), passage vectors, and how many texts were embedded."""
        emb = self.embedder
        sentences = [s for c in chunks for s in c.sentence_texts()]
        sv = _embed_texts(emb, sentences)
        if how == "mean":
            owner = np.repeat(np.arange(len(chunks)), [len(c.sentences) for c in chunks])
            lengths = np.array([len(s) for s in sentences], np.float32)
            return sv, passage_means(sv, owner, len(chunks), lengths), len(sentences)
        return sv, _embed_texts(emb, [c.text for c in chunks]), len(sentences) + len(chunks)

    def sync(self, paths: Iterable[str | os.PathLike[str]], *, rebuild: bool = False,
             progress: Progress | None = None,
             shard: tuple[int, int] | None = None) -> UpdateReport:
        """Make the index match ``paths`` (only shard ``(I, N)``'s documents, if given)."""
        roots = given_paths(paths)
        if rebuild and shard is not None:
            raise QAError("--rebuild drops the whole collection: run it once without --shard, "
                          "then start the sharded workers")
        docs, skipped = _load(roots, shard)
        if not docs and (rebuild or not self.milvus.exists()):
            raise EmptyCorpus(empty_corpus_message(roots, skipped))
        present = {doc_id for _, doc_id in iter_files(roots)}
        sources = {d.doc_id: source_of(d.path) for d in docs}
        gone = [d for d in stale_documents(roots, self.milvus.documents(), present)
                if in_shard(d, shard)] if self.milvus.exists() and not rebuild else []
        return self._update(upsert=docs, remove=gone, sources=sources, rebuild=rebuild,
                            progress=progress, report=UpdateReport(skipped=skipped), shard=shard)

    # -- search ---------------------------------------------------------------------------

    def _score_vector(self, qv: np.ndarray, k: int) -> Retrieved:
        view = self.snapshot()
        dim = int(view.manifest["dim"])
        if qv.shape[0] != dim:
            raise EmbedderMismatch(f"embedder gives {qv.shape[0]}-dimensional vectors, index "
                                   f"holds {dim}")
        rows, sentence_vectors = self._candidates(qv, k, bool(view.manifest.get("ann")), dim)
        scored: list[tuple[int, float]] = []
        sentence_sims: dict[int, np.ndarray] = {}
        order = sorted(rows)
        if order:
            passage_sims = np.stack([rows[i].vector for i in order]) @ qv
            for pid, passage_sim in zip(order, passage_sims.tolist()):
                sims = sentence_vectors[pid] @ qv
                best = float(sims.max()) if len(sims) else passage_sim
                scored.append((pid, PASSAGE_WEIGHT * passage_sim + (1 - PASSAGE_WEIGHT) * best))
                sentence_sims[pid] = sims
                view.chunks[pid] = rows[pid].chunk
        scored.sort(key=lambda t: -t[1])
        return Retrieved(view, scored, sentence_sims)  # type: ignore[arg-type]

    def _candidates(self, qv: np.ndarray, k: int, ann: bool,
                    dim: int) -> tuple[dict[int, Any], dict[int, np.ndarray]]:
        """Candidate passages of the live versions only, each complete with its sentences.

        A search can race a commit: rows found may belong to a version replaced just after
        (then one fresh search finds the new version's rows, written before the commit), or be
        deleted between reading the versions and reading the rows (then read again)."""
        idx = self.milvus
        rows: dict[int, Any] = {}
        sents: dict[int, np.ndarray] = {}
        for attempt in range(4):
            depth = _PASSAGE_CANDIDATES * (3 if ann else 1) + k
            found = {h["id"]: (h["doc_id"], h["version"])
                     for h in idx.search("passages", qv, depth, ann)}
            if not ann:
                for h in idx.search("sentences", qv, _SENTENCE_CANDIDATES + k):
                    found.setdefault(h["passage_id"], (h["doc_id"], h["version"]))
            live = idx.live_versions(d for d, _ in found.values())
            replaced = any(v < live.get(d, 0) for d, v in found.values())
            if replaced and attempt == 0:
                continue
            keep = [pid for pid, (d, v) in found.items() if live.get(d) == v]
            rows = idx.passages(keep)
            sents = idx.sentence_vectors(list(rows), dim)
            whole = [pid for pid in keep if pid in rows
                     and len(sents.get(pid, ())) == len(rows[pid].chunk.sentences)]
            if len(whole) == len(keep) or attempt == 3:
                rows = {pid: rows[pid] for pid in whole}
                break
        empty = np.zeros((0, dim), np.float32)
        return rows, {pid: sents.get(pid, empty) for pid in rows}


def _embed_texts(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    # Sorted by length so batches are even (as qa.index.update does).
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for b in range(0, len(order), EMBED_BATCH):
        rows = order[b : b + EMBED_BATCH]
        out[rows] = embedder.embed_passages([texts[i] for i in rows])
    return out


def _load(paths: Iterable[str | os.PathLike[str]],
          shard: tuple[int, int] | None) -> tuple[list[Document], list[SkippedFile]]:
    """Read the supported files under ``paths`` that belong to ``shard`` (all without one)."""
    return load_documents(paths, only=lambda doc_id: in_shard(doc_id, shard))

