"""The index: versioned files on disk (:mod:`.storage`), vector stores (:mod:`.store`) and
incremental updates (:mod:`.update`)."""

from .faiss_store import FaissStore, VectorStore
from .storage import IndexDir, Snapshot
from .update import UpdateReport

__all__ = ["FaissStore", "IndexDir", "Snapshot", "UpdateReport", "VectorStore"]
