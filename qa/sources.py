"""The paths a build is given: checked before anything is read, and named when nothing comes of
them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import BadRequest


def given_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` as Paths; an empty string is refused rather than read as ``.`` (which made
    ``qa index ""`` index the whole current folder)."""
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
