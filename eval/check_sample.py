"""Validate eval/sample.jsonl against the sample corpus.

Usage: python3 eval/check_sample.py [CORPUS_DIR]   (default: /work/shared/corpus)
"""
import json
import sys
from collections import Counter
from pathlib import Path

KEYS = {"id", "question", "doc", "answers", "lang"}
DOCS = ("istanbul-peace-talks.de.txt", "energy-strike-moratorium.de.txt")


def main() -> int:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/corpus")
    texts = {d: (corpus / d).read_text(encoding="utf-8") for d in DOCS}
    errors, ids, counts = [], set(), Counter()
    sample = Path(__file__).resolve().parent / "sample.jsonl"
    for n, line in enumerate(sample.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {n}: bad JSON ({exc})")
            continue
        if not isinstance(row, dict) or set(row) != KEYS:
            errors.append(f"line {n}: keys {sorted(row) if isinstance(row, dict) else row!r}")
            continue
        qid, doc, answers, lang = row["id"], row["doc"], row["answers"], row["lang"]
        if qid in ids:
            errors.append(f"line {n}: duplicate id {qid}")
        ids.add(qid)
        if lang not in ("en", "de"):
            errors.append(f"{qid}: bad lang {lang!r}")
        if not isinstance(row["question"], str) or not row["question"].strip():
            errors.append(f"{qid}: empty question")
        if not isinstance(answers, list) or not all(isinstance(a, str) and a for a in answers):
            errors.append(f"{qid}: answers must be a list of non-empty strings")
            continue
        if doc is None:
            if answers:
                errors.append(f"{qid}: unanswerable question with answers")
        elif doc not in DOCS:
            errors.append(f"{qid}: unknown doc {doc!r}")
            continue
        else:
            if not 1 <= len(answers) <= 3:
                errors.append(f"{qid}: needs 1-3 answers, has {len(answers)}")
            errors += [f"{qid}: not in {doc}: {a!r}" for a in answers if a not in texts[doc]]
        counts[(doc or "(unanswerable)", lang)] += 1
    for (doc, lang), c in sorted(counts.items()):
        print(f"{doc:35} {lang}  {c}")
    print(f"total {sum(counts.values())}")
    print("\n".join(errors) or "OK")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
