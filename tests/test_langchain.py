"""qa.langchain.QARetriever: a LangChain retriever over a qa index, alone and inside LCEL chains."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import (
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)
from pydantic import ValidationError

from qa import BadRequest, IndexNotFound, Retriever
from qa.documents import load_documents
from qa.langchain import QARetriever

from .conftest import REPO, SAMPLE, TrigramEmbedder

QUESTION = "What did Ukraine offer in Istanbul?"
ISTANBUL = "istanbul-peace-talks.de.txt"
NEUTRAL = "sich dauerhaft neutral zu erklären"
METADATA = {"doc_id", "title", "start", "end", "score", "rank", "chunk_id"}


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(
        f"[{d.metadata['rank']}] {d.metadata['doc_id']} ({d.metadata['start']}-"
        f"{d.metadata['end']}): {d.page_content}"
        for d in docs
    )


PROMPT = PromptTemplate.from_template(
    "Answer from the context only, citing [n].\n\nContext:\n{context}\n\nQuestion: {question}\n"
)


def rag_chain(retriever: BaseRetriever) -> Runnable[str, str]:
    """retriever -> prompt -> an "LLM" that echoes its prompt (no network, no model)."""
    echo = RunnableLambda(lambda prompt_value: prompt_value.to_string())
    return {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT | echo


def _texts(folder: Path) -> dict[str, str]:
    docs, _ = load_documents([folder])
    return {d.doc_id: d.text for d in docs}


# -- with the fast embedder ----------------------------------------------------------------------

@pytest.fixture
def fake_index(corpus: Path, tmp_path: Path) -> Path:
    Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    return tmp_path / "idx"


@pytest.fixture
def lc(fake_index: Path) -> QARetriever:
    return QARetriever.from_index(fake_index, k=3, embedder=TrigramEmbedder())


def test_documents_carry_the_passage_and_where_it_comes_from(
    lc: QARetriever, corpus: Path
) -> None:
    docs = lc.invoke("Which river rises in the Swiss Alps?")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    assert docs[0].metadata["doc_id"] == "rivers.md"
    assert docs[0].metadata["title"] == "Rivers of Europe"
    texts = _texts(corpus)
    for rank, d in enumerate(docs, start=1):
        m = d.metadata
        assert set(m) == METADATA
        assert m["rank"] == rank and isinstance(m["score"], float)
        assert texts[m["doc_id"]][m["start"] : m["end"]] == d.page_content
    assert [d.metadata["score"] for d in docs] == sorted(
        (d.metadata["score"] for d in docs), reverse=True
    )
    # the same passages as the qa Retriever itself
    assert [d.page_content for d in docs] == [
        p.text for p in lc.retriever.search("Which river rises in the Swiss Alps?", 3)
    ]


def test_k_invoke_batch_and_async(lc: QARetriever) -> None:
    assert len(lc.invoke("cats")) == 3
    assert len(QARetriever(retriever=lc.retriever, k=1).invoke("cats")) == 1
    batch = lc.batch(["Why do cats purr?", "Is Etna an active volcano?"])
    assert [b[0].metadata["doc_id"] for b in batch] == ["cats.txt", "sub/volcano.html"]
    assert asyncio.run(lc.ainvoke("Is Etna an active volcano?"))[0].metadata["doc_id"] == \
        "sub/volcano.html"


def test_chain_with_the_fast_embedder(lc: QARetriever) -> None:
    out = rag_chain(lc).invoke("Is Etna an active volcano?")
    assert "Question: Is Etna an active volcano?" in out
    assert "[1] sub/volcano.html" in out and "Mount Etna is an active volcano" in out


def test_bad_arguments_are_refused(lc: QARetriever, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        QARetriever(retriever="not a retriever")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        QARetriever(retriever=lc.retriever, k=0)
    with pytest.raises(ValidationError):
        QARetriever(retriever=lc.retriever, k=51)
    with pytest.raises(BadRequest):
        lc.invoke("   ")
    with pytest.raises(IndexNotFound):
        QARetriever.from_index(tmp_path / "nowhere")


def test_importing_qa_does_not_import_langchain() -> None:
    code = (
        "import sys, qa; "
        "bad = [m for m in sys.modules if m.startswith(('langchain', 'qa.langchain'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_a_clear_error_without_langchain_core() -> None:
    code = (
        "import sys\n"
        "sys.modules['langchain_core'] = None  # as if not installed\n"
        "try:\n"
        "    import qa.langchain\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('imported')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60,
                         capture_output=True, text=True).stdout
    assert "pip install 'qa-cite[langchain]'" in out


# -- with the real model, inside LCEL chains -----------------------------------------------------

@pytest.fixture(scope="module")
def sample_retriever(sample_index: Path) -> QARetriever:
    return QARetriever.from_index(sample_index, k=3)


@pytest.mark.model
def test_chain_finds_the_german_passage_for_an_english_question(
    sample_retriever: QARetriever,
) -> None:
    out = rag_chain(sample_retriever).invoke(QUESTION)
    assert f"Question: {QUESTION}" in out
    assert f"[1] {ISTANBUL}" in out
    assert NEUTRAL in out


@pytest.mark.model
def test_offsets_point_into_the_source_files(sample_retriever: QARetriever) -> None:
    docs = sample_retriever.invoke(QUESTION)
    assert docs[0].metadata["doc_id"] == ISTANBUL and NEUTRAL in docs[0].page_content
    for d in docs:
        m = d.metadata
        source = (SAMPLE / m["doc_id"]).read_text(encoding="utf-8")
        assert source[m["start"] : m["end"]] == d.page_content


@pytest.mark.model
def test_chain_batch(sample_retriever: QARetriever) -> None:
    questions = [QUESTION, "Wer sollte die Gespräche vermitteln?", "What about energy sites?"]
    outs = rag_chain(sample_retriever).batch(questions)
    assert len(outs) == 3
    assert NEUTRAL in outs[0]
    for q, out in zip(questions, outs):
        assert f"Question: {q}" in out and "[3] " in out
    # the retriever alone, batched: the same passages as one by one
    batched = sample_retriever.batch(questions)
    assert [[d.page_content for d in docs] for docs in batched] == [
        [d.page_content for d in sample_retriever.invoke(q)] for q in questions
    ]


@pytest.mark.model
def test_chain_with_an_llm_returns_the_answer_and_its_sources(
    sample_retriever: QARetriever,
) -> None:
    llm = FakeListLLM(responses=["Permanent neutrality, in return for security guarantees [1]."])

    def prompt_input(x: dict[str, Any]) -> dict[str, str]:
        return {"context": format_docs(x["docs"]), "question": x["question"]}

    answer = RunnableLambda(prompt_input) | PROMPT | llm | StrOutputParser()
    chain = RunnableParallel(docs=sample_retriever, question=RunnablePassthrough()).assign(
        answer=answer
    )
    out = chain.invoke(QUESTION)
    assert out["answer"].startswith("Permanent neutrality")
    assert out["question"] == QUESTION
    top = out["docs"][0]
    assert top.metadata["doc_id"] == ISTANBUL and NEUTRAL in top.page_content

