"""Use a qa index from Python: build (or open) an index of the sample articles, ask, print.

    python examples/python_api.py [INDEX_DIR] [QUESTION]

Without INDEX_DIR the index is built in a temporary folder (about half a minute on a laptop CPU);
with one, an existing index there is opened, else it is built there.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from qa import QAError, Retriever
from qa.index.storage import IndexDir
from qa.retriever import sample_corpus_dir


def open_or_build(index_dir: Path) -> Retriever:
    """The index in ``index_dir``; built from the bundled sample articles if there is none."""
    if IndexDir(index_dir).exists():
        return Retriever.load(index_dir)
    print(f"building an index of {sample_corpus_dir()} in {index_dir} ...", file=sys.stderr)
    return Retriever.build([sample_corpus_dir()], index_dir)


def main(index_dir: Path, question: str) -> None:
    r = open_or_build(index_dir)
    info = r.info()
    print(f"index: {info['documents']} documents, {info['passages']} passages, "
          f"model {info['embedder']}\n")

    answer = r.ask(question, k=3)
    print(f"Q: {answer.question}")
    print(f"A: {answer.text}")
    print(f"   (abstained: {answer.abstained}, confidence {answer.confidence:.2f})\n")
    print("Sources:")
    for p in answer.passages:
        print(f"  [{p.rank}] {p.doc_id}, characters {p.start}-{p.end}, score {p.score:.3f}")
        print(f"      {' '.join(p.text.split())[:160]}...")

    # A question the articles do not answer: the assistant says so instead of guessing.
    other = r.ask("What is the capital of Australia?", k=3)
    print(f"\nQ: {other.question}\nA: {other.text}")


if __name__ == "__main__":
    args = sys.argv[1:]
    question = args[1] if len(args) > 1 else "What did Ukraine offer in Istanbul?"
    try:
        if args:
            main(Path(args[0]), question)
        else:
            with tempfile.TemporaryDirectory(prefix="qa-example-") as tmp:
                main(Path(tmp) / "index", question)
    except QAError as exc:  # a missing or damaged index, an empty question: one line
        sys.exit(f"error: {exc}")
