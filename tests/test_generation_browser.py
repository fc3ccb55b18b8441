"""The chat with a language model, in a real browser: the answer streams in, then its sentences
are shown with the checker's verdict, an unsupported one visibly marked; the user can switch back
to quoted sentences. The endpoint is the local fake (tests/fake_llm.py) so that the streamed text
holds a known made-up sentence; the real llama.cpp server is tested in test_generation_llama.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest_ui import TIMEOUT, browser, free_port, shot  # noqa: F401 (fixtures)
from tests.fake_llm import Behaviour, FakeLLM
from tests.test_generation import MADE_UP, PARAPHRASE, QUESTION, openai_missing

pytestmark = [
    pytest.mark.model,
    pytest.mark.browser,
    openai_missing,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword"),
]


@pytest.fixture(scope="module")
def chat_url(sample_index: Path) -> Iterator[str]:
    """The chat served with a (fake) model endpoint that streams a word every 0.15 s."""
    import uvicorn

    from qa import Retriever
    from qa.generation import LLMSettings, ModelAnswerer
    from qa.ui.server import create_server_app

    fake = FakeLLM(Behaviour(reply=f"{PARAPHRASE} {MADE_UP}", chunk_delay=0.15))
    retriever = Retriever.load(sample_index)
    answerer = ModelAnswerer(retriever, LLMSettings(fake.url, "fake-model", timeout=60))
    app = create_server_app(retriever, answerer=answerer)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "chat server did not start"
        time.sleep(0.05)
    retriever.embedder  # noqa: B018 - load the model before the first question
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=15)
    fake.stop()


def test_answer_streams_then_unsupported_sentence_is_marked(browser, chat_url: str) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        pg.goto(chat_url)
        pg.wait_for_selector("#qa-question textarea")
        assert "Model: fake-model" in pg.inner_text("#qa-mode")
        pg.fill("#qa-question textarea", QUESTION)
        pg.press("#qa-question textarea", "Enter")

        # streaming: the text grows while the model writes, before any verdict is shown
        pg.wait_for_selector("#turn-1 .qa-a-streaming .qa-stream-text")
        first = pg.inner_text("#turn-1 .qa-stream-text")
        pg.wait_for_function(
            "n => { const e = document.querySelector('#turn-1 .qa-stream-text');"
            " return e && e.innerText.length > n + 20; }", arg=len(first))
        assert "fake-model" in pg.inner_text("#turn-1 .qa-a-streaming .qa-a-label")
        assert pg.locator("#turn-1 .qa-sent.is-unsupported").count() == 0
        shot(pg, "generated-streaming")

        # then the checked answer: the paraphrase supported, the made-up sentence marked
        pg.wait_for_selector("#turn-1 .qa-a:not(.qa-a-pending):not(.qa-a-streaming)")
        label = pg.inner_text("#turn-1 .qa-a-label")
        assert "fake-model" in label
        bad = pg.locator("#turn-1 .qa-sent.is-unsupported")
        assert bad.count() == 1
        assert "cede Crimea for 2 billion dollars" in bad.inner_text()
        assert "unsupported" in bad.locator(".qa-unsupported-tag").inner_text().lower()
        good = pg.locator("#turn-1 .qa-sent:not(.is-unsupported)")
        assert good.count() == 1 and "permanently neutral" in good.inner_text()
        assert pg.locator("#turn-1 .qa-a-text a.qa-cite").count() == 2
        # the supported sentence's evidence is highlighted in the cited passage
        assert "neutral" in pg.inner_text("#qa-sources .qa-src.is-cited mark")
        shot(pg, "generated-checked")

        # switch back to quoted sentences: the next answer comes without the model
        pg.get_by_label("Quoted sentences (no model)").check()
        pg.fill("#qa-question textarea", QUESTION)
        pg.press("#qa-question textarea", "Enter")
        pg.wait_for_selector("#turn-2 .qa-a:not(.qa-a-pending):not(.qa-a-streaming)")
        assert "fake-model" not in pg.inner_text("#turn-2 .qa-a-label")
        assert "dauerhaft neutral" in pg.inner_text("#turn-2 .qa-a-text")
        assert errors == []
    finally:
        context.close()
