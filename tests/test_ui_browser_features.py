"""The chat's reading and remembering features in a real browser (headless Chromium, Playwright):
citation previews, the document viewer, deleting documents, copying answers, conversations that
survive a reload, feedback that becomes a question set, the phone layout and the keyboard.

Skipped when /usr/bin/chromium is missing, unless QA_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa.feedback import feedback_path, read
from tests.conftest_ui import (  # noqa: F401 (fixtures)
    EVIL,
    REPO,
    UIServer,
    ask,
    browser,
    doc_count,
    page,
    shot,
    ui_server,
    upload,
)

pytestmark = [
    pytest.mark.model,
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword"),
]

QUESTION = "What did Ukraine offer in Istanbul?"
ISTANBUL = "istanbul-peace-talks.de.txt"


def in_viewport(pg, selector: str) -> bool:
    return bool(pg.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
                      return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; }""",
        selector))


def test_preview_on_hover_and_on_keyboard_focus(page) -> None:  # noqa: F811
    ask(page, QUESTION, 1)
    marker = page.locator("#turn-1 a.qa-cite").first
    tip_id = marker.get_attribute("aria-describedby")
    tip = page.locator(f"#{tip_id}")
    assert tip.get_attribute("role") == "tooltip"
    assert not tip.is_visible()
    marker.hover()
    assert tip.is_visible()
    text = tip.inner_text()
    assert ISTANBUL in text and "Ukraine" in tip.locator("mark").inner_text()
    assert len(text) > len(tip.locator("mark").inner_text()) + 20  # with context around it
    shot(page, "11-preview-hover")
    # Escape hides it with the pointer still on the marker (the focus is elsewhere), and it
    # shows again when the pointer comes back
    page.keyboard.press("Escape")
    assert not tip.is_visible()
    page.mouse.move(5, 790)
    assert not tip.is_visible()
    marker.hover()
    assert tip.is_visible()
    page.mouse.move(5, 790)
    assert not tip.is_visible()
    # keyboard: Alt+J from the question box focuses the latest answer's first marker
    page.focus("#qa-question textarea")
    page.keyboard.press("Alt+j")
    assert page.evaluate("() => document.activeElement.classList.contains('qa-cite')")
    assert tip.is_visible()
    page.keyboard.press("Escape")  # dismissible without moving focus
    assert not tip.is_visible()
    page.keyboard.press("Enter")  # Enter still brings the passage into view
    page.wait_for_timeout(900)
    n = marker.get_attribute("data-n")
    assert in_viewport(page, f"#src-1-{n}")
    assert page.qa_errors == []


def test_a_question_at_the_length_limit_says_so(page) -> None:  # noqa: F811
    # the box stops at 2,000 characters: a longer paste was cut without a word
    box = page.locator("#qa-question textarea")
    assert box.get_attribute("maxlength") == "2000"
    note = page.locator("#qa-limit-note")
    box.fill("Why " * 500)
    assert note.is_visible() and "at most 2,000 characters" in note.inner_text()
    assert note.get_attribute("role") == "status"
    box.fill("Why?")
    assert not note.is_visible()
    assert page.qa_errors == []


def test_skip_link_reaches_markers_in_three_tab_presses(page) -> None:  # noqa: F811
    ask(page, QUESTION, 1)
    page.focus("#qa-question textarea")
    for _ in range(2):  # the Ask button, then the skip link
        page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.classList.contains('qa-skip')")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.matches('#turn-1 a.qa-cite')")


def test_viewer_opens_documents_with_the_citation_in_view(page) -> None:  # noqa: F811
    ask(page, "Was ist die stille Übereinkunft von 2023?", 1)
    card = page.locator("#src-1-1")
    card.locator(".qa-open-doc").click()
    dialog = page.locator(".qa-viewer[role=dialog]")
    mark = dialog.locator(".qa-viewer-body mark").first
    mark.wait_for()
    assert dialog.get_attribute("aria-modal") == "true"
    assert card.locator("mark").first.inner_text() in mark.inner_text()
    page.wait_for_timeout(300)
    assert mark.is_visible() and in_viewport(page, ".qa-viewer-body mark")
    inside = page.evaluate(
        """() => { const m = document.querySelector('.qa-viewer-body mark').getBoundingClientRect();
                   const b = document.querySelector('.qa-viewer-body').getBoundingClientRect();
                   return m.top >= b.top && m.bottom <= b.bottom; }""")
    assert inside  # scrolled to the highlight inside the viewer, not only on the page
    body_len = len(dialog.locator(".qa-viewer-body").inner_text())
    assert body_len > 3 * len(card.locator(".qa-src-text").inner_text())  # the whole document
    shot(page, "12-viewer")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate("() => document.activeElement.classList.contains('qa-open-doc')")
    # from the index panel: the document's name opens it
    page.locator(f"#qa-index-panel .qa-doc-open[data-doc='{ISTANBUL}']").click()
    dialog.locator(".qa-viewer-body").wait_for()
    assert dialog.locator("#qa-viewer-title").inner_text() == ISTANBUL
    assert "Istanbul" in dialog.locator(".qa-viewer-body").inner_text()
    dialog.locator(".qa-viewer-close").click()
    assert not dialog.is_visible()
    assert page.qa_errors == []


def test_delete_a_document_after_confirming(page, ui_server: UIServer,  # noqa: F811
                                            tmp_path: Path) -> None:
    doc = tmp_path / "loeschen-bitte.txt"
    doc.write_text("Der Kormoran trocknet seine Flügel in der Sonne.", encoding="utf-8")
    assert "The index holds" in upload(page, doc)
    before = doc_count(ui_server)
    assert (ui_server.index_dir / "uploads" / "loeschen-bitte.txt").is_file()
    row = page.locator("#qa-index-panel li[data-doc='loeschen-bitte.txt']")
    row.locator(".qa-doc-del").click()
    confirm = row.locator(".qa-doc-confirm")
    assert confirm.is_visible() and "Delete loeschen-bitte.txt" in confirm.inner_text()
    row.locator(".qa-del-no").click()  # cancel keeps it
    assert not confirm.is_visible() and doc_count(ui_server) == before
    row.locator(".qa-doc-del").click()
    shot(page, "13-delete-confirm")
    row.locator(".qa-del-yes").click()
    page.wait_for_selector("#qa-index-panel li[data-doc='loeschen-bitte.txt']", state="detached")
    assert doc_count(ui_server) == before - 1
    assert not (ui_server.index_dir / "uploads" / "loeschen-bitte.txt").exists()
    assert "Deleted loeschen-bitte.txt" in page.inner_text("#qa-index-panel")
    assert str(before - 1) in page.inner_text("#qa-index-pill")
    # the upload's report, with the count before the delete, is gone
    assert "The index holds" not in page.inner_text("#qa-upload-status")


def test_names_announcements_focus_and_contrast_for_assistive_use(
        page, ui_server: UIServer, tmp_path: Path) -> None:  # noqa: F811
    # Found by a browser tester: the question box was announced as "Textbox", new answers were
    # not announced, focus fell to the page's top after a delete, and grey text was 2.5:1.
    box = page.get_by_role("textbox", name="Question")
    assert box.count() == 1
    ask(page, QUESTION, 1)
    page.wait_for_function(
        "() => (document.getElementById('qa-live')?.textContent || '').startsWith('Answer: ')")
    assert page.locator("#qa-live").get_attribute("aria-live") == "polite"
    muted = page.evaluate("() => getComputedStyle(document.querySelector('.qa-tagline')).color")
    assert muted == "rgb(100, 116, 139)"  # 4.8:1 on white
    doc = tmp_path / "weg-damit.txt"
    doc.write_text("Die Möwe sitzt auf dem Poller.", encoding="utf-8")
    upload(page, doc)
    row = page.locator("#qa-index-panel li[data-doc='weg-damit.txt']")
    row.locator(".qa-doc-del").click()
    page.keyboard.press("Escape")  # cancels, back on its Delete button
    assert not row.locator(".qa-doc-confirm").is_visible()
    assert page.evaluate("() => document.activeElement.classList.contains('qa-doc-del')")
    row.locator(".qa-doc-del").click()
    row.locator(".qa-del-yes").click()
    page.wait_for_selector("#qa-index-panel li[data-doc='weg-damit.txt']", state="detached")
    page.wait_for_function("() => document.activeElement?.classList.contains('qa-index-msg')")
    assert "Deleted weg-damit.txt" in page.evaluate("() => document.activeElement.textContent")


def test_copy_answer_with_sources(page, ui_server: UIServer) -> None:  # noqa: F811
    page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                   origin=ui_server.url.rstrip("/"))
    ask(page, QUESTION, 1)
    page.locator("#turn-1 .qa-copy:not(.qa-copy-md)").click()
    page.wait_for_function("() => document.querySelector('#turn-1 .qa-act-done').textContent")
    text = page.evaluate("() => navigator.clipboard.readText()")
    answer = page.locator("#turn-1 .qa-a-text").inner_text()
    first_sentence = answer.split("[1]")[0].strip()
    assert text.startswith(f"Q: {QUESTION}\nA: {first_sentence} [1]")
    assert f"\n\nSources:\n[1] {ISTANBUL}, characters " in text
    page.locator("#turn-1 .qa-copy-md").click()
    page.wait_for_function(
        "() => document.querySelector('#turn-1 .qa-act-done').textContent.includes('Markdown')")
    md = page.evaluate("() => navigator.clipboard.readText()")
    assert md.startswith(f"**{QUESTION}**\n\n") and "[1]" in md
    assert f"\nSources:\n\n1. {ISTANBUL}, characters " in md and "\n   > " in md


def test_conversations_survive_a_reload(page) -> None:  # noqa: F811
    ask(page, QUESTION, 1)
    ask(page, "Why did Russia say it was withdrawing from Kyiv?", 2)
    page.click("#qa-new-conv")
    page.wait_for_selector("#qa-chat .qa-welcome")
    ask(page, "Was ist die stille Übereinkunft von 2023?", 1)
    page.reload()
    page.wait_for_selector("#turn-1 .qa-a:not(.qa-a-pending)")
    assert "stille Übereinkunft" in page.inner_text("#qa-chat")  # the open one is back
    save = page.locator("#qa-history .qa-save-conv")  # exported only by the user, from the page
    assert save.get_attribute("download") == "conversation.md"
    assert save.get_attribute("href").startswith("data:text/markdown")
    assert page.locator("#qa-sources .qa-src").count() >= 1
    page.click("#qa-history summary")
    items = page.locator("#qa-history .qa-conv-open")
    assert items.count() == 2
    shot(page, "14-conversations")
    page.locator(f"#qa-history .qa-conv-open:has-text('{QUESTION}')").click()
    page.wait_for_selector("#turn-2 .qa-a")
    assert page.locator("#qa-chat .qa-turn").count() == 2
    assert QUESTION in page.inner_text("#turn-1")
    # deleting the open conversation leaves the other and starts a new one
    page.click("#qa-history summary") if not page.locator(
        "#qa-history details[open]").count() else None
    page.locator(f"#qa-history li:has-text('{QUESTION}') .qa-conv-del").click()
    page.wait_for_selector("#qa-chat .qa-welcome")
    page.reload()
    # the page starts with an empty list; the browser's copy then shows the one left
    page.wait_for_function(
        "() => document.querySelector('#qa-history .qa-count')?.textContent === '1'")
    page.wait_for_timeout(1000)
    assert page.inner_text("#qa-history .qa-count") == "1"
    stored = page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('qa-'))")
    assert len(stored) == 1  # kept in this browser's storage


def test_a_half_typed_question_survives_a_reload(page) -> None:  # noqa: F811
    # Found by a browser tester: a reload, or the page reloading itself when the server came
    # back, emptied the question box.
    page.fill("#qa-question textarea", "Wer vermittelte die Gespräche")
    page.reload()
    page.wait_for_function(
        "() => document.querySelector('#qa-question textarea')?.value"
        " === 'Wer vermittelte die Gespräche'")
    page.press("#qa-question textarea", "End")
    page.keyboard.type("?")
    page.press("#qa-question textarea", "Enter")  # sent: the draft is forgotten
    page.wait_for_selector("#turn-1 .qa-a:not(.qa-a-pending)")
    assert "Wer vermittelte die Gespräche?" in page.inner_text("#turn-1")
    page.reload()
    page.wait_for_selector("#turn-1 .qa-a")
    page.wait_for_timeout(1500)
    assert page.input_value("#qa-question textarea") == ""


def test_feedback_is_saved_exported_and_run_by_qa_eval(page, ui_server: UIServer,  # noqa: F811
                                                       tmp_path: Path) -> None:
    path = feedback_path(ui_server.index_dir)
    before = path.read_text(encoding="utf-8").count("\n") if path.exists() else 0
    ask(page, QUESTION, 1)
    # a thumbs-up is saved on the click; the note is optional (found by a browser tester: it
    # was lost unless "Send feedback" was clicked too, and its form asked for "the right passage")
    page.locator("#turn-1 .qa-fb[data-verdict=up]").click()
    page.wait_for_selector("#turn-1 .qa-act-done:has-text('Saved')")
    assert page.locator("#turn-1 .qa-fb-right").is_hidden()
    page.locator("#turn-1 .qa-fb-cancel").click()
    ask(page, "Wer sollte die Gespräche über eine Deeskalation vermitteln?", 2)
    page.locator("#turn-2 .qa-fb[data-verdict=down]").click()
    form = page.locator("#turn-2 .qa-fb-form")
    page.wait_for_selector("#turn-2 .qa-act-done:has-text('Saved')")
    assert form.is_visible()
    form.locator("select").select_option("2")
    form.locator("textarea").fill("the second passage names the mediator")
    shot(page, "15-feedback")
    form.locator(".qa-fb-send").click()
    page.wait_for_selector("#turn-2 .qa-act-done:has-text('feedback saved')")
    # the thumbs stay pressed after a reload
    page.reload()
    page.wait_for_selector("#turn-2 .qa-a")
    page.wait_for_selector("#turn-1 .qa-fb[data-verdict=up][aria-pressed=true]")
    assert page.locator("#turn-2 .qa-fb[data-verdict=down]").get_attribute("aria-pressed") \
        == "true"
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()[before:]]
    assert [r["verdict"] for r in lines] == ["up", "down", "down"]
    rows = [r for r in read(ui_server.index_dir) if r["id"] in {x["id"] for x in lines}]
    assert [r["verdict"] for r in rows] == ["up", "down"]
    assert rows[0]["question"] == QUESTION and rows[0]["cited"][0]["doc_id"] == ISTANBUL
    assert rows[1]["note"] == "the second passage names the mediator"
    assert rows[1]["right_passage"]["doc_id"] and rows[1]["right_passage"]["text"]

    out = tmp_path / "feedback-questions.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    exported = subprocess.run(
        [sys.executable, "-m", "qa.cli", "feedback", "export", str(out),
         "--index", str(ui_server.index_dir)], capture_output=True, text=True, env=env)
    assert exported.returncode == 0, exported.stderr
    questions = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert {q["question"] for q in questions} >= {
        QUESTION, "Wer sollte die Gespräche über eine Deeskalation vermitteln?"}
    ran = subprocess.run(
        [sys.executable, "-m", "qa.cli", "eval", str(out), "--index", str(ui_server.index_dir),
         "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=600)
    assert ran.returncode == 0, ran.stderr
    result_rows = (tmp_path / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(result_rows) == len(questions)
    first = next(json.loads(r) for r in result_rows if QUESTION in r)
    assert first["verdict"]["hit_at_1"] is True  # the praised answer still holds


def test_phone_nothing_clipped_and_a_way_back(page) -> None:  # noqa: F811
    page.set_viewport_size({"width": 390, "height": 844})
    ask(page, QUESTION, 1)
    clipped = page.evaluate(
        """() => { const out = [];
          for (const el of document.querySelectorAll('.gradio-container *')) {
            const r = el.getBoundingClientRect(), s = getComputedStyle(el);
            if (!r.width || !r.height || s.visibility === 'hidden') continue;
            if (el.closest('.qa-tip, .qa-viewer-backdrop, [hidden], .hide-container')) continue;
            if (r.left < -1 || r.right > window.innerWidth + 1) {
              out.push(`${el.tagName}.${el.className} ${r.left | 0}-${r.right | 0}`);
            } }
          return out.slice(0, 10); }""")
    assert clipped == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shot(page, "16-phone", full_page=True)
    marker = page.locator("#turn-1 a.qa-cite").first
    marker.click()
    page.wait_for_timeout(1200)
    back = page.locator("#qa-chat .qa-back")
    assert back.is_visible()
    back_box = back.bounding_box()
    assert back_box and back_box["x"] >= 0 and back_box["x"] + back_box["width"] <= 390
    back.click()
    page.wait_for_timeout(900)
    assert in_viewport(page, "#turn-1 a.qa-cite")
    assert page.evaluate("() => document.activeElement.classList.contains('qa-cite')")
    assert not back.is_visible()
    # the focused marker's preview stays inside the conversation, which clips what leaves it
    # (found by a browser tester: at 390 px each line lost its first letters)
    page.wait_for_timeout(300)
    tip, conv = (page.locator(sel).first.bounding_box() for sel in (
        "#turn-1 .qa-cite-wrap:focus-within .qa-tip", "#qa-chat .qa-conv"))
    assert tip and conv and tip["x"] >= conv["x"] and tip["x"] + tip["width"] <= conv["x"] \
        + conv["width"]


def test_k_box_and_slider_agree(page, ui_server: UIServer) -> None:  # noqa: F811
    box = page.locator("#qa-k input[type=number]")
    box.fill("50")
    box.press("Enter")
    box.blur()
    page.wait_for_timeout(500)
    assert box.input_value() == "20"
    assert page.locator("#qa-k input[type=range]").input_value() == "20"
    ask(page, QUESTION, 1)
    passages = int(ui_server.retriever.info()["passages"])
    assert page.locator("#sources-1 .qa-src").count() == min(20, passages)
    box.fill("0")  # brought up to 1, not taken for the default 5 (found by a browser tester)
    box.press("Enter")
    box.blur()
    page.wait_for_timeout(500)
    assert box.input_value() == "1"


def test_markdown_is_rendered_safely_in_cards_and_viewer(page, tmp_path: Path) -> None:  # noqa: F811
    md = tmp_path / "gartenregeln.md"
    md.write_text("# Gartenregeln\n\n## Gießen\n\nDie Tomaten werden **jeden Morgen** mit "
                  f"Regenwasser gegossen {EVIL}.\n\n- Schnecken absammeln\n- [Mehr](javascript:"
                  "alert(1))\n", encoding="utf-8")
    upload(page, md)
    page.evaluate("() => window.scrollTo(0, 0)")
    ask(page, "Wann werden die Tomaten gegossen?", 1)
    card = page.locator("#src-1-1")
    assert "gartenregeln.md" in card.inner_text()
    text = card.locator(".qa-src-text")
    assert text.locator("strong").count() >= 1 or text.locator("h2").count() >= 1
    assert "## " not in text.inner_text() and "**" not in text.inner_text()
    assert EVIL in text.inner_text()  # raw HTML shown as text
    card.locator(".qa-open-doc").click()
    body = page.locator(".qa-viewer-body")
    body.locator("mark").first.wait_for()
    assert body.locator("h1").inner_text() == "Gartenregeln"
    assert body.locator("li").count() == 2
    assert body.locator("a[href^='javascript']").count() == 0
    assert body.locator("script, img").count() == 0
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    shot(page, "17-markdown-viewer")


def test_questions_during_indexing_say_so(page, tmp_path: Path) -> None:  # noqa: F811
    big = tmp_path / "vogelzug-chronik.txt"
    birds = ["Kranich", "Storch", "Kiebitz", "Brachvogel", "Graugans", "Singschwan", "Pirol"]
    places = ["Rügen", "Hiddensee", "Usedom", "Fehmarn", "Amrum", "Pellworm", "Helgoland"]
    big.write_text("\n\n".join(
        f"Am {d % 28 + 1}. Tag der Zählung {d} sahen Beobachter auf {places[d % 7]} "
        f"{d * 13 % 997} Vögel der Art {birds[d % 7]}, die nach Süden zogen. "
        f"Das Wetter war {'klar' if d % 2 else 'neblig'} und der Wind kam aus Nordost."
        for d in range(1500)), encoding="utf-8")  # ~20 s of indexing: the question lands in it
    page.set_input_files("#qa-upload input[type=file]", [str(big)])
    page.wait_for_function(  # Gradio shows the embedding progress while it indexes
        "() => (document.querySelector('#qa-upload-status') || {}).innerText"
        "?.includes('Embedding')", timeout=60_000)
    ask(page, QUESTION, 1)
    notice = page.locator("#turn-1 .qa-index-notice")
    assert notice.is_visible(), "the question was answered after indexing finished"
    assert "vogelzug-chronik.txt is still being indexed" in notice.inner_text()
    assert "answered from the documents indexed before" in notice.inner_text()
    assert "[1]" in page.locator("#turn-1 .qa-a").inner_text()  # still answered
    shot(page, "18-indexing-notice")
    page.wait_for_selector("#qa-upload-status .qa-status-ok", timeout=600_000)
    ask(page, QUESTION, 2)
    assert page.locator("#turn-2 .qa-index-notice").count() == 0
