"""LangChain's own yardstick: the standard retriever suite from ``langchain-tests``, all of it,
run against ``QARetriever`` on the bundled sample articles with the real model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import RetrieversIntegrationTests

from qa import Retriever
from qa.langchain import QARetriever


@pytest.fixture(scope="module")
def qa_retriever(sample_index: Path) -> Retriever:
    return Retriever.load(sample_index)


class TestQARetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _bind(self, qa_retriever: Retriever) -> None:
        # The suite builds the retriever from `retriever_constructor_params`; one loaded index
        # (the model loads once) serves every test.
        self._qa = qa_retriever

    @property
    def retriever_constructor(self) -> type[QARetriever]:
        return QARetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": self._qa}

    @property
    def retriever_query_example(self) -> str:
        return "What did Ukraine offer in Istanbul?"
