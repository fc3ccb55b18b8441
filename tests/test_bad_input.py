"""Bad input never crashes anything: questions, ``k``, files and damaged indexes get a one-line
reason (a ``QAError`` in Python, ``qa: error: ...`` and exit status 2 on the command line, a 4xx
with a one-line ``detail`` over HTTP), and good input around them keeps working.

Property-based (hypothesis, modest example counts) and by hand. The fast trigram embedder is used
wherever the model is not the point; the ``model`` tests use the real one on the sample index.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa import BadRequest, IndexDamaged, QAError, Retriever
from qa.documents import (
    MAX_FILE_BYTES,
    UnreadableFile,
    decode_bytes,
    load_documents,
    read_document,
)
from qa.index import IndexDir

from .conftest import REPO, TrigramEmbedder
from .test_documents import make_pdf

# Any code point, lone surrogates and controls included (hypothesis leaves out surrogates unless
# asked), with the troublesome ones made frequent.
ANY_CHAR = st.one_of(st.characters(exclude_categories=[]),
                     st.sampled_from(["\ud800", "\udfff", "\x00", "\x1b", "\u202e", "\u200b",
                                      "\ufeff", " ", "\n", "ä", "猫"]))
FAST = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
ONE_MB = 1_000_000

# Questions that must be refused, and the words their reason must contain.
REFUSED = [
    ("", "empty"),
    ("   \t\n  ", "empty"),
    ("\x00\x01\x02\x1b\x7f\x85", "empty"),           # control characters only
    ("\u200b\u200e\u202e\ufeff", "empty"),         # zero-width and bidi controls only
    ("\ud800\udfff", "empty"),                     # lone surrogates only
    ("x" * 2001, "too long"),
    ("Frage " * (ONE_MB // 6), "too long"),        # 1 MB
]
# Odd but answerable questions.
ODD = [
    "Was ist Кошка 猫 قطة and the Danube?",         # mixed scripts
    "cats\x00 purr\x1f?",                           # control characters inside
    "\u202ecats purr\u202c",                        # bidi override
    "cats \ud83d purr \udca9",                      # lone surrogates inside
    "🐈🐈 cats 🐈",                                 # emoji
    "c\u0301a\u0308ts",                             # combining marks
    "x" * 2000,                                     # exactly the limit
    "?",
]


def one_line(msg: str) -> bool:
    return bool(msg) and "\n" not in msg and "Traceback" not in msg


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad-input")
    docs = d / "docs"
    docs.mkdir()
    (docs / "cats.txt").write_text("Cats sleep for most of the day. A cat purrs when it is "
                                   "content.\n\nDomestic cats descend from the wildcat.")
    (docs / "rivers.md").write_text("# Rivers\n\nThe Danube flows through ten countries. "
                                    "Die Donau fließt durch zehn Länder.")
    Retriever.build([docs], d / "idx", embedder=TrigramEmbedder())
    return d / "idx"


@pytest.fixture(scope="module")
def fake_retriever(fake_index: Path) -> Retriever:
    return Retriever.load(fake_index, embedder=TrigramEmbedder())


# -- questions and k through the Python API -------------------------------------------------------

@pytest.mark.parametrize(("question", "why"), REFUSED, ids=range(len(REFUSED)))
def test_refused_questions_get_a_one_line_reason(fake_retriever, question, why) -> None:
    with pytest.raises(BadRequest) as err:
        fake_retriever.ask(question)
    assert why in str(err.value) and one_line(str(err.value))
    with pytest.raises(BadRequest):
        fake_retriever.search(question, 3)


@pytest.mark.parametrize("question", ODD, ids=range(len(ODD)))
def test_odd_questions_are_answered(fake_retriever, question) -> None:
    answer = fake_retriever.ask(question, 3)
    assert 1 <= len(answer.passages) <= 3
    json.dumps(answer.to_json(), ensure_ascii=False).encode("utf-8")  # no surrogates leak out
    assert "\n" not in answer.question and "\x00" not in answer.question


@pytest.mark.parametrize("k", [0, -1, 51, 10**100, 2.5, float("nan"), "3", None, True, [3]])
def test_bad_k_is_refused(fake_retriever, k) -> None:
    with pytest.raises(BadRequest) as err:
        fake_retriever.ask("Why do cats purr?", k)
    assert "k must be" in str(err.value) and one_line(str(err.value))


def test_good_k_works(fake_retriever) -> None:
    assert len(fake_retriever.search("cats", 1)) == 1
    assert len(fake_retriever.search("cats", np.int64(2))) == 2
    assert len(fake_retriever.search("cats", 50)) <= 50  # more than there are passages


@FAST
@given(question=st.text(alphabet=ANY_CHAR, max_size=2100),
       k=st.one_of(st.integers(-5, 60), st.floats(allow_nan=True), st.text(max_size=3),
                   st.none(), st.booleans()))
def test_any_question_and_k_answer_or_refuse(fake_retriever, question, k) -> None:
    try:
        answer = fake_retriever.ask(question, k)
    except BadRequest as exc:
        assert one_line(str(exc))
        return
    assert isinstance(k, int) and 1 <= k <= 50
    assert len(answer.passages) <= k
    json.dumps(answer.to_json(), ensure_ascii=False).encode("utf-8")


@pytest.mark.model
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(question=st.text(alphabet=ANY_CHAR, min_size=1, max_size=300))
def test_the_real_model_takes_any_text(sample_index: Path, question: str) -> None:
    r = _real(sample_index)
    try:
        answer = r.ask(question, 3)
    except BadRequest as exc:
        assert one_line(str(exc)) and "empty" in str(exc)
        return
    assert len(answer.passages) == 3
    assert all(np.isfinite(p.score) for p in answer.passages)


@pytest.mark.model
@pytest.mark.parametrize("question", ODD + ["😀" * 2000, "猫" * 2000], ids=range(len(ODD) + 2))
def test_the_real_model_answers_odd_questions(sample_index: Path, question: str) -> None:
    answer = _real(sample_index).ask(question, 3)
    assert len(answer.passages) == 3 and all(np.isfinite(p.score) for p in answer.passages)


_REAL: dict[str, Retriever] = {}


def _real(sample_index: Path) -> Retriever:
    if "r" not in _REAL:
        _REAL["r"] = Retriever.load(sample_index)
    return _REAL["r"]


# -- the command line -----------------------------------------------------------------------------

def _qa(*args: str | bytes, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=REPO, capture_output=True,
                          timeout=timeout, text=True, errors="replace")


def _cli_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(("qa: error:", "qa ask: error:")), proc.stderr
    return lines[-1]


@pytest.mark.parametrize(("question", "why"), [
    ("", "empty"), ("   ", "empty"), ("\x01\x02\x1b", "empty"), ("\u200b\u202e", "empty"),
    ("x" * 100_000, "too long"),  # argv holds at most 128 KiB per argument; 1 MB: see below
], ids=["empty", "blank", "control", "zero-width", "100k"])
def test_cli_refuses_bad_questions_in_one_line(fake_index: Path, question, why) -> None:
    line = _cli_error(_qa("ask", question, "--index", str(fake_index)))
    assert why in line


def test_cli_refuses_invalid_utf8_argv(fake_index: Path) -> None:
    # Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape).
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "ask", b"\xff\xfe\x80",
                           "--index", str(fake_index)], cwd=REPO, capture_output=True,
                          timeout=120)
    proc_text = subprocess.CompletedProcess(proc.args, proc.returncode,
                                            proc.stdout.decode("utf-8", "replace"),
                                            proc.stderr.decode("utf-8", "replace"))
    assert "empty" in _cli_error(proc_text)


def test_cli_one_megabyte_question_in_process(fake_index: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A 1 MB argument cannot be passed through exec (Linux: 128 KiB per argument), so the
    parser is driven in process."""
    from qa.cli import main

    assert main(["ask", "y" * ONE_MB, "--index", str(fake_index)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qa: error: question is too long") and "\n" not in err


@pytest.mark.parametrize("k", ["0", "-1", "51", "99999999999999999999999", "2.5", "abc", ""])
def test_cli_refuses_bad_k(fake_index: Path, k: str) -> None:
    line = _cli_error(_qa("ask", "Why do cats purr?", "-k", k, "--index", str(fake_index)))
    assert "k" in line


@pytest.mark.model
@pytest.mark.parametrize("question", ["Was ist Кошка 猫 قطة?", "cats\x01 purr\u202e",
                                      "🐈" * 500], ids=["mixed", "control", "emoji"])
def test_cli_answers_odd_questions(sample_index: Path, question: str) -> None:
    proc = _qa("ask", question, "--index", str(sample_index), "--json", "-k", "2")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["passages"]) == 2


# -- over HTTP ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def http(fake_retriever) -> Any:
    from fastapi.testclient import TestClient

    from qa.api import create_app

    return TestClient(create_app(fake_retriever), raise_server_exceptions=False)


def _detail(resp: Any) -> str:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    detail = resp.json()["detail"]  # every error is JSON, the body-size limit's too
    assert isinstance(detail, str) and one_line(detail), detail
    return detail


@pytest.mark.parametrize("path", ["/api/ask", "/api/search"])
@pytest.mark.parametrize(("question", "why"), REFUSED[:5], ids=range(5))
def test_http_refuses_bad_questions(http, path, question, why) -> None:
    body = json.dumps({"question": question, "k": 3}).encode()  # \ud800 escapes stay in JSON
    resp = http.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code in (400, 422)
    assert why in _detail(resp) or resp.status_code == 422


@pytest.mark.parametrize("path", ["/api/ask", "/api/search"])
def test_http_refuses_long_questions(http, path) -> None:
    assert "at most 2000" in _detail(http.post(path, json={"question": "x" * 2001}))
    huge = http.post(path, json={"question": "Frage " * (ONE_MB // 6)})  # 1 MB
    assert huge.status_code in (413, 422)
    _detail(huge)
    # over the body limit: JSON with one line, like every other error (it was plain text)
    larger = http.post(path, content=b'{"question": "' + b"x" * 4 * ONE_MB + b'"}',
                       headers={"content-type": "application/json"})
    assert larger.status_code == 413 and larger.headers["content-type"] == "application/json"
    assert "request body too large" in _detail(larger)


@pytest.mark.parametrize("k", [0, -1, 51, 10**30, 2.5, "abc", None, True, [1], {"a": 1},
                               "3", 3.0, " 3"])
def test_http_refuses_bad_k(http, k) -> None:
    resp = http.post("/api/ask", json={"question": "Why do cats purr?", "k": k})
    assert resp.status_code == 422
    assert _detail(resp).startswith("k must be")


@pytest.mark.parametrize("path", ["/api/ask", "/api/search"])
@pytest.mark.parametrize("raw_k", ["1e1", "3.0", '"3"', "true"])
def test_http_refuses_k_that_is_not_a_whole_json_number(http, path, raw_k) -> None:
    """As RELIABILITY.md says: a type mistake is reported (422), not guessed at."""
    body = '{"question": "Why do cats purr?", "k": ' + raw_k + "}"
    resp = http.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert _detail(resp).startswith("k must be a whole number")


def test_every_surface_refuses_k_with_the_same_rule(fake_retriever) -> None:
    """The retriever, the chat and LangChain give the HTTP API's answer for the same k."""
    from qa.langchain import QARetriever
    from qa.ui.actions import ChatActions

    for k in ("3", 3.0, True, 0, 51):
        with pytest.raises(BadRequest) as direct:
            fake_retriever.ask("Why do cats purr?", k)
        with pytest.raises(BadRequest) as chat:
            ChatActions(fake_retriever).ask("Why do cats purr?", k)
        with pytest.raises(Exception, match=str(direct.value)):
            QARetriever(retriever=fake_retriever, k=k)
        assert str(chat.value) == str(direct.value)


@pytest.mark.parametrize(("body", "why"), [
    ({"question": "Why do cats purr?", "stream": "yes"}, "stream: Input should be a valid boolean"),
    ({"question": "Why do cats purr?", "stream": 1}, "stream: Input should be a valid boolean"),
    # a misspelt field would lose what it carries unseen
    ({"question": "Why do cats purr?", "hisotry": []}, "hisotry: Extra inputs are not permitted"),
])
def test_http_refuses_a_stream_that_is_not_true_or_false_and_unknown_fields(
    http, body: dict[str, Any], why: str
) -> None:
    resp = http.post("/api/ask", json=body)
    assert resp.status_code == 422 and _detail(resp) == why


def test_langchain_from_index_refuses_k_in_one_line(tmp_path) -> None:
    from qa.langchain import QARetriever

    with pytest.raises(BadRequest, match="^k must be"):
        QARetriever.from_index(tmp_path / "no-index", k=0)


@pytest.mark.parametrize("body", [
    b"", b"{", b"[]", b'"cats"', b"null", b'{"question": null}', b'{"question": 5}',
    b'{"k": 3}', b'{"question": "\\ud800"}', b'{"question": "caf\xe9"}', b"\xff\xfe\x00",
    b'{"question": "cats", "k": 1}{', b'{"question": "' + b"\\u0000" * 100 + b'"}',
], ids=range(13))
def test_http_refuses_malformed_bodies(http, body: bytes) -> None:
    resp = http.post("/api/ask", content=body, headers={"content-type": "application/json"})
    _detail(resp)


@pytest.mark.parametrize("question", ODD, ids=range(len(ODD)))
def test_http_answers_odd_questions(http, question) -> None:
    resp = http.post("/api/ask", content=json.dumps({"question": question, "k": 2}),
                     headers={"content-type": "application/json"})
    # lone surrogates (JSON escapes that are not valid Unicode) become spaces, as in Python
    assert resp.status_code == 200, resp.text
    assert "\ud83d" not in resp.json()["question"]
    assert len(resp.json()["passages"]) == 2


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@FAST
@given(body=st.one_of(
    st.fixed_dictionaries({"question": st.text(alphabet=ANY_CHAR,
                                               max_size=2100)},
                          optional={"k": _JSON}),
    st.dictionaries(st.sampled_from(["question", "k", "x"]), _JSON, max_size=3),
    _JSON))
def test_http_never_fails_on_any_json(http, body) -> None:
    raw = json.dumps(body).encode()
    for path in ("/api/ask", "/api/search"):
        resp = http.post(path, content=raw, headers={"content-type": "application/json"})
        if resp.status_code != 200:
            _detail(resp)


@FAST
@given(raw=st.binary(max_size=300))
def test_http_never_fails_on_any_bytes(http, raw: bytes) -> None:
    resp = http.post("/api/search", content=raw, headers={"content-type": "application/json"})
    if resp.status_code != 200:
        _detail(resp)


# -- files ----------------------------------------------------------------------------------------

@pytest.fixture
def alarm() -> Iterator[None]:
    """Fail instead of hanging (a FIFO read blocks for ever)."""
    def boom(*_: Any) -> None:
        raise TimeoutError("reading the folder hung")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _reasons(skipped) -> dict[str, str]:
    assert all(one_line(str(s)) for s in skipped)
    return {Path(s.path).name: s.reason for s in skipped}


# Reads the folder in a child with bounded memory and time: reading a FIFO blocks for ever and
# /dev/zero never ends, so a regression must fail the test, not take the machine down.
_LOAD_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
from qa.documents import load_documents
docs, skipped = load_documents([sys.argv[1]])
print(json.dumps({"docs": [d.doc_id for d in docs],
                  "skipped": [[s.path, s.reason, str(s)] for s in skipped]}))
"""


def test_bad_files_are_skipped_by_name(tmp_path: Path) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "good.txt").write_text("The Danube flows through ten countries.")
    (d / "empty.txt").write_bytes(b"")
    (d / "blank.md").write_text(" \n\t\n")
    (d / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (d / "broken.pdf").write_bytes(make_pdf("Hallo")[:150])
    with open(d / "huge.txt", "wb") as f:  # sparse: no disk used
        f.truncate(MAX_FILE_BYTES + 1)
    os.mkfifo(d / "pipe.txt")
    (d / "zero.txt").symlink_to("/dev/zero")
    (d / "self.txt").symlink_to("self.txt")          # a symlink loop
    (d / "a.md").symlink_to("b.md")
    (d / "b.md").symlink_to("a.md")                  # a longer loop
    (d / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    proc = subprocess.run([sys.executable, "-c", _LOAD_CHILD, str(d)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["docs"] == ["good.txt"]
    assert all(one_line(line) for _, _, line in out["skipped"])
    reasons = {Path(path).name: reason for path, reason, _ in out["skipped"]}
    assert reasons["empty.txt"] == "contains no text" == reasons["blank.md"]
    assert "binary" in reasons["binary.txt"]
    assert "PDF" in reasons["broken.pdf"]
    assert reasons["huge.txt"] == "too large (50.1 MiB; limit 50 MiB)"
    assert reasons["pipe.txt"] == "not a regular file"
    # /dev/zero is outside the folder: not followed (#17.5); given by name, not a regular file
    assert "outside the folder" in reasons["zero.txt"]
    with pytest.raises(UnreadableFile, match="not a regular file"):
        read_document(d / "zero.txt")
    for loop in ("self.txt", "a.md", "b.md"):
        assert "symbolic links" in reasons[loop] or "loop" in reasons[loop].lower(), reasons
    assert "no such file" in reasons["dangling.txt"].lower()
    # the index is built from what could be read
    (d / "pipe.txt").unlink()
    (d / "zero.txt").unlink()
    r = Retriever.build([d], tmp_path / "idx", embedder=TrigramEmbedder())
    assert [x["doc_id"] for x in r.documents()] == ["good.txt"]
    assert len(r.last_report.skipped) == len(reasons) - 2


def pdf_bomb(pages: int, chars_per_page: int) -> bytes:
    """A small PDF whose pages all show one compressed stream of ``chars_per_page`` characters:
    about 17 KB for 100 pages of a million characters each."""
    import zlib

    words = b"Lorem ipsum dolor sit amet. " * (chars_per_page // 28)
    stream = zlib.compress(b"BT /F1 12 Tf 72 720 Td (" + words + b") Tj ET", 9)
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
        + b"\nendstream",
    ] + [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
         b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def test_a_pdf_that_expands_to_100_million_characters_is_refused_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#17.4: 17 KB on disk, 100 pages of a million characters: it passed the size limits and was
    extracted whole. Now refused, and extraction stops at the limit (2 of 100 pages read)."""
    from pypdf import PageObject

    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(pdf_bomb(100, 1_000_000))
    assert bomb.stat().st_size < 20_000
    extracted = []
    real = PageObject.extract_text

    def counted(self: Any, *args: Any, **kw: Any) -> str:  # counts, then does the real work
        extracted.append(1)
        return real(self, *args, **kw)

    monkeypatch.setattr(PageObject, "extract_text", counted)
    with pytest.raises(UnreadableFile) as err:
        read_document(bomb)
    assert str(err.value).startswith("too much text (more than 1,000,000 characters; limit")
    assert "QA_MAX_DOCUMENT_CHARS" in str(err.value) and one_line(str(err.value))
    assert len(extracted) <= 2
    # a PDF of the same kind under the limit is read whole
    (tmp_path / "ok.pdf").write_bytes(pdf_bomb(3, 2_000))
    assert len(read_document(tmp_path / "ok.pdf").text) > 5_000


def test_the_text_limit_not_the_file_size_decides(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """#17.4: a 2 MB one-line text file was still being indexed after 7 minutes."""
    line = tmp_path / "line.txt"
    line.write_text("word " * 400_000)  # 2,000,000 characters on one line, 2 MB
    with pytest.raises(UnreadableFile, match=r"too much text \(2,000,000 characters; limit "
                                             r"1,000,000"):
        read_document(line)
    monkeypatch.setenv("QA_MAX_DOCUMENT_CHARS", "100")
    small = tmp_path / "small.md"
    small.write_text("x" * 101)
    with pytest.raises(UnreadableFile, match="too much text"):
        read_document(small)
    small.write_text("x" * 100)
    assert read_document(small).text == "x" * 100


def test_http_upload_refuses_the_pdf_bomb_in_one_line(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from qa.api import create_app

    d = tmp_path / "docs"
    d.mkdir()
    (d / "good.txt").write_text("Owls hunt at night.")
    r = Retriever.build([d], tmp_path / "idx", embedder=TrigramEmbedder())
    c = TestClient(create_app(r))
    resp = c.post("/api/documents",
                  files=[("files", ("bomb.pdf", pdf_bomb(100, 1_000_000), "application/pdf"))])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["added"] == [] and body["skipped"][0]["file"] == "bomb.pdf"
    assert body["skipped"][0]["reason"].startswith("too much text")
    assert [x["doc_id"] for x in r.documents()] == ["good.txt"]


def test_huge_file_given_directly(tmp_path: Path) -> None:
    f = tmp_path / "big.md"
    with open(f, "wb") as fh:
        fh.truncate(3 * MAX_FILE_BYTES)
    assert f.stat().st_blocks == 0 or f.stat().st_blocks * 512 < 2**20  # sparse
    with pytest.raises(UnreadableFile, match="too large"):
        read_document(f)


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading the file")
    f = tmp_path / "secret.txt"
    f.write_text("text")
    f.chmod(0)
    try:
        docs, skipped = load_documents([tmp_path])
        assert docs == [] and "ermission" in _reasons(skipped)["secret.txt"]
    finally:
        f.chmod(0o644)


def test_folder_symlink_loop_and_folders_named_like_files(tmp_path: Path, alarm) -> None:
    d = tmp_path / "docs"
    (d / "notes.txt").mkdir(parents=True)                 # a folder named like a file
    (d / "notes.txt" / "inner.md").write_text("# Inner\n\nGlaciers shrink.")
    (d / "sub").mkdir()
    (d / "sub" / "x.txt").write_text("Penguins live in the south.")
    (d / "sub" / "loop").symlink_to(d)                    # folder loop back to the root
    (d / "sub" / "again").symlink_to(d / "sub")           # and to itself
    docs, skipped = load_documents([d])
    ids = sorted(x.doc_id for x in docs)
    assert ids == ["notes.txt/inner.md", "sub/x.txt"], ids
    assert skipped == []
    # a folder named like a file, given directly, is read as a folder
    docs, _ = load_documents([d / "notes.txt"])
    assert [x.doc_id for x in docs] == ["inner.md"]


GERMAN = ("Die Gespräche über größere Sicherheitsgarantien für die Ukraine gehen weiter. "
          "Grüße aus München: Äpfel, Öl und Übergänge – „schön“ heiß.")
SHORT_GERMAN = ["Grüße aus München", "Käse", "Größe", "aus über", "Bäume heiß Häuser"]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_legacy_encoded_german_keeps_its_umlauts_in_the_index(tmp_path: Path,
                                                              encoding: str) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    text = GERMAN if encoding == "cp1252" else GERMAN.replace("–", "-").replace("„", '"') \
        .replace("“", '"')
    (d / "long.txt").write_bytes(text.encode(encoding))
    for i, s in enumerate(SHORT_GERMAN):
        (d / f"short{i}.txt").write_bytes(s.encode(encoding))
    (d / "page.html").write_bytes(f"<html><body><p>{text}</p></body></html>".encode(encoding))
    r = Retriever.build([d], tmp_path / "idx", embedder=TrigramEmbedder())
    assert r.last_report.skipped == []
    snap = IndexDir(tmp_path / "idx").read()
    by_doc: dict[str, str] = {}
    for c in snap.chunks:
        by_doc[c.doc_id] = by_doc.get(c.doc_id, "") + c.text
    assert by_doc["long.txt"] == text
    assert by_doc["page.html"] == text
    for i, s in enumerate(SHORT_GERMAN):
        assert by_doc[f"short{i}.txt"] == s, (encoding, s, by_doc[f"short{i}.txt"])
    top = r.search("Grüße aus München", 1)[0]
    assert "München" in top.text


_GERMAN_WORDS = ("der die das und über für größer Straße Grüße München Käse Öl Äpfel Übergang "
                 "schön heiß weiß Brücke Mädchen Tür Bär Gespräch Frieden Krieg Stadt Land "
                 "Fluss zwölf fünf Rhein Köln Düsseldorf Nürnberg Österreich").split()


@FAST
@given(words=st.lists(st.sampled_from(_GERMAN_WORDS), min_size=1, max_size=40),
       punct=st.sampled_from([" ", ", ", ". ", " – ", "\n"]),
       encoding=st.sampled_from(["latin-1", "cp1252", "utf-8", "utf-8-sig"]))
def test_german_text_decodes_in_any_usual_encoding(words, punct, encoding) -> None:
    text = punct.join(words)
    if encoding == "latin-1":
        text = text.replace("–", "-")
    assert decode_bytes(text.encode(encoding)) == text


@FAST
@given(data=st.binary(max_size=2000))
def test_any_bytes_decode_or_are_refused(data: bytes) -> None:
    try:
        assert isinstance(decode_bytes(data), str)
    except UnreadableFile as exc:
        assert one_line(str(exc))


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    b = bytearray(data)
    for op, pos, val in edits:
        pos %= max(len(b), 1)
        if op == 0:
            b[pos:pos + 1] = bytes([val])
        elif op == 1:
            del b[pos:pos + val % 30 + 1]
        else:
            b[pos:pos] = bytes([val]) * (val % 7 + 1)
    return bytes(b)


def _seeded_mutation(data: bytes, seed: int) -> bytes:
    r = random.Random(seed)
    b = bytearray(data)
    for _ in range(r.randrange(1, 6)):
        op, pos = r.randrange(3), r.randrange(len(b))
        if op == 0:
            b[pos] = r.randrange(256)
        elif op == 1:
            del b[pos:pos + r.randrange(1, 20)]
        else:
            b[pos:pos] = bytes(r.randrange(256) for _ in range(r.randrange(1, 10)))
    return bytes(b)


# Mutations that made pypdf 6 raise TypeError or LimitReachedError, which used to abort the whole
# indexing run instead of skipping the one file.
@pytest.mark.parametrize("seed", [22, 34, 70, 128, 329])
def test_pdfs_that_crashed_the_parser_are_skipped(tmp_path: Path, seed: int) -> None:
    f = tmp_path / "x.pdf"
    f.write_bytes(_seeded_mutation(make_pdf("Die Ukraine bot Neutralitaet an."), seed))
    (tmp_path / "ok.txt").write_text("A good document next to it.")
    docs, skipped = load_documents([tmp_path])
    assert [d.doc_id for d in docs] in (["ok.txt"], ["ok.txt", "x.pdf"])
    assert all(one_line(str(s)) and "PDF" in s.reason for s in skipped)


@FAST
@given(edits=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)),
                      min_size=1, max_size=6))
def test_damaged_pdfs_are_skipped_never_raised(tmp_path: Path, edits) -> None:
    f = tmp_path / "x.pdf"
    f.write_bytes(_mutate(make_pdf("Die Ukraine bot Neutralitaet an."), edits))
    try:
        doc = read_document(f)
    except UnreadableFile as exc:
        assert one_line(str(exc))
    else:
        assert isinstance(doc.text, str)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(files=st.lists(st.tuples(st.sampled_from([".txt", ".md", ".html", ".pdf"]),
                                st.binary(max_size=400)), min_size=1, max_size=5))
def test_any_folder_indexes_or_says_why(tmp_path_factory, files) -> None:
    d = tmp_path_factory.mktemp("any")
    (d / "docs").mkdir()
    for i, (suffix, data) in enumerate(files):
        (d / "docs" / f"f{i}{suffix}").write_bytes(data)
    try:
        r = Retriever.build([d / "docs"], d / "idx", embedder=TrigramEmbedder())
    except QAError as exc:  # EmptyCorpus: nothing readable
        assert one_line(str(exc)) and "no readable documents" in str(exc)
        return
    rep = r.last_report
    assert len(rep.added) + len(rep.skipped) == len(files)


def test_a_file_that_disappears_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qa.documents as documents

    d = tmp_path / "docs"
    d.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (d / name).write_text(f"Document {name} talks about rivers and lakes.")
    r = Retriever.build([d], tmp_path / "idx", embedder=TrigramEmbedder())
    (d / "b.txt").write_text("Document b.txt changed: it talks about mountains now.")
    real = documents.read_document

    def vanishing(path, doc_id=None):
        if Path(path).name == "a.txt":  # b.txt was listed, and goes away while a.txt is read
            (d / "b.txt").unlink()
        if Path(path).name == "c.txt":  # c.txt goes away between its check and its read
            (d / "c.txt").unlink()
        return real(path, doc_id)

    monkeypatch.setattr(documents, "read_document", vanishing)
    r = Retriever.build([d], tmp_path / "idx", embedder=TrigramEmbedder())
    monkeypatch.undo()
    rep = r.last_report
    assert {Path(s.path).name for s in rep.skipped} == {"b.txt", "c.txt"}
    assert all(one_line(str(s)) for s in rep.skipped)
    # what is gone from the folder is gone from the index; nothing half-done
    assert [x["doc_id"] for x in r.documents()] == ["a.txt"]
    IndexDir(tmp_path / "idx").verify(full=True)


def test_adding_missing_paths(tmp_path: Path, fake_index: Path) -> None:
    r = Retriever.load(fake_index, embedder=TrigramEmbedder())
    before = r.info()["documents"]
    rep = r.add([tmp_path / "nope.txt", tmp_path / "nope-folder"])
    assert rep.added == [] and len(rep.skipped) == 2
    assert r.info()["documents"] == before
    with pytest.raises(QAError, match="no readable documents|no documents"):
        Retriever.build([tmp_path / "nope.txt"], tmp_path / "new-idx",
                        embedder=TrigramEmbedder())


# -- damaged indexes (beyond tests/test_index.py) -------------------------------------------------

def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def _live(idx: Path) -> Path:
    return idx / (idx / "CURRENT").read_text().strip()


def _segment(idx: Path) -> Path:
    [entry] = json.loads((_live(idx) / "manifest.json").read_text())["segments"]
    return idx / "segments" / entry["name"]


def _flip_npy_byte(idx: Path) -> None:
    f = _segment(idx) / "chunk_vectors.npy"
    data = bytearray(f.read_bytes())
    data[len(data) - 7] ^= 0x10  # in the float data, size unchanged
    f.write_bytes(bytes(data))


def _edit_manifest(idx: Path, change) -> None:
    f = _live(idx) / "manifest.json"
    m = json.loads(f.read_text())
    change(m)
    f.write_text(json.dumps(m))


def _edit_segment(idx: Path, change) -> None:
    f = _segment(idx) / "segment.json"
    m = json.loads(f.read_text())
    change(m)
    f.write_text(json.dumps(m))


def _set_current(value: str):
    return lambda idx: (idx / "CURRENT").write_text(value)


DAMAGE = {
    "flipped byte in a .npy": _flip_npy_byte,
    "checksum edited": lambda idx: _edit_segment(
        idx, lambda m: m["files"]["chunks.jsonl"].update(sha256="0" * 64)),
    "checksum entry removed": lambda idx: _edit_segment(
        idx, lambda m: m["files"].pop("chunk_vectors.npy")),
    "checksum list removed": lambda idx: _edit_segment(idx, lambda m: m.pop("files")),
    "checksum list emptied": lambda idx: _edit_segment(idx, lambda m: m.update(files={})),
    "checksum entry malformed": lambda idx: _edit_segment(
        idx, lambda m: m["files"].update({"chunks.jsonl": "abc"})),
    "checksum names a path outside": lambda idx: _edit_segment(
        idx, lambda m: m["files"].update({"../../../etc/hostname": {"size": 1,
                                                                    "sha256": "0" * 64}})),
    "segment checksum edited in the version": lambda idx: _edit_manifest(
        idx, lambda m: m["segments"][0].update(sha256="0" * 64)),
    "segment list removed": lambda idx: _edit_manifest(idx, lambda m: m.pop("segments")),
    "segment named outside": lambda idx: _edit_manifest(
        idx, lambda m: m["segments"][0].update(name="../../etc")),
    "dim removed": lambda idx: _edit_manifest(idx, lambda m: m.pop("dim")),
    "documents not a mapping": lambda idx: _edit_manifest(idx, lambda m: m.update(documents=[])),
    "document list edited": lambda idx: (_segment(idx) / "documents.json").write_text("[]"),
    "document list removed": lambda idx: (_segment(idx) / "documents.json").unlink(),
    "manifest is a list": lambda idx: (_live(idx) / "manifest.json").write_text("[1, 2]"),
    "manifest not UTF-8": lambda idx: (_live(idx) / "manifest.json").write_bytes(b"\xff\xfe{"),
    "CURRENT ../x": _set_current("../x\n"),
    "CURRENT escapes through a version": _set_current("v000001/../..\n"),
    "CURRENT absolute": _set_current("/etc\n"),
    "CURRENT empty": _set_current(""),
    "CURRENT not UTF-8": lambda idx: (idx / "CURRENT").write_bytes(b"\xff\xfe\x00v"),
    "CURRENT is a folder": lambda idx: ((idx / "CURRENT").unlink(),
                                        (idx / "CURRENT").mkdir()),
    "version folder removed": lambda idx: __import__("shutil").rmtree(_live(idx)),
    "segment folder removed": lambda idx: __import__("shutil").rmtree(_segment(idx)),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damaged_index_is_refused_in_one_line_and_documents_untouched(
    corpus: Path, tmp_path: Path, damage: str
) -> None:
    idx = tmp_path / "idx"
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    before = _tree_hash(corpus)
    DAMAGE[damage](idx)
    with pytest.raises(QAError) as err:
        Retriever.load(idx, embedder=TrigramEmbedder())
    assert isinstance(err.value, IndexDamaged), repr(err.value)
    msg = str(err.value)
    assert one_line(msg) and "damaged" in msg and "--rebuild" in msg
    assert "etc/hostname" not in msg
    # the command line says the same in one line
    line = _cli_error(_qa("ask", "Why do cats purr?", "--index", str(idx)))
    assert "damaged" in line
    assert _tree_hash(corpus) == before  # the documents are never touched
    if damage != "CURRENT is a folder":  # (then the rebuild cannot replace CURRENT: see below)
        r = Retriever.build([corpus], idx, embedder=TrigramEmbedder(), rebuild=True)
        assert r.info()["documents"] == 3
        assert _tree_hash(corpus) == before


def test_extra_junk_in_the_index_is_ignored(corpus: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    (_live(idx) / "notes.txt").write_text("junk")
    (_live(idx) / "extra.npy").write_bytes(b"\x93NUMPY junk")
    (idx / "v000000-backup").mkdir()  # named like a version, but not one
    (idx / "v000000-backup" / "keep.txt").write_text("not ours")
    (idx / "README").write_text("junk")
    (idx / ".tmp-leftover").mkdir()
    r = Retriever.load(idx, embedder=TrigramEmbedder())
    assert r.info()["documents"] == 3
    assert r.search("cat purrs", 1)[0].doc_id == "cats.txt"
    # an update works, cleans only what is its own, and leaves the rest alone
    (corpus / "new.txt").write_text("Glaciers are shrinking.")
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    assert not (idx / ".tmp-leftover").exists()
    assert (idx / "v000000-backup" / "keep.txt").exists() and (idx / "README").exists()
    assert Retriever.load(idx, embedder=TrigramEmbedder()).info()["documents"] == 4


def test_the_api_description_matches_what_it_answers(http) -> None:
    # Found by an API tester: /openapi.json declared every 422 as FastAPI's list of errors while
    # the server sends one line, and did not describe the answer at all.
    spec = http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def fields(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    ask = spec["paths"]["/api/ask"]["post"]["responses"]
    assert ask["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert schemas["ErrorOut"]["properties"]["detail"]["type"] == "string"
    assert "text/event-stream" in ask["200"]["content"]
    bad = http.post("/api/ask", json={"question": ""})
    assert bad.status_code == 422 and set(bad.json()) == fields("ErrorOut")
    real = http.post("/api/ask", json={"question": "Where does the Danube flow?"}).json()
    assert set(real) == fields("AnswerOut")
    assert set(real["passages"][0]) == fields("PassageOut")
    assert real["citations"], real  # the trigram model answers this one
    assert set(real["citations"][0]) == fields("CitationOut")
    assert set(real["sentences"][0]) == fields("SentenceOut")
    assert set(http.post("/api/search", json={"question": "cats"}).json()) == fields("SearchOut")
    missing = http.delete("/api/documents/nope.txt")
    assert missing.status_code == 404 and set(missing.json()) == fields("ErrorOut")
    assert "404" in spec["paths"]["/api/documents/{doc_id}"]["delete"]["responses"]
