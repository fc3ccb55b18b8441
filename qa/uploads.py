"""Uploads: files sent through the HTTP API or the chat, added to the index as one transaction.

Both surfaces call :func:`add_uploads`, so the rules are the same everywhere: a name that cannot
leave the upload folder (``<index>/uploads``), a supported type, at most
:data:`MAX_UPLOAD_BYTES` per file, two files of one name in one request both kept (the second as
``name-2.txt``), and a staged add. Each file is written beside the one it may replace; the old
one is kept as a backup until the index has taken the new one. If adding fails, or the index
finds a file unreadable, that file's old version comes back, so the upload folder and the index
never disagree and nothing already indexed is lost.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .documents import SUPPORTED_SUFFIXES, SkippedFile
from .errors import BadRequest, IndexBusy
from .index.update import Progress, UpdateReport
from .limits import INVISIBLE_CATEGORIES

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_NAME_BYTES = 200  # file systems allow 255 bytes; leave room for temporary suffixes
_LOCK_WAIT_S = 30.0
_COPY_BLOCK = 1024 * 1024


class RefusedUpload(BadRequest):
    """One uploaded file that cannot be taken: its name as sent and the one-line reason."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}" if name else reason)
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Received:
    """One file as a client sent it: the name it gave, and its bytes as a path or open file."""

    name: str
    source: str | os.PathLike[str] | BinaryIO


@dataclass
class UploadReport:
    """What an upload did: the index update (skipped files named as sent) and the index size."""

    update: UpdateReport = field(default_factory=UpdateReport)
    documents: int = 0
    passages: int = 0

    def to_json(self) -> dict[str, Any]:
        """``UpdateReport.to_json()`` plus ``documents`` and ``passages`` now in the index."""
        return {**self.update.to_json(), "documents": self.documents, "passages": self.passages}


def upload_dir_for(retriever: Any) -> Path:
    """Where uploads are kept: ``<index_dir>/uploads``."""
    return Path(retriever.index.path) / "uploads"


def safe_upload_name(name: str) -> str:
    """A file name that cannot leave the upload folder: basename only, no leading dots,
    no control, format (bidi, zero-width) or path characters, at most 200 bytes with its type
    kept; :class:`RefusedUpload` (a ``BadRequest``) for no usable name or an unsupported type."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join("_" if unicodedata.category(ch) in INVISIBLE_CATEGORIES else ch for ch in base)
    base = re.sub(r"[:*?\"<>|]", "_", base).lstrip(". ").strip()
    if not base:
        raise RefusedUpload("", "upload has no usable file name")
    if not base.lower().endswith(SUPPORTED_SUFFIXES):
        suffix = os.path.splitext(base)[1].lower() or "(none)"
        raise RefusedUpload(base, f"unsupported file type {suffix!r}; supported: "
                            + ", ".join(SUPPORTED_SUFFIXES))
    stem, dot, suffix = base.rpartition(".")
    while len(base.encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
        base = f"{stem}{dot}{suffix}"
    return base


def store_upload(data: bytes, name: str, upload_dir: Path) -> Path:
    """Write one uploaded file into ``upload_dir`` under its safe name, atomically."""
    import io

    target_name = safe_upload_name(name)
    upload_dir.mkdir(parents=True, exist_ok=True)
    part = _stage(io.BytesIO(data), name, upload_dir, target_name)
    target = upload_dir / target_name
    os.replace(part, target)
    return target


def add_uploads(
    retriever: Any,
    files: Sequence[Received],
    *,
    strict: bool = False,
    progress: Progress | None = None,
) -> UploadReport:
    """Save ``files`` into the upload folder and add them to the index, as one transaction.

    A file with an unusable name or type, or over the size limit, is listed in the report's
    ``skipped``; with ``strict`` it refuses the whole request instead (:class:`RefusedUpload`)
    before anything is changed. Files the index cannot read are skipped and their previous
    version (if any) restored.
    """
    folder = upload_dir_for(retriever)
    lock = _folder_lock(folder)
    if not lock.acquire(timeout=_LOCK_WAIT_S):
        raise IndexBusy("another upload is being added to this index; retry in a minute")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        skipped: list[SkippedFile] = []
        known = retriever.snapshot().documents

        def indexed_elsewhere(name: str) -> bool:
            # A document of this name read from a file outside the upload folder that is still
            # there: the upload would silently replace it (found by a browser tester, who
            # replaced a sample article with a one-line file).
            source = str(known.get(name, {}).get("source") or "")
            return bool(source) and Path(source).parent.resolve() != folder.resolve() \
                and Path(source).is_file()

        staged = _stage_all(files, folder, skipped, strict=strict, clash=indexed_elsewhere)
        swapped: list[tuple[str, Path, Path | None]] = []
        try:
            for shown, part, target in staged:
                backup = None
                if target.exists():
                    backup = folder / f".{target.name}.{uuid.uuid4().hex[:8]}.bak"
                    os.replace(target, backup)
                swapped.append((shown, target, backup))
                os.replace(part, target)
            update = (retriever.add([t for _, t, _ in swapped], progress=progress)
                      if swapped else UpdateReport())
        except BaseException:
            for _, part, _ in staged:
                part.unlink(missing_ok=True)
            for _, target, backup in swapped:
                _restore(target, backup)
            raise
        unreadable = {str(s.path): s.reason for s in update.skipped}
        for shown, target, backup in swapped:
            reason = unreadable.get(str(target))
            if reason is not None:
                skipped.append(SkippedFile(shown, reason))
                _restore(target, backup)
            elif backup is not None:
                backup.unlink(missing_ok=True)
        update.skipped = skipped
    finally:
        lock.release()
    info = retriever.info()
    return UploadReport(update, documents=int(info["documents"]), passages=int(info["passages"]))


def remove_documents(retriever: Any, doc_ids: Sequence[str]) -> UpdateReport:
    """Remove documents from the index and, for those that were uploads, their file in the
    upload folder too (it was the only copy; left there, it lived on after a delete). Files
    indexed from anywhere else are never touched."""
    folder = upload_dir_for(retriever)
    known = retriever.snapshot().documents
    sources = {d: str(known.get(d, {}).get("source", "")) for d in doc_ids}
    lock = _folder_lock(folder)
    if not lock.acquire(timeout=_LOCK_WAIT_S):
        raise IndexBusy("an upload is being added to this index; retry in a minute")
    try:
        report: UpdateReport = retriever.remove(list(doc_ids))
        for doc_id in report.removed:
            path = Path(sources.get(doc_id, ""))
            if sources.get(doc_id) and path.parent.resolve() == folder.resolve() \
                    and path.is_file():
                path.unlink(missing_ok=True)
    finally:
        lock.release()
    return report


def _stage_all(
    files: Sequence[Received], folder: Path, skipped: list[SkippedFile], *, strict: bool,
    clash: Callable[[str], bool] = lambda name: False,
) -> list[tuple[str, Path, Path]]:
    """Copy each acceptable file to a hidden part file: ``(name as sent, part, target)``.
    A file named like a document indexed from elsewhere (``clash``) is not taken."""
    staged: list[tuple[str, Path, Path]] = []
    taken: set[str] = set()
    try:
        for f in files:
            shown = re.split(r"[\\/]", f.name or "")[-1] or f.name
            try:
                name = _unique(safe_upload_name(f.name), taken)
                if clash(name):
                    raise RefusedUpload(shown, "a document of this name is already indexed from "
                                        "a folder; rename the file, or delete that document "
                                        "first")
                part = _stage(f.source, shown, folder, name)
            except RefusedUpload as exc:
                if strict:
                    raise
                skipped.append(SkippedFile(shown, exc.reason))
                continue
            taken.add(name)
            staged.append((shown, part, folder / name))
    except BaseException:
        for _, part, _ in staged:
            part.unlink(missing_ok=True)
        raise
    return staged


def _stage(source: str | os.PathLike[str] | BinaryIO, shown: str, folder: Path,
           name: str) -> Path:
    """Copy at most MAX_UPLOAD_BYTES of ``source`` to a hidden file in ``folder``."""
    if (folder / name).resolve().parent != folder.resolve():  # belt and braces
        raise RefusedUpload(shown, "invalid file name")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name[:40]}.", suffix=".part")
    part = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, (str, os.PathLike)):
                with open(source, "rb") as src:
                    copied = _copy_limited(src, out)
            else:
                copied = _copy_limited(source, out)
        if copied > MAX_UPLOAD_BYTES:
            raise RefusedUpload(shown, f"too large (more than {MAX_UPLOAD_BYTES // 2**20} MiB)")
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise RefusedUpload(shown, exc.strerror or str(exc)) from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return part


def _copy_limited(src: BinaryIO, out: BinaryIO) -> int:
    """Copy until one byte past the limit; the count tells whether the file was too large."""
    copied = 0
    while copied <= MAX_UPLOAD_BYTES:
        block = src.read(min(_COPY_BLOCK, MAX_UPLOAD_BYTES + 1 - copied))
        if not block:
            break
        out.write(block)
        copied += len(block)
    return copied


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``stem-2.suffix``, ``stem-3.suffix``... when this request already has it."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{stem}-{n}{suffix}"
        n += 1
    return candidate


def _restore(target: Path, backup: Path | None) -> None:
    if backup is not None and backup.exists():
        os.replace(backup, target)
    else:
        target.unlink(missing_ok=True)


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _folder_lock(folder: Path) -> threading.Lock:
    """One lock per upload folder, shared by the HTTP API and the chat of one process."""
    key = os.path.realpath(folder)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())

