"""Evaluation: run a question set against an index, score it, save and compare reports.

A question set is JSONL (or CSV with the same columns), one question a line::

    {"id": "q1", "question": "...", "doc": "file.txt" | null, "answers": ["..."], "lang": "en",
     "history": [{"question": "...", "answer": "..."}]}

``doc`` is the document that answers the question (null: the documents cannot answer it);
``answers`` are strings any of which, found in a retrieved passage, counts as the answer
retrieved; ``lang`` (optional) breaks the metrics down by question language. Rows with a
``history`` (earlier turns of a conversation, optional) are follow-ups: asked with that history
and reported apart (``by_kind``). Every summary is also broken down by question type (who, when,
how many, ...).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import QAError
from ..retriever import Retriever

__all__ = ["Question", "QuestionSetError", "compare", "load_questions", "run", "summarize"]


class QuestionSetError(QAError):
    """A question set that cannot be read; the message names the line."""


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    doc: str | None
    answers: tuple[str, ...] = ()
    lang: str = ""
    history: tuple[dict[str, str], ...] = ()
    """Earlier turns the question follows up on (``{"question", "answer"}`` each)."""


def _question(row: dict[str, Any], where: str) -> Question:
    for key in ("id", "question"):
        if not isinstance(row.get(key), (str, int)) or str(row.get(key)).strip() == "":
            raise QuestionSetError(f"{where}: '{key}' is missing or empty")
    doc = row.get("doc")
    if doc is not None and not isinstance(doc, str):
        raise QuestionSetError(f"{where}: 'doc' must be a document id or null")
    answers = row.get("answers", [])
    if isinstance(answers, str):
        answers = [answers] if answers else []
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise QuestionSetError(f"{where}: 'answers' must be a list of strings")
    history = row.get("history") or []
    if not isinstance(history, list) or not all(
            isinstance(t, dict) and isinstance(t.get("question"), str)
            and isinstance(t.get("answer", ""), str) for t in history):
        raise QuestionSetError(f"{where}: 'history' must be a list of {{question, answer}}")
    return Question(str(row["id"]), str(row["question"]), doc or None, tuple(answers),
                    str(row.get("lang") or ""),
                    tuple({"question": t["question"], "answer": t.get("answer", "")}
                          for t in history))


def load_questions(path: str | Path) -> list[Question]:
    """Read a JSONL or CSV question set; malformed lines are reported by line number."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionSetError(f"cannot read question set {p}: {exc}") from exc
    questions: list[Question] = []
    errors: list[str] = []
    seen: dict[str, int] = {}

    def add(row: dict[str, Any], n: int) -> None:
        q = _question(row, f"{p}:{n}")
        if q.id in seen:
            raise QuestionSetError(f"{p}:{n}: question id {q.id!r} repeats line {seen[q.id]}")
        seen[q.id] = n
        questions.append(q)

    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:
            n = reader.line_num  # the file line where this record ends
            raw = (row.get("answers") or "").strip()
            try:
                answers = json.loads(raw) if raw.startswith("[") else [
                    a.strip() for a in raw.split("|") if a.strip()]
                add({**row, "answers": answers}, n)
            except QuestionSetError as exc:
                errors.append(str(exc))
            except ValueError as exc:
                errors.append(f"{p}:{n}: 'answers' is not a JSON list ({exc})")
    else:
        # Only "\n" ends a line: JSON strings may hold U+2028 and other separators raw.
        for n, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise QuestionSetError(f"{p}:{n}: expected a JSON object")
                add(row, n)
            except json.JSONDecodeError as exc:
                errors.append(f"{p}:{n}: not valid JSON ({exc.msg})")
            except QuestionSetError as exc:
                errors.append(str(exc))
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise QuestionSetError("; ".join(errors[:3]) + more)
    if not questions:
        raise QuestionSetError(f"question set {p} holds no questions")
    return questions


def judge(q: Question, result: dict[str, Any], k: int) -> dict[str, Any]:
    """Per-question verdicts for one ``ask`` result (the ``qa ask --json`` object)."""
    passages = result["passages"][:k]
    docs: list[str] = []
    for p in passages:
        if p["doc_id"] not in docs:
            docs.append(p["doc_id"])
    verdict: dict[str, Any] = {"abstained": result["abstained"], "answerable": q.doc is not None}
    if q.doc is None:
        verdict["correct"] = result["abstained"]
        return verdict
    rank = docs.index(q.doc) + 1 if q.doc in docs else None
    answer_rank = next(
        (p["rank"] for p in passages if any(a in p["text"] for a in q.answers)), None
    )
    # The passage the answer cites first holds an answer (what a reader who follows the first
    # marker finds); an abstention cites nothing.
    cited = [c["marker"] for c in result.get("citations", [])]
    first = next((p for p in passages if cited and p["rank"] == cited[0]), None)
    cited_holds = None if not q.answers else (
        first is not None and not result["abstained"]
        and any(a in first["text"] for a in q.answers))
    # What the reader reads in the answer itself: a cited sentence holds an answer.
    sentence_holds = None if not q.answers else (
        not result["abstained"] and any(a in c["text"] for c in result.get("citations", [])
                                        for a in q.answers))
    verdict.update(
        doc_rank=rank,
        hit_at_1=rank == 1,
        hit_at_k=rank is not None,
        reciprocal_rank=1.0 / rank if rank else 0.0,
        ndcg_at_k=1.0 / math.log2(rank + 1) if rank else 0.0,
        answer_rank=answer_rank,
        answer_hit_at_k=answer_rank is not None if q.answers else None,
        cited_holds_answer=cited_holds,
        cited_sentence_holds_answer=sentence_holds,
        correct=(rank is not None) and not result["abstained"],
    )
    return verdict


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    i = min(len(s) - 1, max(0, math.ceil(pct / 100 * len(s)) - 1))
    return s[i]


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Aggregate metrics over result rows (each holding ``verdict`` and ``latency_ms``)."""
    answerable = [r["verdict"] for r in rows if r["verdict"]["answerable"]]
    unanswerable = [r["verdict"] for r in rows if not r["verdict"]["answerable"]]
    with_answers = [v for v in answerable if v["answer_hit_at_k"] is not None]
    cited = [v["cited_holds_answer"] for v in with_answers
             if v.get("cited_holds_answer") is not None]
    latencies = [r["latency_ms"] for r in rows]
    hit_curve = {
        str(j): _mean([float(v["doc_rank"] is not None and v["doc_rank"] <= j) for v in answerable])
        for j in range(1, k + 1)
    }
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "k": k,
        "hit@1": _mean([float(v["hit_at_1"]) for v in answerable]),
        "hit@k": _mean([float(v["hit_at_k"]) for v in answerable]),
        "mrr": _mean([v["reciprocal_rank"] for v in answerable]),
        "ndcg@k": _mean([v["ndcg_at_k"] for v in answerable]),
        "answer_hit@k": _mean([float(v["answer_hit_at_k"]) for v in with_answers]),
        "cited_holds_answer": _mean([float(c) for c in cited]),
        "cited_sentence_holds_answer": _mean([
            float(v["cited_sentence_holds_answer"]) for v in with_answers
            if v.get("cited_sentence_holds_answer") is not None]),
        "abstained_unanswerable": _mean([float(v["abstained"]) for v in unanswerable]),
        "wrongly_abstained": _mean([float(v["abstained"]) for v in answerable]),
        "latency_ms_p50": round(_percentile(latencies, 50), 2),
        "latency_ms_p95": round(_percentile(latencies, 95), 2),
        "hit_curve": hit_curve,
        **_generated_metrics(rows),
    }


def _generated_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Citation precision/recall, supported share... for runs with a language model."""
    if not any(r.get("generation") for r in rows):
        return {}
    from ..generation.metrics import summarize_generated

    return summarize_generated(rows)


@dataclass
class EvalRun:
    """Results of one run: one row per question, and the summary (overall and by language)."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def run(
    retriever: Retriever,
    questions: list[Question],
    *,
    k: int = 5,
    progress: Callable[[int, int], None] | None = None,
    answerer: Any = None,
) -> EvalRun:
    """Ask every question, judge the answers, and summarise (also per question language).
    With ``answerer`` (a :class:`qa.generation.ModelAnswerer`) a language model writes the
    answers, and the run also reports citation precision/recall of its sentences."""
    retriever.ask("warm-up")  # load the model outside the timed questions
    ask = answerer.ask if answerer is not None else retriever.ask
    rows: list[dict[str, Any]] = []
    for n, q in enumerate(questions, start=1):
        t0 = time.perf_counter()
        answer = ask(q.question, k, history=list(q.history) or None)
        latency = (time.perf_counter() - t0) * 1000
        result = answer.to_json()
        rows.append({
            **result,
            "id": q.id,
            "lang": q.lang,
            "kind": "follow-up" if q.history else "standalone",
            "type": question_type(q.question),
            "history": list(q.history),
            "expected_doc": q.doc,
            "expected_answers": list(q.answers),
            "confidence": round(answer.confidence, 4),
            "latency_ms": round(latency, 2),
            "verdict": judge(q, result, k),
        })
        if answerer is not None:
            from ..generation.metrics import judge_generated

            rows[-1]["generation"] = judge_generated(result, answerer.checker, q.lang)
        if progress:
            progress(n, len(questions))
    summary = summarize(rows, k)
    langs = sorted({r["lang"] for r in rows if r["lang"]})
    if len(langs) > 1:
        summary["by_lang"] = {
            lang: summarize([r for r in rows if r["lang"] == lang], k) for lang in langs
        }
    for key, name in (("kind", "by_kind"), ("type", "by_type")):
        values = sorted({r[key] for r in rows})
        if len(values) > 1:
            summary[name] = {v: summarize([r for r in rows if r[key] == v], k) for v in values}
    info = retriever.info()
    return EvalRun(rows, summary, info)


_TYPES = (
    ("how many", re.compile(r"\b(how (many|much|long|far|old|high)|what percentage|wie (viele?|"
                            r"hoch|lange?|weit|alt|groß)|wieviele?)\b", re.I)),
    ("when", re.compile(r"\b(when|what year|which year|wann|seit wann|in welchem jahr)\b", re.I)),
    ("who", re.compile(r"^\W*(who|whom|whose|wer|wem|wen|wessen)\b", re.I)),
    ("where", re.compile(r"^\W*(where|wo|woher|wohin)\b", re.I)),
    ("why", re.compile(r"^\W*(why|warum|weshalb|wieso)\b|\b(why|warum)\b", re.I)),
    ("which", re.compile(r"\b(which|welche[rsmn]?)\b", re.I)),
    ("what", re.compile(r"\b(what|was)\b", re.I)),
    ("how", re.compile(r"\b(how|wie)\b", re.I)),
)


def question_type(question: str) -> str:
    """The question's type by its question word: who, when, how many, where, why, which, what,
    how, or other (yes/no questions, commands)."""
    for name, pattern in _TYPES:
        if pattern.search(question):
            return name
    return "other"


def save(result: EvalRun, out: str | Path, *, questions_path: str = "") -> Path:
    """Write results.jsonl, summary.json and report.html into ``out``."""
    from .report import render_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        for row in result.rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    meta = {"questions_file": questions_path, "index": result.info}
    (out / "summary.json").write_text(
        json.dumps({**result.summary, "run": meta}, ensure_ascii=False, indent=1), "utf-8"
    )
    (out / "report.html").write_text(render_html(result, title=questions_path), "utf-8")
    return out


METRICS = ("hit@1", "hit@k", "mrr", "ndcg@k", "answer_hit@k", "cited_holds_answer",
           "cited_sentence_holds_answer",
           "abstained_unanswerable", "wrongly_abstained", "latency_ms_p50", "latency_ms_p95",
           "generated_share", "fallback_rate", "supported_share", "citation_precision",
           "citation_recall", "language_match")
LOWER_IS_BETTER = {"wrongly_abstained", "latency_ms_p50", "latency_ms_p95", "fallback_rate"}


def compare(a: str | Path, b: str | Path) -> dict[str, Any]:
    """What changed from run ``a`` to run ``b`` (two ``--out`` folders)."""
    runs = []
    for d in (Path(a), Path(b)):
        try:
            summary = json.loads((d / "summary.json").read_text("utf-8"))
            text = (d / "results.jsonl").read_text("utf-8")
            rows = [json.loads(x) for x in text.split("\n") if x.strip()]
        except (OSError, ValueError) as exc:
            raise QuestionSetError(f"{d} is not an eval output folder ({exc})") from exc
        runs.append((summary, {r["id"]: r for r in rows}))
    (sa, ra), (sb, rb) = runs
    metrics = {m: {"a": sa.get(m), "b": sb.get(m)} for m in METRICS}
    better, worse = [], []
    for qid in sorted(set(ra) & set(rb)):
        va, vb = ra[qid]["verdict"], rb[qid]["verdict"]
        if va.get("correct") != vb.get("correct") or va.get("doc_rank") != vb.get("doc_rank"):
            entry = {"id": qid, "question": rb[qid]["question"],
                     "a": {"doc_rank": va.get("doc_rank"), "abstained": va["abstained"]},
                     "b": {"doc_rank": vb.get("doc_rank"), "abstained": vb["abstained"]}}
            if _verdict_score(vb) > _verdict_score(va):
                better.append(entry)
            elif _verdict_score(vb) < _verdict_score(va):
                worse.append(entry)
    return {"metrics": metrics, "better": better, "worse": worse,
            "only_in_a": sorted(set(ra) - set(rb)), "only_in_b": sorted(set(rb) - set(ra))}


def _verdict_score(v: dict[str, Any]) -> float:
    if not v["answerable"]:
        return 1.0 if v["abstained"] else 0.0
    return (0.0 if v["abstained"] else 0.5) + (v["reciprocal_rank"] or 0.0)
