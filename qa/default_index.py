"""The index used when none is named: ``$QA_INDEX``, else an index of the bundled sample articles
in the user's cache folder, built on first use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import IndexNotFound
from .index import IndexDir
from .index.update import Progress

if TYPE_CHECKING:
    from .retriever import Retriever


def default_index_dir() -> Path:
    """``$QA_INDEX``, else the sample-corpus index in the user's cache folder."""
    env = os.environ.get("QA_INDEX")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "qa" / "sample-index"


def sample_corpus_dir() -> Path:
    """The two German news articles shipped with the package."""
    return Path(__file__).parent / "data" / "sample"


def open_default(progress: Progress | None = None) -> Retriever:
    """The default index; built from the sample corpus on first use when it is the default."""
    from .retriever import Retriever  # the retriever module imports this one

    path = default_index_dir()
    if IndexDir(path).exists():
        return Retriever.load(path)
    if os.environ.get("QA_INDEX"):
        raise IndexNotFound(f"no index in {path} (QA_INDEX): build it with `qa index PATH...`")
    return Retriever.build([sample_corpus_dir()], path, progress=progress)
