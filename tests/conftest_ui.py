"""Fixtures shared by the web-chat tests (imported by tests/test_ui_*.py).

One server for the whole session: a copy of the real sample index (built once with the real
model), served by ``qa.ui.server.create_server_app`` under uvicorn in a background thread on a
free loopback port. Tests that upload documents change that copy, never the shared index.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "qa" / "data" / "sample"
SCREENSHOTS = REPO / "artifacts" / "screenshots"


@dataclass
class UIServer:
    url: str
    port: int
    index_dir: Path
    retriever: Any
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


_STATE: dict[str, UIServer] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(index_dir: Path) -> UIServer:
    import uvicorn

    from qa import Retriever
    from qa.ui.server import create_server_app

    retriever = Retriever.load(index_dir)
    app = create_server_app(retriever)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="qa-ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    retriever.embedder  # load the model now, not during the first timed request  # noqa: B018
    return UIServer(f"http://127.0.0.1:{port}/", port, index_dir, retriever, server, thread)


@pytest.fixture(scope="session")
def ui_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> UIServer:
    """The running chat server (shared by every UI test module in the session)."""
    if "server" not in _STATE:
        try:
            built = request.getfixturevalue("sample_index")  # tests/conftest.py, built once
        except pytest.FixtureLookupError:
            from qa import Retriever

            built = tmp_path_factory.mktemp("ui-built")
            Retriever.build([SAMPLE], built)
        index_dir = tmp_path_factory.mktemp("ui-index") / "index"
        shutil.copytree(built, index_dir)
        srv = start_server(index_dir)
        _STATE["server"] = srv
        request.config.add_cleanup(srv.stop)
    return _STATE["server"]


def doc_count(srv: UIServer) -> int:
    return int(srv.retriever.info()["documents"])


# -- the browser (headless Chromium from Debian, driven by Playwright) ---------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
EVIL = "<script>window.__pwned=1</script><b>bold</b>"
TIMEOUT = 90_000  # ms; the first answer may wait for the model to load


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("QA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and QA_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, ui_server: UIServer):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(ui_server.url)
    pg.wait_for_selector("#qa-question textarea")
    pg.wait_for_selector("#qa-chat .qa-conv")
    pg.qa_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()


def shot(pg, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def ask(pg, question: str, turn: int) -> None:
    pg.fill("#qa-question textarea", question)
    pg.press("#qa-question textarea", "Enter")
    pg.wait_for_selector(f"#turn-{turn} .qa-a:not(.qa-a-pending)")
    pg.wait_for_timeout(400)  # let the smooth scroll settle before screenshots


def upload(pg, *files: Path) -> str:
    status = pg.locator("#qa-upload-status .qa-status")
    before = status.inner_text()
    pg.set_input_files("#qa-upload input[type=file]", [str(f) for f in files])
    pg.wait_for_function(
        "([sel, old]) => { const e = document.querySelector(sel);"
        " return e && !e.classList.contains('qa-status-idle') && e.innerText !== old; }",
        arg=["#qa-upload-status .qa-status", before],
    )
    return status.inner_text()
