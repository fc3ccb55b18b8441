"""The index in Milvus (Milvus Lite, a local .db folder): same answers as the FAISS folder,
incremental updates, embedder checks, the ANN switch, and the command line.

Milvus Lite lets one process open a .db at a time, so tests that run `qa` in a subprocess give it
its own .db and open it here only after the subprocess has exited.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa import Retriever
from qa.errors import BadRequest, EmbedderMismatch, IndexNotFound
from tests.conftest import REPO, SAMPLE, TrigramEmbedder

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

QUESTIONS = [json.loads(line)["question"]
             for line in (REPO / "eval" / "sample.jsonl").read_text("utf-8").splitlines()]


def top(answer) -> list[tuple[str, int, int]]:
    return [(p.doc_id, p.start, p.end) for p in answer.passages]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Retriever, Retriever]:
    """The sample articles indexed in a FAISS folder and in Milvus Lite, same fake embedder."""
    tmp = tmp_path_factory.mktemp("both")
    emb = TrigramEmbedder()
    faiss = Retriever.build([SAMPLE], tmp / "faiss", embedder=emb)
    milvus = Retriever.build([SAMPLE], embedder=emb, milvus=str(tmp / "qa.db"))
    return faiss, milvus


def test_same_top5_and_cited_answers_as_faiss(both: tuple[Retriever, Retriever]) -> None:
    faiss, milvus = both
    for q in QUESTIONS:
        a, b = faiss.ask(q, 5), milvus.ask(q, 5)
        assert top(b) == top(a), q
        assert [p.score for p in b.passages] == pytest.approx([p.score for p in a.passages],
                                                              abs=1e-5)
        assert (b.text, b.abstained) == (a.text, a.abstained), q
        assert [(c.marker, c.start, c.end) for c in b.citations] == \
            [(c.marker, c.start, c.end) for c in a.citations]


def test_passages_keep_their_offsets_into_the_document(both: tuple[Retriever, Retriever]) -> None:
    _, milvus = both
    for p in milvus.ask("What did Ukraine offer in Istanbul?", 10).passages:
        text = (SAMPLE / p.doc_id).read_text("utf-8")
        assert text[p.start:p.end] == p.text


def test_info_and_documents_come_from_milvus(both: tuple[Retriever, Retriever]) -> None:
    faiss, milvus = both
    a, b = faiss.info(), milvus.info()
    for key in ("embedder", "dim", "documents", "passages", "sentences", "chunking"):
        assert b[key] == a[key], key
    assert b["backend"] == "milvus" and b["vector_index"] == "FLAT"
    assert milvus.documents() == faiss.documents()


def test_document_text_comes_back_whole(both: tuple[Retriever, Retriever], tmp_path: Path,
                                        corpus: Path) -> None:
    faiss, milvus = both
    doc = "istanbul-peace-talks.de.txt"
    assert milvus.document_text(doc) == faiss.document_text(doc) == \
        (SAMPLE / doc).read_text("utf-8")
    # without its source file, it is put together from the passages in Milvus
    r = Retriever.build([corpus], embedder=TrigramEmbedder(), milvus=str(tmp_path / "t.db"))
    text = (corpus / "rivers.md").read_text("utf-8")
    (corpus / "rivers.md").unlink()
    rebuilt = r.document_text("rivers.md")
    assert len(rebuilt) == len(text.rstrip()) or len(rebuilt) == len(text)
    for p in r.ask("Which river rises in the Swiss Alps?", 3).passages:
        if p.doc_id == "rivers.md":
            assert rebuilt[p.start:p.end] == p.text
    with pytest.raises(BadRequest, match="no document"):
        r.document_text("nope.txt")
    assert r.snapshot().documents["cats.txt"]["source"].endswith("cats.txt")


def test_a_second_retriever_reads_everything_from_milvus(
        both: tuple[Retriever, Retriever]) -> None:
    _, milvus = both
    again = Retriever.load(milvus=milvus.milvus.uri, embedder=TrigramEmbedder())
    q = "Wer sollte die Gespräche vermitteln?"
    assert top(again.ask(q)) == top(milvus.ask(q))


def test_embedder_mismatch_is_refused(both: tuple[Retriever, Retriever]) -> None:
    _, milvus = both
    with pytest.raises(EmbedderMismatch, match="test-trigram.*--rebuild"):
        Retriever.load(milvus=milvus.milvus.uri, embedder=TrigramEmbedder("other", 64))


def test_missing_collection_is_a_clear_error(both: tuple[Retriever, Retriever]) -> None:
    _, milvus = both
    with pytest.raises(IndexNotFound, match="no index in Milvus .* collection other"):
        Retriever.load(milvus=milvus.milvus.uri, collection="other")


def test_a_missing_milvus_lite_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match="no index in Milvus: there is no Milvus Lite "
                                            "file .*nope.db"):
        Retriever.load(milvus=str(tmp_path / "nope.db"))
    assert not (tmp_path / "nope.db").exists()


def test_incremental_updates_embed_only_what_changed(tmp_path: Path, corpus: Path) -> None:
    emb = TrigramEmbedder()
    db = str(tmp_path / "inc.db")
    r = Retriever.build([corpus], embedder=emb, milvus=db)
    assert sorted(r.last_report.added) == ["cats.txt", "rivers.md", "sub/volcano.html"]
    emb.embedded.clear()
    r = Retriever.build([corpus], embedder=emb, milvus=db)
    assert r.last_report.unchanged and emb.embedded == []
    (corpus / "cats.txt").write_text("Cats hunt mice at night. Owls do too.", encoding="utf-8")
    (corpus / "rivers.md").unlink()
    r = Retriever.build([corpus], embedder=emb, milvus=db)
    assert r.last_report.updated == ["cats.txt"] and r.last_report.removed == ["rivers.md"]
    assert all("Cats hunt" in t or "Owls" in t for t in emb.embedded)
    assert r.ask("What do cats hunt at night?").passages[0].text.startswith("Cats hunt mice")
    assert {d["doc_id"] for d in r.documents()} == {"cats.txt", "sub/volcano.html"}
    stored = r.milvus.verify()
    assert (stored["documents"], stored["passages"]) == (2, r.info()["passages"])


def test_add_and_remove(tmp_path: Path, corpus: Path) -> None:
    r = Retriever.build([corpus], embedder=TrigramEmbedder(), milvus=str(tmp_path / "ar.db"),
                        collection="team_docs")
    note = tmp_path / "note.txt"
    note.write_text("The lighthouse keeper rows to the island every Tuesday.", encoding="utf-8")
    assert r.add([note]).added == ["note.txt"]
    assert r.ask("Who rows to the island?").passages[0].doc_id == "note.txt"
    assert r.remove(["note.txt", "unknown.txt"]).removed == ["note.txt"]
    assert all(p.doc_id != "note.txt" for p in r.ask("Who rows to the island?", 10).passages)
    r.milvus.verify()


def test_large_collections_switch_to_an_approximate_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qa.index import milvus_retriever

    monkeypatch.setattr(milvus_retriever, "EXACT_LIMIT", 20)
    docs = tmp_path / "many"
    docs.mkdir()
    words = ("apple badger canyon dolphin ember falcon glacier harbor iguana jasmine kettle "
             "lantern meadow nectar orchid pepper quartz raven saffron tundra umbrella violet "
             "walnut xylophone yonder zephyr acorn blizzard cobalt dune").split()
    for i, w in enumerate(words):
        (docs / f"d{i:02d}.txt").write_text(f"This note is about the {w}. The {w} is number "
                                            f"{i}.", encoding="utf-8")
    r = Retriever.build([docs], embedder=TrigramEmbedder(), milvus=str(tmp_path / "ann.db"))
    info = r.info()
    assert info["vector_index"] == "HNSW" and info["passages"] == 30
    assert r.ask("Tell me about the raven").passages[0].doc_id == "d17.txt"


def test_pymilvus_is_not_imported_without_the_option(tmp_path: Path, corpus: Path) -> None:
    code = ("import sys; from qa import Retriever; from qa.cli import build_parser; "
            "from tests.conftest import TrigramEmbedder; "
            f"r = Retriever.build([{str(corpus)!r}], {str(tmp_path / 'i')!r}, "
            "embedder=TrigramEmbedder()); r.ask('cats'); build_parser(); "
            "print([m for m in sys.modules if m.startswith(('pymilvus', 'milvus_lite'))])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


# -- the command line, with the real model ----------------------------------------------------

def qa(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample articles indexed by `qa index --milvus` (real model)."""
    db = tmp_path_factory.mktemp("cli") / "qa.db"
    p = qa("index", str(SAMPLE), "--milvus", str(db))
    assert p.returncode == 0, p.stderr
    assert "2 added" in p.stdout and "18 passages" in p.stdout
    return db


@pytest.mark.model
def test_cli_ask_eval_verify_on_milvus(cli_db: Path, tmp_path: Path) -> None:
    p = qa("ask", "What did Ukraine offer in Istanbul?", "--json", "-k", "3",
           env={"QA_MILVUS_URI": str(cli_db)})
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert obj["passages"][0]["doc_id"] == "istanbul-peace-talks.de.txt"
    assert "dauerhaft neutral" in obj["answer"]
    p = qa("eval", "eval/sample.jsonl", "--milvus", str(cli_db), "--out", str(tmp_path / "run"))
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text("utf-8"))
    assert summary["questions"] == 70
    p = qa("verify", "--milvus", str(cli_db))
    assert p.returncode == 0 and "is intact: 2 documents, 18 passages" in p.stdout, p.stderr
    p = qa("index", str(SAMPLE), "--milvus", str(cli_db))
    assert "0 added, 0 updated, 0 removed, 2 unchanged" in p.stdout, p.stderr


@pytest.mark.model
def test_cli_milvus_answers_as_faiss_with_the_real_model(
        cli_db: Path, sample_index: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"  # opened in this process: the subprocesses keep the original
    shutil.copytree(cli_db, db, ignore=shutil.ignore_patterns("LOCK"))
    faiss, milvus = Retriever.load(sample_index), Retriever.load(milvus=str(db))
    for q in QUESTIONS:
        a, b = faiss.ask(q), milvus.ask(q)
        assert top(b) == top(a), q
        assert (b.text, b.abstained) == (a.text, a.abstained), q


@pytest.mark.parametrize("args, message", [
    (["ask", "x", "--milvus", "{tmp}/none.db"], "no index in Milvus"),
    (["ask", "x", "--milvus", "{tmp}/none.db", "--collection", "a-b"], "--collection must be"),
    (["index", str(SAMPLE), "--shard", "1/2"], "--shard needs --milvus"),
    (["index", str(SAMPLE), "--milvus", "{tmp}/x.db", "--shard", "3/2"], "1 <= I <= N"),
    (["index", str(SAMPLE), "--milvus", "{tmp}/x.db", "--shard", "1/2", "--rebuild"],
     "--rebuild drops the whole collection"),
])
def test_cli_milvus_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    p = qa(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert p.returncode == 2
    assert p.stderr.startswith("qa: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert message in p.stderr


@pytest.mark.model
def test_cli_serve_answers_over_http_from_milvus(cli_db: Path, tmp_path: Path) -> None:
    import time

    import httpx

    from tests.conftest_ui import free_port

    db = tmp_path / "serve.db"  # the server process holds it: a copy of its own
    shutil.copytree(cli_db, db, ignore=shutil.ignore_patterns("LOCK"))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--api-only", "--milvus",
                             str(db), "--collection", "qa", "--port", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/api/info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "qa serve did not start"
            time.sleep(0.5)
        info = httpx.get(f"{url}/api/info", timeout=30).json()
        assert info["backend"] == "milvus" and info["documents"] == 2
        r = httpx.post(f"{url}/api/ask", json={"question": "What did Ukraine offer in Istanbul?",
                                               "k": 3}, timeout=120)
        assert r.status_code == 200
        assert r.json()["passages"][0]["doc_id"] == "istanbul-peace-talks.de.txt"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_options_an_existing_collection_cannot_honour_are_refused(tmp_path: Path,
                                                                   corpus: Path) -> None:
    """As for a folder index (tests/test_cli_errors.py): another chunk size or passage-vector
    mode would need every document re-embedded, so it is refused with the command that does it,
    instead of being silently ignored as it was; options left out keep what the index has."""
    db = str(tmp_path / "opts.db")
    Retriever.build([corpus], embedder=TrigramEmbedder(), milvus=db, collection="c1",
                    chunk_size=400)
    for option, value in (("chunk_size", 300), ("passage_vectors", "mean")):
        with pytest.raises(BadRequest, match=f"built with --{option.replace('_', '-')} .*"
                           f"--milvus {db} --collection c1 .*--rebuild"):
            Retriever.build([corpus], embedder=TrigramEmbedder(), milvus=db, collection="c1",
                            **{option: value})
    r = Retriever.build([corpus], milvus=db, collection="c1", embedder=TrigramEmbedder())
    assert r.info()["chunking"]["chunk_size"] == 400 and r.last_report.unchanged
    r = Retriever.build([corpus], milvus=db, collection="c1")  # the embedder too
    assert r.info()["embedder"] == "test-trigram"


def test_a_sync_removes_what_a_folder_index_removes(tmp_path: Path, corpus: Path) -> None:
    """One rule for both backends (qa.sources.stale_documents): a deleted link and a file gone
    from a moved folder are removed on the next sync. Milvus recorded resolved paths and had its
    own copy of the rule, so a deleted link stayed indexed; an empty path was not refused."""
    store = corpus / "store"
    store.mkdir()
    (store / "penguins.txt").write_text("Penguins live in the Antarctic and cannot fly.")
    (corpus / "penguins-link.txt").symlink_to(store / "penguins.txt")
    db, emb = str(tmp_path / "sync.db"), TrigramEmbedder()
    r = Retriever.build([corpus], embedder=emb, milvus=db)
    assert "penguins-link.txt" in {d["doc_id"] for d in r.documents()}
    (corpus / "penguins-link.txt").unlink()
    r = Retriever.build([corpus], embedder=emb, milvus=db)
    assert r.last_report.removed == ["penguins-link.txt"]
    moved = tmp_path / "moved"
    corpus.rename(moved)
    r = Retriever.build([moved], embedder=emb, milvus=db)
    assert r.last_report.unchanged == ["cats.txt", "rivers.md", "store/penguins.txt",
                                       "sub/volcano.html"]
    (moved / "rivers.md").unlink()
    r = Retriever.build([moved], embedder=emb, milvus=db)
    assert r.last_report.removed == ["rivers.md"]
    with pytest.raises(BadRequest, match="empty path"):
        Retriever.build([""], embedder=emb, milvus=db)


def test_a_file_never_silently_replaces_another_of_the_same_name(tmp_path: Path) -> None:
    for team, text in (("teamA", "The meeting is on Monday at nine."),
                       ("teamB", "Our budget is five thousand euros.")):
        (tmp_path / team).mkdir()
        (tmp_path / team / "notes.txt").write_text(text)
    uri = str(tmp_path / "m.db")
    r = Retriever.build([tmp_path / "teamA"], milvus=uri, embedder=TrigramEmbedder())
    with pytest.raises(BadRequest, match="would replace document 'notes.txt'"):
        r.add([tmp_path / "teamB"])
    assert "Monday" in r.document_text("notes.txt")


def test_langchain_and_llama_index_open_a_milvus_index(tmp_path: Path, corpus: Path) -> None:
    # Found by an API tester: QARetriever.from_index(milvus=...) was a TypeError, though every
    # other surface takes --milvus.
    uri = str(tmp_path / "m.db")
    Retriever.build([corpus], milvus=uri, embedder=TrigramEmbedder())
    pytest.importorskip("langchain_core")
    from qa.langchain import QARetriever as LangChainRetriever

    docs = LangChainRetriever.from_index(milvus=uri, k=2, embedder=TrigramEmbedder()).invoke(
        "Where does the Danube flow?")
    assert len(docs) == 2 and all(d.metadata["doc_id"] for d in docs)
    pytest.importorskip("llama_index.core")
    from qa.llama_index import QARetriever as LlamaRetriever

    nodes = LlamaRetriever.from_index(milvus=uri, k=1, embedder=TrigramEmbedder()).retrieve(
        "cats")
    assert len(nodes) == 1
