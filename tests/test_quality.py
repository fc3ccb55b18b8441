"""The sample-article question set against the real model: fails if quality slides below the
recorded baseline (eval/baseline.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import Retriever
from qa import evaluation as ev

from .conftest import REPO

pytestmark = pytest.mark.model


def test_sample_set_scores_do_not_fall_below_the_baseline(sample_index: Path) -> None:
    baseline = json.loads((REPO / "eval" / "baseline.json").read_text("utf-8"))
    questions = ev.load_questions(REPO / "eval" / "sample.jsonl")
    summary = ev.run(Retriever.load(sample_index), questions, k=5).summary
    eps = 1e-3
    for metric in ("hit@1", "hit@k", "mrr", "answer_hit@k", "cited_holds_answer",
                   "cited_sentence_holds_answer", "abstained_unanswerable"):
        assert summary[metric] >= baseline[metric] - eps, (metric, summary[metric])
    assert summary["wrongly_abstained"] <= baseline["wrongly_abstained"] + eps
    # the targets, which the baseline must keep meeting
    assert summary["answer_hit@k"] >= 0.95
    assert summary["wrongly_abstained"] <= 0.05


@pytest.mark.parametrize("name", ["followups.jsonl", "followups2.jsonl"])
def test_follow_up_sets_do_not_fall_below_the_baseline(sample_index: Path, name: str) -> None:
    """Follow-ups asked with their history: the passage the answer cites first holds the answer
    at least as often as recorded (``follow_ups`` in eval/baseline.json)."""
    recorded = json.loads((REPO / "eval" / "baseline.json").read_text("utf-8"))["follow_ups"][name]
    questions = ev.load_questions(REPO / "eval" / name)
    assert all(q.history for q in questions)
    summary = ev.run(Retriever.load(sample_index), questions, k=5).summary
    for metric, value in recorded.items():
        assert summary[metric] >= value - 1e-3, (metric, summary[metric])
    assert summary["wrongly_abstained"] == 0.0
