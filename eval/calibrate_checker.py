"""Fit and test the similarity threshold of the generated-sentence checker on XQuAD (dev half).

XQuAD is parallel: each English paragraph is a professional translation of a German one. So the
English sentence that holds a question's answer is a faithful paraphrase, in another language,
of a sentence of the German paragraph: a claim the checker must accept when it cites that
paragraph. Against it, claims it must reject, made from the same sentences:

- **number**: one number of the sentence changed to a value the paragraph does not hold;
- **name**: one name of the sentence replaced by a name from another article;
- **elsewhere**: an answer sentence of another paragraph of the same article (same topic, not
  in the cited passage).

German answer sentences citing their own paragraph are positives too (the small model mostly
copies). Articles alternate between the fitting half and the test half, so the reported
precision and recall are measured on articles the threshold never saw.

    python eval/calibrate_checker.py --xquad ../shared/xquad [--embedder NAME] [--write]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.abstain import salient_terms  # noqa: E402
from qa.chunking import sentence_spans  # noqa: E402
from qa.embedders import DEFAULT_EMBEDDER, get_embedder  # noqa: E402
from qa.generation.checker import SentenceChecker, missing_names  # noqa: E402

CHECKER_JSON = REPO / "qa" / "generation" / "checker.json"


def _sentence_at(text: str, offset: int) -> str:
    for s, e in sentence_spans(text):
        if s <= offset < e:
            return " ".join(text[s:e].split())
    return ""


def load_pairs(xquad: Path, seed: int = 0) -> list[dict[str, Any]]:
    """Claims with the paragraph they cite, a label, a kind and the article's half."""
    rng = random.Random(seed)
    en = json.loads((xquad / "xquad.dev.en.json").read_text("utf-8"))["data"]
    de = json.loads((xquad / "xquad.dev.de.json").read_text("utf-8"))["data"]
    articles = []
    for a_en, a_de in zip(en, de):
        paras = []
        for p_en, p_de in zip(a_en["paragraphs"], a_de["paragraphs"]):
            de_qas = {q["id"]: q for q in p_de["qas"]}
            en_sents, de_sents = [], []
            for q in p_en["qas"]:
                s = _sentence_at(p_en["context"], q["answers"][0]["answer_start"])
                if s and s not in en_sents:
                    en_sents.append(s)
                qd = de_qas.get(q["id"])
                if qd:
                    sd = _sentence_at(p_de["context"], qd["answers"][0]["answer_start"])
                    if sd and sd not in de_sents:
                        de_sents.append(sd)
            paras.append({"de": p_de["context"], "en_sents": en_sents, "de_sents": de_sents})
        articles.append(paras)
    names_by_article = [
        sorted({t for p in paras for s in p["en_sents"] for t in salient_terms(s)
                if t.isalpha() and len(t) > 3})
        for paras in articles
    ]
    pairs: list[dict[str, Any]] = []
    for ai, paras in enumerate(articles):
        half = "fit" if ai % 2 == 0 else "test"
        other_names = [n for j, ns in enumerate(names_by_article) if j != ai for n in ns]
        for pi, p in enumerate(paras):
            ctx = p["de"]

            def add(claim: str, label: int, kind: str, _ctx: str = ctx,
                    _half: str = half) -> None:
                pairs.append({"claim": claim, "passage": _ctx, "label": label, "kind": kind,
                              "half": _half})

            for s in p["en_sents"]:
                add(s, 1, "paraphrase-en")
                nums = [m for m in re.finditer(r"\d+", s) if m.group() not in ctx]
                nums = nums or list(re.finditer(r"\d+", s))
                if nums:
                    m = rng.choice(nums)
                    value = int(m.group())
                    for _ in range(20):
                        new = str(value + rng.choice([1, 2, 3, 7, 10, 100]) * rng.choice([1, -1]))
                        if new.lstrip("-") and new not in ctx and not new.startswith("-"):
                            add(s[: m.start()] + new + s[m.end():], 0, "number")
                            break
                names = [t for t in salient_terms(s) if t.isalpha() and len(t) > 3]
                if names and other_names:
                    old = rng.choice(names)
                    for _ in range(20):
                        new = rng.choice(other_names)
                        if missing_names(f"The {new}", [ctx]):
                            add(re.sub(rf"\b{re.escape(old)}\b", new, s), 0, "name")
                            break
                others = [q for j, o in enumerate(paras) if j != pi for q in o["en_sents"]]
                if others:
                    add(rng.choice(others), 0, "elsewhere")
            for s in p["de_sents"]:
                add(s, 1, "copy-de")
    return pairs


def score(pairs: list[dict[str, Any]], checker: SentenceChecker) -> None:
    sups = checker.supports([p["claim"] for p in pairs], [[p["passage"]] for p in pairs])
    for p, s in zip(pairs, sups):
        p["similarity"] = s.similarity
        p["lexical_ok"] = not s.missing_numbers and not s.missing_names
        p["missing"] = [*s.missing_numbers, *s.missing_names]


def metrics(pairs: list[dict[str, Any]], t: float) -> dict[str, Any]:
    pred = [p["similarity"] >= t and p["lexical_ok"] for p in pairs]
    tp = sum(1 for p, y in zip(pairs, pred) if y and p["label"])
    fp = sum(1 for p, y in zip(pairs, pred) if y and not p["label"])
    pos = sum(p["label"] for p in pairs)
    out: dict[str, Any] = {
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / pos, 3) if pos else None,
        "pairs": len(pairs),
    }
    for kind in sorted({p["kind"] for p in pairs}):
        sel = [(p, y) for p, y in zip(pairs, pred) if p["kind"] == kind]
        ok = sum(1 for p, y in sel if y == bool(p["label"]))
        out[kind] = {"n": len(sel), "correct": round(ok / len(sel), 3)}
    return out


def fit(pairs: list[dict[str, Any]], min_precision: float) -> float:
    """The lowest threshold whose precision on ``pairs`` reaches ``min_precision`` (most recall
    at that precision)."""
    for t in [x / 1000 for x in range(700, 1000, 2)]:
        m = metrics(pairs, t)
        if m["precision"] is not None and m["precision"] >= min_precision:
            return t
    return 0.99


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xquad", default=str(REPO.parent / "shared" / "xquad"))
    ap.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    ap.add_argument("--min-precision", type=float, default=0.99)
    ap.add_argument("--write", action="store_true", help=f"store the threshold in {CHECKER_JSON}")
    ap.add_argument("--pairs", help="also write the scored pairs (JSONL) here")
    args = ap.parse_args()
    pairs = load_pairs(Path(args.xquad))
    checker = SentenceChecker(get_embedder(args.embedder), threshold=0.0)
    score(pairs, checker)
    if args.pairs:
        with open(args.pairs, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs)
    fit_pairs = [p for p in pairs if p["half"] == "fit"]
    test_pairs = [p for p in pairs if p["half"] == "test"]
    t = fit(fit_pairs, args.min_precision)
    result = {"threshold": t, "min_precision": args.min_precision,
              "fit": metrics(fit_pairs, t), "test": metrics(test_pairs, t),
              "similarity_only_test": metrics([{**p, "lexical_ok": True} for p in test_pairs], t),
              "data": "XQuAD dev half, alternate articles (eval/calibrate_checker.py)"}
    print(json.dumps(result, indent=1))
    if args.write:
        table = json.loads(CHECKER_JSON.read_text("utf-8")) if CHECKER_JSON.exists() else {}
        table[args.embedder] = result
        CHECKER_JSON.write_text(json.dumps(table, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
