"""Use a qa index from LangChain: a retrieval chain (LCEL) with the qa retriever inside.

    pip install 'qa-cite[langchain]'
    python examples/langchain_chain.py [INDEX_DIR] [QUESTION]

The chain is ``{"context": retriever | format_docs, "question": passthrough} | prompt | llm``.
To stay offline and free, the "LLM" here just returns the prompt it was given, so the output shows
exactly what a real model would read; put any LangChain chat model or LLM in its place
(``... | prompt | ChatOpenAI() | StrOutputParser()``). Without INDEX_DIR an index of the sample
articles is built in a temporary folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from qa import QAError, Retriever
from qa.index.storage import IndexDir
from qa.langchain import QARetriever
from qa.retriever import sample_corpus_dir

PROMPT = PromptTemplate.from_template(
    "Answer the question from the numbered sources only, and cite them as [n].\n\n"
    "Sources:\n{context}\n\nQuestion: {question}\nAnswer:"
)


def format_docs(docs: list[Document]) -> str:
    """The retrieved passages as numbered sources, each saying where in which document it is."""
    parts = []
    for d in docs:
        m = d.metadata
        text = " ".join(d.page_content.split())
        parts.append(f"[{m['rank']}] {m['title']} (characters {m['start']}-{m['end']}, "
                     f"score {m['score']:.2f}):\n{text}")
    return "\n\n".join(parts)


def build_chain(retriever: QARetriever) -> Runnable:
    """question -> retrieved passages -> prompt -> "LLM" (here: echo the prompt)."""
    echo_llm = RunnableLambda(lambda prompt_value: prompt_value.to_string())
    return (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | PROMPT
        | echo_llm
    )


def main(index_dir: Path, question: str) -> None:
    if IndexDir(index_dir).exists():
        retriever = QARetriever.from_index(index_dir, k=3)
    else:
        print(f"building an index of {sample_corpus_dir()} in {index_dir} ...", file=sys.stderr)
        retriever = QARetriever(retriever=Retriever.build([sample_corpus_dir()], index_dir), k=3)

    chain = build_chain(retriever)
    print("=== chain.invoke: the prompt the LLM would get ===")
    print(chain.invoke(question))

    print("\n=== retriever.batch: top passage per question ===")
    questions = [question, "Wer sollte die Gespräche vermitteln?"]
    for q, docs in zip(questions, retriever.batch(questions)):
        top = docs[0]
        print(f"{q}\n  -> {top.metadata['doc_id']} [{top.metadata['start']}:"
              f"{top.metadata['end']}] {' '.join(top.page_content.split())[:100]}...")


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
