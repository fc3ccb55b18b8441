"""The web chat in a real browser, serving an index that lives in Milvus (Milvus Lite): cited
answers, and an upload that lands in the collection. Same setup as tests/test_ui_browser.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest_ui import (  # noqa: F401 (fixtures)
    SAMPLE,
    UIServer,
    ask,
    browser,
    free_port,
    page,
    shot,
    upload,
)

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

pytestmark = [
    pytest.mark.model,
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword"),
]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    """The chat on a Milvus index; overrides conftest_ui's, so its ``page`` fixture opens it."""
    import uvicorn

    from qa import Retriever
    from qa.ui.server import create_server_app

    db = tmp_path_factory.mktemp("milvus-ui") / "qa.db"
    Retriever.build([SAMPLE], milvus=str(db), collection="chat")
    retriever = Retriever.load(milvus=str(db), collection="chat")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_server_app(retriever), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    retriever.embedder  # noqa: B018 - load the model before the first timed request
    srv = UIServer(f"http://127.0.0.1:{port}/", port, db, retriever, server, thread)
    yield srv
    srv.stop()


def test_chat_answers_with_citations_from_milvus(page: Any) -> None:  # noqa: F811
    assert "milvus:" in page.inner_text("#qa-index-panel")
    ask(page, "What did Ukraine offer in Istanbul?", 1)
    answer = page.locator("#turn-1 .qa-a")
    assert "[1]" in answer.inner_text() and answer.locator("a.qa-cite").count() >= 1
    src1 = page.locator("#qa-sources #src-1-1")
    assert "istanbul-peace-talks.de.txt" in src1.inner_text()
    assert "Ukraine" in src1.locator("mark").first.inner_text()
    shot(page, "milvus-01-answer")
    assert page.qa_errors == []


def test_upload_goes_into_the_collection(page: Any, ui_server: UIServer,  # noqa: F811
                                         tmp_path: Path) -> None:
    doc = tmp_path / "sylt-faehre.txt"
    doc.write_text("Die Autofähre von Havneby nach List auf Sylt braucht etwa vierzig Minuten. "
                   "Im Winter fährt sie nur alle zwei Stunden.", encoding="utf-8")
    message = upload(page, doc)
    assert "Added 1 document: sylt-faehre.txt." in message and "3 documents" in message
    ask(page, "How long does the car ferry to Sylt take?", 1)
    src1 = page.locator("#src-1-1")
    assert "sylt-faehre.txt" in src1.inner_text()
    assert "vierzig Minuten" in src1.locator("mark").first.inner_text()
    shot(page, "milvus-02-upload")
    milvus = ui_server.retriever.milvus
    assert "sylt-faehre.txt" in milvus.documents()
    milvus.verify()
