"""Questions in one language over documents in another, with documents in the question's own
language beside them: the language axis (issue #11; eval/xquad-mixed)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from qa import Retriever
from qa.answering import language_axis

from .conftest import SAMPLE

BEEKEEPERS = """# The Brindlemoor Beekeepers' Cooperative

The Brindlemoor Beekeepers' Cooperative was founded in the spring of 1987 by eleven smallholders \
from the villages around the heath, who were tired of selling their honey to travelling \
wholesalers. The first meeting took place in the back room of the Red Heron inn. Each member \
keeps at least four hives, and every batch of honey is tasted by two other members before it \
carries the cooperative's label.

Since 2015 the cooperative has been chaired by Ruth Ashdown, a former schoolteacher who keeps \
thirty hives on the edge of the moor. Under her the cooperative opened a shop in Fallowmere, \
where a jar of heather honey costs eleven pounds, and began to breed its own queens instead of \
buying imported ones, because native bees cope better with the wet summers.
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    """The German sample articles and one English document."""
    docs = tmp_path_factory.mktemp("mixed-docs")
    for f in SAMPLE.glob("*.txt"):
        shutil.copy(f, docs / f.name)
    (docs / "beekeepers.md").write_text(BEEKEEPERS, encoding="utf-8")
    return Retriever.build([docs], tmp_path_factory.mktemp("mixed-index"))


@pytest.mark.model
@pytest.mark.parametrize("question", [
    "Wer ist die Vorsitzende der Genossenschaft?",
    "Wann wurde die Imkergenossenschaft gegründet?",
])
def test_a_german_question_finds_the_english_document_among_german_ones(
    mixed: Retriever, question: str
) -> None:
    # Without the axis the German articles came first: they share the question's language.
    assert mixed.ask(question).passages[0].doc_id == "beekeepers.md"


@pytest.mark.model
def test_questions_are_searched_without_the_language_axis(mixed: Retriever) -> None:
    axis = language_axis(mixed.snapshot().embedder, mixed.snapshot().dim)
    assert axis is not None
    q = mixed._embed_queries(["Wer ist die Vorsitzende der Genossenschaft?", "Who chairs it?"])
    raw = mixed.embedder.embed_queries(["Wer ist die Vorsitzende der Genossenschaft?"])
    assert np.allclose(q @ axis, 0.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert abs(float(raw[0] @ axis)) > 0.05  # the language was there to remove


def test_an_embedder_without_an_axis_is_searched_as_it_embeds() -> None:
    assert language_axis("no-such-embedder", 384) is None
