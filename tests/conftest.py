"""Shared fixtures. Most tests use a fast deterministic embedder (hashed character trigrams), so
they need no model; the ``model`` marker picks the few end-to-end tests with the real one."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "qa" / "data" / "sample"


class TrigramEmbedder:
    """Bag of hashed character trigrams: texts sharing words get similar vectors. Counts calls
    so tests can check what was (not) embedded."""

    def __init__(self, name: str = "test-trigram", dim: int = 64) -> None:
        self.name = name
        self.dim = dim
        self.embedded: list[str] = []

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        t = f"  {text.lower()}  "
        for i in range(len(t) - 2):
            digest = hashlib.blake2b(t[i : i + 3].encode(), digest_size=4).digest()
            h = int.from_bytes(digest, "little")
            v[h % self.dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._vec(t) for t in texts])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return self.embed_queries(texts)


@pytest.fixture
def fake_embedder() -> TrigramEmbedder:
    return TrigramEmbedder()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Three small English documents in a folder (one in a subfolder)."""
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "cats.txt").write_text(
        "Cats sleep for most of the day. A cat purrs when it is content.\n\n"
        "Domestic cats descend from the African wildcat.", encoding="utf-8")
    (d / "rivers.md").write_text(
        "# Rivers of Europe\n\nThe Danube flows through ten countries. "
        "The Rhine rises in the Swiss Alps and flows into the North Sea.", encoding="utf-8")
    (d / "sub" / "volcano.html").write_text(
        "<html><head><title>Volcanoes</title><script>var x = 'hidden script text';</script>"
        "</head><body><h1>Volcanoes</h1><p>Mount Etna is an active volcano in Sicily.</p>"
        "<p>Lava flows from Etna reached the sea.</p></body></html>", encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the bundled sample articles, built once with the real model."""
    from qa import Retriever

    path = tmp_path_factory.mktemp("sample-index")
    Retriever.build([SAMPLE], path)
    return path


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    d = tmp_path / "sample"
    shutil.copytree(SAMPLE, d)
    return d
