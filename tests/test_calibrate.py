"""The ranker's fitting (eval/calibrate.py): the listwise objective and its calibration."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def _calibrate() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "eval" / "calibrate.py"
    spec = importlib.util.spec_from_file_location("qa_eval_calibrate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def _questions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Questions of 8 candidate sentences, one answering. Feature 0 sets the answering sentence
    apart within its question; feature 1 is the question's difficulty (the same for all its
    sentences), and hard questions' answering sentences stand out more on feature 0."""
    xs, ys, starts = [], [], [0]
    for _ in range(n):
        hard = rng.uniform(0, 1)
        f0 = rng.normal(0, 1, 8) - 3 * hard
        answer = int(np.argmax(f0 + rng.normal(0, 0.3, 8)))
        f0[answer] += 1.0
        xs += [[a, hard] for a in f0]
        ys += [float(i == answer) for i in range(8)]
        starts.append(len(ys))
    return np.array(xs), np.array(ys), np.array(starts)


def test_listwise_ranker_picks_the_answering_sentence_and_is_calibrated() -> None:
    cal = _calibrate()
    rng = np.random.default_rng(0)
    x, y, starts = _questions(rng, 400)
    coef, bias = cal.fit_ranker(x, y, starts)
    tx, ty, tstarts = _questions(rng, 300)
    p = 1 / (1 + np.exp(-(tx @ coef + bias)))
    top = [lo + int(np.argmax(p[lo:hi])) for lo, hi in zip(tstarts[:-1], tstarts[1:])]
    assert np.mean(ty[top]) > 0.85
    # Within a question only feature 0 tells the sentences apart: the difficulty, the same for
    # all of a question's sentences, gets no weight (a per-sentence fit gives it one).
    assert abs(coef[1]) < 0.05 * abs(coef[0])
    pointwise, _ = cal.fit_logistic(x, y)
    assert abs(pointwise[1]) > 0.5 * abs(pointwise[0])
    # The probabilities mean what they say, across questions.
    assert abs(p.mean() - ty.mean()) < 0.03


def test_abstention_reads_the_sentence_model_it_was_fitted_with(
    corpus: Path, tmp_path: Path
) -> None:
    """The sentences an answer cites come from ``ranker``; the abstention model's evidence (best
    sentence, its probability) from the model stored with it, when there is one."""
    from qa import Retriever
    from qa.answering import build_answer

    from .conftest import TrigramEmbedder

    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    question = "Which volcano in Sicily is active?"
    found = r._score_vector(r._embed_queries([question])[0], 20)
    by_sim = {"bias": 0.0, "weights": {"sim": 10.0}}
    against_sim = {"bias": 0.0, "weights": {"sim": -10.0}}
    never: dict[str, Any] = {"bias": 0.0, "weights": {}, "threshold": -1.0}
    alone = build_answer(question, found, 5, ranker=by_sim, abstainer=never)
    split = build_answer(question, found, 5, ranker=by_sim,
                         abstainer={**never, "ranker": against_sim})
    assert [c.text for c in split.citations] == [c.text for c in alone.citations]
    assert split.features["ranker_logit"] != alone.features["ranker_logit"]
    cands = found.candidates()
    worst = min(c.sim for c in cands)
    assert np.isclose(split.features["ranker_logit"], -10.0 * worst, atol=1e-3)


def test_abstention_trees_learn_what_a_weighted_sum_cannot_and_push_one_way() -> None:
    """The boosted trees, read back through ``qa.abstain.confidence``: one signal decides for
    questions over text in their own language, another across languages (an interaction a
    weighted sum cannot hold), and a higher score never lowers the confidence
    (``ABSTAIN_MONOTONE``)."""
    cal = _calibrate()
    rng = np.random.default_rng(1)
    names = cal.ABSTAIN_FEATURES

    def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(0, 1, (n, len(names)))
        x[:, names.index("cross_lingual")] = rng.integers(0, 2, n)
        top = rng.uniform(0.7, 0.95, n)
        x[:, names.index("top_score")] = top
        across = x[:, names.index("cross_lingual")] == 1
        missing = x[:, names.index("missing_share")]
        return x, np.where(across, top > 0.82, missing < 0).astype(float)

    x, y = rows(3000)
    trees = cal.fit_trees(x, y, np.ones(len(y)))
    tx, ty = rows(1000)
    p = cal.abstain_probability(trees, tx)
    assert np.mean((p > 0.5) == (ty == 1)) > 0.93
    coef, bias = cal.fit_logistic(x, y)
    linear = cal.abstain_probability(cal.model(coef, bias, names), tx)
    assert np.mean((linear > 0.5) == (ty == 1)) < np.mean((p > 0.5) == (ty == 1)) - 0.02
    higher = tx.copy()
    higher[:, names.index("top_score")] += 0.05
    assert np.all(cal.abstain_probability(trees, higher) >= p - 1e-12)


def test_the_language_axis_points_from_english_to_german_and_is_written_on_one_line(
    tmp_path: Path,
) -> None:
    cal = _calibrate()
    from qa.evaluation import Question

    lang = np.eye(8)[0]  # what a fake embedder adds for German

    class Embedder:
        def embed_queries(self, texts: list[str]) -> np.ndarray:
            rng = np.random.default_rng(len(texts[0]))
            v = rng.normal(0, 0.1, (len(texts), 8)) + np.array(
                [lang if t.startswith("Wer") else -lang for t in texts])
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    class R:
        embedder = Embedder()

    rows = [Question(f"q{i}-{la}", text, None, ())
            for i in range(40) for la, text in (("en", f"Who is {i}?"), ("de", f"Wer ist {i}?"))]
    axis = cal.fit_language_axis(R(), rows)
    assert abs(np.linalg.norm(axis) - 1) < 1e-6 and axis @ lang > 0.9
    out = tmp_path / "models.json"
    cal.write_models(out, {"e": {"language_axis": [round(float(x), 6) for x in axis]}})
    assert sum("language_axis" in line for line in out.read_text().splitlines()) == 1
    assert np.allclose(json.loads(out.read_text())["e"]["language_axis"], axis, atol=1e-6)
