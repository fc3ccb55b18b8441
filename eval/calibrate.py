"""Fit the answer-or-abstain model (qa/abstain.py) and write qa/calibration.json.

By default the model is fitted on ``eval/calibration.jsonl`` (50 answerable and 40 unanswerable
questions about the sample articles, written apart from the test set) and then checked on the
test set ``eval/sample.jsonl``, which it never sees while fitting. The threshold is the highest
one that keeps wrongly abstained answerable calibration questions at or below 4%.

    python eval/calibrate.py [--embedder NAME] [--index DIR | --corpus DIR]
                             [--questions FIT.jsonl] [--test TEST.jsonl] [--out FILE]

The signals' scale depends on the model and somewhat on the corpus (English questions over
German text score lower than German ones): for your own documents, fit with a question set of
your own (answerable and unanswerable) and point ``--out`` at a copy of qa/calibration.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from qa import Retriever  # noqa: E402
from qa.evaluation import load_questions  # noqa: E402
from qa.retriever import sample_corpus_dir  # noqa: E402

FEATURES = ["top_score", "top_sentence", "missing_terms", "no_time", "no_number"]
MAX_WRONG_ABSTAIN = 0.04


def collect(r: Retriever, path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    qs = load_questions(path)
    x, y = [], []
    for q in qs:
        a = r.ask(q.question, 5)
        x.append([a.features[f] for f in FEATURES])
        y.append(float(q.doc is not None))
    return np.array(x), np.array(y), [q.id for q in qs]


def fit(
    x: np.ndarray, y: np.ndarray, l2: float = 0.01, steps: int = 20000
) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by gradient descent on standardised features."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = p - y
        w -= 0.1 * (z.T @ g / len(y) + l2 * w)
        b -= 0.1 * float(g.mean())
    return w / sd, b - float((w / sd) @ mu)


def rates(p: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, float]:
    abstain = p < threshold
    return float(abstain[y == 0].mean()), float(abstain[y == 1].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", help="an existing index to calibrate on")
    ap.add_argument("--corpus", help="documents to index (default: the sample articles)")
    ap.add_argument("--embedder", default="multilingual-e5-small")
    ap.add_argument("--questions", default=str(HERE / "calibration.jsonl"),
                    help="question set to fit on")
    ap.add_argument("--test", default=str(HERE / "sample.jsonl"),
                    help="question set to check the fitted model on")
    ap.add_argument("--out", default=str(HERE.parent / "qa" / "calibration.json"))
    args = ap.parse_args()
    index = args.index or tempfile.mkdtemp(prefix="qa-cal-")
    corpus = Path(args.corpus) if args.corpus else sample_corpus_dir()
    r = (Retriever.load(index) if args.index
         else Retriever.build([corpus], index, embedder=args.embedder))
    x, y, _ = collect(r, Path(args.questions))
    w, b = fit(x, y)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    threshold = float(np.sort(p[y == 1])[int(MAX_WRONG_ABSTAIN * (y == 1).sum())])
    cal_abstain, cal_wrong = rates(p, y, threshold)
    xt, yt, _ = collect(r, Path(args.test))
    pt = 1 / (1 + np.exp(-(xt @ w + b)))
    test_abstain, test_wrong = rates(pt, yt, threshold)

    out = Path(args.out)
    table = json.loads(out.read_text("utf-8")) if out.exists() else {}
    table = {k: v for k, v in table.items() if isinstance(v, dict) and "weights" in v}
    table[r.info()["embedder"]] = {
        "bias": round(b, 4),
        "weights": {f: round(float(v), 4) for f, v in zip(FEATURES, w)},
        "threshold": round(threshold, 4),
        "fitted_on": Path(args.questions).name,
        "fitted_at": time.strftime("%Y-%m-%d"),
        "calibration": {"questions": len(y), "unanswerable_abstained": round(cal_abstain, 3),
                        "answerable_wrongly_abstained": round(cal_wrong, 3)},
        "test_sample": {"questions": len(yt), "unanswerable_abstained": round(test_abstain, 3),
                        "answerable_wrongly_abstained": round(test_wrong, 3)},
    }
    out.write_text(json.dumps(table, indent=1) + "\n", "utf-8")
    print(json.dumps(table[r.info()["embedder"]], indent=1))


if __name__ == "__main__":
    main()
