"""Inputs that Gradio itself refuses, before the chat's handlers run, reach an API client as one
line: no ``<gradio.components.api_component.Api object at 0x...>`` reprs, no multi-line
pydantic text (issue #17, item 13). A server on the fast trigram index, in this process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qa import Retriever

from .conftest import TrigramEmbedder

pytestmark = [  # noise from gradio's queue under pandas 3
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword"),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from qa.ui.server import create_server_app

    d = tmp_path_factory.mktemp("gradio-errors")
    (d / "docs").mkdir()
    (d / "docs" / "cats.txt").write_text("Cats purr when they are content.")
    retriever = Retriever.build([d / "docs"], d / "idx", embedder=TrigramEmbedder())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_server_app(retriever), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def _call(url: str, name: str, data: Any) -> str:
    """The error line a raw Gradio API call gets back (its SSE ``error`` event)."""
    import json

    import httpx

    start = httpx.post(f"{url}/gradio_api/call/{name}", json={"data": data}, timeout=30)
    assert start.status_code == 200, start.text
    stream = httpx.get(f"{url}/gradio_api/call/{name}/{start.json()['event_id']}", timeout=30)
    event, _, rest = stream.text.partition("\n")
    assert event == "event: error", stream.text
    error = json.loads(rest.removeprefix("data: ").split("\n")[0])["error"]
    assert isinstance(error, str) and error and "\n" not in error
    assert "object at 0x" not in error and "errors.pydantic.dev" not in error
    return error


def test_too_few_inputs(url: str) -> None:
    assert _call(url, "ask", ["Why do cats purr?"]) == "/ask takes 2 inputs, got 1"
    assert _call(url, "upload", []) == "/upload takes 1 input, got 0"


@pytest.mark.parametrize("files", [[{"path": "x.txt"}], [None], [123], "not a list"])
def test_malformed_files(url: str, files: Any) -> None:
    error = _call(url, "upload", [files])
    assert "list" in error or "handle_file" in error


def test_our_own_errors_stay_as_they_were(url: str) -> None:
    assert _call(url, "ask", ["   ", 3]) == "question is empty"
    assert _call(url, "search", ["cats", "3"]).startswith("k must be a whole number")
    assert len(_call(url, "search", ["cats", "k" * 10_000])) < 120  # the value is cut short


def test_gradio_client_sees_one_line(url: str, tmp_path: Path) -> None:
    from gradio_client import Client

    client = Client(url + "/", verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(["/etc/hostname"], api_name="/upload")  # a path, not an uploaded file
    assert "\n" not in str(err.value) and "handle_file" in str(err.value)
