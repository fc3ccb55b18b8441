"""The index directory: plain, versioned files, written atomically.

Layout::

    INDEX_DIR/
      CURRENT                  name of the live version, replaced atomically (os.replace)
      PUBLISHED                the newest version ever made live: CURRENT naming an older one
                               is a rollback by hand, refused
      LOCK                     held (flock) by the one process writing
      v000007/
        manifest.json          format, embedder, dimension, chunking, counts, file checksums
        documents.json         per document: title, content hash, size, passages, source
        chunks.jsonl           one Chunk per line, in row order
        chunk_offsets.npy      int64 byte offset of each line of chunks.jsonl (and the end)
        chunk_vectors.npy      float32 (chunks x dim)
        sentence_vectors.npy   float32 (sentences x dim), sentences in chunk order
        sentence_chunks.npy    int32 row of each sentence's chunk
        chunks.faiss           only above EXACT_LIMIT passages: the approximate (IVF) store

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
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np

from ..chunking import Chunk
from ..errors import BadRequest, IndexBusy, IndexDamaged, IndexNotFound
from .faiss_store import EXACT_LIMIT, FaissStore, VectorStore

FORMAT_VERSION = 3
# Format 2 held the documents inside manifest.json; 3 moved them to documents.json, read only
# when asked for, so answering from an index of 100k documents does not parse them at start.
_READABLE_FORMATS = (2, 3)
_VECTOR_FILES = ("chunk_vectors.npy", "sentence_vectors.npy", "sentence_chunks.npy")
# What loading opens, so what the manifest must hold checksums for.
_CHECKED_FILES = ("chunks.jsonl", "chunk_offsets.npy", *_VECTOR_FILES)
_MANIFEST_KEYS = {"embedder": str, "dim": int, "chunking": dict, "files": dict,
                  "stores": dict}
# Version folders are named v + six digits (more after a million versions); "v1" is not ours.
_VERSION_NAME = re.compile(r"v[0-9]{6,}")
# What an index folder may hold besides its versions: anything else means it is not an index
# (or not only one), and a writer refuses it rather than mixing its files with the user's.
_OWN_NAMES = re.compile(r"LOCK|CURRENT(\.tmp)?|PUBLISHED(\.tmp)?|\.tmp-.*|uploads")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Files up to this size are checksummed whole on every load; larger ones (vectors of big indexes)
# by size and 32 sampled blocks, so a cold start stays fast; `IndexDir.verify()` checks all.
FULL_CHECK_BYTES = 16 * 2**20
_SAMPLE_BLOCKS = 32
_SAMPLE_BLOCK = 64 * 1024


def _pread_exact(f: BinaryIO, size: int, offset: int) -> bytes:
    data = os.pread(f.fileno(), size, offset)
    if len(data) != size:
        raise IndexDamaged(f"index file {f.name} is shorter than its manifest says (truncated?); "
                           "rebuild it with `qa index`")
    return data


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's content without its own checksum: a flipped bit anywhere in it
    (the embedder's name, the dimension) is caught like damage to any other file."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_unit_rows(vectors: np.ndarray, file: str) -> np.ndarray:
    """``vectors`` if every row is unit length (or zero), else IndexDamaged.

    Large vector files are checksummed by sampled blocks on load, so a changed byte elsewhere
    would reach answering: a cosine of 8 ranks a wrong passage first. Answering reads a few
    hundred rows, whose norms cost nothing next to the read.
    """
    sq = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)
    bad = ~(np.abs(sq - 1.0) <= 0.02) & (sq != 0.0)
    if bad.any():
        raise IndexDamaged(
            f"index file {file} holds a damaged vector (length {float(np.sqrt(sq[bad][0])):.3g},"
            " not 1); rebuild the index with `qa index PATH... --index DIR --rebuild` "
            "(your documents are untouched)")
    return vectors


def _open_random(path: Path) -> BinaryIO:
    """Open a file read at random offsets: no readahead, so a query reads only what it needs."""
    f = open(path, "rb")  # noqa: SIM115 - lives as long as the snapshot that reads it
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
    return f


class NpyRows:
    """Rows of a 2-D ``.npy`` file, read on demand with ``pread``.

    Answering reads a few hundred vectors out of gigabytes. Through a memory map each such read
    made a whole large page-cache folio resident in the process, so after a few hundred questions
    most of a million-passage index counted as the process's memory; ``pread`` copies just the
    rows asked for, and the page cache stays the kernel's to reclaim.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _open_random(path)
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
        data = _pread_exact(self._file, n * self._row_bytes, self._start + lo * self._row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(n, self.shape[1])

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The given rows, in order."""
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        for i, r in enumerate(rows):
            out[i] = self.span(int(r), int(r) + 1)[0]
        return out


class ArrayRows:
    """The same reads as :class:`NpyRows` over an array already in memory."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def span(self, lo: int, hi: int) -> np.ndarray:
        return np.asarray(self._array[lo:hi])

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        return np.asarray(self._array[np.asarray(rows, dtype=np.int64)])


class ChunkTable(Sequence[Chunk]):
    """Passages read on demand from ``chunks.jsonl`` through their byte offsets, so a million
    passages cost memory only for the offsets."""

    def __init__(self, path: Path, offsets: np.ndarray) -> None:
        self._offsets = offsets
        self._file = _open_random(path)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, i: int) -> Chunk: ...
    @overload
    def __getitem__(self, i: slice) -> list[Chunk]: ...

    def __getitem__(self, i: int | slice) -> Chunk | list[Chunk]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        return Chunk.from_json(json.loads(_pread_exact(self._file, end - start, start)))


@dataclass
class Snapshot:
    """One immutable version of an index, loaded in memory and ready to search."""

    manifest: dict[str, Any]
    chunks: Sequence[Chunk]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray
    sentence_chunks: np.ndarray
    version: str = ""
    _stores: dict[str, VectorStore] = field(default_factory=dict, repr=False)
    # How answering reads vectors: from the files for a loaded index, else from the arrays.
    _chunk_rows: NpyRows | ArrayRows | None = field(default=None, repr=False)
    _sentence_rows: NpyRows | ArrayRows | None = field(default=None, repr=False)
    # The documents, until first asked for (see FORMAT_VERSION); opened at load, so that a
    # newer version pruning this one's folder cannot take them away.
    _documents_file: BinaryIO | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._chunk_rows = self._chunk_rows or ArrayRows(self.chunk_vectors)
        self._sentence_rows = self._sentence_rows or ArrayRows(self.sentence_vectors)

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """doc_id -> title, sha256, chars, chunks, source."""
        if "documents" not in self.manifest:
            f = self._documents_file
            try:
                docs = (json.loads(_pread_exact(f, os.fstat(f.fileno()).st_size, 0))
                        if f else None)
            except (OSError, ValueError) as exc:
                raise IndexDamaged(f"index file {getattr(f, 'name', 'documents.json')} cannot be "
                                   f"read ({exc}); rebuild it with `qa index`") from exc
            if not isinstance(docs, dict):
                raise IndexDamaged(f"index file {getattr(f, 'name', 'documents.json')} holds no "
                                   "document list; rebuild it with `qa index`")
            self.manifest["documents"] = docs
        return self.manifest["documents"]  # type: ignore[no-any-return]

    @property
    def document_count(self) -> int:
        """Number of documents, without reading their list when the manifest counts them."""
        counts = self.manifest.get("counts", {})
        if "documents" not in self.manifest and isinstance(counts.get("documents"), int):
            return int(counts["documents"])
        return len(self.documents)

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

    def passage_vectors(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The vectors of the given chunk rows, read without mapping the whole file."""
        assert self._chunk_rows is not None
        return check_unit_rows(self._chunk_rows.take(rows), self._file_name(self._chunk_rows))

    def sentence_vectors_of(self, row: int) -> np.ndarray:
        """The vectors of chunk row ``row``'s sentences, in one read."""
        assert self._sentence_rows is not None
        offsets = self.sentence_offsets
        vectors = self._sentence_rows.span(int(offsets[row]), int(offsets[row + 1]))
        return check_unit_rows(vectors, self._file_name(self._sentence_rows))

    @staticmethod
    def _file_name(rows: NpyRows | ArrayRows) -> str:
        return str(getattr(rows, "path", "vectors"))

    def vector_blocks(self, which: str, block: int = 1 << 16) -> Iterator[np.ndarray]:
        """The ``"chunks"`` or ``"sentences"`` vectors, in order, ``block`` rows at a time, read
        without mapping the file (an update of a large index copies them through this)."""
        rows = self._chunk_rows if which == "chunks" else self._sentence_rows
        n = len(self.chunk_vectors if which == "chunks" else self.sentence_vectors)
        assert rows is not None
        for start in range(0, n, block):
            yield rows.span(start, min(n, start + block))

    def store(self, name: str) -> VectorStore | None:
        """The vector store over ``chunks`` or ``sentences`` (rows are the ids). Above
        EXACT_LIMIT passages there is no sentence store: candidates come from the approximate
        passage store and are re-scored with their sentences' vectors."""
        if name not in self._stores:
            if name == "sentences" and len(self.chunks) > EXACT_LIMIT:
                return None
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


def _sampled_sha256(path: Path) -> str:
    """SHA-256 over the size and 32 evenly spaced 64 KiB blocks (first and last included)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for i in range(_SAMPLE_BLOCKS):
            f.seek(max(0, (size - _SAMPLE_BLOCK) * i // (_SAMPLE_BLOCKS - 1)))
            h.update(f.read(_SAMPLE_BLOCK))
    return h.hexdigest()


def _checksums(path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    if entry["size"] > FULL_CHECK_BYTES:
        entry["sampled_sha256"] = _sampled_sha256(path)
    return entry


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
        except (OSError, UnicodeDecodeError) as exc:  # a folder, unreadable, not text
            raise IndexDamaged(self._damaged("CURRENT", "cannot be read")) from exc
        # Only a version folder of this index: never "../elsewhere" or "v000001/../..".
        if not _VERSION_NAME.fullmatch(name) or not (self.path / name).is_dir():
            raise IndexDamaged(self._damaged("CURRENT", f"names a missing version {name[:80]!r}"))
        published = self._published()
        if published is not None and int(name[1:]) < int(published[1:]):
            raise IndexDamaged(self._damaged(
                "CURRENT", f"names {name}, older than {published}, the last version made live "
                "(rolled back by hand?)"))
        return name

    def _published(self) -> str | None:
        """The newest version ever made live, if recorded (indexes written before it was are
        not checked)."""
        try:
            name = (self.path / "PUBLISHED").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexDamaged(self._damaged("PUBLISHED", "cannot be read")) from exc
        if not _VERSION_NAME.fullmatch(name):
            raise IndexDamaged(self._damaged("PUBLISHED", "does not name a version"))
        return name

    def live_token(self) -> tuple[int, int, int] | None:
        """Identifies the live version cheaply (one ``stat``): it changes when a writer replaces
        ``CURRENT``, so a long-running reader can tell that it must load the new version."""
        try:
            st = os.stat(self.path / "CURRENT")
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

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
        if manifest["format_version"] not in _READABLE_FORMATS:
            raise IndexDamaged(
                f"index {self.path} has format {manifest['format_version']}, this qa reads "
                f"formats {', '.join(map(str, _READABLE_FORMATS))}; rebuild it with "
                f"`qa index PATH... --index {self.path} --rebuild`"
            )
        recorded = manifest.get("manifest_sha256")
        if recorded is not None and recorded != manifest_checksum(manifest):
            raise IndexDamaged(self._damaged("manifest.json", "does not match its checksum "
                                             "(edited or damaged?)"))
        inline = manifest["format_version"] == 2 or "documents" in manifest
        keys = dict(_MANIFEST_KEYS, **({"documents": dict} if inline else {}))
        for key, kind in keys.items():
            if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
                raise IndexDamaged(self._damaged("manifest.json", f"has no valid {key!r}"))
        return version, manifest

    def verify(self, *, full: bool = True) -> tuple[str, dict[str, Any]]:
        """Check every file of the live version against the manifest; IndexDamaged if not.
        ``full=False`` checks large files by size and sampled blocks only (what loading does)."""
        version, manifest = self.read_manifest()
        vdir = self.path / version
        # Every file that loading opens must have a checksum: an edited manifest that drops
        # entries (or the whole list) must not switch verification off.
        required = set(_CHECKED_FILES) | ({"documents.json"} if "documents" not in manifest
                                          else set())
        for store, kind in manifest.get("stores", {}).items():
            if kind not in ("flat", "none"):
                required.add(f"{store}.faiss")
        files = manifest["files"]
        if not required <= set(files) or not all(
            isinstance(e, dict) and isinstance(e.get("size"), int)
            and isinstance(e.get("sha256"), str) and _PLAIN_NAME.fullmatch(n)
            for n, e in files.items()
        ):
            raise IndexDamaged(self._damaged("manifest.json", "has an incomplete checksum list"))
        for name, expected in files.items():
            f = vdir / name
            if not f.is_file():
                raise IndexDamaged(self._damaged(name, "is missing"))
            if f.stat().st_size != expected["size"]:
                raise IndexDamaged(self._damaged(name, "has the wrong size (truncated?)"))
            sampled = not full and "sampled_sha256" in expected
            actual = _sampled_sha256(f) if sampled else _sha256(f)
            if actual != expected["sampled_sha256" if sampled else "sha256"]:
                raise IndexDamaged(self._damaged(name, "does not match its checksum (edited?)"))
        return version, manifest

    def read(self) -> Snapshot:
        """Load the live version, verifying its files against the manifest's checksums.
        Vectors are memory-mapped and passages read on demand."""
        version, manifest = self.verify(full=False)
        vdir = self.path / version
        try:
            offsets = np.load(vdir / "chunk_offsets.npy", allow_pickle=False)
            chunks = ChunkTable(vdir / "chunks.jsonl", offsets)
            # Memory-mapped for whole-array work (updates, small flat stores); answering reads
            # rows through NpyRows instead.
            arrays = {n: np.load(vdir / n, allow_pickle=False, mmap_mode="r")
                      for n in _VECTOR_FILES}
            rows = {n: NpyRows(vdir / n) for n in ("chunk_vectors.npy", "sentence_vectors.npy")}
            documents_file = (open(vdir / "documents.json", "rb")  # noqa: SIM115 - see field
                              if "documents" not in manifest else None)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexDamaged(self._damaged(version, f"cannot be read ({exc})")) from exc
        snap = Snapshot(
            manifest,
            chunks,
            arrays["chunk_vectors.npy"],
            arrays["sentence_vectors.npy"],
            arrays["sentence_chunks.npy"],
            version=version,
            _chunk_rows=rows["chunk_vectors.npy"],
            _sentence_rows=rows["sentence_vectors.npy"],
            _documents_file=documents_file,
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
            if kind not in ("flat", "none"):
                try:
                    snap._stores[name] = FaissStore.load(vdir / f"{name}.faiss", kind)
                except RuntimeError as exc:
                    raise IndexDamaged(self._damaged(f"{name}.faiss", "cannot be read")) from exc
        return snap

    def write(self, snap: Snapshot, *, store_kind: str | None = None) -> str:
        """Write ``snap`` as a new version and make it live; returns the version name.

        The caller must hold :meth:`lock`.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            lines = [
                (json.dumps(c.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
                for c in snap.chunks
            ]
            offsets = np.zeros(len(lines) + 1, dtype=np.int64)
            np.cumsum([len(x) for x in lines], out=offsets[1:])
            _write_file(tmp / "chunks.jsonl", b"".join(lines))
            del lines
            _save_npy(tmp / "chunk_offsets.npy", offsets)
            # np.asarray, not astype: no copy of arrays that are float32 already (gigabytes at
            # a million passages).
            _save_npy(tmp / "chunk_vectors.npy", np.asarray(snap.chunk_vectors, np.float32))
            _save_npy(tmp / "sentence_vectors.npy", np.asarray(snap.sentence_vectors, np.float32))
            _save_npy(tmp / "sentence_chunks.npy", np.asarray(snap.sentence_chunks, np.int32))
            kind = store_kind or ("flat" if len(snap.chunks) <= EXACT_LIMIT else "ivf")
            stores = {"chunks": kind, "sentences": "flat" if kind == "flat" else "none"}
            if kind != "flat":  # approximate stores are costly to build: build once, save
                store = FaissStore.build(snap.chunk_vectors, np.arange(len(snap.chunks)),
                                         kind=kind)
                store.save(tmp / "chunks.faiss")
                snap._stores["chunks"] = store
            documents = snap.documents
            _write_file(tmp / "documents.json",
                        json.dumps(documents, ensure_ascii=False, indent=0).encode("utf-8"))
            manifest = {k: v for k, v in snap.manifest.items() if k != "documents"}
            manifest["format_version"] = FORMAT_VERSION
            manifest["stores"] = stores
            manifest["counts"] = {
                "documents": len(documents),
                "chunks": len(snap.chunks),
                "sentences": len(snap.sentence_vectors),
            }
            manifest["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            manifest["files"] = {f.name: _checksums(f) for f in sorted(tmp.iterdir())}
            manifest["manifest_sha256"] = manifest_checksum(manifest)
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
            # After CURRENT: a kill in between leaves PUBLISHED behind CURRENT, which is fine;
            # the other order would make the live version look rolled back.
            _write_file(self.path / "PUBLISHED.tmp", (version + "\n").encode())
            os.replace(self.path / "PUBLISHED.tmp", self.path / "PUBLISHED")
            _fsync_dir(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        snap.manifest = {**manifest, "documents": documents}
        snap.version = version
        self._prune(keep={version})
        return version

    def _next_version(self) -> str:
        # Every v+digits name counts, the user's too, so a new version never takes one.
        numbers = [int(p.name[1:]) for p in self.path.glob("v[0-9]*") if p.name[1:].isdigit()]
        return f"v{max(numbers, default=0) + 1:06d}"

    def _own_versions(self) -> list[Path]:
        """Version folders this index wrote (named v + six digits, holding a manifest), oldest
        first. Nothing else in the folder is ever removed."""
        return sorted(p for p in self.path.glob("v[0-9]*")
                      if _VERSION_NAME.fullmatch(p.name) and (p / "manifest.json").is_file())

    def _prune(self, keep: set[str]) -> None:
        """Remove old versions, keeping the newest previous one for readers still loading it."""
        old = [p for p in self._own_versions() if p.name not in keep]
        for p in old[:-1]:
            shutil.rmtree(p, ignore_errors=True)

    def _refuse_foreign_folder(self) -> None:
        """BadRequest if the folder exists, is not an index and holds anything an index did not
        write: an index must never mix its files with the user's, nor remove them."""
        if not self.path.exists() or (self.path / "CURRENT").exists():
            return
        if not self.path.is_dir():
            raise BadRequest(f"{self.path} is not a folder; give --index a new or empty folder")
        foreign = sorted(p.name for p in self.path.iterdir()
                         if not _OWN_NAMES.fullmatch(p.name) and p not in self._own_versions())
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise BadRequest(f"{self.path} is not an index and not empty ({shown}); give "
                             "--index a new or empty folder (nothing was changed)")

    @contextlib.contextmanager
    def lock(self, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the writer lock; wait up to ``wait`` seconds for another writer, else IndexBusy.
        BadRequest if the folder holds other things than an index."""
        self._refuse_foreign_folder()
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
            # Folders left by a writer that was killed are garbage now that we hold the lock:
            # unfinished ones, and versions newer than the live one (killed before CURRENT was
            # replaced), which would otherwise be kept by _prune instead of the previous live one.
            for stale in self.path.glob(".tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            # Not after a rollback by hand: current_version() refuses it, and the newer
            # versions it hides are the real ones.
            with contextlib.suppress(IndexNotFound, IndexDamaged, OSError):
                live = int(self.current_version()[1:])
                for p in self._own_versions():
                    if int(p.name[1:]) > live:
                        shutil.rmtree(p, ignore_errors=True)
            yield
        finally:
            os.close(fd)
