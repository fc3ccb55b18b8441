"""Issue #17, items 6-12: the index never deletes what it did not create, never loses or keeps a
document by mistake, follows the live version, and refuses rollbacks and damage in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa import BadRequest, IndexDamaged, Retriever
from qa.index import IndexDir

from .conftest import REPO, TrigramEmbedder


def build(paths: list[Path], index: Path, **kw: object) -> Retriever:
    return Retriever.build(paths, index, embedder=TrigramEmbedder(), **kw)  # type: ignore[arg-type]


def live(idx: Path) -> Path:
    return idx / (idx / "CURRENT").read_text().split()[0]


def qa_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = ("import sys; from qa.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "QA_PROGRESS": ""})


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("qa: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- 6: never delete what the index did not create --------------------------------------------


def test_a_folder_that_is_not_an_index_is_refused_and_left_alone(
    corpus: Path, tmp_path: Path
) -> None:
    target = tmp_path / "mine"
    for name in ("v1", "v2", "v3"):
        (target / name).mkdir(parents=True)
        (target / name / "thesis.txt").write_text(f"my work {name}")
    for rebuild in (False, True):
        with pytest.raises(BadRequest, match="not an index") as err:
            build([corpus], target, rebuild=rebuild)
        assert "\n" not in str(err.value)
    assert sorted(p.name for p in target.iterdir()) == ["v1", "v2", "v3"]
    assert (target / "v2" / "thesis.txt").read_text() == "my work v2"
    line = one_error_line(qa_cli("index", str(corpus), "--index", str(target)))
    assert "not an index" in line
    assert sorted(p.name for p in target.iterdir()) == ["v1", "v2", "v3"]


def test_updates_never_remove_folders_the_index_did_not_write(
    corpus: Path, tmp_path: Path
) -> None:
    idx = tmp_path / "idx"
    build([corpus], idx)
    for name in ("v1", "v2", "v000000-backup", "v9"):
        (idx / name).mkdir()
        (idx / name / "keep.txt").write_text("mine")
    (idx / "v000099").mkdir()  # a version-like name, but not written by the index
    (idx / "v000099" / "keep.txt").write_text("mine")
    for text in ("Cats hunt mice.", "Cats sleep.", "Cats purr."):
        (corpus / "cats.txt").write_text(text)
        build([corpus], idx)
    for name in ("v1", "v2", "v000000-backup", "v9", "v000099"):
        assert (idx / name / "keep.txt").read_text() == "mine", name


def test_an_empty_folder_or_one_left_by_a_killed_first_write_is_used(
    corpus: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build([corpus], empty).info()["documents"] == 3
    half = tmp_path / "half"
    (half / ".tmp-123-abcdef12").mkdir(parents=True)
    (half / "LOCK").write_text("")
    assert build([corpus], half).info()["documents"] == 3
    assert not list(half.glob(".tmp-*"))


# -- 7: two roots holding the same relative name ----------------------------------------------


def test_two_roots_with_the_same_relative_name_are_refused_in_one_line(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "notes.txt").write_text("Notes about apples and orchards.")
    (b / "notes.txt").write_text("Notes about boats and harbours.")
    (b / "other.txt").write_text("Something else entirely.")
    idx = tmp_path / "idx"
    with pytest.raises(BadRequest) as err:
        build([a, b], idx)
    msg = str(err.value)
    assert "notes.txt" in msg and str(a) in msg and str(b) in msg and "\n" not in msg
    assert not IndexDir(idx).exists()
    line = one_error_line(qa_cli("index", str(a), str(b), "--index", str(idx)))
    assert "notes.txt" in line
    # indexed one at a time into separate indexes, both are kept
    assert build([a], tmp_path / "ia").search("apples orchards", 1)[0].doc_id == "notes.txt"


# -- 8: moved folders and deleted symlinked files are removed on re-index ---------------------


def test_a_deleted_symlinked_file_is_removed_on_reindex(corpus: Path, tmp_path: Path) -> None:
    store = corpus / "store"
    store.mkdir()
    (store / "penguins.txt").write_text("Penguins live in the Antarctic and cannot fly.")
    (corpus / "penguins-link.txt").symlink_to(store / "penguins.txt")
    idx = tmp_path / "idx"
    r = build([corpus], idx)
    assert "penguins-link.txt" in {d["doc_id"] for d in r.documents()}
    (corpus / "penguins-link.txt").unlink()
    r = build([corpus], idx)
    assert r.last_report.removed == ["penguins-link.txt"]
    assert "penguins-link.txt" not in {p.doc_id for p in r.search("penguins Antarctic", 10)}


def test_a_symlinked_folder_whose_file_is_deleted(corpus: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "owls.txt").write_text("Owls hunt at night and turn their heads far.")
    (corpus / "birds").symlink_to(elsewhere, target_is_directory=True)
    idx = tmp_path / "idx"
    r = build([corpus], idx)
    if "birds/owls.txt" not in {d["doc_id"] for d in r.documents()}:
        pytest.skip("links that leave the folder are not followed (issue #17, item 5)")
    (elsewhere / "owls.txt").unlink()
    r = build([corpus], idx)
    assert r.last_report.removed == ["birds/owls.txt"]


def test_a_moved_folder_follows_its_documents(corpus: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    build([corpus], idx)
    moved = tmp_path / "moved"
    corpus.rename(moved)
    r = build([moved], idx)  # same ids, same text: unchanged, but now from the new place
    assert r.last_report.unchanged == ["cats.txt", "rivers.md", "sub/volcano.html"]
    (moved / "rivers.md").unlink()
    r = build([moved], idx)
    assert r.last_report.removed == ["rivers.md"]
    assert "rivers.md" not in {p.doc_id for p in r.search("Danube Rhine rivers", 10)}


# -- 9: a running server follows the live version ---------------------------------------------


def test_a_loaded_retriever_follows_updates_by_another_process(
    corpus: Path, tmp_path: Path
) -> None:
    idx = tmp_path / "idx"
    build([corpus], idx)
    server = Retriever.load(idx, embedder=TrigramEmbedder())
    assert server.search("Danube Rhine rivers", 1)[0].doc_id == "rivers.md"
    first = live(idx)
    (corpus / "rivers.md").unlink()
    writer = ("import sys; sys.path.insert(0, '.'); from qa import Retriever; "
              "from tests.conftest import TrigramEmbedder; "
              "Retriever.build([sys.argv[1]], sys.argv[2], embedder=TrigramEmbedder())")
    subprocess.run([sys.executable, "-c", writer, str(corpus), str(idx)], cwd=REPO, check=True,
                   timeout=120)
    (corpus / "cats.txt").write_text("Cats hunt mice at night.")
    build([corpus], idx)  # two updates later the first version folder is gone
    assert not first.exists()
    hits = server.search("Danube Rhine rivers", 10)
    assert "rivers.md" not in {p.doc_id for p in hits}
    assert "rivers.md" not in {d["doc_id"] for d in server.documents()}
    assert server.search("cats mice night", 1)[0].text == "Cats hunt mice at night."
    assert server.info()["version"] == live(idx).name


# -- 10: rollback by hand is detected ---------------------------------------------------------


def test_an_older_version_written_into_current_is_refused(corpus: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    build([corpus], idx)
    old = live(idx).name
    (corpus / "rivers.md").unlink()
    build([corpus], idx)
    assert (idx / old).is_dir()  # the previous version is kept for readers still on it
    (idx / "CURRENT").write_text(old + "\n")
    with pytest.raises(IndexDamaged, match="older") as err:
        Retriever.load(idx, embedder=TrigramEmbedder())
    assert "\n" not in str(err.value)
    with pytest.raises(IndexDamaged, match="older"):
        IndexDir(idx).verify()
    assert "older" in one_error_line(qa_cli("verify", "--index", str(idx)))
    # the advice works, and keeps the folders
    r = build([corpus], idx, rebuild=True)
    assert r.info()["documents"] == 2


# -- 11: cheap guards where large files are only sample-checked -------------------------------


def test_a_changed_byte_outside_the_sampled_blocks_never_gives_a_cosine_above_one(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small sampling constants stand in for a file over 16 MiB: most of it is not sampled.
    monkeypatch.setattr("qa.index.checksums.FULL_CHECK_BYTES", 1000)
    monkeypatch.setattr("qa.index.checksums.SAMPLE_BLOCK", 16)
    idx = tmp_path / "idx"
    build([corpus], idx)
    f = next(idx.glob("segments/*/sentence_vectors.npy"))
    vectors = np.load(f)
    data = bytearray(f.read_bytes())
    header = len(data) - vectors.nbytes
    sampled = set()
    for i in range(32):  # the blocks the sampled checksum reads (see checksums.py)
        start = max(0, (len(data) - 16) * i // 31)
        sampled.update(range(start, start + 16))
    # The high byte (sign, exponent) of a sentence's largest component, away from the sampled
    # blocks: its float becomes about 8.
    row, col = next((r, c) for r in range(len(vectors)) for c in np.argsort(-vectors[r])[:3]
                    if header + 4 * (r * vectors.shape[1] + c) + 3 not in sampled)
    data[header + 4 * (row * vectors.shape[1] + col) + 3] = 0x41
    f.write_bytes(bytes(data))
    seg = IndexDir(idx).read().views[0].segment
    chunk_row = int(seg.sentence_chunks[row])
    chunk = seg.chunks[chunk_row]
    s, e = chunk.sentences[row - int(seg.sentence_offsets[chunk_row])]
    question = chunk.text[s - chunk.start : e - chunk.start]
    r = Retriever.load(idx, embedder=TrigramEmbedder())  # sampled: loads
    with pytest.raises(IndexDamaged, match="sentence_vectors.npy") as err:
        scores = [p.score for p in r.search(question, 10)]
        assert max(scores) > 1.5  # what happened before the guard
    assert "\n" not in str(err.value) and "--rebuild" in str(err.value)
    with pytest.raises(IndexDamaged, match="sentence_vectors.npy"):
        IndexDir(idx).verify()


# -- 12: manifest damage ----------------------------------------------------------------------


def _flip(text: str, needle: str) -> str:
    i = text.index(needle) + len(needle) - 1
    return text[:i] + chr(ord(text[i]) ^ 1) + text[i + 1 :]


@pytest.mark.parametrize("needle", ['"test-trigram', '"passage_vectors": "embed', '"dim": 6'])
def test_a_flipped_bit_in_the_manifest_is_caught(
    corpus: Path, tmp_path: Path, needle: str
) -> None:
    idx = tmp_path / "idx"
    build([corpus], idx)
    m = live(idx) / "manifest.json"
    m.write_text(_flip(m.read_text(), needle))
    json.loads(m.read_text())  # still valid JSON: only a value changed
    with pytest.raises(IndexDamaged, match="manifest.json") as err:
        Retriever.load(idx)
    assert "\n" not in str(err.value)
    with pytest.raises(IndexDamaged, match="manifest.json"):
        IndexDir(idx).verify()
    assert "manifest.json" in one_error_line(qa_cli("verify", "--index", str(idx)))
    assert "manifest.json" in one_error_line(qa_cli("ask", "cats", "--index", str(idx)))
    with pytest.raises(IndexDamaged, match="manifest.json"):
        build([corpus], idx)
    assert build([corpus], idx, rebuild=True).info()["documents"] == 3


def test_vectors_read_while_answering_are_checked(corpus: Path, tmp_path: Path) -> None:
    """The guard itself: a vector that is not unit length is refused, not scored."""
    idx = tmp_path / "idx"
    build([corpus], idx)
    snap = IndexDir(idx).read()
    vectors = snap.passage_vectors(np.arange(len(snap.chunks)))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
