"""A LangChain retriever over a ``qa`` index (``pip install 'qa-cite[langchain]'``).

>>> from qa.langchain import QARetriever
>>> retriever = QARetriever.from_index("my-index", k=3)
>>> docs = retriever.invoke("What did Ukraine offer in Istanbul?")
>>> docs[0].page_content, docs[0].metadata["doc_id"], docs[0].metadata["start"]

Each result is a ``langchain_core.documents.Document`` whose ``page_content`` is the passage
text and whose ``metadata`` says where it comes from: ``doc_id``, ``title``, ``start``, ``end``
(character offsets in the document: ``document_text[start:end] == page_content``), ``score``,
``rank`` (1 is best) and ``chunk_id``. The retriever is a LangChain ``Runnable``, so it composes
into chains (``retriever | format_docs``) and supports ``invoke``, ``batch``, ``ainvoke`` and
``abatch``.

Importing :mod:`qa` does not import this module or LangChain; this module needs
``langchain-core>=0.3``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "qa.langchain needs langchain-core, which is not installed: "
        "pip install 'qa-cite[langchain]'"
    ) from exc

from pydantic import ConfigDict, field_validator

from .answer import Passage
from .embedders import Embedder
from .limits import DEFAULT_K, check_k
from .retriever import Retriever

__all__ = ["QARetriever", "passage_to_document"]


def passage_to_document(passage: Passage) -> Document:
    """A LangChain ``Document`` for a retrieved passage: its text, and where it comes from."""
    return Document(
        page_content=passage.text,
        metadata={**passage.source(), "score": float(passage.score),
                  "chunk_id": passage.chunk_id},
    )


class QARetriever(BaseRetriever):
    """LangChain retriever returning the ``k`` best passages of a ``qa`` index, best first.

    Wraps a :class:`qa.Retriever`, so retrieval crosses languages (an English question finds a
    German passage) and stays consistent while the index is updated through that retriever's
    ``add``/``remove``: each query reads one complete index version.
    """

    # BaseRetriever is a pydantic model; `retriever` is a plain Python object, not a pydantic type.
    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    """The ``qa`` retriever (one loaded index) to search."""
    k: int = DEFAULT_K
    """How many passages to return (1 to 50)."""

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, v: Any) -> int:
        return check_k(v)  # the same rule as every other surface (qa.limits)

    @classmethod
    def from_index(
        cls,
        index_dir: str | os.PathLike[str] | None = None,
        k: int = DEFAULT_K,
        *,
        embedder: Embedder | str | None = None,
        milvus: str | None = None,
        collection: str = "qa",
        **kwargs: Any,
    ) -> QARetriever:
        """Open the index in ``index_dir`` (built by ``qa index`` or ``Retriever.build``), or in
        Milvus at ``milvus=URI`` (collection ``collection``), as every other surface can.

        ``embedder`` defaults to the one the index was built with (loaded on the first query);
        other keyword arguments (``tags``, ``metadata``) go to :class:`BaseRetriever`.
        Raises :class:`qa.IndexNotFound` / :class:`qa.IndexDamaged` when the index is unusable.
        """
        k = check_k(k)  # one line (qa.BadRequest), not pydantic's ValidationError
        r = Retriever.load(index_dir, embedder=embedder, milvus=milvus, collection=collection)
        return cls(retriever=r, k=k, **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """The ``k`` passages that best answer ``query`` as ``Document``s, best first.

        ``k`` given per call (``retriever.invoke(query, k=1)``) overrides the retriever's own.
        An empty or over-long query, or a ``k`` outside 1..50, raises :class:`qa.BadRequest`.
        """
        n = self.k if k is None else check_k(k)
        return [passage_to_document(p) for p in self.retriever.search(query, n)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        """As :meth:`_get_relevant_documents`, on a worker thread: the search embeds the query
        and reads the index, which would block the event loop."""
        n = self.k if k is None else check_k(k)
        passages = await asyncio.to_thread(self.retriever.search, query, n)
        return [passage_to_document(p) for p in passages]
