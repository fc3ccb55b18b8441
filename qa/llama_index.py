"""A LlamaIndex retriever over a ``qa`` index (``pip install 'qa-cite[llama-index]'``).

>>> from qa.llama_index import QARetriever
>>> retriever = QARetriever.from_index("my-index", k=3)
>>> nodes = retriever.retrieve("What did Ukraine offer in Istanbul?")
>>> nodes[0].node.text, nodes[0].node.metadata["doc_id"], nodes[0].score

Each result is a ``llama_index.core.schema.NodeWithScore``: the node's text is the passage, its
metadata says where it comes from (``doc_id``, ``title``, ``start``, ``end`` — character offsets
in the document, ``document_text[start:end] == node.text`` — and ``rank``, 1 being best), and
``score`` is the retrieval score. It plugs into any LlamaIndex query engine
(``RetrieverQueryEngine.from_args(retriever, llm=...)``).

Importing :mod:`qa` does not import this module or LlamaIndex.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "qa.llama_index needs llama-index-core, which is not installed: "
        "pip install 'qa-cite[llama-index]'"
    ) from exc

from .answer import Passage
from .embedders import Embedder
from .limits import DEFAULT_K, check_k
from .retriever import Retriever

__all__ = ["QARetriever", "passage_to_node"]

# What the LLM does not need to read in its prompt: offsets and rank are for the reader's checks.
_NOT_FOR_THE_LLM = ["start", "end", "rank"]


def passage_to_node(passage: Passage) -> NodeWithScore:
    """A LlamaIndex node for a retrieved passage: its text, where it comes from, its score."""
    node = TextNode(
        id_=f"{passage.doc_id}#{passage.chunk_id}",
        text=passage.text,
        metadata=passage.source(),
        excluded_llm_metadata_keys=list(_NOT_FOR_THE_LLM),
        excluded_embed_metadata_keys=list(_NOT_FOR_THE_LLM),
    )
    return NodeWithScore(node=node, score=float(passage.score))


class QARetriever(BaseRetriever):
    """LlamaIndex retriever returning the ``k`` best passages of a ``qa`` index, best first.

    Wraps a :class:`qa.Retriever`, so an English question finds German passages, and each query
    reads one complete index version while the index is being updated.
    """

    def __init__(self, retriever: Retriever, k: int = DEFAULT_K, **kwargs: Any) -> None:
        self.retriever = retriever
        self.k = check_k(k)
        super().__init__(**kwargs)

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
        other keyword arguments (``callback_manager``, ``verbose``) go to LlamaIndex's
        ``BaseRetriever``. Raises :class:`qa.IndexNotFound` / :class:`qa.IndexDamaged`.
        """
        r = Retriever.load(index_dir, embedder=embedder, milvus=milvus, collection=collection)
        return cls(r, k=k, **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [passage_to_node(p) for p in self.retriever.search(query_bundle.query_str, self.k)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Embedding the query and reading the index block: keep them off the event loop.
        return await asyncio.to_thread(self._retrieve, query_bundle)
