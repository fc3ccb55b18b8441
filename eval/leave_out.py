"""Make the "quarter of the paragraphs left out" set: a copy of an XQuAD-style corpus without a
quarter of its paragraphs, and its questions with those paragraphs' questions made
unanswerable (``doc: null``): answering them from the rest of their article is a wrong answer.

    python eval/leave_out.py [--xquad eval/xquad] [--fraction 0.25] --out DIR
    qa index DIR/corpus --index DIR/index && qa eval DIR/questions.jsonl --index DIR/index

Which paragraphs go is fixed by a hash of their id, so every run leaves out the same ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def left_out(doc_id: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:4], "big")
    return h / 2**32 < fraction


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--xquad", default=str(HERE / "xquad"))
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    src, out = Path(args.xquad), Path(args.out)
    shutil.rmtree(out / "corpus", ignore_errors=True)
    kept = gone = 0
    for path in sorted((src / "corpus").rglob("*.txt")):
        doc_id = path.relative_to(src / "corpus").as_posix()
        if left_out(doc_id, args.fraction):
            gone += 1
            continue
        kept += 1
        (out / "corpus" / doc_id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / "corpus" / doc_id)
    rows, orphaned = [], 0
    for line in (src / "questions.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["doc"] and left_out(row["doc"], args.fraction):
            row = {**row, "doc": None, "answers": []}
            orphaned += 1
        rows.append(json.dumps(row, ensure_ascii=False))
    (out / "questions.jsonl").write_text("\n".join(rows) + "\n", "utf-8")
    print(f"{out}: {kept} paragraphs kept, {gone} left out; "
          f"{orphaned} questions orphaned")


if __name__ == "__main__":
    main()
