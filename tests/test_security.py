"""Safe to expose: bound to localhost unless a login is set, every route behind that login,
uploads limited in type and size and kept inside the upload folder, document text escaped in the
page, and nothing from outside unpickled or executed.

Most tests use the fast trigram embedder and FastAPI's in-process client; the ``model`` test
starts ``qa serve`` for real to see which address it listens on.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import tokenize
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa import BadRequest, QAError, Retriever
from qa.api import create_app
from qa.documents import SUPPORTED_SUFFIXES
from qa.ui.actions import ChatActions, answer_payload, upload_message
from qa.ui.render import (
    render_conversation,
    render_index,
    render_sources,
    render_upload_status,
)
from qa.ui.server import DEFAULT_HOST, check_host, create_server_app, serve
from qa.uploads import MAX_UPLOAD_BYTES, safe_upload_name, store_upload

from .conftest import REPO, TrigramEmbedder

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword")]

EVIL_NAMES = [
    "../../etc/passwd.txt", "/etc/passwd.txt", "..\\..\\windows\\win.ini.txt",
    "C:\\Windows\\system.txt", "a/../../b.txt", "....//....//x.txt", "x.txt\x00.pdf",
    "\x00.txt", ".bashrc.txt", "..txt.md", " .hidden.md", "./.././.x.md",
    "\u202egpj.txt", "x\u200b\u200d.txt", "\ufeff.txt", "a\u2215b.txt", "a\uff0fb.txt",
    "..\u2024txt.txt", "con.txt", "nul:.txt", "a\nb.txt", "a\rb.md", "x" * 300 + ".txt",
    "ä" * 200 + ".md", "😀" * 100 + ".html", "\udcff.txt",
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("security")
    (d / "docs").mkdir()
    (d / "docs" / "cats.txt").write_text("Cats sleep for most of the day. A cat purrs.")
    (d / "docs" / "evil.html").write_text(
        "<html><head><title>T <script>alert(1)</script></title></head><body><p>Evil "
        "&lt;script&gt;window.__pwned=1&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt; "
        "text about cats.</p></body></html>")
    Retriever.build([d / "docs"], d / "idx", embedder=TrigramEmbedder())
    return d / "idx"


@pytest.fixture
def retriever(index: Path, tmp_path: Path) -> Retriever:
    """A private copy (uploads change it)."""
    import shutil

    shutil.copytree(index, tmp_path / "idx")
    return Retriever.load(tmp_path / "idx", embedder=TrigramEmbedder())


def _client(app: Any) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


# -- binding --------------------------------------------------------------------------------------

def test_default_host_is_localhost() -> None:
    from qa.cli import build_parser

    assert DEFAULT_HOST == "127.0.0.1"
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "10.0.0.1",
                                  "example.com", "localhost.", "127.0.0.1.nip.io"])
def test_public_hosts_are_refused_without_a_login(host: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QA_AUTH", raising=False)
    monkeypatch.delenv("QA_API_TOKEN", raising=False)
    with pytest.raises(QAError, match="QA_AUTH=user:password or QA_API_TOKEN") as err:
        serve(index="/nonexistent", host=host, port=_free_port())
    assert "\n" not in str(err.value)
    check_host(host, ("ann", "pw"))  # allowed with a login
    check_host(host, None, "s3cret")  # or a token, which every route then needs (README)


@pytest.mark.parametrize(("host", "auth"), [("0.0.0.0", None), ("0.0.0.0", "nocolon"),
                                            ("::", ":pw")])
def test_cli_refuses_public_host_with_exit_status_2(host: str, auth: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("QA_AUTH", "QA_API_TOKEN")}
    if auth is not None:
        env["QA_AUTH"] = auth
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--host", host, "--port",
                           str(_free_port()), "--index", "/nonexistent"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("qa: error:") and proc.stderr.count("\n") == 1
    assert "QA_AUTH" in proc.stderr and "Traceback" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":  # LISTEN
                out.add(addr)
    return out


@pytest.mark.model
def test_qa_serve_listens_on_localhost_only(sample_index: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("QA_AUTH", "QA_API_TOKEN")}
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--api-only", "--index",
                             str(sample_index), "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "qa serve did not start"
            time.sleep(0.2)
        assert _listening(port) == {"0100007F"}  # 127.0.0.1, and nothing else
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- logins ---------------------------------------------------------------------------------------

API_CALLS = [
    ("get", "/api/info", None), ("get", "/api/documents", None),
    ("post", "/api/ask", {"question": "cats?"}), ("post", "/api/search", {"question": "cats?"}),
    ("delete", "/api/documents/cats.txt", None),
]


def _call(client: Any, method: str, path: str, body: Any, **kw: Any) -> Any:
    if body is not None:
        kw["json"] = body
    return getattr(client, method)(path, **kw) if method != "delete" else \
        client.request("DELETE", path, **kw)


@pytest.mark.parametrize("api_only", [True, False], ids=["api-only", "with-chat"])
def test_with_qa_auth_every_api_call_needs_the_login(retriever: Retriever, api_only: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QA_API_TOKEN", raising=False)
    c = _client(create_server_app(retriever, auth=("ann", "s3cret"), api_only=api_only))
    for method, path, body in API_CALLS:
        for auth in (None, ("ann", "wrong"), ("bob", "s3cret"), ("ann", "s3cret "),
                     ("ann", "")):
            resp = _call(c, method, path, body, **({"auth": auth} if auth else {}))
            assert resp.status_code == 401, (method, path, auth, resp.status_code)
            assert resp.headers["www-authenticate"].startswith("Basic")
        for path_trick in (path + "/", path.replace("/api/", "/api/./"),
                           path.replace("/api", "/%61pi")):
            resp = _call(c, method, path_trick, body)
            assert resp.status_code in (401, 404, 405), (path_trick, resp.status_code)
    up = c.post("/api/documents", files=[("files", ("x.txt", b"text", "text/plain"))])
    assert up.status_code == 401
    assert not (retriever.index.path / "uploads" / "x.txt").exists()
    assert c.get("/api/health").status_code == 200  # the only open route
    # with the login everything works (the delete last)
    for method, path, body in API_CALLS:
        resp = _call(c, method, path, body, auth=("ann", "s3cret"))
        assert resp.status_code == 200, (method, path, resp.text[:200])


def test_with_qa_auth_the_chat_and_its_gradio_api_need_the_login(
    retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QA_API_TOKEN", raising=False)
    c = _client(create_server_app(retriever, auth=("ann", "s3cret")))
    for path in ("/config", "/gradio_api/info", "/gradio_api/file=/etc/hostname"):
        assert c.get(path).status_code == 401, path
    for path in ("/gradio_api/call/ask", "/gradio_api/queue/join", "/gradio_api/upload",
                 "/gradio_api/run/ask"):
        assert c.post(path, json={"data": ["cats?", 3]}).status_code in (401, 404), path
    login = c.post("/login", data={"username": "ann", "password": "wrong"})
    assert login.status_code >= 400
    assert c.get("/config").status_code == 401
    login = c.post("/login", data={"username": "ann", "password": "s3cret"})
    assert login.status_code == 200
    assert c.get("/config").status_code == 200


def test_api_token(retriever: Retriever) -> None:
    c = _client(create_app(retriever, token="tok-123"))
    for method, path, body in API_CALLS[:4]:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "tok-123"},
                        {"Authorization": "Basic dG9rLTEyMw=="}):
            assert _call(c, method, path, body, headers=headers).status_code == 401
        ok = _call(c, method, path, body, headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200


# -- uploads --------------------------------------------------------------------------------------

def _is_safe(name: str) -> bool:
    return (
        "/" not in name and "\\" not in name and not name.startswith(".")
        and name == name.strip()
        and not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name)
        and len(name.encode("utf-8")) <= 200
        and name.lower().endswith(SUPPORTED_SUFFIXES)
    )


@pytest.mark.parametrize("name", EVIL_NAMES, ids=range(len(EVIL_NAMES)))
def test_upload_names_are_made_safe(name: str, tmp_path: Path) -> None:
    try:
        safe = safe_upload_name(name)
    except BadRequest as exc:
        assert "\n" not in str(exc).replace(name, "")
        return
    assert _is_safe(safe), repr(safe)
    folder = tmp_path / "uploads"
    target = store_upload(b"Some text.", name, folder)
    assert target.parent == folder and target.name == safe
    assert target.read_bytes() == b"Some text."
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [safe]  # nothing elsewhere


def test_long_names_keep_their_type() -> None:
    assert safe_upload_name("x" * 300 + ".txt").endswith(".txt")
    assert safe_upload_name("ä" * 200 + ".md").endswith(".md")
    assert len(safe_upload_name("😀" * 100 + ".html").encode()) <= 200


@pytest.mark.parametrize("name", ["x.exe", "x.txt.exe", "x.sh", "x", "x.", "x.PY", ".txt",
                                  "x.txt\u202e", "x.svg", "x.js", "x.pdf.html.php"])
def test_upload_types_are_limited(name: str) -> None:
    with pytest.raises(BadRequest):
        safe_upload_name(name)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.one_of(st.characters(exclude_categories=[]),
                                       st.sampled_from(["/", "\\", ".", "\x00", " ",
                                                        "\u202e", "ä"])), max_size=300),
       suffix=st.sampled_from(["", ".txt", ".md", ".pdf", ".exe", ".TXT"]))
def test_any_upload_name_is_refused_or_kept_inside(tmp_path: Path, name: str,
                                                   suffix: str) -> None:
    try:
        safe = safe_upload_name(name + suffix)
    except BadRequest:
        return
    assert _is_safe(safe), repr(safe)
    folder = tmp_path / "u"
    folder.mkdir(exist_ok=True)
    assert (folder / safe).resolve().parent == folder.resolve()


def test_store_upload_refuses_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="too large"):
        store_upload(b"x" * (MAX_UPLOAD_BYTES + 1), "big.txt", tmp_path / "u")
    assert not (tmp_path / "u" / "big.txt").exists()


def test_http_upload_keeps_files_inside_the_upload_folder(retriever: Retriever,
                                                          tmp_path: Path) -> None:
    c = _client(create_app(retriever))
    root = retriever.index.path.parent
    before = {p for p in root.rglob("*")}
    stored = []
    for name in EVIL_NAMES:
        if "\udcff" in name:  # not encodable: no HTTP client can send it
            continue
        try:
            safe = safe_upload_name(name)
        except BadRequest:
            safe = None
        resp = c.post("/api/documents",
                      files=[("files", (name, f"Penguins {len(stored)}.".encode(),
                                        "text/plain"))])
        if safe is None:
            assert resp.status_code == 400, (name, resp.text)
            assert "\n" not in resp.json()["detail"]
        else:
            assert resp.status_code == 200, (name, resp.text)
            stored.append(resp.json()["added"] + resp.json()["updated"])
    uploads = retriever.index.path / "uploads"
    new = {p for p in root.rglob("*")} - before
    outside = [p for p in new if uploads not in p.parents and p != uploads
               and retriever.index.path not in p.parents]
    assert outside == [], outside
    for p in uploads.iterdir():
        assert _is_safe(p.name), p.name
    assert stored  # some were accepted


def test_http_upload_limits(retriever: Retriever, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _client(create_app(retriever))
    big = c.post("/api/documents",
                 files=[("files", ("big.txt", b"x" * (MAX_UPLOAD_BYTES + 1), "text/plain"))])
    assert big.status_code == 400 and "too large" in big.json()["detail"]
    bad = c.post("/api/documents", files=[("files", ("run.sh", b"rm -rf /", "text/plain"))])
    assert bad.status_code == 400 and "unsupported file type" in bad.json()["detail"]
    # two files of one name in one request (this used to answer 500): both kept, as the chat does
    two = c.post("/api/documents", files=[("files", ("same.txt", b"One.", "text/plain")),
                                          ("files", ("same.txt", b"Two.", "text/plain"))])
    assert two.status_code == 200, two.text
    assert sorted(two.json()["added"]) == ["same-2.txt", "same.txt"]
    assert (retriever.index.path / "uploads" / "same.txt").read_bytes() == b"One."
    assert (retriever.index.path / "uploads" / "same-2.txt").read_bytes() == b"Two."
    # the whole request is limited too: nothing is spooled beyond it
    import qa.api

    monkeypatch.setattr(qa.api, "MAX_UPLOAD_REQUEST_BYTES", 64 * 1024)
    small = _client(create_app(retriever))
    resp = small.post("/api/documents",
                      files=[("files", ("a.txt", b"x" * 100_000, "text/plain"))])
    if "max_body_size" in inspect.signature(type(small.app).post).parameters:
        assert resp.status_code == 413
    assert resp.status_code in (400, 413)


def test_ui_upload_refuses_types_and_sizes(retriever: Retriever, tmp_path: Path) -> None:
    core = ChatActions(retriever)
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ...")
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    evil = tmp_path / "..evil.txt"
    evil.write_text("Ordinary text about owls.")
    rep = core.upload([str(exe), str(big), str(evil)])
    skipped = {s["file"]: s["reason"] for s in rep["skipped"]}
    assert "unsupported file type" in skipped["tool.exe"]
    assert "too large" in skipped["big.txt"]
    assert rep["added"] == ["evil.txt"]
    folder = retriever.index.path / "uploads"
    assert sorted(p.name for p in folder.iterdir()) == ["evil.txt"]


# -- escaping -------------------------------------------------------------------------------------

EVIL = "<script>window.__pwned=1</script>"


def _handler_attributes(page: str) -> list[str]:
    """The ``on...`` attributes of the elements of an HTML page, as a browser parses it."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(f"{tag} {name}" for name, _ in attrs if name.lower().startswith("on"))

    Parser().feed(page)
    return found


def test_document_text_is_escaped_in_the_page(retriever: Retriever, tmp_path: Path) -> None:
    """From the index to the HTML: an HTML document whose text holds markup, a document name
    with markup, and a question with markup are all shown as text."""
    doc = tmp_path / f"x{EVIL[:8]}.md"  # "<script>" in the file name
    doc.write_text(f"# Title {EVIL}\n\nOwls hunt at night {EVIL} <img src=x onerror=alert(1)>.")
    retriever.add([doc])
    docs = {d["doc_id"]: d["passages"] for d in retriever.documents()}
    turns = []
    for q in ("owls hunt at night", f"cats {EVIL}", "Evil text about cats"):
        res = answer_payload(retriever.ask(q, 5), docs)
        turns.append({"q": q, "result": res})
    turns.append({"q": "bad", "error": f"k must be {EVIL}"})
    pages = [render_conversation(turns), render_sources(turns),
             render_index(retriever.info(), retriever.documents())]
    rep = {"added": [doc.name], "updated": [], "unchanged": [],
           "skipped": [{"file": EVIL, "reason": EVIL}], "documents": 1, "passages": 1}
    rep["message"] = upload_message(rep)
    pages += [render_upload_status(rep), render_upload_status(None, error=EVIL)]
    for html in pages:
        assert "<script" not in html.lower()
        # no element carries an event handler (the text "onerror=alert" may be shown, escaped)
        assert "<img" not in html.lower() and not _handler_attributes(html)
    joined = "".join(pages)
    assert "&lt;script&gt;" in joined
    assert "Owls hunt at night" in joined


def test_gradio_does_not_serve_arbitrary_files(retriever: Retriever) -> None:
    c = _client(create_server_app(retriever))
    for path in ("/gradio_api/file=/etc/passwd", "/gradio_api/file=../../../../etc/passwd",
                 f"/gradio_api/file={retriever.index.path}/CURRENT",
                 "/file=/etc/passwd"):
        resp = c.get(path)
        assert resp.status_code in (403, 404), (path, resp.status_code)
        assert "root:" not in resp.text


def test_uploaded_html_is_not_served_as_a_page(retriever: Retriever) -> None:
    """A stranger's .html upload must not run as a page of this site (stored XSS)."""
    c = _client(create_server_app(retriever))
    up = c.post("/gradio_api/upload",
                files=[("files", ("evil.html", f"<html>{EVIL}</html>".encode(), "text/html"))])
    assert up.status_code == 200, up.text
    path = up.json()[0]
    resp = c.get(f"/gradio_api/file={path}")
    assert resp.status_code in (200, 403, 404)
    if resp.status_code == 200:  # Gradio 6: application/octet-stream, as an attachment
        ctype = resp.headers.get("content-type", "")
        disp = resp.headers.get("content-disposition", "")
        assert "attachment" in disp or "text/html" not in ctype, (ctype, disp)



def _gradio_call(c: Any, api_name: str, data: list[Any], **kw: Any) -> tuple[str, Any]:
    """One call of a Gradio API endpoint over plain HTTP: (event, data) of its last message."""
    resp = c.post(f"/gradio_api/call/{api_name}", json={"data": data}, **kw)
    assert resp.status_code == 200, resp.text
    stream = c.get(f"/gradio_api/call/{api_name}/{resp.json()['event_id']}", **kw).text
    events = [ln.removeprefix("event: ") for ln in stream.splitlines() if ln.startswith("event:")]
    payloads = [ln.removeprefix("data: ") for ln in stream.splitlines() if ln.startswith("data:")]
    return events[-1], json.loads(payloads[-1])


def _file_data(path: str) -> dict[str, Any]:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def _gradio_cache_files() -> set[Path]:
    from gradio.utils import get_upload_folder

    return {p for p in Path(get_upload_folder()).rglob("*") if p.is_file()}


def test_gradio_upload_cannot_name_a_file_on_the_server(retriever: Retriever,
                                                        tmp_path: Path) -> None:
    """#17.1: the chat's /upload took any server path as if uploaded: "Added 1 document", the
    file's text then served by /search, a copy left in Gradio's temp folder."""
    from fastapi.testclient import TestClient

    secret = tmp_path / "outside" / "key.txt"
    secret.parent.mkdir()
    secret.write_text("TOPSECRET owl key material 7f3a")
    secret.chmod(0o600)
    before = _gradio_cache_files()
    with TestClient(create_server_app(retriever), raise_server_exceptions=False) as c:
        replies = {}
        for path in (str(secret), str(tmp_path / "outside" / "missing.txt"), "/etc/hostname"):
            event, data = _gradio_call(c, "upload", [[_file_data(path)]])
            assert event == "error", (path, data)
            replies[path] = json.dumps(data).replace(path, "PATH")
        # the same reply whether the file exists or not: nothing to learn about the server
        assert len(set(replies.values())) == 1, replies
        event, data = _gradio_call(c, "search", ["owl key material", 3])
        assert event == "complete"
        assert all("TOPSECRET" not in p["text"] for p in data[0]["passages"])
        # a real upload through Gradio still works
        up = c.post("/gradio_api/upload",
                    files=[("files", ("owls.txt", b"Owls hunt at night.", "text/plain"))])
        assert up.status_code == 200, up.text
        event, data = _gradio_call(c, "upload", [[_file_data(up.json()[0])]])
        assert event == "complete" and data[0]["added"] == ["owls.txt"], data
        # #17.5: Gradio's temporary copy is dropped once the upload folder has the file, and
        # DELETE removes that one too: a deleted document leaves no copy behind
        assert not Path(up.json()[0]).exists()
        kept = retriever.index.path / "uploads" / "owls.txt"
        assert kept.read_bytes() == b"Owls hunt at night."
        assert c.delete("/api/documents/owls.txt").json()["removed"] == ["owls.txt"]
        assert not kept.exists()
    assert "key.txt" not in {d["doc_id"] for d in retriever.documents()}
    copied = [p for p in _gradio_cache_files() - before if b"TOPSECRET" in p.read_bytes()]
    assert copied == []


def test_api_token_also_guards_the_chat_and_its_gradio_api(
    retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#17.2: with QA_API_TOKEN the Gradio routes answered 200 without it."""
    import base64

    monkeypatch.delenv("QA_AUTH", raising=False)
    monkeypatch.setenv("QA_API_TOKEN", "tok-123")
    c = _client(create_server_app(retriever))
    calls = [("get", "/", None), ("get", "/config", None), ("get", "/gradio_api/info", None),
             ("post", "/gradio_api/call/ask", {"data": ["cats?", 3]}),
             ("post", "/gradio_api/call/upload", {"data": [[]]}),
             ("post", "/gradio_api/queue/join", {"data": ["cats?", 3], "fn_index": 0}),
             ("post", "/gradio_api/run/ask", {"data": ["cats?", 3]}),
             ("get", "/gradio_api/file=/etc/hostname", None), *API_CALLS[:4]]
    wrong = [{}, {"Authorization": "Bearer nope"}, {"Authorization": "tok-123"},
             {"Authorization": "Basic " + base64.b64encode(b"x:nope").decode()}]
    for method, path, body in calls:
        for headers in wrong:
            resp = _call(c, method, path, body, headers=headers)
            assert resp.status_code == 401, (path, headers, resp.status_code)
            assert "\n" not in resp.json()["detail"]
    up = c.post("/gradio_api/upload", files=[("files", ("x.txt", b"text", "text/plain"))])
    assert up.status_code == 401
    assert c.get("/api/health").status_code == 200
    # the token opens everything: as a bearer token, or as the browser login's password
    bearer = {"Authorization": "Bearer tok-123"}
    basic = {"Authorization": "Basic " + base64.b64encode(b"anyone:tok-123").decode()}
    assert c.get("/config", headers=bearer).status_code == 200
    assert c.get("/config", headers=basic).status_code == 200
    assert c.post("/api/ask", json={"question": "cats?"}, headers=bearer).status_code == 200
    assert c.post("/api/ask", json={"question": "cats?"}, headers=basic).status_code == 401
    assert c.post("/gradio_api/upload", headers=bearer,
                  files=[("files", ("x.txt", b"text", "text/plain"))]).status_code == 200




def test_gradio_client_with_the_token_works_and_without_it_does_not(
    retriever: Retriever, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What README promises for QA_API_TOKEN: gradio_client with the bearer header works
    (uploads included), without it the client cannot even connect."""
    import threading

    import uvicorn
    from gradio_client import Client, handle_file

    monkeypatch.delenv("QA_AUTH", raising=False)
    monkeypatch.setenv("QA_API_TOKEN", "tok-123")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_server_app(retriever), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(Exception):  # noqa: B017 - whichever error the client raises
            Client(url, verbose=False)
        c = Client(url, verbose=False, headers={"Authorization": "Bearer tok-123"})
        assert c.predict("cats", 2, api_name="/search")["passages"]
        (tmp_path / "owls.txt").write_text("Owls hunt at night.")
        rep = c.predict([handle_file(str(tmp_path / "owls.txt"))], api_name="/upload")
        assert rep["added"] == ["owls.txt"], rep
    finally:
        server.should_exit = True
        thread.join(timeout=15)

def test_delete_removes_the_uploaded_file_and_nothing_else(retriever: Retriever,
                                                           tmp_path: Path) -> None:
    """#17.5: DELETE /api/documents/x left the file in the upload folder."""
    c = _client(create_app(retriever))
    up = c.post("/api/documents", files=[("files", ("owls.txt", b"Owls hunt.", "text/plain"))])
    assert up.json()["added"] == ["owls.txt"]
    uploaded = retriever.index.path / "uploads" / "owls.txt"
    assert uploaded.exists()
    gone = c.delete("/api/documents/owls.txt").json()
    assert gone["removed"] == ["owls.txt"] and not uploaded.exists()
    # with the counts left, as an upload's answer has them (found by an API tester)
    assert (gone["documents"], gone["passages"]) == (up.json()["documents"] - 1,
                                                     retriever.info()["passages"])
    # a document indexed from the user's own folder: out of the index, the file untouched
    source = retriever.snapshot().documents["cats.txt"]["source"]
    assert Path(source).exists()
    assert c.delete("/api/documents/cats.txt").json()["removed"] == ["cats.txt"]
    assert Path(source).exists()


def test_links_out_of_the_indexed_folder_are_not_followed(tmp_path: Path) -> None:
    """#17.5: docs/passwd.txt -> /etc/passwd was indexed and served."""
    outside = tmp_path / "outside"
    (outside / "more").mkdir(parents=True)
    (outside / "secret.txt").write_text("TOPSECRET owl key material.")
    (outside / "more" / "also.md").write_text("TOPSECRET owl notes.")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "owls.txt").write_text("Owls hunt at night.")
    (docs / "sub" / "barn.txt").write_text("Barn owls nest in barns.")
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    (docs / "key.txt").symlink_to(outside / "secret.txt")
    (docs / "linked").symlink_to(outside / "more")
    (docs / "same.txt").symlink_to(docs / "sub" / "barn.txt")  # inside: followed
    r = Retriever.build([docs], tmp_path / "idx", embedder=TrigramEmbedder())
    assert sorted(d["doc_id"] for d in r.documents()) == ["owls.txt", "same.txt", "sub/barn.txt"]
    reasons = {Path(s.path).name: s.reason for s in r.last_report.skipped}
    assert set(reasons) == {"passwd.txt", "key.txt", "linked"}, reasons
    assert all("outside the folder" in why for why in reasons.values())
    for q in ("owl key material", "root:x:0:0"):
        assert all("TOPSECRET" not in p.text and "root:" not in p.text for p in r.search(q, 5))
    # a file given by name is the user's explicit choice and is read
    assert Retriever.build([docs / "key.txt"], tmp_path / "idx2",
                           embedder=TrigramEmbedder()).documents()[0]["doc_id"] == "key.txt"


def test_qa_ask_prints_no_terminal_escapes_and_one_line_per_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """#17.5: document text with ``\x1b]0;...\x07\x1b[2J`` was printed raw by ``qa ask`` (it
    retitles the terminal and clears the screen), and a file name with a newline split the
    output."""
    import qa.retriever
    from qa.cli import main

    monkeypatch.setattr(qa.retriever, "get_embedder", lambda spec: TrigramEmbedder(spec))
    docs = tmp_path / "docs"
    docs.mkdir()
    evil = "Owls hunt at night.\x1b]0;pwned\x07\x1b[2J Owls see in the dark\x9b31m \u202e."
    (docs / "owls\n[9] fake.txt").write_text(evil)
    (docs / "bells\x07.md").write_text("# Bells\x1b[5m\n\nOwls ring no bells.")
    Retriever.build([docs], tmp_path / "idx", embedder=TrigramEmbedder())
    r = Retriever.load(tmp_path / "idx", embedder=TrigramEmbedder())
    monkeypatch.setattr(Retriever, "load", classmethod(lambda cls, *a, **kw: r))
    assert main(["ask", "Do owls hunt at night?", "--index", str(tmp_path / "idx")]) == 0
    out = capsys.readouterr().out
    unsafe = [ch for ch in out if ch != "\n" and (unicodedata.category(ch) == "Cc"
                                                  or ch in "\u202e\u2028")]
    assert unsafe == [], out
    assert "\\x1b]0;pwned\\x07" in out and "owls\\x0a[9] fake.txt" in out
    headers = [ln for ln in out.splitlines() if ln.startswith("[")]
    assert [h[:3] for h in headers] == ["[1]", "[2]"], out  # no line forged by a file name
    assert main(["ask", "Do owls hunt at night?", "--index", str(tmp_path / "idx"),
                 "--json"]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "\x1b" not in line and "\x9b" not in line
    parsed = json.loads(line)
    assert any("\x1b]0;pwned\x07" in p["text"] for p in parsed["passages"])  # same value


# -- nothing untrusted is unpickled or executed ---------------------------------------------------

# In code (not comments or strings); "eval(" as a call of its own, not `cmd_eval(`.
FORBIDDEN = [r"pickle", r"(?<![\w.])eval\(", r"(?<![\w.])exec\(", r"allow_pickle=True",
             r"shell=True", r"yaml\.load\(", r"os\.system\(", r"os\.popen\(", r"marshal\.",
             r"shelve", r"torch\.load\("]


def _code_only(source: str) -> str:
    """The source without comments and string literals (docstrings say "no pickle")."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING):
            continue
        if sys.version_info >= (3, 12) and tok.type in (
                tokenize.FSTRING_START, tokenize.FSTRING_MIDDLE, tokenize.FSTRING_END):
            continue
        out.append(tok.string)
    return " ".join(out)


def test_no_pickle_eval_exec_or_shell_in_the_package() -> None:
    found = []
    files = sorted((REPO / "qa").rglob("*.py"))
    assert len(files) > 10
    for f in files:
        source = f.read_text(encoding="utf-8")
        code = _code_only(source).replace(" ", "")
        code = code.replace("allow_pickle=False", "")  # the explicit refusal is fine
        for bad in FORBIDDEN:
            if re.search(bad, code, flags=re.IGNORECASE):
                found.append(f"{f.relative_to(REPO)}: {bad}")
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(
                    fn, ast.Attribute) else ""
                if name in ("eval", "exec", "__import__", "compile") and isinstance(
                        fn, ast.Name):
                    found.append(f"{f.relative_to(REPO)}:{node.lineno}: {name}()")
                for kw in node.keywords:
                    if kw.arg in ("allow_pickle", "shell", "trust_remote_code") and not (
                            isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        found.append(f"{f.relative_to(REPO)}:{node.lineno}: {kw.arg}=")
                if name == "load" and isinstance(fn, ast.Attribute) and isinstance(
                        fn.value, ast.Name) and fn.value.id in ("np", "numpy"):
                    kws = {k.arg: k.value for k in node.keywords}
                    ok = isinstance(kws.get("allow_pickle"), ast.Constant) and \
                        kws["allow_pickle"].value is False
                    if not ok:
                        found.append(f"{f.relative_to(REPO)}:{node.lineno}: np.load without "
                                     "allow_pickle=False")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""]
                for m in mods:
                    if m.split(".")[0] in ("pickle", "cPickle", "dill", "shelve", "marshal",
                                           "joblib", "cloudpickle"):
                        found.append(f"{f.relative_to(REPO)}:{node.lineno}: import {m}")
    assert found == [], found


def test_the_index_holds_no_pickles(index: Path) -> None:
    live = index / (index / "CURRENT").read_text().strip()
    for f in live.iterdir():
        data = f.read_bytes()
        if f.suffix == ".npy":
            import numpy as np

            np.load(f, allow_pickle=False)  # raises on object arrays
        assert not data.startswith(b"\x80\x04") and not data.startswith(b"\x80\x05"), f.name
        if f.suffix in (".json", ".jsonl"):
            for line in data.decode("utf-8").splitlines():
                json.loads(line) if f.suffix == ".jsonl" else None
    json.loads((live / "manifest.json").read_text("utf-8"))


def test_rendered_markers_are_the_only_markup_from_answers() -> None:
    # an answer text that imitates a marker link cannot inject one
    res = {"question": "q", "abstained": False, "confidence": 0.9,
           "answer": '<a href="javascript:alert(1)">[1]</a> text [1]',
           "citations": [], "passages": []}
    html = render_conversation([{"q": "q", "result": res}])
    assert ("&lt;a href=&quot;javascript:alert(1)&quot;&gt;" in html
            or "&lt;a href=&#34;javascript:alert(1)&#34;&gt;" in html)
    assert not re.search(r"<a [^>]*javascript:", html)
