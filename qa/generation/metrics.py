"""Evaluating generated answers with the same checker that marks them in the chat.

Per question (:func:`judge_generated`) and over a run (:func:`summarize_generated`):

- **supported share**: generated sentences the checker accepts against the passages they cite;
- **citation precision**: (sentence, marker) pairs where the cited passage alone supports the
  sentence (a marker naming no retrieved passage counts as wrong);
- **citation recall**: of the generated sentences that some retrieved passage supports, the share
  whose own markers include such a passage (did the model cite where its claim comes from?);
- **answer-language match**: generated answers written in the language of the question;
- **fallback rate**: answered questions where the model's answer was replaced by the extractive
  one (endpoint failure, or nothing verifiable), and latency of the whole answer.
"""

from __future__ import annotations

from typing import Any

from .checker import SentenceChecker
from .prompt import detect_language

GENERATED_METRICS = ("generated_share", "fallback_rate", "supported_share",
                     "citation_precision", "citation_recall", "language_match")


def judge_generated(row: dict[str, Any], checker: SentenceChecker,
                    lang: str = "") -> dict[str, Any]:
    """Counts for one answer (the ``Answer.to_json()`` object) of a run with a model."""
    out: dict[str, Any] = {"generated": row.get("mode") == "generated",
                           "fallback": bool(row.get("notice")) and not row.get("abstained")}
    if not out["generated"]:
        return out
    passages = {int(p["rank"]): str(p["text"]) for p in row.get("passages") or []}
    sentences = row.get("sentences") or []
    pairs = [(s["text"], m) for s in sentences for m in s["markers"] if m in passages]
    bad_markers = sum(1 for s in sentences for m in s["markers"] if m not in passages)
    pair_ok = [r.supported(checker.threshold) for r in
               checker.supports([t for t, _ in pairs], [[passages[m]] for _, m in pairs])]
    ranks = sorted(passages)
    # Which retrieved passages support each sentence on its own (for recall).
    flat = [(i, r) for i in range(len(sentences)) for r in ranks]
    flat_ok = checker.supports([sentences[i]["text"] for i, _ in flat],
                               [[passages[r]] for _, r in flat])
    supporters: dict[int, set[int]] = {}
    for (i, r), res in zip(flat, flat_ok):
        if res.supported(checker.threshold):
            supporters.setdefault(i, set()).add(r)
    recall_base = [i for i in range(len(sentences)) if supporters.get(i)]
    recalled = [i for i in recall_base if supporters[i] & set(sentences[i]["markers"])]
    want = lang or detect_language(str(row.get("question", "")))
    out.update(
        sentences=len(sentences),
        supported=sum(1 for s in sentences if s["supported"]),
        citations=len(pairs) + bad_markers,
        precise_citations=sum(pair_ok),
        recall_base=len(recall_base),
        recalled=len(recalled),
        language_match=(detect_language(str(row.get("answer", ""))) == want) if want else None,
    )
    return out


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def summarize_generated(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The generated-answer metrics over rows that carry a ``generation`` verdict."""
    gens = [r["generation"] for r in rows if r.get("generation")]
    if not gens:
        return {}
    answered = [g for r, g in zip(rows, gens) if not r.get("abstained")]
    done = [g for g in gens if g["generated"]]
    langs = [g["language_match"] for g in done if g.get("language_match") is not None]
    return {
        "generated_share": _ratio(sum(g["generated"] for g in answered), len(answered)),
        "fallback_rate": _ratio(sum(g["fallback"] for g in answered), len(answered)),
        "supported_share": _ratio(sum(g["supported"] for g in done),
                                  sum(g["sentences"] for g in done)),
        "citation_precision": _ratio(sum(g["precise_citations"] for g in done),
                                     sum(g["citations"] for g in done)),
        "citation_recall": _ratio(sum(g["recalled"] for g in done),
                                  sum(g["recall_base"] for g in done)),
        "language_match": _ratio(sum(bool(x) for x in langs), len(langs)),
    }
