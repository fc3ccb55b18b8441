"""Use a qa index from LlamaIndex: a query engine with the qa retriever inside.

    pip install 'qa-cite[llama-index]'
    python examples/llama_index_query_engine.py [INDEX_DIR] [QUESTION]

The query engine is ``RetrieverQueryEngine.from_args(QARetriever, llm=...)``. To stay offline and
free, the LLM here is LlamaIndex's ``MockLLM``, which answers with the prompt it was given, so the
output shows exactly what a real model would read; put any LlamaIndex LLM in its place
(``llm=OpenAI(...)``, ``llm=Ollama(...)``). Without INDEX_DIR an index of the sample articles is
built in a temporary folder. The sources printed after the answer carry offsets into the
documents (``document_text[start:end] == node.text``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from qa import IndexNotFound, QAError, Retriever
from qa.llama_index import QARetriever
from qa.retriever import sample_corpus_dir


def open_retriever(index_dir: Path, k: int) -> QARetriever:
    """The index in ``index_dir``, built from the sample articles if there is none yet."""
    try:
        return QARetriever.from_index(index_dir, k=k)
    except IndexNotFound:
        print(f"building an index of {sample_corpus_dir()} in {index_dir} ...", file=sys.stderr)
        return QARetriever(Retriever.build([sample_corpus_dir()], index_dir), k=k)


def main(index_dir: Path, question: str) -> None:
    retriever = open_retriever(index_dir, k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(question)
    print("=== engine.query: the prompt the LLM would get (MockLLM echoes it) ===")
    print(str(response))
    print("\n=== response.source_nodes: where each passage comes from ===")
    for n in response.source_nodes:
        m = n.node.metadata
        text = " ".join(n.node.get_content().split())
        print(f"[{m['rank']}] {m['doc_id']} [{m['start']}:{m['end']}] score {n.score:.3f}: "
              f"{text[:100]}...")


if __name__ == "__main__":
    args = sys.argv[1:]
    question = args[1] if len(args) > 1 else "What did Ukraine offer in Istanbul?"
    try:
        if args:
            main(Path(args[0]), question)
        else:
            with tempfile.TemporaryDirectory(prefix="qa-example-") as tmp:
                main(Path(tmp) / "index", question)
    except QAError as exc:
        sys.exit(f"error: {exc}")
