"""Which sentences the answer cites, and when it abstains: the cases seen in the chat, with the
real model (issue #11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import Retriever
from qa.abstain import not_a_question
from qa.answering import choose
from qa.ranking import Candidate, form

BAKERY = """# Harbor Lane Bakery

Harbor Lane Bakery was founded in 2009 by the siblings Maria and Tom Keller, who still own the \
bakery on Harbor Lane. Its head baker, Ayla Demir, starts the ovens at four every morning. The \
bakery is known for sourdough loaves, cinnamon buns and dark rye bread.

## Opening hours

The shop opens at 7 a.m. from Tuesday to Sunday and closes on Mondays. On Saturdays a market \
stall in the old harbour sells the day's bread until noon.
"""


@pytest.fixture(scope="module")
def bakery(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    docs = tmp_path_factory.mktemp("bakery-docs")
    (docs / "bakery.md").write_text(BAKERY, encoding="utf-8")
    return Retriever.build([docs], tmp_path_factory.mktemp("bakery-index"))


@pytest.mark.model
@pytest.mark.xfail(reason="not solved yet: the ranker still prefers the founders' sentence, which "
                          "repeats the bakery's name (p 0.80 vs 0.34; issue #11)", strict=True)
def test_head_baker_is_answered_with_the_sentence_naming_her(bakery: Retriever) -> None:
    a = bakery.ask("Who is the head baker at Harbor Lane Bakery?")
    assert not a.abstained
    assert "Ayla Demir" in a.citations[0].text
    assert not any("founded" in c.text for c in a.citations)


@pytest.mark.model
@pytest.mark.parametrize("question", [
    "Harbor Lane Bakery", "What is Harbor Lane Bakery?", "Opening hours", "When does it open?"])
def test_a_markdown_heading_is_never_cited(bakery: Retriever, question: str) -> None:
    a = bakery.ask(question)
    assert all(not c.text.lstrip().startswith("#") for c in a.citations)
    assert all("\n" not in c.text for c in a.citations)


@pytest.mark.model
@pytest.mark.parametrize("question", [
    "<img src=x onerror=alert(1)>", "?", "#", "Hallo!", "thanks", "<script></script>"])
def test_input_that_asks_nothing_abstains(sample_index: Path, question: str) -> None:
    a = Retriever.load(sample_index).ask(question)
    assert a.abstained and a.citations == [] and a.confidence == 0.0
    assert a.to_json()["answer"] == "Not found in the documents."


@pytest.mark.model
def test_english_question_on_mediation_finds_qatar(sample_index: Path) -> None:
    a = Retriever.load(sample_index).ask("Who was supposed to mediate the de-escalation talks?")
    assert not a.abstained
    assert "Katar" in a.text


def test_questions_and_non_questions_are_told_apart() -> None:
    for text in ("<img src=x onerror=alert(1)>", "?", "!!!", "42", "Hi", "Guten Tag!", "ok",
                 "<b></b>", "&nbsp;"):
        assert not_a_question(text), text
    for text in ("Who is the head baker?", "Wer sollte vermitteln?", "Kursk", "Warum?",
                 "What happened in 2014?"):
        assert not not_a_question(text), text


def test_form_features_mark_headings_lists_and_fragments() -> None:
    assert form("# Harbor Lane Bakery")["heading"] == 1.0
    assert form("Opening hours")["heading"] == 1.0
    assert form("- sourdough loaves")["list_marker"] == 1.0
    assert form("„Nur Kaffee.“")["quote_fragment"] == 1.0
    full = form("Its head baker, Ayla Demir, starts the ovens at four every morning.")
    assert full["heading"] == full["list_marker"] == full["quote_fragment"] == full["short"] == 0


def _cand(rank: int, start: int, text: str) -> Candidate:
    return Candidate(rank, f"doc{rank}", start, start + len(text), text, 0.8, 0.8, 0)


def test_sentences_of_one_passage_read_in_document_order() -> None:
    later = _cand(1, 100, "The second sentence holds the answer.")
    earlier = _cand(1, 10, "The first sentence holds it too.")
    other = _cand(2, 0, "Another passage has a weaker sentence.")
    chosen = choose([later, other, earlier], [0.9, 0.1, 0.8])
    assert [c.start for c, _ in chosen] == [10, 100]
    # a heading is never chosen, however the ranker scores it
    heading = _cand(1, 0, "# Title")
    assert [c.text for c, _ in choose([heading, later], [0.99, 0.6])] == [later.text]
