"""The index on disk: incremental updates, embedder identity, damage detection, atomic writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa import (
    BadRequest,
    EmbedderMismatch,
    IndexBusy,
    IndexDamaged,
    IndexNotFound,
    Retriever,
)
from qa.index import IndexDir

from .conftest import TrigramEmbedder


def build(corpus: Path, index: Path, emb: TrigramEmbedder) -> Retriever:
    return Retriever.build([corpus], index, embedder=emb)


def test_build_writes_plain_versioned_files(corpus: Path, tmp_path: Path, fake_embedder) -> None:
    r = build(corpus, tmp_path / "idx", fake_embedder)
    version = (tmp_path / "idx" / "CURRENT").read_text().strip()
    assert [p.name for p in (tmp_path / "idx" / version).iterdir()] == ["manifest.json"]
    manifest = json.loads((tmp_path / "idx" / version / "manifest.json").read_text())
    assert manifest["format_version"] == 4
    assert manifest["embedder"] == "test-trigram" and manifest["dim"] == 64
    assert manifest["chunking"]["chunk_size"] == 800
    [segment] = manifest["segments"]
    seg = tmp_path / "idx" / "segments" / segment["name"]
    files = sorted(p.name for p in seg.iterdir())
    assert files == ["chunk_offsets.npy", "chunk_vectors.npy", "chunks.jsonl", "documents.json",
                     "segment.json", "sentence_chunks.npy", "sentence_vectors.npy"]
    meta = json.loads((seg / "segment.json").read_text())
    assert set(meta["files"]) == set(files) - {"segment.json"}
    documents = json.loads((seg / "documents.json").read_text())
    assert set(documents) == {"cats.txt", "rivers.md", "sub/volcano.html"}
    assert all(len(m["sha256"]) == 64 for m in documents.values())
    assert r.info()["documents"] == manifest["counts"]["documents"] == 3


def test_reindex_is_incremental(corpus: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    first = TrigramEmbedder()
    build(corpus, idx, first)
    assert any("Danube" in t for t in first.embedded)

    # Nothing changed: nothing embedded, no new version written.
    again = TrigramEmbedder()
    r = build(corpus, idx, again)
    assert again.embedded == []
    assert r.last_report.unchanged == ["cats.txt", "rivers.md", "sub/volcano.html"]
    v_before = (idx / "CURRENT").read_text()

    # Change one, delete one, add one: only the changed and new text is embedded.
    (corpus / "cats.txt").write_text("Cats hunt mice at night. Kittens play with yarn.")
    (corpus / "rivers.md").unlink()
    (corpus / "sub" / "moon.txt").write_text("The Moon orbits the Earth every 27 days.")
    third = TrigramEmbedder()
    r = build(corpus, idx, third)
    rep = r.last_report
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (
        ["sub/moon.txt"], ["cats.txt"], ["rivers.md"], ["sub/volcano.html"])
    assert all("Etna" not in t for t in third.embedded)
    assert any("Kittens" in t for t in third.embedded)
    assert (idx / "CURRENT").read_text() != v_before

    reloaded = Retriever.load(idx, embedder=TrigramEmbedder())
    assert {d["doc_id"] for d in reloaded.documents()} == {"cats.txt", "sub/moon.txt",
                                                           "sub/volcano.html"}
    texts = " ".join(p.text for p in reloaded.search("cats mice kittens", 10))
    assert "Kittens" in texts and "purrs" not in texts and "Danube" not in texts
    # vectors of kept documents survive unchanged
    top = reloaded.search("Mount Etna active volcano Sicily", 1)[0]
    assert top.doc_id == "sub/volcano.html"


def test_add_and_remove_through_the_api(corpus: Path, tmp_path: Path, fake_embedder) -> None:
    r = build(corpus, tmp_path / "idx", fake_embedder)
    extra = tmp_path / "glaciers.txt"
    extra.write_text("Glaciers in the Alps are shrinking fast.")
    rep = r.add([extra])
    assert rep.added == ["glaciers.txt"]
    assert r.search("glaciers shrinking Alps", 1)[0].doc_id == "glaciers.txt"
    rep = r.remove(["glaciers.txt", "no-such-doc"])
    assert rep.removed == ["glaciers.txt"]
    assert [(s.path, s.reason.split(" (")[0]) for s in rep.skipped] == [
        ("no-such-doc", "not in the index")]  # said, not silently ignored
    assert "glaciers.txt" not in {d["doc_id"] for d in r.documents()}
    # another folder's documents are not removed by re-indexing this one
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("Penguins live in the Antarctic.")
    r.add([other])
    Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder())
    assert "x.txt" in {d["doc_id"] for d in Retriever.load(tmp_path / "idx").documents()}


def test_one_path_or_id_given_as_a_string_is_that_path_not_its_characters(
        corpus: Path, tmp_path: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by an API tester: build("docs/", ...) read "d", "o", "c", "s" and "/", and began
    # indexing the whole file system.
    monkeypatch.chdir(corpus)
    r = Retriever.build("sub", tmp_path / "idx", embedder=fake_embedder)
    assert [d["doc_id"] for d in r.documents()] == ["volcano.html"]
    assert r.add(str(corpus / "cats.txt")).added == ["cats.txt"]
    assert r.remove("cats.txt").removed == ["cats.txt"]


def test_a_file_never_silently_replaces_another_of_the_same_name(
        tmp_path: Path, fake_embedder) -> None:
    # Found by an API tester: "qa index teamA" then "qa index teamB" into one index left only
    # team B's notes.txt, with "1 updated".
    for team, text in (("teamA", "The meeting is on Monday at nine."),
                       ("teamB", "Our budget is five thousand euros.")):
        (tmp_path / team).mkdir()
        (tmp_path / team / "notes.txt").write_text(text)
    r = Retriever.build([tmp_path / "teamA"], tmp_path / "idx", embedder=fake_embedder)
    with pytest.raises(BadRequest, match=r"notes.txt would replace document 'notes.txt'.*"
                                         r"teamA.*rename one of them"):
        r.add([tmp_path / "teamB"])
    with pytest.raises(BadRequest, match="would replace"):
        Retriever.build([tmp_path / "teamB"], tmp_path / "idx", embedder=fake_embedder)
    assert "Monday" in Retriever.load(tmp_path / "idx").document_text("notes.txt")
    # a new version of the same file, and a file whose old place is gone, are updates
    (tmp_path / "teamA" / "notes.txt").write_text("The meeting moved to Tuesday.")
    assert r.add([tmp_path / "teamA"]).updated == ["notes.txt"]
    (tmp_path / "teamA" / "notes.txt").unlink()
    assert r.add([tmp_path / "teamB"]).updated == ["notes.txt"]


def test_unreadable_file_keeps_its_indexed_version(corpus: Path, tmp_path: Path) -> None:
    build(corpus, tmp_path / "idx", TrigramEmbedder())
    (corpus / "cats.txt").write_bytes(b"\x00\x00binary now\x00")
    r = build(corpus, tmp_path / "idx", TrigramEmbedder())
    assert [Path(s.path).name for s in r.last_report.skipped] == ["cats.txt"]
    assert "cats.txt" in {d["doc_id"] for d in r.documents()}
    assert r.search("cat purrs content", 1)[0].doc_id == "cats.txt"


def test_index_refuses_another_embedder(corpus: Path, tmp_path: Path, fake_embedder) -> None:
    build(corpus, tmp_path / "idx", fake_embedder)
    with pytest.raises(EmbedderMismatch, match="built with embedder 'test-trigram', not 'other'"):
        Retriever.load(tmp_path / "idx", embedder=TrigramEmbedder(name="other"))
    with pytest.raises(EmbedderMismatch, match="--rebuild"):
        Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder(name="other"))
    # ... unless asked to rebuild with it
    r = Retriever.build([corpus], tmp_path / "idx", embedder=TrigramEmbedder(name="other"),
                        rebuild=True)
    assert r.info()["embedder"] == "other"


def _live(idx: Path) -> Path:
    return idx / (idx / "CURRENT").read_text().strip()


def _segment(idx: Path) -> Path:
    """The folder of the live version's only segment."""
    [entry] = json.loads((_live(idx) / "manifest.json").read_text())["segments"]
    return idx / "segments" / entry["name"]


@pytest.mark.parametrize("damage", ["truncate", "edit", "delete", "manifest", "current"])
def test_damaged_index_is_detected_with_a_clear_message(
    corpus: Path, tmp_path: Path, fake_embedder, damage: str
) -> None:
    idx = tmp_path / "idx"
    build(corpus, idx, fake_embedder)
    live = _segment(idx)
    if damage == "truncate":
        data = (live / "sentence_vectors.npy").read_bytes()
        (live / "sentence_vectors.npy").write_bytes(data[: len(data) // 2])
    elif damage == "edit":
        text = (live / "chunks.jsonl").read_text()
        (live / "chunks.jsonl").write_text(text.replace("Danube", "Danubx"))
    elif damage == "delete":
        (live / "chunk_vectors.npy").unlink()
    elif damage == "manifest":
        (_live(idx) / "manifest.json").write_text("{not json")
    else:
        (idx / "CURRENT").write_text("v999999\n")
    with pytest.raises(IndexDamaged) as err:
        Retriever.load(idx, embedder=TrigramEmbedder())
    msg = str(err.value)
    assert "\n" not in msg and "--rebuild" in msg and "documents are untouched" in msg
    assert (corpus / "cats.txt").exists()
    # the message's advice works
    r = Retriever.build([corpus], idx, embedder=TrigramEmbedder(), rebuild=True)
    assert r.info()["documents"] == 3


def test_missing_index_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match="qa index PATH"):
        Retriever.load(tmp_path / "nothing")


def test_failed_write_leaves_the_old_version_live(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idx = tmp_path / "idx"
    build(corpus, idx, TrigramEmbedder())
    before = (idx / "CURRENT").read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("qa.index.files.save_npy", boom)
    before_segments = sorted(p.name for p in (idx / "segments").iterdir())
    (corpus / "cats.txt").write_text("Changed text about dogs.")
    with pytest.raises(OSError, match="disk full"):
        build(corpus, idx, TrigramEmbedder())
    monkeypatch.undo()
    assert (idx / "CURRENT").read_text() == before
    assert not list(idx.glob(".tmp-*"))
    assert sorted(p.name for p in (idx / "segments").iterdir()) == before_segments
    r = Retriever.load(idx, embedder=TrigramEmbedder())
    assert r.search("cat purrs", 1)[0].doc_id == "cats.txt"


def test_second_writer_is_told_the_index_is_busy(corpus: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    build(corpus, idx, TrigramEmbedder())
    with IndexDir(idx).lock():
        pid = os.fork()
        if pid == 0:  # another process tries to take the writer lock
            try:
                with IndexDir(idx).lock(wait=0.2):
                    os._exit(0)
            except IndexBusy:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 3


def test_snapshot_arrays_stay_consistent_after_updates(corpus: Path, tmp_path: Path) -> None:
    build(corpus, tmp_path / "idx", TrigramEmbedder())
    (corpus / "cats.txt").write_text("One. Two. Three. Four.")
    build(corpus, tmp_path / "idx", TrigramEmbedder())
    snap = IndexDir(tmp_path / "idx").read()
    assert len(snap.views) == 2 and len(snap.views[0].deleted_rows) > 0
    for view in snap.views:
        assert np.all(np.diff(view.segment.sentence_chunks) >= 0)
    assert {c.doc_id for c in snap.chunks} == {"cats.txt", "rivers.md", "sub/volcano.html"}
    emb = TrigramEmbedder()
    for row, chunk in enumerate(snap.chunks):
        vectors = snap.sentence_vectors_of(row)
        assert len(vectors) == len(chunk.sentences)
        assert np.allclose(vectors, emb.embed_passages(chunk.sentence_texts()), atol=1e-6)
        assert np.allclose(snap.passage_vectors([row])[0], emb.embed_passages([chunk.text])[0],
                           atol=1e-6)
    # Re-scoring reads many rows of both segments at once, in any order.
    rows = list(range(len(snap.chunks)))[::-1] + [0]
    passages, sentences, bounds = snap.rescoring_vectors(rows)
    for j, row in enumerate(rows):
        chunk = snap.chunks[row]
        assert np.allclose(passages[j], emb.embed_passages([chunk.text])[0], atol=1e-6)
        assert np.allclose(sentences[bounds[j] : bounds[j + 1]],
                           emb.embed_passages(chunk.sentence_texts()), atol=1e-6)


def test_large_files_are_sample_checked_on_load_and_fully_by_verify(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qa.index.checksums.FULL_CHECK_BYTES", 1000)
    idx = tmp_path / "idx"
    build(corpus, idx, TrigramEmbedder())
    f = _segment(idx) / "sentence_vectors.npy"
    data = bytearray(f.read_bytes())
    assert len(data) > 1000
    manifest = json.loads((_segment(idx) / "segment.json").read_text())
    assert "sampled_sha256" in manifest["files"]["sentence_vectors.npy"]
    data[-1] ^= 0xFF  # the last block is always sampled
    f.write_bytes(bytes(data))
    with pytest.raises(IndexDamaged, match="sentence_vectors.npy does not match its checksum"):
        Retriever.load(idx, embedder=TrigramEmbedder())
    with pytest.raises(IndexDamaged):
        IndexDir(idx).verify()


def test_approximate_store_above_the_exact_limit(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qa.index.segments.EXACT_LIMIT", 2)
    idx = tmp_path / "idx"
    build(corpus, idx, TrigramEmbedder())
    meta = json.loads((_segment(idx) / "segment.json").read_text())
    assert meta["store"] == "ivf"
    assert (_segment(idx) / "chunks.faiss").is_file()
    r = Retriever.load(idx, embedder=TrigramEmbedder())
    assert r.snapshot().views[0].segment.store("sentences") is None
    assert r.search("Mount Etna active volcano Sicily", 1)[0].doc_id == "sub/volcano.html"


def test_passages_are_read_on_demand_with_exact_text(corpus: Path, tmp_path: Path) -> None:
    build(corpus, tmp_path / "idx", TrigramEmbedder())
    snap = IndexDir(tmp_path / "idx").read()
    chunks = list(snap.chunks)
    assert len(chunks) == len(snap.chunks) >= 3
    assert snap.chunks[-1] == chunks[-1] and snap.chunks[0:2] == chunks[:2]
    for c in chunks:
        assert (corpus / c.doc_id).read_text()[c.start : c.end] == c.text or c.doc_id.endswith(
            ".html")
    with pytest.raises(IndexError):
        snap.chunks[len(chunks)]


def test_answering_reads_the_same_vectors_from_the_files(corpus: Path, tmp_path: Path) -> None:
    built = build(corpus, tmp_path / "idx", TrigramEmbedder())
    loaded = Retriever.load(tmp_path / "idx", embedder=TrigramEmbedder())
    snap = loaded.snapshot()
    rows = [2, 0, len(snap.chunks) - 1, 2]
    assert np.array_equal(snap.passage_vectors(rows), snap.vectors("chunks")[rows])
    seg = snap.views[0].segment
    for row in range(len(snap.chunks)):
        lo, hi = seg.sentence_offsets[row], seg.sentence_offsets[row + 1]
        assert np.array_equal(snap.sentence_vectors_of(row), snap.vectors("sentences")[lo:hi])
    question = "Which volcano in Sicily is active?"
    assert [(p.doc_id, p.chunk_id, round(p.score, 5)) for p in loaded.search(question, 5)] == [
        (p.doc_id, p.chunk_id, round(p.score, 5)) for p in built.search(question, 5)]


def test_vector_file_truncated_while_serving_gives_a_clear_error(
    corpus: Path, tmp_path: Path
) -> None:
    build(corpus, tmp_path / "idx", TrigramEmbedder())
    r = Retriever.load(tmp_path / "idx", embedder=TrigramEmbedder())
    f = _segment(tmp_path / "idx") / "sentence_vectors.npy"
    os.truncate(f, f.stat().st_size // 2)
    with pytest.raises(IndexDamaged, match=r"sentence_vectors.npy is shorter .*`qa index`"):
        for question in ("volcano", "cats", "Sicily", "Mount Etna", "whiskers"):
            r.search(question, 10)


def test_approximate_store_is_compact_and_recovers_exact_order_after_rescoring(
    tmp_path: Path,
) -> None:
    from qa.index.faiss_store import FaissStore

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 64)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, 20_000)] + 0.6 * rng.standard_normal(
        (20_000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.integers(0, 20_000, 50)] + 0.1 * rng.standard_normal(
        (50, 64)).astype(np.float32)
    exact = FaissStore.build(vectors, np.arange(20_000), kind="flat")
    ivf = FaissStore.build(vectors, np.arange(20_000), kind="ivf")
    exact.save(tmp_path / "flat.faiss")
    ivf.save(tmp_path / "ivf.faiss")
    # 8-bit codes: well under half of the float32 index on disk, and so in memory.
    assert (tmp_path / "ivf.faiss").stat().st_size < 0.4 * (tmp_path / "flat.faiss").stat().st_size
    loaded = FaissStore.load(tmp_path / "ivf.faiss", "ivf")
    hits = 0
    for q in queries:
        _, truth = exact.search(q[None], 10)
        _, cand = loaded.search(q[None], 100)
        cand = cand[0][cand[0] >= 0]
        top = cand[np.argsort(-(vectors[cand] @ q))[:10]]
        hits += len(set(top) & set(truth[0]))
    assert hits / (10 * len(queries)) >= 0.95


def test_documents_are_read_only_when_asked_for(corpus: Path, tmp_path: Path) -> None:
    build(corpus, tmp_path / "idx", TrigramEmbedder())
    r = Retriever.load(tmp_path / "idx", embedder=TrigramEmbedder())
    assert r.search("volcano", 1) and r.info()["documents"] == 3
    assert r.snapshot()._documents is None  # answering did not parse the list
    assert {d["doc_id"] for d in r.documents()} == {"cats.txt", "rivers.md", "sub/volcano.html"}


def _as_format(idx: Path, fmt: int) -> None:
    """Rewrite a one-segment index as format 3 (one version folder holding every file) or 2
    (documents inside the manifest), as older qa versions wrote them."""
    from qa.index.checksums import file_entry

    seg, old = _segment(idx), _live(idx)
    manifest = json.loads((old / "manifest.json").read_text())
    vdir = idx / "v000001"
    shutil.rmtree(old)
    shutil.copytree(seg, vdir)
    shutil.rmtree(idx / "segments")
    (vdir / "segment.json").unlink()
    documents = json.loads((vdir / "documents.json").read_text())
    for meta in documents.values():
        del meta["rows"]
    (vdir / "documents.json").write_text(json.dumps(documents))
    legacy = {k: manifest[k] for k in ("embedder", "dim", "chunking", "counts")}
    legacy.update(format_version=fmt, stores={"chunks": "flat", "sentences": "flat"})
    if fmt == 2:
        legacy["documents"] = documents
        (vdir / "documents.json").unlink()
    legacy["files"] = {p.name: file_entry(p) for p in sorted(vdir.iterdir())}
    (vdir / "manifest.json").write_text(json.dumps(legacy))
    (idx / "CURRENT").write_text("v000001\n")
    (idx / "PUBLISHED").unlink()


@pytest.mark.parametrize("fmt", [2, 3])
def test_older_formats_load_and_are_migrated_by_their_first_update(
    corpus: Path, tmp_path: Path, fmt: int
) -> None:
    idx = tmp_path / "idx"
    built = build(corpus, idx, TrigramEmbedder())
    question = "Mount Etna active volcano Sicily"
    before = [(p.doc_id, p.chunk_id, round(p.score, 5)) for p in built.search(question, 5)]
    _as_format(idx, fmt)
    r = Retriever.load(idx, embedder=TrigramEmbedder())
    assert r.documents() == built.documents()
    assert [(p.doc_id, p.chunk_id, round(p.score, 5)) for p in r.search(question, 5)] == before
    IndexDir(idx).verify()
    (corpus / "cats.txt").write_text("Cats sleep all day.")  # an update writes format 4
    r = build(corpus, idx, TrigramEmbedder())
    assert r.last_report.updated == ["cats.txt"]
    manifest = json.loads((_live(idx) / "manifest.json").read_text())
    assert manifest["format_version"] == 4
    assert {d["doc_id"] for d in r.documents()} == {"cats.txt", "rivers.md", "sub/volcano.html"}
    assert [(p.doc_id, p.chunk_id, round(p.score, 5)) for p in r.search(question, 5)][0] == \
        before[0]
    IndexDir(idx).verify()
    (corpus / "cats.txt").write_text("Cats sleep all night.")
    build(corpus, idx, TrigramEmbedder())
    assert not (idx / "v000001").exists()  # the format-3 folder is gone once unused
