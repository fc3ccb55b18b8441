"""The chat's parts without a browser: safe Markdown with highlights, copied text, conversations
kept in the browser, feedback turned into a question set, and a document's whole text."""

from __future__ import annotations

import json
import subprocess
import sys
from html import unescape as html_unescape
from pathlib import Path
from urllib.parse import unquote

import pytest

from qa import BadRequest, Retriever
from qa.evaluation import load_questions
from qa.feedback import export_questions, feedback_path, read, record
from qa.ui import conversations as convs
from qa.ui.actions import ChatActions
from qa.ui.copy_text import as_markdown, as_plain_text
from qa.ui.marked_text import marked_html, plain_inline
from qa.ui.render import (
    render_conversation,
    render_document,
    render_history,
    render_sources,
)

from .conftest import TrigramEmbedder

EVIL = "<script>window.__pwned=1</script>"


# -- Markdown and highlights ----------------------------------------------------------------------

def test_markdown_is_rendered_without_raw_html_images_or_script_links() -> None:
    text = (f"# Kellernotiz {EVIL}\n\nDer Schlüssel liegt *hier* <img src=x onerror=alert(1)>.\n\n"
            "[click](javascript:alert(1)) [site](https://example.org) ![pic](https://x.org/p.png)")
    out = marked_html(text, markdown=True)
    assert out.startswith("<h1>Kellernotiz &lt;script&gt;")
    assert "<em>hier</em>" in out
    assert "<img" not in out and "<script" not in out  # images off: nothing is fetched
    assert 'href="javascript' not in out and "[click](javascript:alert(1))" in out
    assert 'href="https://example.org"' in out and 'rel="noopener noreferrer nofollow"' in out


def test_highlights_stay_well_nested_across_blocks() -> None:
    text = "# Title line\n\nFirst para here.\n\n- one\n- two"
    start = 100
    h_title = [start + text.index("Title"), start + text.index("line") + 4]
    h_cross = [start + text.index("here"), start + text.index("one") + 3]
    out = marked_html(text, start, [h_title, h_cross], markdown=True)
    assert "<h1><mark>Title line</mark></h1>" in out  # the heading stays a heading
    assert "<mark>here.</mark></p>" in out and "<li><mark>one</mark></li>" in out
    assert out.count("<mark>") == out.count("</mark>")
    assert "<ul>\n<mark>" not in out  # no mark directly inside a list


def test_plain_text_is_escaped_with_marks_at_offsets() -> None:
    text = f"Before {EVIL} after."
    out = marked_html(text, 10, [[17, 17 + len(EVIL)]])
    assert out == "Before <mark>&lt;script&gt;window.__pwned=1&lt;/script&gt;</mark> after."


# -- copy -----------------------------------------------------------------------------------------

RESULT = {
    "question": "Who mediates?", "answer": "Turkey mediates. [1] Talks went on. [2]",
    "abstained": False, "confidence": 0.8,
    "sentences": [{"text": "Turkey mediates.", "markers": [1], "supported": True},
                  {"text": "Talks *went* on.", "markers": [2], "supported": True}],
    "citations": [
        {"marker": 1, "doc_id": "a.txt", "start": 5, "end": 21, "text": "Turkey mediates.",
         "score": 0.8},
        {"marker": 2, "doc_id": "b.md", "start": 0, "end": 16, "text": "Talks *went* on.",
         "score": 0.7}],
    "passages": [
        {"rank": 1, "doc_id": "a.txt", "title": "a.txt", "start": 0, "end": 40, "score": 0.8,
         "chunk_id": 0, "text": "Yes. Turkey mediates. More text follows.",
         "highlights": [[5, 21]]},
        {"rank": 2, "doc_id": "b.md", "title": "Talks", "start": 0, "end": 16, "score": 0.7,
         "chunk_id": 0, "text": "Talks *went* on.", "highlights": [[0, 16]]}],
}


def test_copy_as_plain_text_keeps_markers_and_lists_sources() -> None:
    assert as_plain_text("Who mediates?", RESULT) == (
        "Q: Who mediates?\n"
        "A: Turkey mediates. [1] Talks *went* on. [2]\n\n"
        "Sources:\n"
        "[1] a.txt, characters 0-40\n"
        '    "Turkey mediates."\n'
        "[2] Talks (b.md), characters 0-16\n"
        '    "Talks *went* on."\n')


def test_copy_as_markdown_escapes_document_text() -> None:
    md = as_markdown("Who mediates?", RESULT)
    assert md.startswith("**Who mediates?**\n\nTurkey mediates. [1] Talks \\*went\\* on. [2]\n")
    assert "Sources:\n\n1. a.txt, characters 0-40\n   > Turkey mediates.\n" in md
    assert "2. Talks \\(b.md\\), characters 0-16\n   > Talks \\*went\\* on.\n" in md


def test_an_answer_from_markdown_reads_without_its_marks() -> None:
    # Found by a browser tester: "the **red mushroom button**" was shown with its asterisks.
    html = render_conversation([{"q": "Who mediates?", "result": RESULT}])
    shown = html.split('<p class="qa-a-text">')[1].split("</p>")[0]
    assert "Talks went on." in shown and "*" not in shown
    assert plain_inline("Press the **red** button, see [the manual](https://x.org) or `stop`; "
                        "2 * 3 * 4 and snake_case_name stay.") == (
        "Press the red button, see the manual or stop; 2 * 3 * 4 and snake_case_name stay.")


def test_answer_html_carries_preview_copy_and_feedback() -> None:
    html = render_conversation([{"q": "Who mediates?", "result": RESULT}])
    assert 'aria-describedby="tip-1-0-0"' in html
    assert '<span class="qa-tip" role="tooltip" id="tip-1-0-0">' in html
    assert "Yes. <mark>Turkey mediates.</mark> More text follows." in html
    assert 'data-copy="Q: Who mediates?' in html
    assert html.count('class="qa-act qa-fb"') == 2 and "The right passage is" in html



def test_every_answer_of_a_long_conversation_keeps_its_passages() -> None:
    # Found by a browser tester: after 25 turns the panel held the last 11, so the first
    # answer's marker [1] led nowhere while another answer's "[1]" card sat at the top.
    turns = [{"q": f"question {n}?", "result": RESULT} for n in range(1, convs.MAX_TURNS + 1)]
    chat, panel = render_conversation(turns), render_sources(turns)
    for n in (1, 2, convs.MAX_TURNS):
        assert f'href="#src-{n}-1"' in chat
        assert panel.count(f'id="src-{n}-1"') == 1
    assert panel.count('class="qa-earlier"') == convs.MAX_TURNS - 1
    # "Open document" sends each cited span with its text, which the viewer checks
    sent = panel.split('data-highlights="')[1].split('"')[0]
    assert json.loads(html_unescape(sent)) == [[5, 21, "Turkey mediates."]]

# -- conversations --------------------------------------------------------------------------------

def test_conversations_open_delete_and_survive_garbage() -> None:
    s = convs.empty_store()
    s = convs.with_turns(s, [{"q": "first?", "result": {"answer": "A1"}}])
    first = s["current"]
    s = convs.with_turns(s, [*convs.current_turns(s), {"q": "second?", "pending": True}])
    assert [t["q"] for t in convs.current_turns(s)] == ["first?", "second?"]
    s = convs.opened(s, None)
    assert convs.current_turns(s) == []
    s = convs.with_turns(s, [{"q": "other topic", "result": {"answer": "B"}}])
    assert [c["title"] for c in s["conversations"]] == ["other topic", "first?"]
    reloaded = convs.without_stale(s)  # "second?" was asked at time 0: long ago
    again = convs.current_turns(convs.opened(reloaded, first))
    assert [t["q"] for t in again] == ["first?", "second?"] and "Not answered" in again[1]["error"]
    fresh = convs.with_turns(s, [{"q": "now?", "pending": True, "since": 1000.0}])
    assert convs.current_turns(convs.without_stale(fresh, now=1010.0))[0]["pending"]
    s = convs.deleted(reloaded, s["current"])
    assert s["current"] is None and [c["id"] for c in s["conversations"]] == [first]
    assert convs.checked({"conversations": [{"id": 3}, "x", {"turns": []}]}) == {
        "current": None, "conversations": []}
    assert convs.checked("garbage") == convs.empty_store()
    html = render_history(s)
    assert "first?" in html and 'data-conv="' + first + '"' in html
    assert "qa-save-conv" not in html  # a new conversation has nothing to save
    html = render_history(convs.opened(s, first))
    assert 'download="conversation.md"' in html
    href = html.split('class="qa-save-conv" href="')[1].split('"')[0]
    assert unquote(href).startswith("data:text/markdown;charset=utf-8,**first?**\n\nA1")


def test_history_sent_with_a_question_is_the_answered_turns() -> None:
    turns = [{"q": "a?", "result": {"answer": "A"}}, {"q": "b?", "error": "x"},
             {"q": "c?", "result": {"answer": "C"}}, {"q": "d?", "pending": True}]
    assert convs.history_for(turns) == [{"question": "a?", "answer": "A"},
                                        {"question": "c?", "answer": "C"}]


def test_a_follow_up_shows_the_earlier_question_it_was_read_with(tmp_path: Path,
                                                                 corpus: Path) -> None:
    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    history = [{"question": "Where does the Rhine rise?", "answer": "In the Alps. [1]"},
               {"question": f"Which river {EVIL}?", "answer": "The Rhine. [1]"}]
    res = ChatActions(r).ask("And where does it flow?", 3, history=history)
    assert res["history_used"] == [1]
    assert convs.read_with(history, res) == [f"Which river {EVIL}?"]
    html = render_conversation([{"q": "And where does it flow?", "result": res,
                                 "read_with": convs.read_with(history, res)}])
    assert "Read as a follow-up to: <span title=\"Which river &lt;script&gt;" in html
    assert "“Which river &lt;script&gt;" in html
    assert "<script>" not in html
    long_q = "Which river " + "and which lake " * 150 + "?"
    html = render_conversation([{"q": "And where?", "result": res, "read_with": [long_q]}])
    label = html.split("Read as a follow-up to: ")[1].split("</p>")[0]
    visible = label.split(">", 1)[1].split("</span>")[0]
    assert len(visible) < 200 and visible.endswith("…”")  # shortened; whole in its title
    assert long_q.strip() in label.split('title="')[1]
    # a question that stands alone, a model's answer (it shows what it searched with instead)
    # and garbage from the browser's store show nothing
    alone = ChatActions(r).ask("Where does the Danube flow?", 3, history=history)
    assert convs.read_with(history, alone) == []
    assert convs.read_with(history, {**res, "rewritten_question": "Where does the Rhine flow?"}) \
        == []
    html = render_conversation([{"q": "x", "result": res, "read_with": "not a list"}])
    assert "Read as a follow-up" not in html


def test_chat_passes_history_only_to_a_retriever_that_reads_it(tmp_path: Path,
                                                               corpus: Path) -> None:
    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    plain = ChatActions(r)
    res = plain.ask("Where does the Rhine rise?", 3, history=[{"question": "q", "answer": "a"}])
    assert res["passages"][0]["doc_id"] == "rivers.md"

    class Listening(Retriever):  # the upcoming Retriever.ask(question, k, history=...)
        seen: list = []

        def ask(self, question, k=5, history=None):  # type: ignore[override]
            self.seen.append(history)
            return super().ask(question, k)

    listening = Listening(tmp_path / "idx", embedder=TrigramEmbedder())
    ChatActions(listening).ask("Where does the Rhine rise?", 3,
                               history=[{"question": "q", "answer": "a"}])
    assert listening.seen == [[{"question": "q", "answer": "a"}]]


# -- whole documents ------------------------------------------------------------------------------

def test_document_text_matches_every_passage_offset(tmp_path: Path, corpus: Path) -> None:
    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    source = (corpus / "rivers.md").read_text(encoding="utf-8")
    assert r.document_text("rivers.md") == source
    (corpus / "rivers.md").unlink()  # gone: rebuilt from the passages, offsets still hold
    text = r.document_text("rivers.md")
    assert len(text) == len(source)
    for p in r.search("Danube Rhine", 5):
        if p.doc_id == "rivers.md":
            assert text[p.start:p.end] == p.text
    with pytest.raises(BadRequest, match="no document"):
        r.document_text("nope.txt")
    doc = ChatActions(r).document("rivers.md", [[2, 8], [-1, 4], [5, 10**9], "x"])
    assert doc["highlights"] == [(2, 8)]
    html = render_document(doc)
    assert "<h1><mark>Rivers</mark> of Europe</h1>" in html and "qa-viewer-close" in html
    assert "has changed" not in html


def test_the_viewer_says_when_a_cited_sentence_moved_or_is_gone(tmp_path: Path,
                                                                corpus: Path) -> None:
    # Found by a browser tester: after a document was replaced, an older answer's "Open
    # document" highlighted half of another sentence at the old offsets, as "1 cited span".
    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    text = r.document_text("cats.txt")
    first = text.split(". ")[0] + "."
    (corpus / "cats.txt").write_text("A new opening line.\n" + text, encoding="utf-8")
    r.add([corpus / "cats.txt"])
    doc = ChatActions(r).document("cats.txt", [[0, len(first), first],
                                               [0, 12, "Not there any more."]])
    shift = len("A new opening line.\n")
    assert doc["highlights"] == [(shift, shift + len(first))]
    assert (doc["moved"], doc["gone"]) == (1, 1)
    html = render_document(doc)
    assert ("This document has changed since the answer: 1 cited sentence is no longer in it, 1 "
            "is highlighted where it stands now.") in " ".join(html.split())


def test_http_api_serves_a_whole_document(tmp_path: Path, corpus: Path) -> None:
    from fastapi.testclient import TestClient

    from qa.api import create_app

    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    client = TestClient(create_app(r))
    got = client.get("/api/documents/sub/volcano.html")
    assert got.status_code == 200
    body = got.json()
    assert body["doc_id"] == "sub/volcano.html" and body["title"] == "Volcanoes"
    for p in r.search("Etna lava", 5):
        if p.doc_id == "sub/volcano.html":
            assert body["text"][p.start:p.end] == p.text
    missing = client.get("/api/documents/nope.txt")
    assert missing.status_code == 404 and "no document 'nope.txt'" in missing.json()["detail"]


# -- feedback -------------------------------------------------------------------------------------

def _span(doc: str, text: str) -> dict:
    return {"doc_id": doc, "start": 0, "end": len(text), "text": text}


def test_feedback_is_checked_stored_and_exported_as_questions(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="verdict"):
        record(tmp_path, {"verdict": "meh", "question": "q"})
    with pytest.raises(BadRequest, match="question"):
        record(tmp_path, {"verdict": "up", "question": "  "})
    record(tmp_path, {"verdict": "up", "question": "Where is the key?", "answer": "Under. [1]",
                      "cited": [_span("keller.md", "Der Schlüssel liegt unter dem Topf.")]})
    record(tmp_path, {"verdict": "down", "question": "Who mediates?", "note": "wrong doc",
                      "right_passage": _span("talks.txt", "Turkey mediates. And more.")})
    record(tmp_path, {"verdict": "down", "question": "How to bake bread?",
                      "right_passage": "none"})
    record(tmp_path, {"verdict": "down", "question": "Unclear?"})  # nothing checkable
    record(tmp_path, {"verdict": "up", "question": "Nothing here?", "abstained": True})
    rows = read(tmp_path)
    assert [r["verdict"] for r in rows] == ["up", "down", "down", "down", "up"]
    assert rows[1]["note"] == "wrong doc" and rows[2]["right_passage"] == "none"
    feedback_path(tmp_path).open("a").write('{"cut short\n')  # a torn line is skipped
    out = tmp_path / "questions.jsonl"
    assert export_questions(tmp_path, out) == (4, 1)
    qs = {q.question: q for q in load_questions(out)}
    assert qs["Where is the key?"].doc == "keller.md"
    assert qs["Where is the key?"].answers == ("Der Schlüssel liegt unter dem Topf.",)
    assert qs["Who mediates?"].doc == "talks.txt" and qs["Who mediates?"].answers == (
        "Turkey mediates.",)
    assert qs["How to bake bread?"].doc is None and qs["Nothing here?"].doc is None
    assert "Unclear?" not in qs


def test_the_latest_verdict_on_an_answer_is_the_one_kept(tmp_path: Path) -> None:
    # Found by a browser tester: feedback sent again after a reload was stored twice, and
    # exported twice. The chat now saves on the click, and again with a note.
    one = {"question": "Who mediates?", "answer": "Turkey mediates. [1]"}
    record(tmp_path, {**one, "verdict": "down"})
    record(tmp_path, {"question": "Other?", "answer": "X. [1]", "verdict": "up"})
    record(tmp_path, {**one, "verdict": "down", "note": "wrong doc",
                      "right_passage": _span("talks.txt", "Qatar mediates.")})
    record(tmp_path, {**one, "answer": "Another answer. [1]", "verdict": "up"})
    rows = read(tmp_path)
    assert [(r["question"], r["verdict"], r["note"]) for r in rows] == [
        ("Other?", "up", ""), ("Who mediates?", "down", "wrong doc"),
        ("Who mediates?", "up", "")]
    assert len(feedback_path(tmp_path).read_text().splitlines()) == 4  # every line is kept
    # exported once: the wrong answer with its passage (the two thumbs-up cite nothing here)
    assert export_questions(tmp_path, tmp_path / "q.jsonl") == (1, 2)
    assert [q.question for q in load_questions(tmp_path / "q.jsonl")] == ["Who mediates?"]


def test_feedback_export_command_says_what_it_wrote(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "qa.cli", "feedback", "export", str(tmp_path / "q.jsonl"),
           "--index", str(tmp_path)]
    empty = subprocess.run(cmd, capture_output=True, text=True)
    assert empty.returncode == 2
    assert empty.stderr.startswith("qa: error: no usable feedback") and "Traceback" not in (
        empty.stderr)
    record(tmp_path, {"verdict": "up", "question": "Where?", "cited": [_span("a.txt", "Here.")]})
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote 1 questions") and "qa eval" in done.stdout
    assert json.loads((tmp_path / "q.jsonl").read_text())["doc"] == "a.txt"
