"""The index: versioned files on disk (:mod:`.storage`), vector stores (:mod:`.store`) and
incremental updates (:mod:`.update`)."""

from .storage import IndexDir, Snapshot
from .faiss_store import FaissStore, VectorStore
from .update import UpdateReport

__all__ = ["FaissStore", "IndexDir", "Snapshot", "UpdateReport", "VectorStore"]
