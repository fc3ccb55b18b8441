"""Generated answers: the sentence checker, the prompts, and every fault of the model endpoint.

The checker and the answer flow run on the real embedding model over the sample articles; the
endpoint here is tests/fake_llm.py, a local fake that injects faults (the real llama.cpp server is
in tests/test_generation_llama.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa.errors import QAError
from qa.generation import LLMSettings, ModelAnswerer, split_generated
from qa.generation.checker import missing_names, missing_numbers
from qa.generation.prompt import REWRITE_SYSTEM, detect_language, grounded_messages, parse_rewrite
from qa.generation.stream import parse_sse
from tests.fake_llm import Behaviour, FakeLLM

QUESTION = "What did Ukraine offer in Istanbul?"
PARAPHRASE = ("The talks in Istanbul broke off on Tuesday after Ukraine offered to declare itself "
              "permanently neutral if the United Kingdom, other Western powers and China provided "
              "military protection against future Russian aggression [1].")
MADE_UP = "Ukraine also agreed to cede Crimea for 2 billion dollars [1]."
REPO = Path(__file__).resolve().parent.parent
openai_missing = pytest.mark.skipif(
    not os.environ.get("CI") and __import__("importlib").util.find_spec("openai") is None,
    reason="the openai client is not installed (pip install 'qa-cite[llm]')")


# -- reading what the model wrote -----------------------------------------------------------------

def test_split_generated_reads_markers_wherever_the_model_puts_them() -> None:
    text = ("Ukraine offered neutrality. [1] It wanted guarantees [2][3]. Talks broke off [1, 4].\n"
            "[5]\nNo marker here. See [Passage 2].")
    assert split_generated(text) == [
        ("Ukraine offered neutrality.", (1,)),
        ("It wanted guarantees.", (2, 3)),
        ("Talks broke off.", (1, 4, 5)),
        ("No marker here.", ()),
        ("See.", (2,)),
    ]


def test_numbers_and_names_are_looked_up_across_languages() -> None:
    passage = ("Die Ukraine bot in Istanbul an, sich neutral zu erklären. Russland zog Truppen "
               "aus dem Gebiet um Kiew ab; zwei Drittel der 1.200 Soldaten blieben.")
    assert missing_numbers("Ukraine wants 2 billion dollars.", [passage]) == ["scale:b"]
    assert missing_numbers("Russia kept 1,200 soldiers, two thirds of them.", [passage]) == []
    assert missing_numbers("Russia kept 1,300 soldiers.", [passage]) == ["1300"]
    assert missing_names("Then Russia withdrew from Kyiv.", [passage]) == []
    assert missing_names("Then Russia withdrew from Crimea.", [passage]) == ["Crimea"]
    # German sentences capitalise every noun: only their numbers are checked
    assert missing_names("Die Truppen zogen aus dem Gebiet ab.", [passage]) == []


def test_question_language_is_detected_and_asked_for() -> None:
    assert detect_language(QUESTION) == "en"
    assert detect_language("Wer sollte die Gespräche vermitteln?") == "de"
    passages = [type("P", (), {"rank": 1, "text": "Die Ukraine bot Neutralität an."})()]
    msgs = grounded_messages("Wer sollte vermitteln?", passages)
    assert "German" in msgs[0]["content"] and "[1] Die Ukraine bot" in msgs[1]["content"]


def test_rewrite_reply_is_cleaned_and_bounded() -> None:
    assert parse_rewrite('Standalone question: "What did Ukraine offer?"\n', "And?") == \
        "What did Ukraine offer?"
    assert parse_rewrite("", "And then?") == "And then?"
    assert parse_rewrite("x " * 500, "Why?") == "Why?"


def test_settings_come_from_arguments_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("QA_LLM_URL", "QA_LLM_MODEL", "QA_LLM_API_KEY", "QA_LLM_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    assert LLMSettings.from_env() is None
    monkeypatch.setenv("QA_LLM_URL", "http://localhost:11434/v1/")
    monkeypatch.setenv("QA_LLM_MODEL", "gemma3")
    s = LLMSettings.from_env()
    assert s is not None and (s.url, s.model, s.timeout) == ("http://localhost:11434/v1",
                                                             "gemma3", 30.0)
    s2 = LLMSettings.from_env("http://127.0.0.1:9/v1", "other", timeout=2)
    assert s2 is not None and (s2.url, s2.model, s2.timeout) == ("http://127.0.0.1:9/v1",
                                                                 "other", 2.0)
    monkeypatch.setenv("QA_LLM_TIMEOUT", "soon")
    with pytest.raises(QAError, match="QA_LLM_TIMEOUT"):
        LLMSettings.from_env()
    with pytest.raises(QAError, match="http"):
        LLMSettings.from_env("localhost:11434")


def test_no_endpoint_imports_no_openai_client() -> None:
    code = ("import sys, qa, qa.generation, qa.cli, qa.api\n"
            "from qa.generation import answerer_for\n"
            "assert answerer_for(object()) is None\n"
            "print('openai' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_LLM")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# -- answers from an endpoint (real embedding model, fake endpoint) -------------------------------

@pytest.fixture(scope="module")
def retriever(sample_index: Path):
    from qa import Retriever

    return Retriever.load(sample_index)


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    f = FakeLLM()
    yield f
    f.stop()


def _answerer(retriever, url: str, timeout: float = 10.0) -> ModelAnswerer:
    return ModelAnswerer(retriever, LLMSettings(url, None, timeout=timeout))


@pytest.mark.model
@openai_missing
def test_made_up_sentence_is_unsupported_and_faithful_paraphrase_supported(retriever,
                                                                          fake) -> None:
    fake.behaviour.reply = f"{PARAPHRASE} {MADE_UP}"
    answer = _answerer(retriever, fake.url).ask(QUESTION)
    d = answer.to_json()
    assert d["mode"] == "generated" and d["model"] == "fake-model" and d["notice"] is None
    assert [(s["markers"], s["supported"]) for s in d["sentences"]] == [([1], True), ([1], False)]
    assert d["sentences"][1]["text"].startswith("Ukraine also agreed to cede Crimea")
    # the supported sentence's evidence is highlighted in passage 1, in document offsets
    p1 = answer.passages[0]
    assert p1.highlights and "neutral" in d["passages"][0]["highlight_texts"][0]
    assert all(c.marker == 1 for c in answer.citations)
    # the prompt numbered the passages as the JSON does
    prompt = fake.behaviour.requests[-1]["messages"][1]["content"]
    assert f"[1] {' '.join(p1.text.split())[:40]}" in prompt


@pytest.mark.model
@openai_missing
def test_marker_of_a_passage_not_retrieved_is_unsupported(retriever, fake) -> None:
    fake.behaviour.reply = f"{PARAPHRASE} Ukraine offered neutrality in Istanbul [9]."
    d = _answerer(retriever, fake.url).ask(QUESTION, k=3).to_json()
    assert [(s["markers"], s["supported"]) for s in d["sentences"]] == [([1], True), ([9], False)]


@pytest.mark.model
@openai_missing
def test_nothing_verifiable_falls_back_to_quotes_with_a_notice(retriever, fake) -> None:
    fake.behaviour.reply = "Ukraine offered many things. The passages are interesting."
    d = _answerer(retriever, fake.url).ask(QUESTION).to_json()
    assert d["mode"] == "extractive" and not d["abstained"]
    assert "could be shown to support" in d["notice"] and "\n" not in d["notice"]
    assert all(s["supported"] and s["markers"] for s in d["sentences"])


FAULTS = {
    "down": (None, "cannot be reached"),
    "refusing": (Behaviour(fault="refuse"), "refused the request"),
    "failing": (Behaviour(fault="error"), "refused the request (HTTP 500)"),
    "slow": (Behaviour(delay=3.0), "did not answer within 1 s"),
    "slow-stream": (Behaviour(reply="word " * 40 + "[1].", chunk_delay=0.1), "did not finish"),
    "garbage": (Behaviour(fault="garbage"), "could not be read"),
    "empty": (Behaviour(fault="empty"), "empty answer"),
}


@pytest.mark.model
@openai_missing
@pytest.mark.parametrize("fault", list(FAULTS))
def test_endpoint_faults_give_the_quoted_answer_and_one_line(retriever, fault: str) -> None:
    behaviour, words = FAULTS[fault]
    server = FakeLLM(behaviour) if behaviour else None
    url = server.url if server else "http://127.0.0.1:9/v1"
    try:
        d = _answerer(retriever, url, timeout=1.0).ask(QUESTION).to_json()
    finally:
        if server:
            server.stop()
    assert d["mode"] == "extractive" and d["model"] is None and not d["abstained"]
    assert words in d["notice"] and "\n" not in d["notice"], d["notice"]
    assert "dauerhaft neutral" in d["answer"]


@pytest.mark.model
@openai_missing
def test_follow_up_is_rewritten_from_history_and_the_rewrite_shown(retriever, fake) -> None:
    def reply(messages: list[dict[str, str]]) -> str:
        if messages[0]["content"] == REWRITE_SYSTEM:
            return "Who was supposed to mediate the talks between Russia and Ukraine?"
        return "Qatar was to mediate [1]."

    fake.behaviour.reply = reply
    history = [{"question": QUESTION, "answer": "Ukraine offered to be neutral [1]."}]
    d = _answerer(retriever, fake.url).ask("And who was to mediate?", history=history).to_json()
    assert d["question"] == "And who was to mediate?"
    assert d["rewritten_question"].startswith("Who was supposed to mediate")
    assert d["history_used"] == [0]
    rewrite_prompt = fake.behaviour.requests[0]["messages"][1]["content"]
    assert QUESTION in rewrite_prompt and "[1]" not in rewrite_prompt
    # the answer was asked for the standalone question
    assert "Who was supposed to mediate" in fake.behaviour.requests[1]["messages"][1]["content"]


# -- surfaces: CLI, HTTP API (SSE), eval ---------------------------------------------------------

def _qa(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_LLM")}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=timeout)


@pytest.mark.model
@openai_missing
def test_cli_ask_with_an_endpoint_and_without_one_that_answers(sample_index: Path, fake) -> None:
    fake.behaviour.reply = f"{PARAPHRASE} {MADE_UP}"
    out = _qa("ask", QUESTION, "--index", str(sample_index), "--json", "--llm-url", fake.url,
              "--llm-model", "fake-model")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["mode"] == "generated" and [s["supported"] for s in d["sentences"]] == [True, False]
    out = _qa("ask", QUESTION, "--index", str(sample_index), "--llm-url",
              "http://127.0.0.1:9/v1", "--llm-timeout", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("note: the model at http://127.0.0.1:9/v1 cannot be reached")
    assert "dauerhaft neutral" in out.stdout and "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def api(retriever):
    from fastapi.testclient import TestClient

    from qa.api import create_app

    server = FakeLLM(Behaviour(reply=f"{PARAPHRASE} {MADE_UP}"))
    client = TestClient(create_app(retriever, answerer=_answerer(retriever, server.url, 2.0)))
    yield client, server
    server.stop()


@pytest.mark.model
@openai_missing
def test_api_streams_tokens_then_the_whole_answer(api) -> None:
    client, server = api
    server.behaviour.fault, server.behaviour.delay = None, 0.0
    with client.stream("POST", "/api/ask", json={"question": QUESTION, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(parse_sse(r.iter_lines()))
    kinds = [e for e, _ in events]
    assert kinds[-1] == "answer" and kinds.count("token") > 5 and set(kinds) == {"token",
                                                                                  "answer"}
    streamed = "".join(d["text"] for e, d in events if e == "token")
    final = events[-1][1]
    assert streamed.startswith("The talks in Istanbul") and "2 billion" in streamed
    assert final["mode"] == "generated" and [s["supported"] for s in final["sentences"]] == \
        [True, False]
    # the same object without streaming
    plain = client.post("/api/ask", json={"question": QUESTION}).json()
    assert plain["sentences"] == final["sentences"]


@pytest.mark.model
@openai_missing
def test_api_slow_endpoint_answers_200_with_notice_and_bad_question_400(api) -> None:
    client, server = api
    server.behaviour.delay = 4.0
    try:
        r = client.post("/api/ask", json={"question": QUESTION, "stream": False})
        assert r.status_code == 200
        assert r.json()["mode"] == "extractive" and "within 2 s" in r.json()["notice"]
        with client.stream("POST", "/api/ask", json={"question": QUESTION,
                                                      "stream": True}) as s:
            events = list(parse_sse(s.iter_lines()))
        assert [e for e, _ in events] == ["answer"] and events[0][1]["notice"]
    finally:
        server.behaviour.delay = 0.0
    r = client.post("/api/ask", json={"question": "   ", "stream": True})
    assert 400 <= r.status_code < 500 and "question is empty" in r.json()["detail"]


@pytest.mark.model
@openai_missing
def test_eval_reports_citation_precision_and_recall(retriever, fake, tmp_path: Path) -> None:
    from qa import evaluation as ev

    fake.behaviour.reply = f"{PARAPHRASE} {MADE_UP}"
    questions = [ev.Question("q1", QUESTION, "istanbul-peace-talks.de.txt", ("neutral",), "en")]
    result = ev.run(retriever, questions, k=5, answerer=_answerer(retriever, fake.url))
    s = result.summary
    assert s["generated_share"] == 1.0 and s["supported_share"] == 0.5
    assert s["citation_precision"] == 0.5  # the made-up sentence's [1] does not support it
    assert s["citation_recall"] == 1.0     # the supported sentence cites its passage
    assert s["language_match"] == 1.0
    out = ev.save(result, tmp_path / "gen")
    from qa.evaluation.report import format_summary

    table = format_summary(json.loads((out / "summary.json").read_text()))
    assert "citation precision" in table and "0.500" in table


def test_compare_puts_an_extractive_and_a_generated_run_side_by_side(tmp_path: Path) -> None:
    from qa import evaluation as ev
    from qa.evaluation.report import format_compare

    row = {"id": "q1", "question": QUESTION, "verdict": {
        "answerable": True, "abstained": False, "correct": True, "doc_rank": 1,
        "reciprocal_rank": 1.0}}
    runs = {"extractive": {"hit@1": 1.0}, "generated": {
        "hit@1": 1.0, "generated_share": 0.9, "fallback_rate": 0.1, "supported_share": 0.75,
        "citation_precision": 0.7, "citation_recall": 0.8, "language_match": 1.0}}
    for name, summary in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
        (tmp_path / name / "results.jsonl").write_text(json.dumps(row) + "\n")
    a, b = str(tmp_path / "extractive"), str(tmp_path / "generated")
    text = format_compare(ev.compare(a, b), a, b)
    line = next(x for x in text.splitlines() if x.startswith("citation precision"))
    assert line.split()[2:4] == ["-", "0.700"]
    assert "generated sentences supported" in text and "model answer replaced" in text
