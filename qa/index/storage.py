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
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadRequest, IndexBusy, IndexDamaged, IndexNotFound
from . import files
from .checksums import file_entry, file_problem, manifest_checksum, well_formed
from .faiss_store import EXACT_LIMIT, FaissStore, VectorStore
from .rows import ChunkTable, NpyRows
from .snapshot import Snapshot

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
        entries = manifest["files"]
        if not required <= set(entries) or not all(
            well_formed(e) and _PLAIN_NAME.fullmatch(n) for n, e in entries.items()
        ):
            raise IndexDamaged(self._damaged("manifest.json", "has an incomplete checksum list"))
        for name, expected in entries.items():
            problem = file_problem(vdir / name, expected, full=full)
            if problem:
                raise IndexDamaged(self._damaged(name, problem))
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
        dim = manifest["dim"]
        if (
            arrays["chunk_vectors.npy"].shape != (len(chunks), dim)
            or arrays["sentence_vectors.npy"].shape[1:] != (dim,)
            or len(arrays["sentence_chunks.npy"]) != len(arrays["sentence_vectors.npy"])
        ):
            raise IndexDamaged(self._damaged(version, "has arrays of inconsistent shapes"))
        stores: dict[str, VectorStore] = {}
        for name in ("chunks", "sentences"):
            kind = manifest.get("stores", {}).get(name, "flat")
            if kind not in ("flat", "none"):
                try:
                    stores[name] = FaissStore.load(vdir / f"{name}.faiss", kind)
                except RuntimeError as exc:
                    raise IndexDamaged(self._damaged(f"{name}.faiss", "cannot be read")) from exc
        return Snapshot(
            manifest,
            chunks,
            arrays["chunk_vectors.npy"],
            arrays["sentence_vectors.npy"],
            arrays["sentence_chunks.npy"],
            version=version,
            stores=stores,
            chunk_rows=rows["chunk_vectors.npy"],
            sentence_rows=rows["sentence_vectors.npy"],
            documents_file=documents_file,
        )

    def write(self, snap: Snapshot, *, store_kind: str | None = None) -> str:
        """Write ``snap`` as a new version and make it live; returns the version name (``snap``
        itself is not changed: :meth:`read` loads what was written).

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
            files.write_file(tmp / "chunks.jsonl", b"".join(lines))
            del lines
            files.save_npy(tmp / "chunk_offsets.npy", offsets)
            # np.asarray, not astype: no copy of arrays that are float32 already (gigabytes at
            # a million passages).
            for name, array, dtype in (("chunk_vectors", snap.chunk_vectors, np.float32),
                                       ("sentence_vectors", snap.sentence_vectors, np.float32),
                                       ("sentence_chunks", snap.sentence_chunks, np.int32)):
                files.save_npy(tmp / f"{name}.npy", np.asarray(array, dtype))
            kind = store_kind or ("flat" if len(snap.chunks) <= EXACT_LIMIT else "ivf")
            stores = {"chunks": kind, "sentences": "flat" if kind == "flat" else "none"}
            if kind != "flat":  # approximate stores are costly to build: build once, save
                store = FaissStore.build(snap.chunk_vectors, np.arange(len(snap.chunks)),
                                         kind=kind)
                store.save(tmp / "chunks.faiss")
            documents = snap.documents
            files.write_file(tmp / "documents.json",
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
            manifest["files"] = {f.name: file_entry(f) for f in sorted(tmp.iterdir())}
            manifest["manifest_sha256"] = manifest_checksum(manifest)
            files.write_file(
                tmp / "manifest.json",
                json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"),
            )
            files.fsync_dir(tmp)
            version = self._next_version()
            os.rename(tmp, self.path / version)
            files.write_file(self.path / "CURRENT.tmp", (version + "\n").encode())
            os.replace(self.path / "CURRENT.tmp", self.path / "CURRENT")
            files.fsync_dir(self.path)
            # After CURRENT: a kill in between leaves PUBLISHED behind CURRENT, which is fine;
            # the other order would make the live version look rolled back.
            files.write_file(self.path / "PUBLISHED.tmp", (version + "\n").encode())
            os.replace(self.path / "PUBLISHED.tmp", self.path / "PUBLISHED")
            files.fsync_dir(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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
