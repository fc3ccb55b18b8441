"""The web chat in a real browser: headless Chromium from Debian driven by Playwright.

Skipped when /usr/bin/chromium is missing, unless QA_REQUIRE_BROWSER=1. Screenshots of each step
go to artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest_ui import (  # noqa: F401 (fixtures)
    EVIL,
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

def test_ask_see_cited_answer_and_highlighted_source(page) -> None:  # noqa: F811
    shot(page, "01-start")
    assert "documents" in page.inner_text("#qa-header")
    ask(page, "What did Ukraine offer in Istanbul?", 1)
    answer = page.locator("#turn-1 .qa-a")
    assert "[1]" in answer.inner_text()
    assert answer.locator("a.qa-cite").count() >= 1
    src1 = page.locator("#qa-sources #src-1-1")
    assert "istanbul-peace-talks.de.txt" in src1.inner_text()
    mark = src1.locator("mark").first
    assert "Ukraine" in mark.inner_text()
    assert re.search(r"characters [\d,]+–[\d,]+", src1.inner_text())
    # ranks in order, each naming its document
    ranks = page.locator("#qa-sources #sources-1 .qa-src .qa-num").all_inner_texts()
    assert ranks == [f"[{i}]" for i in range(1, len(ranks) + 1)]
    shot(page, "02-answer-with-sources")
    assert page.qa_errors == []


def test_marker_brings_its_passage_into_view(page) -> None:  # noqa: F811
    ask(page, "What did Ukraine offer in Istanbul?", 1)
    page.fill("#qa-question textarea", "my half-typed draft")
    page.click("#qa-examples button:has-text('Why did Russia say it was withdrawing')")
    page.wait_for_selector("#turn-2 .qa-a:not(.qa-a-pending)")
    # an example is asked without throwing the draft away (found by a browser tester)
    assert page.input_value("#qa-question textarea") == "my half-typed draft"
    page.wait_for_timeout(400)
    shot(page, "03-follow-up")
    # both turns stay on screen; the first answer's sources are folded under "Earlier"
    assert page.locator("#qa-chat .qa-turn").count() == 2
    target = page.locator("#src-1-1")
    assert not target.is_visible()  # inside the closed <details> of the earlier question
    page.locator("#turn-1 a.qa-cite").first.click()
    page.wait_for_timeout(900)
    assert target.is_visible()
    from playwright.sync_api import expect

    expect(target).to_be_in_viewport(ratio=0.3)
    # and it is within the visible part of the scrolling sources panel
    inside = page.evaluate(
        """() => { const el = document.getElementById('src-1-1');
                   const box = document.getElementById('qa-sources-scroll');
                   const a = el.getBoundingClientRect(), b = box.getBoundingClientRect();
                   return a.top >= b.top - 1 && a.top < b.bottom - 40; }""")
    assert inside
    assert page.evaluate("() => location.hash") == ""  # handled in place, no navigation
    # the panel's header names the question whose passages are in view
    assert "What did Ukraine offer in Istanbul?" in page.inner_text("#qa-sources .qa-for")
    shot(page, "04-marker-clicked")
    # the latest answer's marker works too
    page.locator("#turn-2 a.qa-cite").first.click()
    page.wait_for_timeout(900)
    assert "Why did Russia say" in page.inner_text("#qa-sources .qa-for")
    marker = page.locator("#turn-2 a.qa-cite").first.inner_text().strip("[]")
    expect(page.locator(f"#src-2-{marker}")).to_be_in_viewport(ratio=0.3)
    # a new conversation starts over
    page.click("#qa-new-conv")
    page.wait_for_selector("#qa-chat .qa-welcome")
    assert page.locator("#qa-chat .qa-turn").count() == 0


def test_abstention_is_distinct(page, ui_server: UIServer) -> None:  # noqa: F811
    question = "How do I bake sourdough bread?"
    if not ui_server.retriever.ask(question).abstained:
        pytest.skip("the calibrated model answers this question; nothing to show")
    ask(page, question, 1)
    answer = page.locator("#turn-1 .qa-a")
    assert "Not found in the documents." in answer.inner_text()
    assert answer.locator("a.qa-cite").count() == 0
    panel = page.inner_text("#qa-sources")
    assert "Possibly related" in panel and "possibly related" in panel
    assert page.locator("#qa-sources .qa-src.is-related").count() >= 1
    assert page.locator("#qa-sources .qa-src.is-cited").count() == 0
    shot(page, "05-abstained")


def test_upload_then_ask_about_it(page, ui_server: UIServer, tmp_path: Path) -> None:  # noqa: F811
    doc = tmp_path / "sylt-faehre.txt"
    doc.write_text(
        "Die Autofähre von Havneby nach List auf Sylt braucht etwa vierzig Minuten. "
        "Im Winter fährt sie nur alle zwei Stunden.", encoding="utf-8")
    before = doc_count(ui_server)
    page.evaluate("() => window.scrollTo(0, 0)")
    message = upload(page, doc)
    assert "Added 1 document: sylt-faehre.txt." in message
    assert f"{before + 1} documents" in message
    assert "sylt-faehre.txt" in page.inner_text("#qa-index-panel")
    assert str(before + 1) in page.inner_text("#qa-index-pill")
    # what the upload did comes into view (it appeared below the fold: found by a tester)
    page.wait_for_function(
        """() => { const r = document.querySelector('#qa-upload-status .qa-status')
                     .getBoundingClientRect();
                   return r.top >= -1 && r.bottom <= window.innerHeight + 1; }""", timeout=10000)
    shot(page, "06-uploaded")
    page.evaluate("() => window.scrollTo(0, 0)")
    ask(page, "How long does the car ferry to Sylt take?", 1)
    src1 = page.locator("#src-1-1")
    assert "sylt-faehre.txt" in src1.inner_text()
    assert "vierzig Minuten" in src1.locator("mark").first.inner_text()
    shot(page, "07-answer-from-upload")


def test_unreadable_upload_is_named_and_nothing_lost(
    page, ui_server: UIServer, tmp_path: Path  # noqa: F811
) -> None:
    bad = tmp_path / "scan.txt"
    bad.write_bytes(b"\x00\x01\x02\x03" * 64)
    before = doc_count(ui_server)
    message = upload(page, bad)
    assert "Could not add scan.txt: looks like a binary file" in message
    assert "Nothing already in the index was changed." in message
    assert doc_count(ui_server) == before
    page.locator("#qa-upload-status").scroll_into_view_if_needed()
    shot(page, "08-unreadable-upload")


def test_document_markup_is_shown_as_text_never_run(
    page, ui_server: UIServer, tmp_path: Path  # noqa: F811
) -> None:
    txt = tmp_path / "wetter-notiz.txt"
    txt.write_text(f"Die Wetterstation Zugspitze meldet {EVIL} minus zwölf Grad.",
                   encoding="utf-8")
    md = tmp_path / "keller-notiz.md"
    md.write_text(f"# Kellernotiz <img src=x onerror=\"window.__pwned=2\">\n\n"
                  f"Der Schlüssel zum Weinkeller liegt {EVIL} unter dem blauen Blumentopf.",
                  encoding="utf-8")
    message = upload(page, txt, md)
    assert "Added 2 documents" in message
    page.evaluate("() => window.scrollTo(0, 0)")
    ask(page, "Wie kalt ist es auf der Zugspitze?", 1)
    ask(page, "Where is the key to the wine cellar?", 2)
    for turn, doc_id in ((1, "wetter-notiz.txt"), (2, "keller-notiz.md")):
        src = page.locator(f"#src-{turn}-1")
        if not src.is_visible():
            page.locator(f"#turn-{turn} a.qa-cite").first.click()
            page.wait_for_timeout(600)
        assert doc_id in src.inner_text()
        assert EVIL in src.inner_text()  # shown literally
        assert EVIL in page.locator(f"#turn-{turn} .qa-a").inner_text()
    assert "<img src=x onerror" in page.inner_text("#qa-sources")
    for root in ("#qa-chat", "#qa-sources", "#qa-index-panel", "#qa-header"):
        assert page.locator(f"{root} script").count() == 0
        assert page.locator(f"{root} b:text-is('bold')").count() == 0
        assert page.locator(f"{root} img").count() == 0
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    shot(page, "09-markup-as-text")
    assert page.qa_errors == []


def test_narrow_screen_stacks_sources_below(page) -> None:  # noqa: F811
    page.set_viewport_size({"width": 420, "height": 900})
    ask(page, "Wer sollte die Gespräche über eine Deeskalation vermitteln?", 1)
    chat = page.locator("#qa-chat").bounding_box()
    sources = page.locator("#qa-sources").bounding_box()
    assert chat and sources and sources["y"] > chat["y"] + chat["height"] - 1
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 420  # no sideways scroll
    shot(page, "10-narrow", full_page=True)


def test_a_follow_up_says_which_question_it_was_read_with(page) -> None:  # noqa: F811
    ask(page, "What did Ukraine offer in Istanbul?", 1)
    ask(page, "And what did they want in exchange?", 2)
    second = page.locator("#turn-2 .qa-a")
    assert "Read as a follow-up to: “What did Ukraine offer in Istanbul?”" in second.inner_text()
    assert "Read as a follow-up" not in page.locator("#turn-1 .qa-a").inner_text()
    shot(page, "04-read-as-follow-up")
    assert page.qa_errors == []
