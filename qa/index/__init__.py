"""The index: versioned files on disk (:mod:`.storage`), one loaded version
(:mod:`.snapshot`), vector stores (:mod:`.faiss_store`) and incremental updates (:mod:`.update`).
"""

from .faiss_store import FaissStore, VectorStore
from .snapshot import Snapshot
from .storage import IndexDir
from .update import UpdateReport

__all__ = ["FaissStore", "IndexDir", "Snapshot", "UpdateReport", "VectorStore"]
