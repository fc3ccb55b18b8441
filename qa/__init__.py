"""qa: cross-lingual question answering over your documents, every claim cited.

>>> from qa import Retriever
>>> r = Retriever.load("my-index")          # or Retriever.build(["docs/"], "my-index")
>>> answer = r.ask("What did Ukraine offer in Istanbul?")
>>> answer.text, [p.doc_id for p in answer.passages]

Importing ``qa`` loads neither gradio nor torch; the embedding model loads on first use.
"""

from .answer import Answer, Citation, Passage
from .chunking import Chunk, Chunker
from .documents import Document, load_documents
from .embedders import (
    E5Embedder,
    Embedder,
    FastE5Embedder,
    SentenceTransformerEmbedder,
    get_embedder,
)
from .errors import (
    BadRequest,
    EmbedderMismatch,
    EmptyCorpus,
    IndexBusy,
    IndexDamaged,
    IndexNotFound,
    QAError,
)
from .index.update import UpdateReport
from .retriever import Retriever

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "BadRequest",
    "Chunk",
    "Chunker",
    "Citation",
    "Document",
    "E5Embedder",
    "EmbedderMismatch",
    "Embedder",
    "EmptyCorpus",
    "FastE5Embedder",
    "IndexBusy",
    "IndexDamaged",
    "IndexNotFound",
    "Passage",
    "QAError",
    "Retriever",
    "SentenceTransformerEmbedder",
    "UpdateReport",
    "get_embedder",
    "load_documents",
]
