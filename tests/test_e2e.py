"""End to end with the real bundled model on the sample articles: the answers a user sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa import Retriever

pytestmark = pytest.mark.model


def test_istanbul_question_cites_the_neutrality_passage(sample_index: Path) -> None:
    a = Retriever.load(sample_index).ask("What did Ukraine offer in Istanbul?")
    assert not a.abstained
    first = a.citations[0]
    assert "dauerhaft neutral" in first.text
    assert a.text.startswith(" ".join(first.text.split()) + f" [{first.marker}]")
    cited = a.passages[first.marker - 1]
    assert cited.doc_id == "istanbul-peace-talks.de.txt"
    assert "dauerhaft neutral" in cited.text
    assert (first.start, first.end) in cited.highlights


def test_german_paraphrase_finds_the_mediator(sample_index: Path) -> None:
    a = Retriever.load(sample_index).ask("Wer sollte die Gespräche vermitteln?")
    assert not a.abstained
    assert a.passages[0].doc_id == "energy-strike-moratorium.de.txt"
    assert any("Katar" in c.text for c in a.citations)


@pytest.mark.parametrize("question", [
    "What is the capital of Australia?",
    "Wie backe ich ein Sauerteigbrot?",
    "What did Turkish President Erdoğan say when he opened the talks?",
])
def test_question_about_something_absent_abstains(sample_index: Path, question: str) -> None:
    a = Retriever.load(sample_index).ask(question)
    assert a.abstained and a.text == "Not found in the documents."
    assert len(a.passages) == 5 and a.citations == []


def qa_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = ("import sys; from qa.cli import main; rc = main(sys.argv[1:]); "
            "heavy = [m for m in ('torch', 'gradio', 'langchain_text_splitters') "
            "if m in sys.modules]; "
            "print('HEAVY', heavy, file=sys.stderr) if heavy else None; sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_ask_json_prints_exactly_one_object_and_imports_nothing_heavy(sample_index: Path) -> None:
    p = qa_cli("ask", "What did Ukraine offer in Istanbul?", "--index", str(sample_index),
               "--json", "-k", "3")
    assert p.returncode == 0, p.stderr
    assert "HEAVY" not in p.stderr
    obj = json.loads(p.stdout)
    assert list(obj) == ["question", "answer", "abstained", "confidence", "mode", "model",
                         "sentences", "notice", "history_used", "rewritten_question",
                         "citations", "passages"]
    assert obj["mode"] == "extractive" and obj["model"] is None and obj["notice"] is None
    assert [x["rank"] for x in obj["passages"]] == [1, 2, 3]
    assert set(obj["passages"][0]) == {"rank", "doc_id", "title", "start", "end", "text", "score",
                                       "chunk_id", "highlights", "highlight_texts", "cited"}
    # every answer sentence is a cited sentence, with the marker of its passage
    assert [s["markers"] for s in obj["sentences"]] == [[c["marker"]] for c in obj["citations"]]
    assert all(s["supported"] for s in obj["sentences"])
    assert "[1]" in obj["answer"] or "[2]" in obj["answer"] or "[3]" in obj["answer"]


def test_ask_without_index_builds_the_sample_index_on_first_use(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path), "QA_INDEX": ""}
    p = qa_cli("ask", "Wann wurde die stille Übereinkunft getroffen?", env=env)
    assert p.returncode == 0, p.stderr
    assert "Herbst 2023" in p.stdout
    assert "building the sample-corpus index (first use)" in p.stderr
    assert (tmp_path / "qa" / "sample-index" / "CURRENT").exists()
    # the second question finds it built, and says nothing of building
    p = qa_cli("ask", "Wann wurde die stille Übereinkunft getroffen?", env=env)
    assert p.returncode == 0 and "Herbst 2023" in p.stdout
    assert "building" not in p.stderr, p.stderr
    p = qa_cli("ask", "x", "--json", env={"QA_INDEX": str(tmp_path / "qa" / "sample-index")})
    assert p.returncode == 0 and json.loads(p.stdout)["question"] == "x"


@pytest.mark.parametrize("args,message", [
    (["ask", ""], "qa: error: question is empty"),
    (["ask", "hi", "-k", "0"], "qa: error: k must be between 1 and 50, got 0"),
])
def test_cli_bad_input_is_one_line(sample_index: Path, args: list[str], message: str) -> None:
    p = qa_cli(*args, "--index", str(sample_index))
    assert p.returncode == 2
    assert p.stderr.strip() == message


def test_cli_index_errors_are_one_line(tmp_path: Path) -> None:
    p = qa_cli("ask", "hi", "--index", str(tmp_path / "none"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "no index in" in p.stderr and "qa index PATH" in p.stderr
    (tmp_path / "empty").mkdir()
    p = qa_cli("index", str(tmp_path / "empty"), "--index", str(tmp_path / "idx"))
    assert p.returncode == 2 and p.stderr.startswith("qa: error: no documents in")


def test_cli_index_names_skipped_files_and_keeps_going(tmp_path: Path, sample_copy: Path) -> None:
    (sample_copy / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    p = qa_cli("index", str(sample_copy), "--index", str(tmp_path / "idx"))
    assert p.returncode == 0, p.stderr
    assert "qa: skipped" in p.stderr and "broken.pdf" in p.stderr
    assert "2 added" in p.stdout and "2 documents" in p.stdout
