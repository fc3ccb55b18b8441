"""The retriever: build or load an index, search it, and answer questions with citations.

Scoring works at two granularities. Every passage and every sentence has a vector; a passage's
score is ``PASSAGE_WEIGHT * cos(question, passage) + (1 - PASSAGE_WEIGHT) * max cos(question,
sentence in passage)``. On the XQuAD cross-lingual set this lifts the right paragraph at rank 1
from 0.86 (passages alone) to 0.93 (see BENCHMARKS.md and eval/).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import abstain, conversation
from .answer import Answer, Passage
from .answering import FEATURE_PASSAGES, Retrieved, build_answer, language_axis, models_for
from .chunking import Chunker
from .compatibility import check_chunking, check_embedder
from .default_index import default_index_dir, open_default, sample_corpus_dir
from .documents import SkippedFile, iter_files, load_documents
from .embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from .errors import BadRequest, EmbedderMismatch, EmptyCorpus, IndexBusy
from .index import IndexDir, Snapshot
from .index.document_text import document_text
from .index.update import Progress, UpdateReport, apply_update, rewrite
from .limits import DEFAULT_K, check_k, clean_question
from .sources import empty_corpus_message, given_paths, source_of, stale_documents

# Taken from here by qa.generation and eval/.
__all__ = ["DEFAULT_K", "Retriever", "check_k", "clean_question", "default_index_dir",
           "open_default", "sample_corpus_dir"]

PASSAGE_WEIGHT = 0.3
# Candidates fetched from each vector store before exact re-scoring.
_SENTENCE_CANDIDATES = 64
_PASSAGE_CANDIDATES = 32
# How long an update waits for the one before it (in this process or another) before giving up
# with IndexBusy. Queries never wait: they take no lock and read the live snapshot.
WRITE_WAIT_S = 30.0


class Retriever:
    """Cross-lingual retrieval and cited answers over one index directory.

    >>> r = Retriever.build(["docs/"], "my-index")      # or Retriever.load("my-index")
    >>> r.ask("What did Ukraine offer in Istanbul?").text

    Searching is thread-safe; updates (:meth:`add`, :meth:`remove`, :meth:`sync`) build a new
    index version on disk and swap it in atomically, so a query never sees a half-written index.
    """

    # The fitted sentence ranker of the index's embedder, set on the first question (also for
    # subclasses with their own constructor).
    _ranker: dict[str, Any] | None = None
    # The embedder's language axis (answering.language_axis), read with the first question;
    # ``...`` until then.
    _axis: Any = ...

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        *,
        embedder: Embedder | str | None = None,
        chunker: Chunker | None = None,
        passage_vectors: str | None = None,
    ) -> None:
        self.index = IndexDir(index_dir)
        self._embedder_arg = embedder
        self._embedder: Embedder | None = embedder if not isinstance(embedder, (str, type(None))) \
            else None
        self._chunker = chunker
        self._passage_vectors = passage_vectors
        self._snapshot: Snapshot | None = None
        # CURRENT as it was when _snapshot was read: another process's update changes it.
        self._live_token: tuple[int, int, int] | None = None
        self.last_report: UpdateReport | None = None
        """What the last :meth:`build` did (added, updated, removed, skipped files)."""
        self._write_lock = threading.Lock()
        # Re-entrant: loading the embedder may first load the snapshot to learn its name.
        self._load_lock = threading.RLock()
        # The fitted sentence ranker and abstention model of the index's embedder (set on the
        # first question).
        self._ranker = None
        self._calibration: dict[str, Any] | None = None

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        paths: Iterable[str | os.PathLike[str]],
        index_dir: str | os.PathLike[str] | None = None,
        *,
        embedder: Embedder | str | None = None,
        chunk_size: int | None = None,
        passage_vectors: str | None = None,
        rebuild: bool = False,
        progress: Progress | None = None,
        milvus: str | None = None,
        collection: str = "qa",
        shard: str | tuple[int, int] | None = None,
    ) -> Retriever:
        """Build (or incrementally update) the index in ``index_dir`` from files and folders.

        Documents that were indexed from these folders and no longer exist are removed.
        Options left out keep what an existing index was built with (a new one gets the
        defaults); options it cannot honour without re-embedding everything (another embedder,
        chunk size or ``passage_vectors``) raise BadRequest unless ``rebuild=True``, which
        starts from scratch. ``milvus=URI`` keeps the index in Milvus instead (collection
        ``collection``; ``shard="I/N"`` indexes only the I-th of N parts), see
        :mod:`qa.index.milvus_retriever`.
        """
        if rebuild and embedder is None:  # from scratch: the default, not the old index's model
            embedder = DEFAULT_EMBEDDER
        if milvus:
            from .index.milvus_retriever import MilvusRetriever

            return MilvusRetriever.build_milvus(
                paths, milvus, collection, embedder=embedder, chunk_size=chunk_size,
                passage_vectors=passage_vectors,
                rebuild=rebuild, progress=progress, shard=shard)
        if index_dir is None or shard is not None:
            raise BadRequest("give an index directory (or milvus=URI; shards need milvus)")
        chunker = Chunker(chunk_size=chunk_size) if chunk_size is not None else None
        r = cls(index_dir, embedder=embedder, chunker=chunker, passage_vectors=passage_vectors)
        r.last_report = r.sync(paths, rebuild=rebuild, progress=progress)
        return r

    @classmethod
    def load(
        cls, index_dir: str | os.PathLike[str] | None = None, *,
        embedder: Embedder | str | None = None, milvus: str | None = None,
        collection: str = "qa",
    ) -> Retriever:
        """Open an existing index (in ``index_dir``, or in Milvus at ``milvus=URI``). The
        embedder it was built with is loaded on first query."""
        if milvus:
            from .index.milvus_retriever import MilvusRetriever

            return MilvusRetriever.load_milvus(milvus, collection, embedder=embedder)
        if index_dir is None:
            raise BadRequest("give an index directory (or milvus=URI)")
        r = cls(index_dir, embedder=embedder)
        r.snapshot()  # fail now, with a clear message, if missing or damaged
        return r

    # -- state ----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The live index version (loaded on first use, and again when another process made a
        newer one live: a server never answers from a replaced or deleted version)."""
        snap = self._snapshot
        if snap is None or self.index.live_token() != self._live_token:
            with self._load_lock:
                token = self.index.live_token()
                if self._snapshot is None or token != self._live_token:
                    snap = self.index.read()
                    self._check_embedder_name(snap.embedder)
                    self._snapshot, self._live_token = snap, token
                snap = self._snapshot
        return snap

    def _names(self) -> tuple[str, str]:
        """How messages name this index, and the ``qa index`` options that name it."""
        return f"index {self.index.path}", f"--index {self.index.path}"

    def _check_embedder_name(self, built_with: str) -> None:
        check_embedder(self._embedder_arg, built_with, *self._names())

    def _check_chunking(self, built: dict[str, Any]) -> None:
        chunk_size = self._chunker.chunk_size if self._chunker is not None else None
        check_chunking({"chunk_size": chunk_size, "passage_vectors": self._passage_vectors},
                       built, *self._names())

    @property
    def embedder(self) -> Embedder:
        """The embedding model (loaded lazily: loading costs time and memory)."""
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    spec = self._embedder_arg
                    if spec is None:
                        spec = self.snapshot().embedder if self.index.exists() else DEFAULT_EMBEDDER
                    self._embedder = get_embedder(str(spec))
        return self._embedder

    def info(self) -> dict[str, Any]:
        """What is in the index: counts, model, chunking, index directory."""
        snap = self.snapshot()
        return {
            "index_dir": str(self.index.path),
            "version": snap.version,
            "embedder": snap.embedder,
            "dim": snap.manifest["dim"],
            "documents": snap.document_count,
            "passages": snap.passage_count,
            "sentences": snap.sentence_count,
            "segments": len(snap.views),
            "chunking": snap.manifest["chunking"],
        }

    def documents(self) -> list[dict[str, Any]]:
        """Indexed documents: id, title, size in characters, number of passages."""
        return [
            {"doc_id": d, "title": m["title"], "chars": m["chars"], "passages": m["chunks"]}
            for d, m in self.snapshot().documents.items()
        ]

    def document_text(self, doc_id: str) -> str:
        """The text of an indexed document, as its passages' and citations' offsets refer to it
        (see :func:`qa.index.document_text.document_text`); BadRequest for an unknown id."""
        return document_text(self.snapshot(), doc_id)

    # -- updates --------------------------------------------------------------------------

    def _base_snapshot(self, rebuild: bool) -> Snapshot:
        if self.index.exists() and not rebuild:
            snap = self.index.read()
            self._check_embedder_name(snap.embedder)
            self._check_chunking(snap.manifest["chunking"])
            return snap
        embedder = self.embedder
        chunker = self._chunker or Chunker()
        manifest = {
            "embedder": embedder.name,
            "dim": embedder.dim,
            "chunking": {**chunker.settings,
                         "passage_vectors": self._passage_vectors or "embed"},
        }
        return Snapshot.empty(manifest)

    @contextmanager
    def _writers_turn(self) -> Iterator[None]:
        # A bounded wait: a writer blocked for ever held its thread for ever, and enough of them
        # used up a server's threads, queries included (#17.3).
        if not self._write_lock.acquire(timeout=WRITE_WAIT_S):
            raise IndexBusy(f"index {self.index.path} is busy with another update; try again "
                            "when it has finished")
        try:
            yield
        finally:
            self._write_lock.release()

    def _update(self, *, upsert: Sequence[Any] = (), remove: Sequence[str] = (),
                sources: dict[str, str] | None = None, rebuild: bool = False,
                progress: Progress | None = None,
                report: UpdateReport | None = None) -> UpdateReport:
        with self._writers_turn(), self.index.lock(wait=WRITE_WAIT_S):
            old = self._base_snapshot(rebuild)
            chunking = old.manifest["chunking"]
            chunker = Chunker.from_settings(chunking)
            rep = apply_update(self.index, old, upsert=upsert, remove=remove, sources=sources,
                               embedder=self.embedder, chunker=chunker,
                               passage_vectors=chunking.get("passage_vectors", "embed"),
                               progress=progress, force=rebuild or not self.index.exists())
            if report is not None:
                rep.skipped = report.skipped
            self._snapshot = None  # read again, from what was written
            return rep

    def optimize(self) -> None:
        """Merge the index's segments into one, dropping deleted passages (``qa index
        --optimize``): answering then searches one structure, rebuilt for the whole index."""
        with self._writers_turn(), self.index.lock(wait=WRITE_WAIT_S):
            rewrite(self.index, self.index.read())
            self._snapshot = None

    def add(
        self, paths: Iterable[str | os.PathLike[str]], *, progress: Progress | None = None
    ) -> UpdateReport:
        """Add or update the documents at ``paths`` (files or folders). Unreadable files are
        skipped and listed in the report; nothing already indexed is lost."""
        paths = given_paths(paths)
        docs, skipped = load_documents(paths)
        if not docs and not self.index.exists():
            raise EmptyCorpus(empty_corpus_message(paths, skipped))
        return self._update(upsert=docs, sources={d.doc_id: d.path for d in docs},
                            progress=progress, report=UpdateReport(skipped=skipped))

    def remove(self, doc_ids: Iterable[str]) -> UpdateReport:
        """Remove documents by id (as ``documents()`` lists them; one id may be given as a
        string). Ids not in the index change nothing and are listed in the report's
        ``skipped``."""
        ids = [doc_ids] if isinstance(doc_ids, str) else [str(d) for d in doc_ids]
        rep = self._update(remove=ids)
        rep.skipped = [SkippedFile(d, "not in the index (give a document id as documents() "
                                      "lists it)") for d in dict.fromkeys(ids)
                       if d not in rep.removed]
        return rep

    def sync(self, paths: Iterable[str | os.PathLike[str]], *, rebuild: bool = False,
             progress: Progress | None = None) -> UpdateReport:
        """Make the index match ``paths``: add new, replace changed, and remove documents that
        were indexed from these folders but are gone. Unreadable files keep their old version."""
        roots = given_paths(paths)
        docs, skipped = load_documents(roots)
        if not docs and (rebuild or not self.index.exists()):
            raise EmptyCorpus(empty_corpus_message(roots, skipped))
        present = {doc_id for _, doc_id in iter_files(roots)}
        sources = {d.doc_id: source_of(d.path) for d in docs}
        gone = stale_documents(roots, self.snapshot().documents, present) \
            if self.index.exists() and not rebuild else []
        return self._update(upsert=docs, remove=gone, sources=sources, rebuild=rebuild,
                            progress=progress, report=UpdateReport(skipped=skipped))

    # -- search ---------------------------------------------------------------------------

    def _embed_queries(self, texts: list[str]) -> np.ndarray:
        """Question vectors as they are searched with: the embedder's language axis removed
        (if it has one), unit length."""
        q = self.embedder.embed_queries(texts)
        snap = self.snapshot()
        dim = snap.manifest["dim"]
        if q.shape[1] != dim:
            raise EmbedderMismatch(
                f"embedder gives {q.shape[1]}-dimensional vectors, index holds {dim}")
        if self._axis is ...:
            self._axis = language_axis(snap.embedder, dim)
        if self._axis is not None:
            q = q - np.outer(q @ self._axis, self._axis)
            q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        return q.astype(np.float32)

    def _score_vector(self, qv: np.ndarray, k: int) -> Retrieved:
        """Passages for the query vector ``qv``, best first, with their sentences' similarity."""
        snap = self.snapshot()
        if not snap.passage_count:
            return Retrieved(snap, [], {})
        q = qv[None, :].astype(np.float32)
        # Without a sentence store (large segments) more passages are re-scored instead.
        rows_in_order = snap.candidate_rows(q, passages=_PASSAGE_CANDIDATES + k,
                                            sentences=_SENTENCE_CANDIDATES + k)
        scored: list[tuple[int, float]] = []
        sentence_sims: dict[int, np.ndarray] = {}
        passage_vectors, sentence_vectors, bounds = snap.rescoring_vectors(rows_in_order)
        passage_sims = passage_vectors @ qv
        all_sims = sentence_vectors @ qv  # one product for all sentences, split by passage
        for row, passage_sim, lo, hi in zip(rows_in_order, passage_sims.tolist(), bounds[:-1],
                                            bounds[1:]):
            sims = all_sims[lo:hi]
            best = float(sims.max()) if len(sims) else passage_sim
            scored.append((row, PASSAGE_WEIGHT * passage_sim + (1 - PASSAGE_WEIGHT) * best))
            sentence_sims[row] = sims
        scored.sort(key=lambda t: -t[1])
        return Retrieved(snap, scored, sentence_sims)

    def search(self, question: str, k: int = DEFAULT_K) -> list[Passage]:
        """The ``k`` passages that best answer ``question``, best first."""
        return self.ask(question, k).passages

    def ask(
        self, question: str, k: int = DEFAULT_K, *, history: Sequence[Any] | None = None
    ) -> Answer:
        """Answer ``question`` from the documents, citing passages; abstain when unsupported.

        ``history`` holds the earlier turns of a conversation, oldest first, each
        ``{"question": str, "answer": str}`` (at most 20): a follow-up that does not stand alone
        is read with the turn it leans on, and ``Answer.history_used`` says which.
        """
        question = clean_question(question)
        k = check_k(k)
        turns = conversation.parse_history(history)
        refuse = abstain.not_a_question(question)
        # Input that asks nothing ("thanks", "?") leans on no turn: nothing is read for it.
        used = [] if refuse else conversation.leans_on(question, turns)
        depth = max(k, FEATURE_PASSAGES)
        if used:
            q, ctx = self._embed_queries([question, conversation.context_text(turns, used)])
            qv = q + conversation.context_weight(question) * ctx
            qv = qv / (np.linalg.norm(qv) or 1.0)
            found = self._score_vector(qv, depth).with_own_words(self._score_vector(q, depth))
        else:
            found = self._score_vector(self._embed_queries([question])[0], depth)
        if self._ranker is None or self._calibration is None:
            ranker, abstainer = models_for(found.snapshot.embedder)
            self._ranker = self._ranker or ranker
            self._calibration = self._calibration or abstainer
        return build_answer(question, found, k, ranker=self._ranker,
                            abstainer=self._calibration, history_used=used, refuse=refuse)

