"""The index directory: plain, versioned files, written atomically.

Layout::

    INDEX_DIR/
      CURRENT                  name of the live version, replaced atomically (os.replace)
      PUBLISHED                the newest version ever made live: CURRENT naming an older one
                               is a rollback by hand, refused
      LOCK                     held (flock) by the one process writing
      segments/s000003/        immutable segments: passages, vectors, stores (see segments.py)
      v000007/
        manifest.json          format, embedder, dimension, chunking, counts, its segments (with
                               the checksum of each one's segment.json), checksums of the files
                               below and of itself
        deleted-s000003.npy    rows of a segment this version deletes (int64, ascending)
        deleted.json           documents it deletes, by segment

An update writes a new small segment, then a new version folder listing the segments and
deletion marks, and then replaces ``CURRENT``; a crash at any point leaves the old version live
and complete. Readers resolve ``CURRENT`` and read one version, so they never see a half-written
index. Format 3 indexes (one version folder holding everything) are read as one segment and
rewritten in format 4 by their first update. No pickle anywhere.
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadRequest, IndexBusy, IndexDamaged, IndexNotFound
from . import files
from .checksums import file_entry, file_problem, manifest_checksum, sha256, well_formed
from .segments import SEGMENT_NAME, Segment, read_meta, verify_files, write_segment
from .snapshot import SegmentView, Snapshot

FORMAT_VERSION = 4
# 2 held the documents inside manifest.json; 3 moved them to documents.json; 4 made a version a
# list of segments plus deletion marks. 2 and 3 are read as one segment.
_READABLE_FORMATS = (2, 3, 4)
_MANIFEST_KEYS: dict[int, dict[str, type]] = {
    3: {"embedder": str, "dim": int, "chunking": dict, "files": dict, "stores": dict},
    4: {"embedder": str, "dim": int, "chunking": dict, "files": dict, "segments": list,
        "counts": dict, "manifest_sha256": str},
}
# Version folders are named v + six digits (more after a million versions); "v1" is not ours.
_VERSION_NAME = re.compile(r"v[0-9]{6,}")
# What an index folder may hold besides its versions: anything else means it is not an index
# (or not only one), and a writer refuses it rather than mixing its files with the user's.
_OWN_NAMES = re.compile(r"LOCK|CURRENT(\.tmp)?|PUBLISHED(\.tmp)?|\.tmp-.*|uploads|segments")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class SegmentEntry:
    """A segment as a new version lists it: its name and what the version deletes from it."""

    name: str
    deleted_rows: np.ndarray
    deleted_docs: frozenset[str]


class IndexDir:
    """Reads and writes versions of an index in one directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # Segments opened by the last read(), by name and checksum: the next read reuses them.
        self._open: dict[tuple[str, str], Segment] = {}

    def __repr__(self) -> str:
        return f"IndexDir({str(self.path)!r})"

    def exists(self) -> bool:
        return (self.path / "CURRENT").is_file()

    def _not_found(self) -> str:
        from ..documents import SUPPORTED_SUFFIXES

        try:
            holds_documents = self.path.is_dir() and any(
                p.is_file() and p.name.lower().endswith(SUPPORTED_SUFFIXES)
                for p in self.path.iterdir())
        except OSError:
            holds_documents = False
        if holds_documents:  # the documents' folder given as --index
            return (f"no index in {self.path}: it holds documents; index them into a folder of "
                    f"its own with `qa index {self.path} --index INDEX_DIR`")
        return f"no index in {self.path}: build one with `qa index PATH --index {self.path}`"

    def current_version(self) -> str:
        try:
            name = (self.path / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise IndexNotFound(self._not_found()) from None
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
        """The live version's name and manifest, checked to be well formed."""
        version = self.current_version()
        try:
            manifest = json.loads((self.path / version / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexDamaged(self._damaged("manifest.json", f"cannot be read ({exc})")) from exc
        if not isinstance(manifest, dict) or "format_version" not in manifest:
            raise IndexDamaged(self._damaged("manifest.json", "is not an index manifest"))
        fmt = manifest["format_version"]
        if fmt not in _READABLE_FORMATS:
            raise IndexDamaged(
                f"index {self.path} has format {fmt}, this qa reads formats "
                f"{', '.join(map(str, _READABLE_FORMATS))}; rebuild it with "
                f"`qa index PATH... --index {self.path} --rebuild`"
            )
        recorded = manifest.get("manifest_sha256")
        if recorded is not None and recorded != manifest_checksum(manifest):
            raise IndexDamaged(self._damaged("manifest.json", "does not match its checksum "
                                             "(edited or damaged?)"))
        keys = dict(_MANIFEST_KEYS[max(fmt, 3)])
        if fmt < 4 and (fmt == 2 or "documents" in manifest):
            keys["documents"] = dict
        for key, kind in keys.items():
            if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
                raise IndexDamaged(self._damaged("manifest.json", f"has no valid {key!r}"))
        if fmt == 4 and not all(
                isinstance(e, dict) and isinstance(e.get("name"), str)
                and SEGMENT_NAME.fullmatch(e["name"]) and isinstance(e.get("sha256"), str)
                for e in manifest["segments"]):
            raise IndexDamaged(self._damaged("manifest.json", "has a malformed segment list"))
        return version, manifest

    def _check_version_files(self, version: str, manifest: dict[str, Any], *,
                             full: bool) -> None:
        entries = manifest["files"]
        if not all(well_formed(e) and _PLAIN_NAME.fullmatch(n) for n, e in entries.items()):
            raise IndexDamaged(self._damaged("manifest.json", "has an incomplete checksum list"))
        for name, expected in entries.items():
            problem = file_problem(self.path / version / name, expected, full=full)
            if problem:
                raise IndexDamaged(self._damaged(name, problem))

    def verify(self, *, full: bool = True,
               checked: frozenset[tuple[str, str]] = frozenset()) -> tuple[str, dict[str, Any]]:
        """Check every file of the live version and its segments against their checksums;
        IndexDamaged if not. ``full=False`` checks large files by sampled blocks only (what
        loading does); segments in ``checked`` (name, checksum), open already, are skipped."""
        version, manifest = self.read_manifest()
        if manifest["format_version"] < 4:
            verify_files(self.path / version, _legacy_meta(manifest), full=full,
                         documents_inline="documents" in manifest)
            return version, manifest
        self._check_version_files(version, manifest, full=full)
        for entry in manifest["segments"]:
            if (entry["name"], entry["sha256"]) not in checked:
                self._segment_meta(entry, full=full)
        return version, manifest

    def _segment_meta(self, entry: dict[str, Any], *, full: bool) -> dict[str, Any]:
        path = self.segments_dir / entry["name"]
        if not (path / "segment.json").is_file():
            raise IndexDamaged(self._damaged(f"segment {entry['name']}", "is missing"))
        if sha256(path / "segment.json") != entry["sha256"]:
            raise IndexDamaged(self._damaged(f"segments/{entry['name']}/segment.json",
                                             "does not match its checksum (edited?)"))
        meta = read_meta(path)
        verify_files(path, meta, full=full)
        return meta

    @property
    def segments_dir(self) -> Path:
        """Where the segments are."""
        return self.path / "segments"

    def read(self) -> Snapshot:
        """Load the live version, verifying its files against their checksums (large ones by
        sampled blocks). Segments already open (they never change) are reused, unchecked."""
        version, manifest = self.verify(full=False, checked=frozenset(self._open))
        vdir = self.path / version
        if manifest["format_version"] < 4:
            documents = manifest.get("documents")
            seg = Segment(vdir, _legacy_meta(manifest), documents=documents)
            return Snapshot(manifest, [SegmentView(seg)], version)
        try:
            deleted_docs = (json.loads((vdir / "deleted.json").read_text("utf-8"))
                            if "deleted.json" in manifest["files"] else {})
        except (OSError, ValueError) as exc:
            raise IndexDamaged(self._damaged("deleted.json", f"cannot be read ({exc})")) from exc
        views = []
        opened: dict[tuple[str, str], Segment] = {}
        for entry in manifest["segments"]:
            key = (entry["name"], entry["sha256"])
            seg = self._open.get(key) or Segment(self.segments_dir / entry["name"],
                              read_meta(self.segments_dir / entry["name"]))
            opened[key] = seg
            rows = None
            if f"deleted-{entry['name']}.npy" in manifest["files"]:
                try:
                    rows = np.load(vdir / f"deleted-{entry['name']}.npy", allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise IndexDamaged(self._damaged(f"deleted-{entry['name']}.npy",
                                                     "cannot be read")) from exc
                if rows.ndim != 1 or (len(rows) and (rows.min() < 0 or rows.max() >= len(seg))):
                    raise IndexDamaged(self._damaged(f"deleted-{entry['name']}.npy",
                                                     "names rows the segment does not have"))
            views.append(SegmentView(seg, rows, frozenset(deleted_docs.get(entry["name"], ()))))
        self._open = opened
        return Snapshot(manifest, views, version)

    def new_segment_name(self) -> str:
        """A name no segment has had (the caller holds :meth:`lock`)."""
        numbers = [int(p.name[1:]) for p in self.segments_dir.glob("s[0-9]*")
                   if p.name[1:].isdigit()] if self.segments_dir.is_dir() else []
        return f"s{max(numbers, default=0) + 1:06d}"

    def write_segment(self, **parts: Any) -> tuple[str, dict[str, Any]]:
        """Write a new segment (see :func:`.segments.write_segment`); returns its name and
        meta."""
        name = self.new_segment_name()
        return name, write_segment(self.segments_dir, name, **parts)

    def publish(self, base: dict[str, Any], segments: Sequence[SegmentEntry],
                counts: dict[str, int]) -> str:
        """Write a version listing ``segments`` and make it live; returns its name.

        ``base`` gives the embedder, dimension and chunking. The caller holds :meth:`lock`.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            listed, deleted_docs = [], {}
            for s in segments:
                listed.append({"name": s.name,
                               "sha256": sha256(self.segments_dir / s.name / "segment.json"),
                               "deleted_rows": len(s.deleted_rows),
                               "deleted_docs": len(s.deleted_docs)})
                if len(s.deleted_rows):
                    files.save_npy(tmp / f"deleted-{s.name}.npy",
                                   np.asarray(np.unique(s.deleted_rows), np.int64))
                if s.deleted_docs:
                    deleted_docs[s.name] = sorted(s.deleted_docs)
            if deleted_docs:
                files.write_file(tmp / "deleted.json", json.dumps(deleted_docs).encode("utf-8"))
            manifest = {k: base[k] for k in ("embedder", "dim", "chunking")}
            manifest.update(format_version=FORMAT_VERSION, segments=listed, counts=counts,
                            written_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            files={f.name: file_entry(f) for f in sorted(tmp.iterdir())})
            manifest["manifest_sha256"] = manifest_checksum(manifest)
            files.write_file(tmp / "manifest.json",
                             json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
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
        """Remove old versions, keeping the newest previous one for readers still loading it,
        and the segments no remaining version lists."""
        old = [p for p in self._own_versions() if p.name not in keep]
        for p in old[:-1]:
            _remove_folder(p)
        self._remove_unlisted_segments()

    def _remove_unlisted_segments(self) -> None:
        if not self.segments_dir.is_dir():
            return
        listed: set[str] = set()
        for v in self._own_versions():
            try:
                manifest = json.loads((v / "manifest.json").read_text("utf-8"))
                listed.update(e["name"] for e in manifest.get("segments", []))
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                return  # unsure what a damaged version lists: keep everything
        for p in self.segments_dir.iterdir():
            if p.name.startswith(".tmp-") or (
                    SEGMENT_NAME.fullmatch(p.name) and p.name not in listed
                    and (p / "segment.json").is_file()):
                _remove_folder(p)

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
            for stale in (*self.path.glob(".tmp-*"), *self.path.glob("segments/.tmp-*")):
                shutil.rmtree(stale, ignore_errors=True)
            # Not after a rollback by hand: current_version() refuses it, and the newer
            # versions it hides are the real ones.
            with contextlib.suppress(IndexNotFound, IndexDamaged, OSError):
                live = int(self.current_version()[1:])
                for p in self._own_versions():
                    if int(p.name[1:]) > live:
                        _remove_folder(p)
                # Versions and segments a killed writer did not get to remove.
                self._prune(keep={f"v{live:06d}"})
            yield
        finally:
            os.close(fd)


def _remove_folder(p: Path) -> None:
    """Remove a version or segment folder: first renamed to a ``.tmp-`` name beside it, so that a
    kill halfway through the removal leaves a folder the next writer clears, not a version
    without its manifest that no longer looks like the index's own and would stay forever."""
    gone = p.with_name(f".tmp-gone-{p.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(p, gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def _legacy_meta(manifest: dict[str, Any]) -> dict[str, Any]:
    """A format-2/3 version folder described as a segment."""
    return {"dim": manifest["dim"], "files": manifest["files"],
            "store": manifest.get("stores", {}).get("chunks", "flat")}
