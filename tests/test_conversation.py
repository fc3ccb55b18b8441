"""Follow-up questions: ``Retriever.ask(history=...)``, ``POST /api/ask`` with ``history``,
``qa chat`` and ``qa eval`` on rows with a history (issue #11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qa import BadRequest, Retriever
from qa import evaluation as ev
from qa.conversation import leans_on, parse_history, stands_alone

from .conftest import REPO, TrigramEmbedder

QATAR_TALKS = ("Verhandlungen über eine mögliche Deeskalation sollten ursprünglich im August "
               "2024 unter Vermittlung Katars beginnen, wie die Washington Post unter Berufung "
               "auf anonyme Quellen berichtete. [1]")
NEUTRAL = ("Die Gespräche in Istanbul wurden am Dienstag abgebrochen, nachdem die Ukraine "
           "angeboten hatte, sich dauerhaft neutral zu erklären, wenn das Vereinigte Königreich, "
           "andere Westmächte und China militärischen Schutz vor einer künftigen russischen "
           "Aggression bieten würden. [1]")
STOCKS = ("Nach den Friedensgesprächen stiegen die europäischen Aktienmärkte und die Ölpreise "
          "fielen um fünf Prozent, da die Versorgungsängste nachließen, während der Rubel "
          "gegenüber dem Dollar um 10 Prozent stieg. [1]")


def test_which_questions_stand_alone() -> None:
    for q in ("And what did they want in exchange?", "Who brokered it?", "And the oil price?",
              "Und der Ölpreis?", "Warum?", "Wer sollte sie vermitteln?",
              "What did it prevent Russia from doing?", "Hat er in Istanbul verhandelt?"):
        assert not stands_alone(q), q
    for q in ("Who was supposed to mediate the de-escalation talks?",
              "What did Ukraine offer in Istanbul?", "Wie hoch ist die Zugspitze?",
              "What did Boris Johnson warn that Putin might still try to do?",
              "Is it true that Russia withdrew from Kyiv?",
              "What did Ukraine's negotiator compare them to?"):
        assert stands_alone(q), q


def test_a_follow_up_leans_on_the_last_turn_and_a_chain_goes_further_back() -> None:
    turns = parse_history([{"question": "What did Ukraine offer in Istanbul?", "answer": "x"},
                           {"question": "And what did they want in exchange?", "answer": "y"}])
    assert leans_on("Who would guarantee it?", turns) == [0, 1]
    assert leans_on("Who would guarantee it?", turns[:1]) == [0]
    assert leans_on("What did Ukraine offer in Istanbul?", turns) == []
    assert leans_on("Who brokered it?", []) == []


def test_turns_that_asked_nothing_are_not_leaned_on() -> None:
    # Found by a browser tester: "Kursk" was shown as read with "hello" and "?".
    greetings = parse_history([{"question": "hello", "answer": "Not found in the documents."},
                               {"question": "?", "answer": "Not found in the documents."}])
    assert leans_on("Kursk", greetings) == []
    turns = parse_history([{"question": "What did Ukraine offer in Istanbul?", "answer": "x"},
                           {"question": "thanks!", "answer": "Not found in the documents."}])
    assert leans_on("And what did they want in exchange?", turns) == [0]


@pytest.mark.parametrize("history,message", [
    ("not a list", "history must be a list"),
    ({"question": "q", "answer": "a"}, "history must be a list"),
    ([{"question": "q", "answer": "a"}] * 21, "at most 20"),
    ([{"answer": "a"}], "history[0] must be an object"),
    ([{"question": "q"}], "history[0] must be an object"),
    (["text"], "history[0] must be an object"),
    ([{"question": 3, "answer": "a"}], "history[0].question must be text"),
    ([{"question": "q", "answer": "a" * 2001}], "history[0].answer is too long"),
    ([{"question": "q", "answer": "a", "extra": 1}], "history[0] must be an object"),
])
def test_a_bad_history_is_one_clear_error(history: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=None) as exc:
        parse_history(history)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_history_used_names_the_turns_and_defaults_to_none(corpus: Path, tmp_path: Path) -> None:
    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    history = [{"question": "Where does the Rhine rise?", "answer": "In the Swiss Alps. [1]"}]
    assert r.ask("Where does the Rhine rise?").history_used == []
    follow = r.ask("And where does it flow?", history=history)
    assert follow.history_used == [0]
    assert follow.to_json()["history_used"] == [0]
    assert r.ask("Where does the Danube flow?", history=history).history_used == []
    # input that asks nothing is refused, and reads no turn
    thanks = r.ask("thanks!", history=history)
    assert thanks.abstained and thanks.history_used == []


# -- with the real model --------------------------------------------------------------------------

FOLLOW_UPS = [
    ("Who brokered it?", [("When were the de-escalation talks supposed to start?", QATAR_TALKS)],
     "Katar"),
    ("And what did they want in exchange?", [("What did Ukraine offer in Istanbul?", NEUTRAL)],
     "Schutz"),
    ("And the rouble?", [("What happened to oil prices after the talks?", STOCKS)], "Rubel"),
]


def _turns(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"question": q, "answer": a} for q, a in pairs]


@pytest.mark.model
@pytest.mark.parametrize("question,history,expected", FOLLOW_UPS)
def test_follow_ups_cite_the_passage_that_answers_them(
    sample_index: Path, question: str, history: list[tuple[str, str]], expected: str
) -> None:
    a = Retriever.load(sample_index).ask(question, history=_turns(history))
    assert not a.abstained and a.history_used == [len(history) - 1]
    cited = a.passages[a.citations[0].marker - 1]
    assert expected in cited.text
    # the reader sees it in the answer, even where the earlier answer had already said it
    assert any(expected in c.text for c in a.citations)


ENERGY = ("Dies habe Russland daran gehindert, im Winter 2023 großangelegte Angriffe auf die "
          "ukrainische Energieinfrastruktur durchzuführen. [1]")


@pytest.mark.model
def test_a_follow_up_naming_its_own_subject_finds_it_not_the_earlier_answer(
    sample_index: Path,
) -> None:
    # Read with a long earlier question, "Abramovich" alone pointed to a passage that fell out
    # of the top five, and the earlier answer came back word for word (found in the chat).
    earlier = ("Tell me everything about the talks, the withdrawal from Kyiv, the fighting in "
               "Mariupol, the sanctions, the guarantees and the energy strikes")
    a = Retriever.load(sample_index).ask("And what about Abramovich?",
                                         history=_turns([(earlier, ENERGY)]))
    assert a.history_used == [0] and not a.abstained
    assert "Abramovich" in a.citations[0].text
    assert not any("Energieinfrastruktur" in c.text for c in a.citations)


CLUB = """# Riverside Rowing Club

The Riverside Rowing Club was founded in 1987. The head coach is Priya Nandakumar, who rowed for
the national team in 2008. An adult membership costs 240 euros per year; students pay 90 euros.
The club owns twelve boats and trains on the river every morning.
"""
MACHINE = """Bedienungsanleitung Kaffeemaschine KM-300

Die Maschine heizt etwa 45 Sekunden lang auf. Entkalken Sie die Maschine alle drei Monate mit
Zitronensäure. Blinkt die rote Lampe, ist der Wassertank leer. Die Garantie beträgt zwei Jahre ab
Kaufdatum.
"""


@pytest.mark.model
def test_a_follow_up_on_another_topic_is_not_answered_from_the_turn_before(
        tmp_path: Path) -> None:
    # Found by an API tester: after a question on the club's coach, "What about the coffee
    # machine warranty?" got the coach's sentence again; asked alone it was answered.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "club.en.md").write_text(CLUB, encoding="utf-8")
    (docs / "kaffeemaschine.de.txt").write_text(MACHINE, encoding="utf-8")
    r = Retriever.build([docs], tmp_path / "idx")
    history = [{"question": "Who is the head coach of the rowing club?",
                "answer": "The head coach is Priya Nandakumar, who rowed for the national team "
                          "in 2008. [1]"}]
    a = r.ask("What about the coffee machine warranty?", history=history)
    assert a.history_used == [0] and not a.abstained
    assert {c.doc_id for c in a.citations} == {"kaffeemaschine.de.txt"}
    # a follow-up that points back with a pronoun still leans on the turn before
    b = r.ask("And how much do students pay there?", history=history)
    assert "90 euros" in b.citations[0].text


@pytest.fixture(scope="module")
def api(sample_index: Path) -> Any:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from qa.api import create_app

    return TestClient(create_app(Retriever.load(sample_index)), raise_server_exceptions=False)


@pytest.mark.model
def test_api_ask_takes_a_history(api: Any) -> None:
    history = _turns(FOLLOW_UPS[0][1])
    res = api.post("/api/ask", json={"question": "Who brokered it?", "k": 3, "history": history})
    assert res.status_code == 200
    body = res.json()
    assert body["history_used"] == [0] and not body["abstained"]
    first = body["citations"][0]["marker"]
    assert "Katar" in body["passages"][first - 1]["text"]
    alone = api.post("/api/ask", json={"question": "Who brokered it?", "k": 3}).json()
    assert alone["history_used"] == []


@pytest.mark.model
@pytest.mark.parametrize("history,where", [
    ("text", "history"),
    ([{"question": "q"}], "history.0.answer: Field required"),
    ([{"question": "q", "answer": "a", "x": 1}], "history.0.x"),
    ([{"question": "q", "answer": "a" * 2001}],
     "history.0.answer: String should have at most 2000"),
    ([{"question": "q", "answer": "a"}] * 21, "history: List should have at most 20"),
    ([{"question": ["q"], "answer": "a"}], "history.0.question"),
    # which of many turns is wrong
    ([{"question": "q", "answer": "a"}] * 4 + [{"question": "q", "answer": 7}],
     "history.4.answer"),
])
def test_api_refuses_a_bad_history_with_422(api: Any, history: Any, where: str) -> None:
    res = api.post("/api/ask", json={"question": "Who brokered it?", "history": history})
    assert res.status_code == 422
    detail = res.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail.startswith(where)


@pytest.mark.model
def test_eval_reports_follow_ups_apart(sample_index: Path, tmp_path: Path) -> None:
    rows = [json.loads(x) for x in (REPO / "eval" / "followups.jsonl").read_text("utf-8")
            .splitlines()[:4]]
    rows.append({"id": "alone", "question": "What did Ukraine offer in Istanbul?",
                 "doc": "istanbul-peace-talks.de.txt", "answers": ["dauerhaft neutral"]})
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    qs = ev.load_questions(path)
    assert qs[0].history and not qs[-1].history
    summary = ev.run(Retriever.load(sample_index), qs, k=5).summary
    assert summary["by_kind"]["follow-up"]["questions"] == 4
    assert summary["by_kind"]["standalone"]["questions"] == 1
    assert summary["by_kind"]["follow-up"]["cited_holds_answer"] >= 0.75


@pytest.mark.model
def test_qa_chat_keeps_the_conversation(sample_index: Path) -> None:
    lines = ["When were the de-escalation talks supposed to start?", "Who brokered it?",
             "/show 1", "/show 9", "/show", "/clera", "/clear", "Who brokered it?", "/quit"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "qa.cli", "chat", "--index", str(sample_index), "-k", "3"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "(read with earlier question 1)" in out.stdout
    assert "Katar" in out.stdout
    assert "characters" in out.stdout  # the shown passage
    assert "no passage 9 in the last answer" in out.stderr
    assert "usage: /show N" in out.stderr
    # a mistyped command is named, not asked: one follow-up was read, before the /clear
    assert "unknown command /clera" in out.stderr
    assert "(conversation cleared)" in out.stdout
    assert out.stdout.count("(read with earlier question") == 1  # none after /clear
