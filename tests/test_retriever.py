"""Searching and answering with the fast embedder: ranking, citations, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import BadRequest, EmptyCorpus, Retriever
from qa.limits import MAX_QUESTION_CHARS, clean_question

from .conftest import TrigramEmbedder


@pytest.fixture
def r(corpus: Path, tmp_path: Path) -> Retriever:
    return Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())


def test_the_matching_document_ranks_first(r: Retriever) -> None:
    assert r.search("Which river rises in the Swiss Alps?", 3)[0].doc_id == "rivers.md"
    assert r.search("Is Etna an active volcano?", 3)[0].doc_id == "sub/volcano.html"
    assert r.search("Why do cats purr?", 3)[0].doc_id == "cats.txt"


def test_passages_are_ranked_with_exact_offsets(r: Retriever, corpus: Path) -> None:
    a = r.ask("The Rhine rises in the Swiss Alps", 3)
    top = a.passages[0]
    assert top.doc_id == "rivers.md"
    assert (corpus / "rivers.md").read_text()[top.start : top.end] == top.text
    assert [p.rank for p in a.passages] == [1, 2, 3]
    assert all(a.passages[i].score >= a.passages[i + 1].score for i in range(2))
    assert "top_sentence" in a.features


def test_citation_markers_refer_to_passage_ranks(r: Retriever, corpus: Path) -> None:
    r._calibration = {"bias": 10.0, "weights": {}, "threshold": 0.5}  # always answer
    a = r.ask("The Rhine rises in the Swiss Alps and flows into the North Sea", 3)
    assert not a.abstained
    assert a.text.startswith("The Rhine rises in the Swiss Alps and flows into the North Sea. [1]")
    c = a.citations[0]
    assert (corpus / "rivers.md").read_text()[c.start : c.end] == c.text
    assert a.passages[0].highlights == ((c.start, c.end),)
    for cit in a.citations:
        assert f"[{cit.marker}]" in a.text
        assert a.passages[cit.marker - 1].doc_id == cit.doc_id


def test_abstaining_still_returns_the_closest_passages(r: Retriever) -> None:
    r._calibration = {"bias": -10.0, "weights": {}, "threshold": 0.5}  # never answer
    a = r.ask("Etna volcano", 2)
    assert a.abstained and a.text == "Not found in the documents." and a.citations == []
    assert a.passages[0].doc_id == "sub/volcano.html" and a.passages[0].highlights == ()
    assert a.to_json()["abstained"] is True


@pytest.mark.parametrize("question,message", [
    ("", "question is empty"),
    ("   \n\t ", "question is empty"),
    ("\x00\x01\x7f", "question is empty"),
    ("x" * (MAX_QUESTION_CHARS + 1), "question is too long"),
])
def test_bad_questions_get_one_line_reasons(r: Retriever, question: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        r.ask(question)


@pytest.mark.parametrize("k", [0, -1, 51, 10**9, 2.5, "3", True])
def test_bad_k_is_rejected(r: Retriever, k: object) -> None:
    with pytest.raises(BadRequest, match="k must"):
        r.ask("cats", k)  # type: ignore[arg-type]


def test_control_characters_and_mixed_scripts_are_fine(r: Retriever) -> None:
    assert clean_question("Wo\x00 ist\u200b Etna?\n") == "Wo ist Etna?"
    a = r.ask("Где вулкан Etna 火山 volcano?", 2)
    assert a.passages[0].doc_id == "sub/volcano.html"


def test_k_larger_than_the_corpus_returns_what_there_is(r: Retriever) -> None:
    assert 1 <= len(r.search("cats", 50)) <= len(r.snapshot().chunks)


def test_empty_corpus_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyCorpus, match="no documents in"):
        Retriever.build([tmp_path / "empty"], tmp_path / "idx", embedder=TrigramEmbedder())
    (tmp_path / "empty" / "bin.txt").write_bytes(b"\x00\x00\x00")
    with pytest.raises(EmptyCorpus, match="no readable documents.*bin.txt"):
        Retriever.build([tmp_path / "empty"], tmp_path / "idx", embedder=TrigramEmbedder())
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_answer_sentences_are_a_list_in_python_as_in_json(corpus: Path, tmp_path: Path) -> None:
    # Found by an API tester: answer.sentences was None while the JSON listed them.
    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    a = r.ask("Where does the Rhine rise?")
    assert isinstance(a.sentences, list)
    assert [s.to_json() for s in a.sentences] == a.to_json()["sentences"]
