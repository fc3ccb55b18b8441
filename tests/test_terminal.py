"""What qa ask / qa chat print never reaches the terminal as something it acts on, whether the
text comes from a document or from a language model."""

from __future__ import annotations

import json

import pytest

from qa.answer import Answer, AnswerSentence, Passage
from qa.terminal import json_line, print_answer

ESCAPES = "\x1b]0;pwned\x07\x1b[2J"


def _passage(text: str) -> Passage:
    return Passage(1, "doc\n.txt", "t\u202eitle", 0, len(text), text, 0.9)


def test_generated_sentences_are_printed_with_escapes_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    answer = Answer("q", f"Kyiv {ESCAPES} [1]", False, [_passage("Kyiv")], mode="generated",
                    model="m", sentences=[AnswerSentence(f"Kyiv {ESCAPES}", (1,), False)])
    print_answer(answer)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out and "NOT SUPPORTED" in out
    assert "doc\\x0a.txt" in out  # a newline in a name does not split the line


def test_extractive_text_and_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    answer = Answer("q", f"Kyiv {ESCAPES} [1]", False, [_passage(f"Kyiv {ESCAPES}")])
    print_answer(answer)
    assert "\x1b" not in capsys.readouterr().out
    line = json_line(answer.to_json())
    assert "\x1b" not in line and "\u202e" not in line and "\n" not in line
    assert json.loads(line)["answer"] == answer.text  # the same value, escaped
