"""The paths a build is given: checked before anything is read, and named when nothing comes of
them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import BadRequest


def given_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` as Paths; an empty string is refused rather than read as ``.`` (which made
    ``qa index ""`` index the whole current folder). One path given as a string (or Path) is
    that path, not its characters: ``build("docs/", ...)`` read ``d``, ``o``, ``c``, ``s`` and
    ``/``, the whole file system."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        if not os.fspath(p).strip():
            raise BadRequest("an empty path was given; name a file or folder ('.' for this one)")
        out.append(Path(p))
    return out


def empty_corpus_message(paths: Sequence[Any], skipped: list[Any]) -> str:
    """Why a build found nothing to index, naming where it looked and what it skipped."""
    where = ", ".join(str(p) for p in paths) or "(no paths given)"
    if skipped:
        return f"no readable documents in {where}: " + "; ".join(str(s) for s in skipped[:3])
    return f"no documents in {where} (supported: .txt, .md, .html, .pdf)"


def stale_documents(roots: Sequence[Path], indexed: Mapping[str, Mapping[str, Any]],
                    present: set[str]) -> list[str]:
    """The indexed documents a sync of ``roots`` removes: those not ``present`` that were indexed
    from under one of the folders, or whose source is gone from where it was found (the folder
    moved, the file or its link deleted) wherever it came from.

    Sources are where the files were found (links not resolved), so a deleted link counts as
    gone; indexes written before recorded resolved paths, hence both forms of each root."""
    root_dirs = {s for p in roots if p.is_dir() for s in (os.path.abspath(p), str(p.resolve()))}
    gone = []
    for doc_id, meta in indexed.items():
        if doc_id in present:
            continue
        src = str(meta.get("source", ""))
        under_root = any(src.startswith(root + os.sep) for root in root_dirs)
        vanished = (src.endswith(os.sep + doc_id) and os.path.isabs(src)
                    and not os.path.lexists(src))
        if under_root or vanished:
            gone.append(doc_id)
    return gone


def source_of(path: str | os.PathLike[str]) -> str:
    """What an index records as a document's source: where it was found, links not resolved."""
    return os.path.abspath(path)
