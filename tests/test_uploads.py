"""One upload transaction for the HTTP API and the chat (qa/uploads.py): the same limits, the
same names, and a failed or unreadable upload leaves the upload folder and the index as they
were. Before, the HTTP API moved uploads over existing files and left them there on failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qa import Retriever
from qa.ui.actions import ChatActions
from qa.uploads import MAX_UPLOAD_BYTES, Received, add_uploads, upload_dir_for

from .conftest import TrigramEmbedder

GOOD = b"Puffins nest in burrows on cliffs above the North Sea."
BINARY = bytes(range(256)) * 8


@pytest.fixture
def retriever(tmp_path: Path, corpus: Path) -> Retriever:
    return Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())


@pytest.fixture
def http(retriever: Retriever) -> Any:
    from fastapi.testclient import TestClient

    from qa.api import create_app

    return TestClient(create_app(retriever), raise_server_exceptions=False)


def _state(r: Retriever) -> tuple[dict[str, bytes], list[str]]:
    """The upload folder's files (hidden ones too) and the indexed document ids."""
    folder = upload_dir_for(r)
    files = {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}
    return files, sorted(d["doc_id"] for d in r.documents())


def test_http_bad_replacement_keeps_the_indexed_version(http, retriever: Retriever) -> None:
    first = http.post("/api/documents", files=[("files", ("puffins.txt", GOOD, "text/plain"))])
    assert first.status_code == 200 and first.json()["added"] == ["puffins.txt"]
    before = _state(retriever)
    bad = http.post("/api/documents", files=[("files", ("puffins.txt", BINARY, "text/plain"))])
    assert bad.status_code == 200, bad.text
    body = bad.json()
    assert body["added"] == body["updated"] == []
    assert [s["file"] for s in body["skipped"]] == ["puffins.txt"]
    assert "binary" in body["skipped"][0]["reason"]
    assert _state(retriever) == before  # the old file is back; no backup or part file left
    assert (upload_dir_for(retriever) / "puffins.txt").read_bytes() == GOOD


def test_http_refuses_a_request_with_one_bad_file_changing_nothing(http, retriever) -> None:
    before = _state(retriever)
    resp = http.post("/api/documents", files=[("files", ("ok.txt", GOOD, "text/plain")),
                                              ("files", ("tool.exe", b"MZ", "text/plain"))])
    assert resp.status_code == 400
    assert resp.json()["detail"].startswith("tool.exe: unsupported file type '.exe'")
    assert _state(retriever) == before


def test_an_upload_never_replaces_a_document_indexed_from_a_folder(
        http, retriever: Retriever, tmp_path: Path) -> None:
    # Found by a browser tester: a one-line file named like a sample article replaced it, with
    # "Updated" as the only word said.
    before = _state(retriever)
    resp = http.post("/api/documents", files=[("files", ("cats.txt", GOOD, "text/plain"))])
    assert resp.status_code == 400
    assert resp.json()["detail"] == ("cats.txt: a document of this name is already indexed from "
                                     "a folder; rename the file, or delete that document first")
    assert _state(retriever) == before
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    for name in ("cats.txt", "new.txt"):
        (chosen / name).write_bytes(GOOD)
    rep = ChatActions(retriever).upload([chosen / "cats.txt", chosen / "new.txt"])
    assert rep["added"] == ["new.txt"] and [s["file"] for s in rep["skipped"]] == ["cats.txt"]
    assert "cats" in retriever.document_text("cats.txt").lower()
    # uploading a file again replaces its earlier upload
    again = http.post("/api/documents", files=[("files", ("new.txt", GOOD + b" More.", "t/p"))])
    assert again.json()["updated"] == ["new.txt"]


def test_a_failing_add_restores_every_file(retriever: Retriever, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    add_uploads(retriever, [Received("puffins.txt", _write(tmp_path / "a.txt", GOOD))])
    before = _state(retriever)

    def broken_add(*_: Any, **__: Any) -> Any:  # the fault: the index cannot be written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(retriever, "add", broken_add)
    new = [Received("puffins.txt", _write(tmp_path / "b.txt", b"Replaced text.")),
           Received("gulls.txt", _write(tmp_path / "c.txt", b"Gulls steal chips."))]
    with pytest.raises(OSError, match="No space left"):
        add_uploads(retriever, new)
    assert _state(retriever) == before


def test_chat_and_http_give_the_same_report(http, retriever: Retriever, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    chat = ChatActions(retriever).upload([str(_write(tmp_path / "a" / "same.txt", GOOD)),
                                   str(_write(tmp_path / "b" / "same.txt", b"Other text.")),
                                   str(big)])
    assert sorted(chat["added"]) == ["same-2.txt", "same.txt"]  # both kept
    assert chat["skipped"] == [{"file": "big.txt", "reason": "too large (more than 20 MiB)"}]
    resp = http.post("/api/documents", files=[("files", ("big.txt", b"x" * (MAX_UPLOAD_BYTES + 1),
                                                         "text/plain"))])
    assert resp.status_code == 400 and resp.json()["detail"] == \
        "big.txt: too large (more than 20 MiB)"
    again = http.post("/api/documents", files=[("files", ("same.txt", GOOD, "text/plain"))])
    keys = {"added", "updated", "unchanged", "removed", "skipped", "documents", "passages"}
    assert set(again.json()) == keys and set(chat) == keys | {"message"}
    assert again.json()["unchanged"] == ["same.txt"]


def test_the_chat_does_not_import_helpers_from_the_http_module() -> None:
    import ast

    ui = Path(__file__).resolve().parent.parent / "qa" / "ui"
    for module in ui.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in ("api", "qa.api"):
                # server.py mounts the chat on the HTTP app; nothing else may reach into it
                assert module.name == "server.py", module
                assert [a.name for a in node.names] == ["create_app"], module


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
