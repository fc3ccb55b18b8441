"""The index directory: plain, versioned files, written atomically.

Layout::

    INDEX_DIR/
      CURRENT                  name of the live version, replaced atomically (os.replace)
      LOCK                     held (flock) by the one process writing
      v000007/
        manifest.json          format, embedder, dimension, chunking, documents, file checksums
        chunks.jsonl           one Chunk per line, in row order
        chunk_vectors.npy      float32 (chunks x dim)
        sentence_vectors.npy   float32 (sentences x dim), sentences in chunk order
        sentence_chunks.npy    int32 row of each sentence's chunk
        *.faiss                only for approximate (HNSW) stores, whose build is costly

A writer builds a new version folder beside the live one and then replaces ``CURRENT``; a crash at
any point leaves the old version live and complete. Readers resolve ``CURRENT`` once and read one
version, so they never see a half-written index. No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..chunking import Chunk
from ..errors import IndexBusy, IndexDamaged, IndexNotFound
from .store import FaissStore, VectorStore

FORMAT_VERSION = 1
_VECTOR_FILES = ("chunk_vectors.npy", "sentence_vectors.npy", "sentence_chunks.npy")


@dataclass
class Snapshot:
    """One immutable version of an index, loaded in memory and ready to search."""

    manifest: dict[str, Any]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray
    sentence_chunks: np.ndarray
    version: str = ""
    _stores: dict[str, VectorStore] = field(default_factory=dict, repr=False)

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        return self.manifest["documents"]  # type: ignore[no-any-return]

    @property
    def embedder(self) -> str:
        return str(self.manifest["embedder"])

    @property
    def sentence_offsets(self) -> np.ndarray:
        """``offsets[i]:offsets[i+1]`` are the sentence rows of chunk row ``i``."""
        if "offsets" not in self._stores:
            counts = np.bincount(self.sentence_chunks, minlength=len(self.chunks))
            offsets = np.zeros(len(self.chunks) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            self._stores["offsets"] = offsets  # type: ignore[assignment]
        return self._stores["offsets"]  # type: ignore[return-value]

    def store(self, name: str) -> VectorStore:
        """The vector store over ``chunks`` or ``sentences`` (rows are the ids)."""
        if name not in self._stores:
            vectors = self.chunk_vectors if name == "chunks" else self.sentence_vectors
            self._stores[name] = FaissStore.build(vectors, np.arange(len(vectors)))
        return self._stores[name]

    @classmethod
    def empty(cls, manifest: dict[str, Any], dim: int) -> Snapshot:
        z = np.zeros((0, dim), dtype=np.float32)
        return cls(manifest, [], z, z.copy(), np.zeros(0, dtype=np.int32))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


class IndexDir:
    """Reads and writes versions of an index in one directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"IndexDir({str(self.path)!r})"

    def exists(self) -> bool:
        return (self.path / "CURRENT").is_file()

    def current_version(self) -> str:
        try:
            name = (self.path / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise IndexNotFound(
                f"no index in {self.path}: build one with `qa index PATH --index {self.path}`"
            ) from None
        if not name.startswith("v") or not (self.path / name).is_dir():
            raise IndexDamaged(self._damaged("CURRENT", f"names a missing version {name!r}"))
        return name

    def _damaged(self, file: str, what: str) -> str:
        return (
            f"index {self.path} is damaged: {file} {what}; rebuild it with "
            f"`qa index PATH... --index {self.path} --rebuild` (your documents are untouched)"
        )

    def read_manifest(self) -> tuple[str, dict[str, Any]]:
        version = self.current_version()
        try:
            manifest = json.loads((self.path / version / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexDamaged(self._damaged("manifest.json", f"cannot be read ({exc})")) from exc
        if not isinstance(manifest, dict) or "format_version" not in manifest:
            raise IndexDamaged(self._damaged("manifest.json", "is not an index manifest"))
        if manifest["format_version"] != FORMAT_VERSION:
            raise IndexDamaged(
                f"index {self.path} has format {manifest['format_version']}, this qa reads "
                f"format {FORMAT_VERSION}; rebuild it with `qa index PATH... --index {self.path} "
                "--rebuild`"
            )
        return version, manifest

    def read(self) -> Snapshot:
        """Load the live version, verifying every file against the manifest's checksums."""
        version, manifest = self.read_manifest()
        vdir = self.path / version
        for name, expected in manifest.get("files", {}).items():
            f = vdir / name
            if not f.is_file():
                raise IndexDamaged(self._damaged(name, "is missing"))
            if f.stat().st_size != expected["size"]:
                raise IndexDamaged(self._damaged(name, "has the wrong size (truncated?)"))
            if _sha256(f) != expected["sha256"]:
                raise IndexDamaged(self._damaged(name, "does not match its checksum (edited?)"))
        try:
            with open(vdir / "chunks.jsonl", encoding="utf-8") as fh:
                chunks = [Chunk.from_json(json.loads(line)) for line in fh if line.strip()]
            arrays = {n: np.load(vdir / n, allow_pickle=False) for n in _VECTOR_FILES}
        except (OSError, ValueError, KeyError) as exc:
            raise IndexDamaged(self._damaged(version, f"cannot be read ({exc})")) from exc
        snap = Snapshot(
            manifest,
            chunks,
            arrays["chunk_vectors.npy"],
            arrays["sentence_vectors.npy"],
            arrays["sentence_chunks.npy"],
            version=version,
        )
        dim = manifest["dim"]
        if (
            snap.chunk_vectors.shape != (len(chunks), dim)
            or snap.sentence_vectors.shape[1:] != (dim,)
            or len(snap.sentence_chunks) != len(snap.sentence_vectors)
        ):
            raise IndexDamaged(self._damaged(version, "has arrays of inconsistent shapes"))
        for name in ("chunks", "sentences"):
            kind = manifest.get("stores", {}).get(name, "flat")
            if kind != "flat":
                snap._stores[name] = FaissStore.load(vdir / f"{name}.faiss", kind)
        return snap

    def write(self, snap: Snapshot, *, store_kind: str | None = None) -> str:
        """Write ``snap`` as a new version and make it live; returns the version name.

        The caller must hold :meth:`lock`.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            lines = "".join(
                json.dumps(c.to_json(), ensure_ascii=False) + "\n" for c in snap.chunks
            )
            _write_file(tmp / "chunks.jsonl", lines.encode("utf-8"))
            _save_npy(tmp / "chunk_vectors.npy", snap.chunk_vectors.astype(np.float32))
            _save_npy(tmp / "sentence_vectors.npy", snap.sentence_vectors.astype(np.float32))
            _save_npy(tmp / "sentence_chunks.npy", snap.sentence_chunks.astype(np.int32))
            stores = {}
            for name, vectors in (("chunks", snap.chunk_vectors),
                                  ("sentences", snap.sentence_vectors)):
                store = FaissStore.build(vectors, np.arange(len(vectors)), kind=store_kind)
                stores[name] = store.kind
                if store.kind != "flat":
                    store.save(tmp / f"{name}.faiss")
                    snap._stores[name] = store
            manifest = dict(snap.manifest)
            manifest["format_version"] = FORMAT_VERSION
            manifest["stores"] = stores
            manifest["counts"] = {
                "documents": len(manifest["documents"]),
                "chunks": len(snap.chunks),
                "sentences": len(snap.sentence_vectors),
            }
            manifest["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            manifest["files"] = {
                f.name: {"size": f.stat().st_size, "sha256": _sha256(f)}
                for f in sorted(tmp.iterdir())
            }
            _write_file(
                tmp / "manifest.json",
                json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"),
            )
            _fsync_dir(tmp)
            version = self._next_version()
            os.rename(tmp, self.path / version)
            _write_file(self.path / "CURRENT.tmp", (version + "\n").encode())
            os.replace(self.path / "CURRENT.tmp", self.path / "CURRENT")
            _fsync_dir(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        snap.manifest = manifest
        snap.version = version
        self._prune(keep={version})
        return version

    def _next_version(self) -> str:
        numbers = [int(p.name[1:]) for p in self.path.glob("v[0-9]*") if p.name[1:].isdigit()]
        return f"v{max(numbers, default=0) + 1:06d}"

    def _prune(self, keep: set[str]) -> None:
        """Remove old versions, keeping the newest previous one for readers still loading it."""
        versions = sorted(p for p in self.path.glob("v[0-9]*") if p.is_dir())
        old = [p for p in versions if p.name not in keep]
        for p in old[:-1]:
            shutil.rmtree(p, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the writer lock; wait up to ``wait`` seconds for another writer, else IndexBusy."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IndexBusy(
                            f"index {self.path} is being written by another process; "
                            "try again when it has finished"
                        ) from None
                    time.sleep(0.1)
            # Folders left by a writer that was killed are garbage now that we hold the lock.
            for stale in self.path.glob(".tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            yield
        finally:
            os.close(fd)
