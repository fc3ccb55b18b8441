"""Fit the sentence ranker (qa/ranking.py) and the answer-or-abstain model (qa/abstain.py), and
write both into qa/calibration.json.

Fitted on a mix of domains so that abstention holds on documents it never saw:

- the XQuAD dev half (Wikipedia, German paragraphs, English and German questions), every question
  asked twice: once with the whole index (answerable) and once with its own paragraph left out
  of the retrieved passages (unanswerable, and hard: the rest of its article is still there);
- the mixed-language XQuAD set ``eval/xquad-mixed`` (the same articles, half of them in English,
  so that German questions meet English text and every question meets paragraphs in its own
  language that do not answer it), the same way;
- the sample-article fitting set ``eval/calibration.jsonl`` (news; answerable and hand-written
  unanswerable questions).

Questions are searched with the embedder's German-English axis removed (fitted here on XQuAD's
question pairs, ``fit_language_axis``, and shipped with the models). The XQuAD part is
cross-validated by article (each fold's models never saw its articles) and the
report gives every metric per domain and language. The sample-article test sets
(``eval/sample.jsonl``, ``eval/sample-hard.jsonl``) are never fitted on. The threshold is the
highest one that keeps wrongly abstained answerable questions of the fitting mix at or below
``--max-wrong``.

    python eval/calibrate.py [--embedder NAME] [--corpus DIR --questions FIT.jsonl ...]
                             [--test TEST.jsonl ...] [--out FILE] [--report FILE]

For your own documents: ``--corpus DOCS --questions YOURS.jsonl`` adds your domain to the mix;
point ``QA_CALIBRATION`` at the ``--out`` file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from qa import Retriever, ranking  # noqa: E402
from qa.abstain import confidence  # noqa: E402
from qa.answering import ANSWER_PASSAGES, FEATURE_PASSAGES, Retrieved, build_answer  # noqa: E402
from qa.evaluation import Question, load_questions  # noqa: E402
from qa.retriever import clean_question, sample_corpus_dir  # noqa: E402

ABSTAIN_FEATURES = ["cross_lingual", "top_score", "top_sentence", "lift", "ranker_logit",
                    "missing_terms",
                    "missing_share", "missing_top_share", "best_content_hit", "best_name_hit",
                    "best_name_hit_passage", "no_time", "no_number", "asks_kind",
                    "short_answer"]
# The direction each signal may push the trees' belief that the question is answered (+1 up,
# -1 down, 0 either): a higher score never argues for abstaining, a missing name never against
# it. This keeps the trees from learning quirks of the fitting sets that would not carry over to
# other documents.
ABSTAIN_MONOTONE = {"top_score": 1, "top_sentence": 1, "lift": 1, "ranker_logit": 1,
                    "missing_terms": -1, "missing_share": -1, "missing_top_share": -1,
                    "best_content_hit": 1, "best_name_hit": 1, "best_name_hit_passage": 1,
                    "no_time": -1, "no_number": -1, "short_answer": -1}


@dataclass
class Case:
    """One question as asked in one setting, with what retrieval found."""

    q: Question
    domain: str
    group: str  # cross-validation group (article)
    answerable: bool
    found: Retrieved


def retrieve(r: Retriever, questions: list[Question], domain: str,
             leave_out: bool = False, by_article: bool | None = None) -> list[Case]:
    """The cases of ``questions``; ``leave_out`` adds each answerable one again with its own
    document left out (unanswerable); ``by_article``: cross-validation groups are the first
    folder of the document id (default for the domain "xquad")."""
    by_article = domain == "xquad" if by_article is None else by_article
    cases = []
    for q in questions:
        text = clean_question(q.question)
        found = r._score_vector(r._embed_queries([text])[0], FEATURE_PASSAGES)
        group = (q.doc or "none").split("/")[0] if by_article else domain
        cases.append(Case(q, domain, group, q.doc is not None, found))
        if leave_out and q.doc is not None:
            chunks = found.snapshot.chunks
            kept = [(row, s) for row, s in found.scored if chunks[row].doc_id != q.doc]
            cases.append(Case(q, domain + "-left-out", group, False, replace(found, scored=kept)))
    return cases


def fit_language_axis(r: Retriever, questions: list[Question]) -> np.ndarray:
    """The mean difference between the German and the English wording of the same questions
    (XQuAD's rows ``ID-de`` and ``ID-en``), unit length: the direction along which the embedder
    tells the two languages apart, removed from every question before it is searched
    (``qa.answering.language_axis``)."""
    by_id: dict[str, dict[str, str]] = defaultdict(dict)
    for q in questions:
        stem, _, lang = q.id.rpartition("-")
        if lang in ("de", "en"):
            by_id[stem][lang] = clean_question(q.question)
    pairs = [p for p in by_id.values() if len(p) == 2]
    de = r.embedder.embed_queries([p["de"] for p in pairs])
    en = r.embedder.embed_queries([p["en"] for p in pairs])
    axis = (de - en).mean(0)
    out: np.ndarray = axis / np.linalg.norm(axis)
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.01, steps: int = 3000,
                 weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (Newton steps) on standardised features."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    wt = np.ones(len(y)) if weight is None else weight
    w = np.zeros(z.shape[1])
    reg = l2 * len(y) * np.eye(z.shape[1])
    reg[-1, -1] = 0.0
    for _ in range(min(steps, 50)):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
        g = z.T @ (wt * (p - y)) + reg @ w
        h = (z * (wt * p * (1 - p))[:, None]).T @ z + reg + 1e-6 * np.eye(z.shape[1])
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    coef = w[:-1] / sd
    return coef, float(w[-1] - coef @ mu)


def fit_listwise(x: np.ndarray, y: np.ndarray, starts: np.ndarray, l2: float = 0.01,
                 steps: int = 50) -> np.ndarray:
    """Weights of a conditional logit (softmax over each question's candidates, rows
    ``starts[g]:starts[g + 1]``), maximising the mean log-probability of the answer-holding
    sentences: it learns what sets the answering sentence apart from the others of its question,
    where a per-sentence model also spends itself on which questions are hard (damped Newton
    steps on standardised features; convex)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    d, groups = z.shape[1], len(starts) - 1
    reg = l2 * groups * np.eye(d)
    spans = list(zip(starts[:-1].tolist(), starts[1:].tolist()))
    targets = [y[lo:hi] / y[lo:hi].sum() for lo, hi in spans]

    def loss(w: np.ndarray) -> float:
        s = z @ w
        total = 0.5 * float(w @ reg @ w)
        for (lo, hi), t in zip(spans, targets):
            m = s[lo:hi].max()
            total += float(m + np.log(np.exp(s[lo:hi] - m).sum()) - t @ s[lo:hi])
        return total

    w = np.zeros(d)
    current = loss(w)
    for _ in range(steps):
        s = z @ w
        g, h = reg @ w, reg + 1e-6 * np.eye(d)
        for (lo, hi), t in zip(spans, targets):
            zs = z[lo:hi]
            e = np.exp(s[lo:hi] - s[lo:hi].max())
            p = e / e.sum()
            g += zs.T @ (p - t)
            zp = zs.T @ p
            h += (zs * p[:, None]).T @ zs - np.outer(zp, zp)
        step = np.linalg.solve(h, g)
        scale = 1.0
        while scale > 1e-4 and loss(w - scale * step) > current:  # a full step can overshoot
            scale /= 2
        w = w - scale * step
        previous, current = current, loss(w)
        if previous - current < 1e-9 * max(1.0, abs(current)):
            break
    coef: np.ndarray = w / sd
    return coef


def fit_ranker(x: np.ndarray, y: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, float]:
    """The sentence ranker: the order within a question from :func:`fit_listwise`, and its
    score turned into a probability that the sentence holds the answer by a one-feature
    logistic fit over all sentences (answering compares that probability across questions:
    second sentences, the abstention model's ``ranker_logit``)."""
    coef = fit_listwise(x, y, starts)
    (a,), b = fit_logistic((x @ coef)[:, None], y)
    return coef * a, b


def ranker_rows(cases: list[Case]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows and labels (the sentence holds an answer) of the answerable questions that
    have an answer-holding sentence among the candidates, and where each question's rows
    start (with the end as the last entry)."""
    xs, ys, starts = [], [], [0]
    for c in cases:
        if not c.answerable or not c.q.answers:
            continue
        cands = c.found.candidates(ANSWER_PASSAGES)
        labels = [float(any(a in x.text for a in c.q.answers)) for x in cands]
        if not any(labels):
            continue
        xs.extend(ranking.features(c.q.question, cands))
        ys.extend(labels)
        starts.append(len(ys))
    return np.array(xs), np.array(ys), np.array(starts)


def model(coef: np.ndarray, bias: float, names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"bias": round(bias, 4), "weights": {n: round(float(v), 4) for n, v in
                                                zip(names, coef)}}


def abstain_rows(cases: list[Case], ranker: dict[str, Any],
                 evidence: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The abstention model's feature rows and labels (answerable); ``evidence`` is the sentence
    model whose best sentence and probability the abstention model reads (default: ``ranker``)."""
    no: dict[str, Any] = {"bias": 0.0, "weights": {}, "threshold": -1.0}  # never abstain
    if evidence is not None:
        no["ranker"] = evidence
    x = []
    for c in cases:
        a = build_answer(c.q.question, c.found, 5, ranker=ranker, abstainer=no)
        x.append([a.features.get(f, 0.0) for f in ABSTAIN_FEATURES])
    return np.array(x), np.array([float(c.answerable) for c in cases])


def fit_trees(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> dict[str, Any]:
    """Boosted regression trees (scikit-learn's histogram gradient boosting, monotone in each
    signal as ``ABSTAIN_MONOTONE`` says), exported as ``qa.abstain.confidence`` reads them."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    fitted = HistGradientBoostingClassifier(
        max_depth=3, max_iter=200, learning_rate=0.05, random_state=0,
        monotonic_cst=[ABSTAIN_MONOTONE.get(f, 0) for f in ABSTAIN_FEATURES],
    ).fit(x, y, sample_weight=weight)
    trees = []
    for (predictor,) in fitted._predictors:
        nodes = predictor.nodes
        trees.append([
            [float(n["value"])] if n["is_leaf"] else
            [ABSTAIN_FEATURES[int(n["feature_idx"])], float(n["num_threshold"]), int(n["left"]),
             int(n["right"])]
            for n in nodes])
    return {"bias": float(np.ravel(fitted._baseline_prediction)[0]), "trees": trees}


def abstain_probability(abstainer: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """``qa.abstain.confidence`` for each row of ``x`` (``ABSTAIN_FEATURES`` columns)."""
    return np.array([confidence(dict(zip(ABSTAIN_FEATURES, row.tolist())), abstainer)
                     for row in x])


def fit_abstainer(x: np.ndarray, y: np.ndarray, weight: np.ndarray, groups: np.ndarray,
                  max_wrong: float, kind: str) -> dict[str, Any]:
    """The abstention model and its threshold: the highest that wrongly abstains on at most
    ``max_wrong`` of the answerable questions. For trees the threshold is read from predictions
    on articles each model did not see (5 folds by ``groups``): trees fit their own rows too
    closely for their scores there to say where others fall."""
    if kind == "logistic":
        coef, bias = fit_logistic(x, y, weight=weight)
        abstainer = model(coef, bias, ABSTAIN_FEATURES)
        p = abstain_probability(abstainer, x)
    else:
        abstainer = fit_trees(x, y, weight)
        p = np.zeros(len(y))
        names = sorted(set(groups.tolist()))
        for f in range(5):
            held = np.isin(groups, names[f::5])
            p[held] = abstain_probability(fit_trees(x[~held], y[~held], weight[~held]), x[held])
    answerable = np.sort(p[y == 1])
    abstainer["threshold"] = round(float(answerable[int(max_wrong * len(answerable))]) - 1e-4, 4)
    return abstainer


def fit_all(cases: list[Case], max_wrong: float, listwise: bool = True,
            abstain_model: str = "trees") -> tuple[dict[str, Any], dict[str, Any]]:
    """The sentence ranker and the abstention model. ``listwise``: sentences are chosen by the
    listwise ranker, while abstention keeps reading the per-sentence model's best sentence and
    probability (stored with it as ``abstain["ranker"]``). ``abstain_model``: ``"trees"`` or
    ``"logistic"``."""
    xr, yr, starts = ranker_rows(cases)
    pointwise = model(*fit_logistic(xr, yr), ranking.FEATURES)
    ranker = model(*fit_ranker(xr, yr, starts), ranking.FEATURES) if listwise else pointwise
    evidence = pointwise if listwise else None
    xa, ya = abstain_rows(cases, ranker, evidence)
    # Each domain weighs as much as the others, whatever its size.
    weight = np.ones(len(ya))
    for dom in {c.domain.split("-")[0] for c in cases}:
        idx = np.array([c.domain.split("-")[0] == dom for c in cases])
        weight[idx] = len(ya) / idx.sum()
    weight /= weight.mean()
    abstainer = fit_abstainer(xa, ya, weight, np.array([c.group for c in cases]), max_wrong,
                              abstain_model)
    if evidence is not None:
        abstainer["ranker"] = evidence
    return ranker, abstainer


def score(cases: list[Case], ranker: dict[str, Any], abstainer: dict[str, Any]
          ) -> list[dict[str, Any]]:
    """Per-case verdicts with the given models."""
    out = []
    for c in cases:
        a = build_answer(c.q.question, c.found, 5, ranker=ranker, abstainer=abstainer)
        row: dict[str, Any] = {"domain": c.domain, "lang": c.q.lang, "answerable": c.answerable,
                               "abstained": a.abstained}
        if c.answerable:
            cited = {x.marker for x in a.citations}
            texts = [p.text for p in a.passages if p.rank in cited]
            row["rank1"] = bool(a.passages) and a.passages[0].doc_id == c.q.doc
            row["cited_holds"] = (not a.abstained and bool(texts)
                                  and any(ans in texts[0] for ans in c.q.answers))
            row["sentence_holds"] = (not a.abstained and any(
                ans in x.text for x in a.citations for ans in c.q.answers))
        out.append(row)
    return out


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        base = r["domain"]
        groups[base].append(r)
        if r["lang"]:
            groups[f"{base}/{r['lang']}"].append(r)

    def mean(xs: list[float]) -> float | None:
        return round(float(np.mean(xs)), 3) if xs else None

    out = {}
    for name, rs in sorted(groups.items()):
        ans = [r for r in rs if r["answerable"]]
        una = [r for r in rs if not r["answerable"]]
        out[name] = {k: v for k, v in {
            "questions": len(rs),
            "rank1": mean([r["rank1"] for r in ans]),
            "cited_holds_answer": mean([r["cited_holds"] for r in ans]),
            "sentence_holds_answer": mean([r["sentence_holds"] for r in ans]),
            "wrongly_abstained": mean([r["abstained"] for r in ans]),
            "unanswerable_abstained": mean([r["abstained"] for r in una]),
        }.items() if v is not None}
    return out


def write_models(path: Path, table: dict[str, Any]) -> None:
    """``table`` as JSON, each of the abstention model's trees and the language axis on one line
    (a readable diff)."""
    trees: list[str] = []

    def lines(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ([lines_tree(t) for t in v] if k == "trees" else
                        lines_tree(v) if k == "language_axis" else lines(v))
                    for k, v in value.items()}
        return value

    def lines_tree(tree: list[Any]) -> str:
        trees.append(json.dumps(tree, separators=(",", ":")))
        return f"@tree{len(trees) - 1}@"

    text = json.dumps(lines(table), indent=1)
    text = re.sub(r'"@tree(\d+)@"', lambda m: trees[int(m.group(1))], text)
    path.write_text(text + "\n", "utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--embedder", default="multilingual-e5-small")
    ap.add_argument("--xquad", default=str(HERE / "xquad"), help="XQuAD-style folder")
    ap.add_argument("--corpus", help="documents of --questions (default: the sample articles)")
    ap.add_argument("--questions", nargs="*", default=[str(HERE / "calibration.jsonl")])
    ap.add_argument("--test", nargs="*", default=[str(HERE / "sample.jsonl"),
                                                  str(HERE / "sample-hard.jsonl")])
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--max-wrong", type=float, default=0.02)
    ap.add_argument("--ranker-fit", choices=["listwise", "pointwise"], default="listwise",
                    help="how the sentences an answer cites are chosen: by a listwise ranker "
                         "(default; abstention still reads the per-sentence model), or by the "
                         "per-sentence model alone")
    ap.add_argument("--abstain-model", choices=["trees", "logistic"], default="trees",
                    help="how the signals become a confidence: boosted trees (default) or a "
                         "logistic model")
    ap.add_argument("--mixed", default=str(HERE / "xquad-mixed"),
                    help="the mixed-language XQuAD set (half its articles in English), fitted on "
                         "like --xquad; '' leaves it out")
    ap.add_argument("--language-axis", action=argparse.BooleanOptionalAction, default=True,
                    help="search questions with the German-English axis removed (default; fitted "
                         "on XQuAD's question pairs and shipped with the models)")
    ap.add_argument("--workdir", help="keep the indexes here (default: a temporary folder)")
    ap.add_argument("--out", default=str(HERE.parent / "qa" / "calibration.json"))
    ap.add_argument("--report", default=str(HERE / "calibration-report.json"))
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="qa-cal-"))
    xq = Retriever.build([Path(args.xquad) / "corpus"], work / "xquad", embedder=args.embedder)
    own = Retriever.build([Path(args.corpus) if args.corpus else sample_corpus_dir()],
                          work / "own", embedder=args.embedder)
    xq_questions = load_questions(Path(args.xquad) / "questions.jsonl")
    axis = fit_language_axis(xq, xq_questions) if args.language_axis else None
    for r in (xq, own):
        r._axis = axis
    xq_cases = retrieve(xq, xq_questions, "xquad", leave_out=True)
    if args.mixed:
        # The same articles, half in English: a question meets paragraphs in its own language
        # that do not answer it (German questions over English text, which XQuAD lacks).
        mixed = Retriever.build([Path(args.mixed) / "corpus"], work / "mixed",
                                embedder=args.embedder)
        mixed._axis = axis
        xq_cases += retrieve(mixed, load_questions(Path(args.mixed) / "questions.jsonl"),
                             "mixed", leave_out=True, by_article=True)
    fit_cases = [c for path in args.questions for c in retrieve(own, load_questions(path),
                                                                "sample-fit")]
    test_cases = [c for path in args.test if Path(path).exists() for c in
                  retrieve(own, load_questions(path), "sample-test")]

    # Cross-validation by article: each XQuAD fold is scored by models fitted without it.
    articles = sorted({c.group for c in xq_cases})
    cv_rows: list[dict[str, Any]] = []
    for f in range(args.folds):
        held = set(articles[f::args.folds])
        ranker, abstainer = fit_all([c for c in xq_cases if c.group not in held] + fit_cases,
                                    args.max_wrong, args.ranker_fit == "listwise",
                                    args.abstain_model)
        cv_rows += score([c for c in xq_cases if c.group in held], ranker, abstainer)
    ranker, abstainer = fit_all(xq_cases + fit_cases, args.max_wrong,
                                args.ranker_fit == "listwise", args.abstain_model)
    final_rows = score(fit_cases + test_cases, ranker, abstainer)
    summary = {"xquad (cross-validated by article)": report(cv_rows),
               "sample articles (final model)": report(final_rows)}

    out = Path(args.out)
    table = json.loads(out.read_text("utf-8")) if out.exists() else {}
    table = {k: v for k, v in table.items() if isinstance(v, dict) and "ranker" in v}
    table[xq.info()["embedder"]] = {
        "ranker": ranker, "abstain": abstainer,
        "fitted_on": ["eval/xquad (with and without each question's paragraph)",
                      *(["eval/xquad-mixed (the same)"] if args.mixed else []),
                      *[Path(p).name for p in args.questions]],
        "fitted_at": time.strftime("%Y-%m-%d"),
    }
    if axis is not None:
        table[xq.info()["embedder"]]["language_axis"] = [round(float(x), 6) for x in axis]
    write_models(out, table)
    Path(args.report).write_text(json.dumps(summary, indent=1) + "\n", "utf-8")
    print(json.dumps(summary, indent=1))
    print(json.dumps(table[xq.info()["embedder"]], indent=1))


if __name__ == "__main__":
    main()

